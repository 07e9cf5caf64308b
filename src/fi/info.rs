//! fi_info in safe Rust: the entries the provider offers and the matching of
//! an application's hints against them (fi_getinfo(3)). The conversion from
//! and to the C structs lives in `ffi::info`.

use crate::bindings as b;

/// Mirror of `struct fi_tx_attr`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TxAttr {
    pub caps: u64,
    pub mode: u64,
    pub op_flags: u64,
    pub msg_order: u64,
    pub comp_order: u64,
    pub inject_size: usize,
    pub size: usize,
    pub iov_limit: usize,
    pub rma_iov_limit: usize,
}

/// Mirror of `struct fi_rx_attr`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RxAttr {
    pub caps: u64,
    pub mode: u64,
    pub op_flags: u64,
    pub msg_order: u64,
    pub comp_order: u64,
    pub total_buffered_recv: usize,
    pub size: usize,
    pub iov_limit: usize,
}

/// Mirror of `struct fi_ep_attr`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpAttr {
    pub ep_type: u32,
    pub protocol: u32,
    pub protocol_version: u32,
    pub max_msg_size: usize,
    pub msg_prefix_size: usize,
    pub max_order_raw_size: usize,
    pub max_order_war_size: usize,
    pub max_order_waw_size: usize,
    pub mem_tag_format: u64,
    pub tx_ctx_cnt: usize,
    pub rx_ctx_cnt: usize,
}

/// Mirror of `struct fi_domain_attr`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainAttr {
    pub name: Option<String>,
    pub threading: u32,
    pub control_progress: u32,
    pub data_progress: u32,
    pub resource_mgmt: u32,
    pub av_type: u32,
    pub mr_mode: i32,
    pub mr_key_size: usize,
    pub cq_data_size: usize,
    pub cq_cnt: usize,
    pub ep_cnt: usize,
    pub tx_ctx_cnt: usize,
    pub rx_ctx_cnt: usize,
    pub max_ep_tx_ctx: usize,
    pub max_ep_rx_ctx: usize,
    pub max_ep_stx_ctx: usize,
    pub max_ep_srx_ctx: usize,
    pub cntr_cnt: usize,
    pub mr_iov_limit: usize,
    pub caps: u64,
    pub mode: u64,
    pub max_err_data: usize,
    pub mr_cnt: usize,
}

/// Mirror of `struct fi_fabric_attr`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FabricAttr {
    pub name: Option<String>,
    pub prov_version: u32,
    pub api_version: u32,
}

/// Mirror of `struct fi_info` (one entry; lists are Vec<Info>).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info {
    pub caps: u64,
    pub mode: u64,
    pub addr_format: u32,
    pub src_addr: Option<Vec<u8>>,
    pub dest_addr: Option<Vec<u8>>,
    pub tx: Option<TxAttr>,
    pub rx: Option<RxAttr>,
    pub ep: Option<EpAttr>,
    pub domain: Option<DomainAttr>,
    pub fabric: Option<FabricAttr>,
    /// The NIC behind the domain (`fi_info->nic`); offered entries carry
    /// it, hints' NIC attributes are not matched.
    pub nic: Option<super::nic::Nic>,
}

/// libfabric's primary capabilities: an application must ask for these.
pub const PRIMARY_CAPS: u64 = b::FI_MSG
    | b::FI_RMA
    | b::FI_TAGGED
    | b::FI_ATOMIC
    | b::FI_MULTICAST
    | b::FI_NAMED_RX_CTX
    | b::FI_DIRECTED_RECV
    | b::FI_VARIABLE_MSG
    | b::FI_READ
    | b::FI_WRITE
    | b::FI_RECV
    | b::FI_SEND
    | b::FI_REMOTE_READ
    | b::FI_REMOTE_WRITE
    | b::FI_COLLECTIVE
    | b::FI_HMEM;

/// Secondary capabilities: a provider may return these unasked.
pub const SECONDARY_CAPS: u64 = b::FI_MULTI_RECV
    | b::FI_SOURCE
    | b::FI_RMA_EVENT
    | b::FI_SHARED_AV
    | b::FI_TRIGGER
    | b::FI_FENCE
    | b::FI_LOCAL_COMM
    | b::FI_REMOTE_COMM
    | b::FI_SOURCE_ERR
    | b::FI_RMA_PMEM;

/// The api version the provider is written against.
pub const API_VERSION: u32 = (1 << 16) | 17;
/// The provider's own version: the shim's `fi_provider.version`
/// (FI_VERSION(0, 1)), which the core writes into every entry's
/// fabric_attr, so hints copied from an entry carry this value.
pub const PROV_VERSION: u32 = 1;
/// Fabric name of every entry: all srd endpoints reach each other over UDP
/// or shared memory.
pub const FABRIC_NAME: &str = "srd";

const fn version(major: u32, minor: u32) -> u32 {
    (major << 16) | minor
}

/// Does the provider entry `prov` satisfy `hints`?  `Err` carries why not
/// (logged at info level by the caller).
pub fn check(prov: &Info, hints: &Info, api_version: u32) -> Result<(), &'static str> {
    if api_version < version(1, 0) {
        return Err("api version too old");
    }
    if hints.caps & !prov.caps != 0 {
        return Err("caps not supported");
    }
    // Mode bits: what we require must be among what the application supports.
    // Since 1.5 a hint mode of 0 means "supports none".
    if prov.mode & !hints.mode != 0 {
        return Err("provider requires mode bits the application does not set");
    }
    if hints.addr_format != b::FI_FORMAT_UNSPEC
        && hints.addr_format != prov.addr_format
        && hints.addr_format != b::FI_ADDR_STR
    {
        return Err("address format not supported");
    }
    if let (Some(h), Some(p)) = (&hints.ep, &prov.ep) {
        check_ep(p, h)?;
    }
    if let (Some(h), Some(p)) = (&hints.domain, &prov.domain) {
        check_domain(p, h, api_version)?;
    }
    if let (Some(h), Some(p)) = (&hints.fabric, &prov.fabric) {
        if h.name
            .as_deref()
            .is_some_and(|n| n != p.name.as_deref().unwrap_or(""))
        {
            return Err("fabric name differs");
        }
        if h.prov_version != 0 && h.prov_version != p.prov_version {
            return Err("provider version differs");
        }
    }
    if let (Some(h), Some(p)) = (&hints.tx, &prov.tx) {
        if h.caps & !p.caps != 0 {
            return Err("tx caps not supported");
        }
        if p.mode & !h.mode != 0 && h.mode != 0 {
            return Err("tx mode bits");
        }
        if h.op_flags & !p.op_flags != 0 {
            return Err("tx op_flags not supported");
        }
        if h.msg_order & !p.msg_order != 0 {
            return Err("tx msg_order not supported");
        }
        if h.comp_order & !p.comp_order != 0 {
            return Err("tx comp_order not supported");
        }
        if h.inject_size > p.inject_size || h.size > p.size || h.iov_limit > p.iov_limit {
            return Err("tx sizes too large");
        }
        if h.rma_iov_limit > p.rma_iov_limit {
            return Err("tx rma_iov_limit too large");
        }
    }
    if let (Some(h), Some(p)) = (&hints.rx, &prov.rx) {
        if h.caps & !p.caps != 0 {
            return Err("rx caps not supported");
        }
        if p.mode & !h.mode != 0 && h.mode != 0 {
            return Err("rx mode bits");
        }
        if h.op_flags & !p.op_flags != 0 {
            return Err("rx op_flags not supported");
        }
        if h.msg_order & !p.msg_order != 0 {
            return Err("rx msg_order not supported");
        }
        if h.comp_order & !p.comp_order != 0 {
            return Err("rx comp_order not supported");
        }
        if h.size > p.size || h.iov_limit > p.iov_limit {
            return Err("rx sizes too large");
        }
        if h.total_buffered_recv > p.total_buffered_recv {
            return Err("rx total_buffered_recv too large");
        }
    }
    Ok(())
}

fn check_ep(p: &EpAttr, h: &EpAttr) -> Result<(), &'static str> {
    if h.ep_type != b::FI_EP_UNSPEC && h.ep_type != p.ep_type {
        return Err("endpoint type differs");
    }
    if h.protocol != b::FI_PROTO_UNSPEC && h.protocol != p.protocol {
        return Err("protocol differs");
    }
    if h.max_msg_size > p.max_msg_size {
        return Err("max_msg_size too large");
    }
    if h.tx_ctx_cnt > p.tx_ctx_cnt.max(1) && h.tx_ctx_cnt != b::FI_SHARED_CONTEXT as usize {
        return Err("tx contexts");
    }
    if h.tx_ctx_cnt == b::FI_SHARED_CONTEXT as usize
        || h.rx_ctx_cnt == b::FI_SHARED_CONTEXT as usize
    {
        return Err("shared contexts not supported");
    }
    if h.rx_ctx_cnt > p.rx_ctx_cnt.max(1) {
        return Err("rx contexts");
    }
    if h.max_order_raw_size > p.max_order_raw_size
        || h.max_order_war_size > p.max_order_war_size
        || h.max_order_waw_size > p.max_order_waw_size
    {
        return Err("ordering sizes");
    }
    Ok(())
}

fn check_domain(p: &DomainAttr, h: &DomainAttr, api_version: u32) -> Result<(), &'static str> {
    if h.name
        .as_deref()
        .is_some_and(|n| n != p.name.as_deref().unwrap_or(""))
    {
        return Err("domain name differs");
    }
    // We implement FI_THREAD_SAFE, which satisfies every weaker level.
    if h.threading != b::FI_THREAD_UNSPEC && p.threading != b::FI_THREAD_SAFE {
        return Err("threading");
    }
    // Control operations complete inline (AUTO), which also satisfies an
    // application that will drive progress itself (MANUAL).
    if h.control_progress == b::FI_PROGRESS_AUTO && p.control_progress != b::FI_PROGRESS_AUTO {
        return Err("control progress");
    }
    if h.data_progress != b::FI_PROGRESS_UNSPEC && h.data_progress != p.data_progress {
        return Err("data progress");
    }
    if h.av_type != b::FI_AV_UNSPEC && h.av_type != b::FI_AV_MAP && h.av_type != b::FI_AV_TABLE {
        return Err("av type");
    }
    check_mr_mode(p.mr_mode, h.mr_mode, api_version)?;
    if h.caps & !p.caps != 0 {
        return Err("domain caps");
    }
    if p.mode & !h.mode != 0 && h.mode != 0 {
        return Err("domain mode");
    }
    if h.cq_data_size > p.cq_data_size || h.mr_key_size > p.mr_key_size {
        return Err("cq data or key size");
    }
    let limits = [
        (h.cq_cnt, p.cq_cnt),
        (h.ep_cnt, p.ep_cnt),
        (h.tx_ctx_cnt, p.tx_ctx_cnt),
        (h.rx_ctx_cnt, p.rx_ctx_cnt),
        (h.max_ep_tx_ctx, p.max_ep_tx_ctx),
        (h.max_ep_rx_ctx, p.max_ep_rx_ctx),
        (h.max_ep_stx_ctx, p.max_ep_stx_ctx),
        (h.max_ep_srx_ctx, p.max_ep_srx_ctx),
        (h.cntr_cnt, p.cntr_cnt),
        (h.mr_iov_limit, p.mr_iov_limit),
        (h.mr_cnt, p.mr_cnt),
    ];
    if limits.iter().any(|&(hv, pv)| hv > pv) {
        return Err("domain limits");
    }
    Ok(())
}

/// mr_mode bits the provider honours when the application sets them: RMA
/// addressing by virtual address, provider-chosen keys, registrations of
/// allocated memory only. It needs no registration for local buffers, so
/// FI_MR_LOCAL and the other "provider requires" bits are cleared.
pub const MR_MODE_KEPT: i32 = (b::FI_MR_VIRT_ADDR | b::FI_MR_ALLOCATED | b::FI_MR_PROV_KEY) as i32;

fn check_mr_mode(_prov: i32, hint: i32, api_version: u32) -> Result<(), &'static str> {
    const BASIC: i32 = b::FI_MR_BASIC as i32;
    const SCALABLE: i32 = b::FI_MR_SCALABLE as i32;
    if hint == BASIC || hint == SCALABLE {
        return Ok(());
    }
    if api_version < version(1, 5) && hint & !(BASIC | SCALABLE) != 0 {
        return Err("mr_mode bits need api 1.5");
    }
    // The provider requires no mr_mode bit, so every combination works.
    Ok(())
}

/// The entry returned for `hints`: `prov` narrowed to what was asked
/// (primary caps as requested, secondary caps offered, threading, av type,
/// mr_mode, op_flags as given).
pub fn narrow(prov: &Info, hints: Option<&Info>, api_version: u32) -> Info {
    let mut out = prov.clone();
    if api_version < version(1, 5)
        && let Some(d) = out.domain.as_mut()
    {
        // Before 1.5 mr_mode is an enum without "unspecified" on output:
        // offset-based keys chosen by the application (a hint's BASIC is
        // kept below).
        d.mr_mode = b::FI_MR_SCALABLE as i32;
    }
    // op_flags in an entry are the defaults every operation gets: none
    // unless the application asked (the offered set is what may be asked).
    let (htx, hrx) = (
        hints.and_then(|h| h.tx.as_ref()).map_or(0, |t| t.op_flags),
        hints.and_then(|h| h.rx.as_ref()).map_or(0, |r| r.op_flags),
    );
    if let Some(t) = out.tx.as_mut() {
        t.op_flags = htx;
    }
    if let Some(r) = out.rx.as_mut() {
        r.op_flags = hrx;
    }
    // FI_RX_CQ_DATA: a DGRAM datagram always consumes a receive, so the
    // mode costs nothing there; shown to applications that support it (and
    // with NULL hints, as the provider's supported modes).
    let dgram = prov
        .ep
        .as_ref()
        .is_some_and(|e| e.ep_type == b::FI_EP_DGRAM);
    if dgram && hints.is_none_or(|h| h.mode & b::FI_RX_CQ_DATA != 0) {
        out.mode |= b::FI_RX_CQ_DATA;
        if let Some(t) = out.tx.as_mut() {
            t.mode |= b::FI_RX_CQ_DATA;
        }
        if let Some(r) = out.rx.as_mut() {
            r.mode |= b::FI_RX_CQ_DATA;
        }
    }
    // FI_SOURCE_ERR changes what completions say (error entries for
    // senders not in the AV), so it is in force only when asked for.
    if hints.is_none_or(|h| h.caps & b::FI_SOURCE_ERR == 0) {
        drop_caps(&mut out, b::FI_SOURCE_ERR);
    }
    let Some(h) = hints else {
        return out;
    };
    if h.caps != 0 {
        out.caps = (h.caps & PRIMARY_CAPS)
            | (prov.caps & SECONDARY_CAPS & !b::FI_SOURCE_ERR)
            | (h.caps & b::FI_SOURCE_ERR);
        // Asking for MSG or TAGGED without SEND/RECV means both directions.
        out.caps = add_directions(out.caps);
        // Only the secondary caps asked for are in force; offering the rest
        // keeps apps that test for them informed.
        if let Some(tx) = out.tx.as_mut() {
            tx.caps &= out.caps;
        }
        if let Some(rx) = out.rx.as_mut() {
            rx.caps &= out.caps;
        }
    }
    if let (Some(hd), Some(od)) = (&h.domain, out.domain.as_mut()) {
        if hd.threading != b::FI_THREAD_UNSPEC {
            od.threading = hd.threading;
        }
        if hd.av_type != b::FI_AV_UNSPEC {
            od.av_type = hd.av_type;
        }
        if hd.mr_mode == b::FI_MR_BASIC as i32 || hd.mr_mode == b::FI_MR_SCALABLE as i32 {
            od.mr_mode = hd.mr_mode;
        } else if api_version < version(1, 5) {
            // FI_MR_UNSPEC: keep the default above.
        } else {
            od.mr_mode = hd.mr_mode & MR_MODE_KEPT;
        }
        if hd.control_progress != b::FI_PROGRESS_UNSPEC {
            od.control_progress = hd.control_progress;
        }
        if hd.resource_mgmt != b::FI_RM_UNSPEC {
            od.resource_mgmt = hd.resource_mgmt;
        }
    }
    if let (Some(ht), Some(ot)) = (&h.tx, out.tx.as_mut())
        && ht.size != 0
    {
        ot.size = ht.size;
    }
    if let (Some(hr), Some(or)) = (&h.rx, out.rx.as_mut())
        && hr.size != 0
    {
        or.size = hr.size;
    }
    if h.addr_format == b::FI_ADDR_STR {
        out.addr_format = b::FI_ADDR_STR;
    }
    out
}

fn drop_caps(out: &mut Info, caps: u64) {
    out.caps &= !caps;
    if let Some(tx) = out.tx.as_mut() {
        tx.caps &= !caps;
    }
    if let Some(rx) = out.rx.as_mut() {
        rx.caps &= !caps;
    }
}

fn add_directions(caps: u64) -> u64 {
    let mut c = caps;
    if c & (b::FI_MSG | b::FI_TAGGED) != 0 && c & (b::FI_SEND | b::FI_RECV) == 0 {
        c |= b::FI_SEND | b::FI_RECV;
    }
    if c & (b::FI_RMA | b::FI_ATOMIC) != 0
        && c & (b::FI_READ | b::FI_WRITE | b::FI_REMOTE_READ | b::FI_REMOTE_WRITE) == 0
    {
        c |= b::FI_READ | b::FI_WRITE | b::FI_REMOTE_READ | b::FI_REMOTE_WRITE;
    }
    c
}
