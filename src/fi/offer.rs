//! The fi_info entries the provider offers: one FI_EP_RDM and the
//! FI_EP_DGRAM entries per usable interface, with the capabilities that work.

use super::addr::{EpAddr, Kind};
use super::info::{
    API_VERSION, DomainAttr, EpAttr, FABRIC_NAME, FabricAttr, Info, PROV_VERSION, RxAttr, TxAttr,
};
use super::params::Params;
use crate::bindings as b;
use crate::io::udp::Iface;
use std::net::SocketAddrV4;

/// Bytes of the UD receive prefix (GRH-sized), shown as FI_MSG_PREFIX.
pub const UD_PREFIX: usize = 40;
/// Header bytes the device (40) and the datagram frame (up to 9: remote CQ
/// data, fi::dgram) put in front of a DGRAM payload, rounded up.
pub const DGRAM_HEADER_RESERVE: usize = 64;

/// libfabric's FI_TAG_GENERIC (a macro bindgen cannot evaluate): every tag bit usable.
pub const TAG_GENERIC: u64 = 0xAAAA_AAAA_AAAA_AAAA;
pub const RDM_TX_SIZE: usize = 4096;
pub const RDM_RX_SIZE: usize = 4096;
pub const RDM_INJECT: usize = 4096;
pub const DGRAM_QUEUE: usize = 1024;
pub const IOV_LIMIT: usize = 4;
/// Queue pair number of an endpoint's one QP (the first of its own device):
/// what a destination address resolved from a node and service names.
pub const FIRST_QPN: u32 = 1;

/// Capabilities of the RDM endpoint. FI_RMA_EVENT: counters bound with
/// FI_REMOTE_READ / FI_REMOTE_WRITE count peers' RMA and atomics on our
/// memory (and remote CQ data completes at the target as always).
pub const RDM_CAPS: u64 = b::FI_MSG
    | b::FI_TAGGED
    | b::FI_RMA
    | b::FI_ATOMIC
    | b::FI_READ
    | b::FI_WRITE
    | b::FI_REMOTE_READ
    | b::FI_REMOTE_WRITE
    | b::FI_RMA_EVENT
    | b::FI_SHARED_AV
    | b::FI_SEND
    | b::FI_RECV
    | b::FI_SOURCE
    | b::FI_SOURCE_ERR
    | b::FI_MULTI_RECV
    | b::FI_DIRECTED_RECV
    | b::FI_LOCAL_COMM
    | b::FI_REMOTE_COMM;

/// Capabilities of the DGRAM endpoint.
pub const DGRAM_CAPS: u64 = b::FI_MSG
    | b::FI_SEND
    | b::FI_RECV
    | b::FI_SOURCE
    | b::FI_LOCAL_COMM
    | b::FI_REMOTE_COMM
    | b::FI_SHARED_AV;

/// UDP payload the interface carries, as limited by FI_SRD_MTU.
pub fn payload_limit(iface: &Iface, params: &Params) -> usize {
    let from_if = iface.max_udp_payload();
    if params.mtu > 0 {
        params.mtu.min(from_if).max(576)
    } else {
        from_if
    }
}

/// Interfaces to offer, honouring FI_SRD_IFACE.
///
/// Loopback is offered only when nothing else is up or when it is asked
/// for by name (FI_SRD_IFACE, the hints' domain name) or address
/// (`explicit`): clients such as Open MPI spread ranks over all entries of a
/// provider, and a rank that published a loopback address could not be
/// reached from other hosts.
pub fn usable<'a>(ifaces: &'a [Iface], params: &Params, explicit: Option<&str>) -> Vec<&'a Iface> {
    let up: Vec<&Iface> = ifaces
        .iter()
        .filter(|i| i.is_up)
        .filter(|i| params.iface.as_deref().is_none_or(|n| n == i.name))
        .collect();
    let routable = up.iter().any(|i| !i.is_loopback);
    up.into_iter()
        .filter(|i| {
            !i.is_loopback
                || !routable
                || params.iface.is_some()
                || explicit.is_some_and(|n| n == i.name)
        })
        .collect()
}

/// The source address of an entry: the interface with port 0 (an
/// endpoint binds an ephemeral port on it).
pub fn src_addr(iface: &Iface, kind: Kind) -> Vec<u8> {
    EpAddr {
        kind,
        sock: SocketAddrV4::new(iface.addr, 0),
        qpn: 0,
        qkey: 0,
        host_id: 0,
        nonce: 0,
        pid: 0,
    }
    .to_bytes()
    .to_vec()
}

fn domain(iface: &Iface, caps: u64) -> DomainAttr {
    DomainAttr {
        name: Some(iface.name.clone()),
        threading: b::FI_THREAD_SAFE,
        control_progress: b::FI_PROGRESS_AUTO,
        data_progress: b::FI_PROGRESS_MANUAL,
        resource_mgmt: b::FI_RM_ENABLED,
        av_type: b::FI_AV_UNSPEC,
        mr_mode: 0,
        mr_key_size: 8,
        cq_data_size: 8,
        cq_cnt: 1024,
        ep_cnt: 1024,
        tx_ctx_cnt: 1024,
        rx_ctx_cnt: 1024,
        max_ep_tx_ctx: 1,
        max_ep_rx_ctx: 1,
        max_ep_stx_ctx: 0,
        max_ep_srx_ctx: 0,
        cntr_cnt: 1024,
        mr_iov_limit: IOV_LIMIT,
        // FI_SHARED_AV: named AVs, shared by the processes of a host.
        caps: caps & (b::FI_LOCAL_COMM | b::FI_REMOTE_COMM | b::FI_SHARED_AV),
        mode: 0,
        max_err_data: super::addr::ADDR_LEN,
        mr_cnt: 65536,
    }
}

fn fabric() -> FabricAttr {
    FabricAttr {
        name: Some(FABRIC_NAME.to_string()),
        prov_version: PROV_VERSION,
        api_version: API_VERSION,
    }
}

/// The RDM entry for one interface.
pub fn rdm_entry(iface: &Iface) -> Info {
    let caps = RDM_CAPS;
    Info {
        caps,
        mode: 0,
        addr_format: b::FI_FORMAT_UNSPEC,
        src_addr: Some(src_addr(iface, Kind::Rdm)),
        dest_addr: None,
        tx: Some(TxAttr {
            caps: caps
                & !(b::FI_RECV
                    | b::FI_MULTI_RECV
                    | b::FI_DIRECTED_RECV
                    | b::FI_SOURCE
                    | b::FI_SOURCE_ERR
                    | b::FI_REMOTE_READ
                    | b::FI_REMOTE_WRITE
                    | b::FI_RMA_EVENT),
            mode: 0,
            op_flags: b::FI_COMPLETION
                | b::FI_INJECT
                | b::FI_INJECT_COMPLETE
                | b::FI_TRANSMIT_COMPLETE
                | b::FI_DELIVERY_COMPLETE,
            msg_order: b::FI_ORDER_SAS,
            comp_order: b::FI_ORDER_NONE,
            inject_size: RDM_INJECT,
            size: RDM_TX_SIZE,
            iov_limit: IOV_LIMIT,
            rma_iov_limit: 1,
        }),
        rx: Some(RxAttr {
            caps: caps & !(b::FI_SEND | b::FI_READ | b::FI_WRITE),
            mode: 0,
            op_flags: b::FI_COMPLETION | b::FI_MULTI_RECV,
            msg_order: b::FI_ORDER_SAS,
            comp_order: b::FI_ORDER_NONE,
            total_buffered_recv: 0,
            size: RDM_RX_SIZE,
            iov_limit: IOV_LIMIT,
        }),
        ep: Some(EpAttr {
            ep_type: b::FI_EP_RDM,
            protocol: b::FI_PROTO_UNSPEC,
            protocol_version: 1,
            max_msg_size: u32::MAX as usize,
            msg_prefix_size: 0,
            max_order_raw_size: 0,
            max_order_war_size: 0,
            max_order_waw_size: 0,
            mem_tag_format: TAG_GENERIC,
            tx_ctx_cnt: 1,
            rx_ctx_cnt: 1,
        }),
        domain: Some(domain(iface, caps)),
        fabric: Some(fabric()),
        nic: None,
    }
}

/// The DGRAM entry for one interface, with or without the UD prefix mode.
pub fn dgram_entry(iface: &Iface, params: &Params, prefix: bool) -> Info {
    let caps = DGRAM_CAPS;
    let max_msg = payload_limit(iface, params).saturating_sub(DGRAM_HEADER_RESERVE);
    let mode = if prefix { b::FI_MSG_PREFIX } else { 0 };
    Info {
        caps,
        mode,
        addr_format: b::FI_FORMAT_UNSPEC,
        src_addr: Some(src_addr(iface, Kind::Dgram)),
        dest_addr: None,
        tx: Some(TxAttr {
            caps: caps & !(b::FI_RECV | b::FI_SOURCE),
            mode,
            op_flags: b::FI_COMPLETION | b::FI_INJECT | b::FI_INJECT_COMPLETE,
            msg_order: 0,
            comp_order: b::FI_ORDER_NONE,
            // A send copies its payload when posted, so any message is an
            // inject (fi_inject was accepted while this said 0).
            inject_size: max_msg,
            size: DGRAM_QUEUE,
            iov_limit: IOV_LIMIT,
            rma_iov_limit: 0,
        }),
        rx: Some(RxAttr {
            caps: caps & !b::FI_SEND,
            mode,
            op_flags: b::FI_COMPLETION,
            msg_order: 0,
            comp_order: b::FI_ORDER_NONE,
            total_buffered_recv: 0,
            size: DGRAM_QUEUE,
            iov_limit: IOV_LIMIT,
        }),
        ep: Some(EpAttr {
            ep_type: b::FI_EP_DGRAM,
            protocol: b::FI_PROTO_UNSPEC,
            protocol_version: 1,
            max_msg_size: max_msg,
            msg_prefix_size: if prefix { UD_PREFIX } else { 0 },
            max_order_raw_size: 0,
            max_order_war_size: 0,
            max_order_waw_size: 0,
            mem_tag_format: 0,
            tx_ctx_cnt: 1,
            rx_ctx_cnt: 1,
        }),
        // Remote CQ data rides in the datagram's frame (fi::dgram); every
        // datagram consumes a receive, so FI_RX_CQ_DATA holds by nature and
        // is shown to applications that support it (info::narrow).
        domain: Some(domain(iface, caps)),
        fabric: Some(fabric()),
        nic: None,
    }
}

/// Every entry, in the order the application sees them: per interface the
/// RDM entry, then DGRAM without and with the prefix mode.
pub fn entries(ifaces: &[Iface], params: &Params, explicit: Option<&str>) -> Vec<Info> {
    let mut out = Vec::new();
    for i in usable(ifaces, params, explicit) {
        let nic = super::getinfo::cached_nic(&i.name, i.addr, i.mtu as usize);
        for mut e in [
            rdm_entry(i),
            dgram_entry(i, params, false),
            dgram_entry(i, params, true),
        ] {
            e.nic = Some(nic.clone());
            out.push(e);
        }
    }
    out
}
