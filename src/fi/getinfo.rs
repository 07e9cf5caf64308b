//! fi_getinfo: the offered entries filtered by the application's hints,
//! node/service and flags (fi_getinfo(3)).

use super::addr::{EpAddr, Kind};
use super::errno::{Error, Result};
use super::info::{self, Info};
use super::offer;
use super::params::Params;
use crate::bindings as b;
use crate::io::udp::Iface;
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};

/// What the application passed besides the hints.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    pub version: u32,
    pub node: Option<&'a str>,
    pub service: Option<&'a str>,
    pub flags: u64,
}

/// Resolves `node`/`service` to an IPv4 socket address: our string
/// address form, a dotted quad, or a host name (getaddrinfo, IPv4 only).
/// No node: the wildcard address for a source, loopback for a
/// destination (what getaddrinfo gives with and without AI_PASSIVE).
fn resolve_node(node: Option<&str>, service: Option<&str>, source: bool) -> Option<SocketAddrV4> {
    if let Some(a) = node.and_then(|n| EpAddr::from_str_form(n).ok()) {
        return Some(a.sock);
    }
    let port = match service {
        Some(s) => s.parse::<u16>().ok()?,
        None => 0,
    };
    let ip = match node {
        None if source => Ipv4Addr::UNSPECIFIED,
        None | Some("localhost") => Ipv4Addr::LOCALHOST,
        Some(n) => match n.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(_) => (n, port).to_socket_addrs().ok()?.find_map(|a| match a {
                std::net::SocketAddr::V4(v4) => Some(*v4.ip()),
                std::net::SocketAddr::V6(_) => None,
            })?,
        },
    };
    Some(SocketAddrV4::new(ip, port))
}

/// The address an endpoint of `kind` bound to `sock` has, as far as a peer
/// can know it without asking: its queue pair is the first of its device
/// and the QKey is fixed per kind. No host identity: such a peer is
/// reached over UDP until it speaks for itself.
fn dest_for(kind: Kind, sock: SocketAddrV4) -> EpAddr {
    EpAddr {
        kind,
        sock,
        qpn: offer::FIRST_QPN,
        qkey: match kind {
            Kind::Rdm => super::rdm_ep::RDM_QKEY,
            Kind::Dgram => super::dgram::DGRAM_QKEY,
        },
        host_id: 0,
        nonce: 0,
        pid: 0,
    }
}

/// How long the interface list and NIC attributes fi_getinfo reports are
/// reused: clients that sweep hints (or open many endpoints) call it
/// thousands of times, and each enumeration costs ~100 system calls; a
/// change of interfaces shows within this long.
const IFACE_CACHE: std::time::Duration = std::time::Duration::from_millis(500);

/// The host's interfaces, enumerated at most every IFACE_CACHE.
pub fn cached_interfaces() -> Vec<Iface> {
    type Cache = std::sync::Mutex<Option<(std::time::Instant, Vec<Iface>)>>;
    static CACHE: Cache = std::sync::Mutex::new(None);
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, list)) = g.as_ref()
        && at.elapsed() < IFACE_CACHE
    {
        return list.clone();
    }
    let list = crate::io::udp::interfaces().unwrap_or_default();
    *g = Some((std::time::Instant::now(), list.clone()));
    list
}

/// NIC attributes of an interface, probed at most every IFACE_CACHE.
pub fn cached_nic(name: &str, addr: Ipv4Addr, mtu: usize) -> super::nic::Nic {
    type Cache = std::sync::Mutex<Vec<(std::time::Instant, String, Ipv4Addr, super::nic::Nic)>>;
    static CACHE: Cache = std::sync::Mutex::new(Vec::new());
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    g.retain(|e| e.0.elapsed() < IFACE_CACHE);
    if let Some(e) = g.iter().find(|e| e.1 == name && e.2 == addr) {
        return e.3.clone();
    }
    let nic = super::nic::probe(name, addr, mtu);
    g.push((
        std::time::Instant::now(),
        name.to_string(),
        addr,
        nic.clone(),
    ));
    nic
}

/// Set by the core when a utility provider (ofi_rxd, ofi_rxm) looks for a
/// core provider to layer over (libfabric's internal OFI_CORE_PROV_ONLY).
pub const CORE_PROV_ONLY: u64 = 1 << 59;

/// The entries for this request, or `NoData` when none satisfies it.
///
/// Requests from utility providers are declined: srd's own RDM endpoint is
/// the reliable layer over its datagrams, and an `srd;ofi_rxd` stack would
/// be listed ahead of it and picked by clients that take the first entry.
pub fn getinfo(
    req: &Request<'_>,
    hints: Option<&Info>,
    ifaces: &[Iface],
    params: &Params,
) -> Result<Vec<Info>> {
    if req.flags & CORE_PROV_ONLY != 0 {
        return Err(Error::NoData);
    }
    let source = req.flags & b::FI_SOURCE != 0;
    // The local address asked for (hints->src_addr, or node/service with
    // FI_SOURCE) and the peer's (hints->dest_addr, or node/service
    // without FI_SOURCE; then each entry gets an address of its own kind).
    let mut want_src: Option<SocketAddrV4> = None;
    let mut want_dest: Option<EpAddr> = None;
    let mut dest_sock: Option<SocketAddrV4> = None;
    let given = req.node.is_some() || req.service.is_some();
    if let Some(h) = hints {
        if let (Some(bytes), false) = (&h.src_addr, source && given) {
            want_src = Some(
                EpAddr::decode(h.addr_format, bytes)
                    .ok_or(Error::NoData)?
                    .sock,
            );
        }
        if let (Some(bytes), true) = (&h.dest_addr, source || !given) {
            want_dest = Some(EpAddr::decode(h.addr_format, bytes).ok_or(Error::NoData)?);
        }
    }
    if given {
        let sock = resolve_node(req.node, req.service, source).ok_or(Error::NoData)?;
        if source {
            want_src = Some(sock);
        } else if let Some(a) = req.node.and_then(|n| EpAddr::from_str_form(n).ok()) {
            want_dest = Some(a);
        } else {
            dest_sock = Some(sock);
        }
    }

    // An interface asked for by name or by source address is offered even
    // when it is loopback.
    let explicit = hints
        .and_then(|h| h.domain.as_ref())
        .and_then(|d| d.name.clone())
        .or_else(|| {
            let ip = want_src.map(|s| *s.ip())?;
            ifaces.iter().find(|i| i.addr == ip).map(|i| i.name.clone())
        });
    let mut out = Vec::new();
    for entry in offer::entries(ifaces, params, explicit.as_deref()) {
        if let Some(h) = hints
            && info::check(&entry, h, req.version).is_err()
        {
            continue;
        }
        let kind = match entry.ep.as_ref().map(|e| e.ep_type) {
            Some(t) if t == b::FI_EP_DGRAM => Kind::Dgram,
            _ => Kind::Rdm,
        };
        let mut e = info::narrow(&entry, hints, req.version);
        if let Some(src) = want_src {
            let iface_ip = entry_ip(&entry);
            if !src.ip().is_unspecified() && Some(*src.ip()) != iface_ip {
                continue;
            }
            let ip = if src.ip().is_unspecified() {
                iface_ip.unwrap_or(Ipv4Addr::UNSPECIFIED)
            } else {
                *src.ip()
            };
            e.src_addr = Some(
                EpAddr {
                    kind,
                    sock: SocketAddrV4::new(ip, src.port()),
                    qpn: 0,
                    qkey: 0,
                    host_id: 0,
                    nonce: 0,
                    pid: 0,
                }
                .to_bytes()
                .to_vec(),
            );
        }
        if let Some(d) = want_dest {
            if d.kind != kind {
                continue;
            }
            e.dest_addr = Some(d.to_bytes().to_vec());
        } else if let Some(sock) = dest_sock {
            e.dest_addr = Some(dest_for(kind, sock).to_bytes().to_vec());
        }
        if e.addr_format == b::FI_ADDR_STR {
            e.src_addr = e.src_addr.map(|a| to_str_form(&a));
            e.dest_addr = e.dest_addr.map(|a| to_str_form(&a));
        }
        out.push(e);
    }
    if out.is_empty() {
        Err(Error::NoData)
    } else {
        Ok(out)
    }
}

fn entry_ip(e: &Info) -> Option<Ipv4Addr> {
    let a = EpAddr::from_bytes(e.src_addr.as_deref()?).ok()?;
    Some(*a.sock.ip())
}

fn to_str_form(bin: &[u8]) -> Vec<u8> {
    match EpAddr::from_bytes(bin) {
        Ok(a) => a.encode(b::FI_ADDR_STR),
        Err(_) => bin.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fi::info::{DomainAttr, EpAttr, FabricAttr};

    fn ifaces() -> Vec<Iface> {
        vec![
            Iface {
                name: "eth0".into(),
                addr: Ipv4Addr::new(192, 0, 2, 2),
                mtu: 1500,
                is_loopback: false,
                is_up: true,
            },
            Iface {
                name: "lo".into(),
                addr: Ipv4Addr::LOCALHOST,
                mtu: 65536,
                is_loopback: true,
                is_up: true,
            },
        ]
    }

    fn req() -> Request<'static> {
        Request {
            version: (1 << 16) | 17,
            ..Default::default()
        }
    }

    fn ep_hint(t: u32) -> Info {
        Info {
            ep: Some(EpAttr {
                ep_type: t,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn no_hints_lists_every_interface_and_type() {
        // Loopback is left out while a routable interface is up…
        let all = getinfo(&req(), None, &ifaces(), &Params::default()).unwrap();
        assert_eq!(all.len(), 3);
        // …and offered when asked for by name.
        let lo = Params::parse(|n| (n == "iface").then(|| "lo".into()));
        let lo_entries = getinfo(&req(), None, &ifaces(), &lo).unwrap();
        assert_eq!(lo_entries.len(), 3);
        let all: Vec<_> = all.into_iter().chain(lo_entries).collect();
        let doms: Vec<_> = all
            .iter()
            .map(|i| i.domain.as_ref().unwrap().name.clone().unwrap())
            .collect();
        assert_eq!(doms, ["eth0", "eth0", "eth0", "lo", "lo", "lo"]);
        assert_eq!(all[0].ep.as_ref().unwrap().ep_type, b::FI_EP_RDM);
        assert_eq!(all[1].ep.as_ref().unwrap().ep_type, b::FI_EP_DGRAM);
        // Without hints DGRAM entries show FI_RX_CQ_DATA among their modes.
        assert_eq!(all[2].mode, b::FI_MSG_PREFIX | b::FI_RX_CQ_DATA);
        assert_eq!(all[2].ep.as_ref().unwrap().msg_prefix_size, 40);
        assert!(
            all.iter()
                .all(|i| i.fabric.as_ref().unwrap().name.as_deref() == Some("srd"))
        );
        // DGRAM max message comes from the interface MTU.
        assert_eq!(all[1].ep.as_ref().unwrap().max_msg_size, 1500 - 28 - 64);
        assert_eq!(all[4].ep.as_ref().unwrap().max_msg_size, 65507 - 64);
    }

    #[test]
    fn hints_filter_and_narrow() {
        let p = Params::default();
        let mut h = ep_hint(b::FI_EP_DGRAM);
        h.mode = b::FI_CONTEXT | b::FI_MSG_PREFIX;
        h.caps = b::FI_MSG;
        h.domain = Some(DomainAttr {
            name: Some("lo".into()),
            mr_mode: (b::FI_MR_LOCAL | b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY) as i32,
            threading: b::FI_THREAD_DOMAIN,
            ..Default::default()
        });
        let got = getinfo(&req(), Some(&h), &ifaces(), &p).unwrap();
        assert_eq!(got.len(), 2, "dgram with and without prefix on lo");
        let d = got[0].domain.as_ref().unwrap();
        assert_eq!(d.threading, b::FI_THREAD_DOMAIN);
        assert_eq!(d.mr_mode, (b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY) as i32);
        assert_eq!(got[0].caps & b::FI_SEND, b::FI_SEND);
        assert_eq!(got[0].caps & b::FI_TAGGED, 0);

        // Without FI_MSG_PREFIX in mode, only the plain entry remains.
        h.mode = 0;
        let got = getinfo(&req(), Some(&h), &ifaces(), &p).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].mode, 0);
    }

    #[test]
    fn unsatisfiable_hints_give_nodata() {
        let p = Params::default();
        let cases: Vec<Info> = vec![
            ep_hint(b::FI_EP_MSG),
            Info {
                caps: b::FI_COLLECTIVE,
                ..Default::default()
            },
            Info {
                domain: Some(DomainAttr {
                    data_progress: b::FI_PROGRESS_AUTO,
                    ..Default::default()
                }),
                ..Default::default()
            },
            Info {
                fabric: Some(FabricAttr {
                    name: Some("ib0".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Info {
                domain: Some(DomainAttr {
                    name: Some("nosuchif".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Info {
                addr_format: b::FI_SOCKADDR_IN6,
                ..Default::default()
            },
            Info {
                domain: Some(DomainAttr {
                    cq_data_size: 16,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ];
        for h in cases {
            assert_eq!(
                getinfo(&req(), Some(&h), &ifaces(), &p),
                Err(Error::NoData),
                "{h:?}"
            );
        }
    }

    #[test]
    fn source_node_selects_interface_and_iface_param_filters() {
        let p = Params::default();
        let r = Request {
            node: Some("127.0.0.1"),
            service: Some("4242"),
            flags: b::FI_SOURCE,
            ..req()
        };
        let got = getinfo(&r, None, &ifaces(), &p).unwrap();
        assert!(
            got.iter()
                .all(|i| i.domain.as_ref().unwrap().name.as_deref() == Some("lo"))
        );
        let a = EpAddr::from_bytes(got[0].src_addr.as_ref().unwrap()).unwrap();
        assert_eq!(a.sock, "127.0.0.1:4242".parse().unwrap());

        let only_eth = Params::parse(|n| (n == "iface").then(|| "eth0".into()));
        let got = getinfo(&req(), None, &ifaces(), &only_eth).unwrap();
        assert_eq!(got.len(), 3);
        // Loopback alone is offered when nothing else is up.
        let lonely: Vec<Iface> = ifaces().into_iter().filter(|i| i.is_loopback).collect();
        assert_eq!(getinfo(&req(), None, &lonely, &p).unwrap().len(), 3);
        let none = Params::parse(|n| (n == "iface").then(|| "ib9".into()));
        assert_eq!(getinfo(&req(), None, &ifaces(), &none), Err(Error::NoData));
    }

    #[test]
    fn utility_providers_do_not_layer_over_srd() {
        let r = Request {
            flags: CORE_PROV_ONLY,
            ..req()
        };
        assert_eq!(
            getinfo(&r, None, &ifaces(), &Params::default()),
            Err(Error::NoData)
        );
    }

    #[test]
    fn addr_str_format_gives_string_addresses() {
        let h = Info {
            addr_format: b::FI_ADDR_STR,
            ..ep_hint(b::FI_EP_RDM)
        };
        let got = getinfo(&req(), Some(&h), &ifaces(), &Params::default()).unwrap();
        let s = String::from_utf8(got[0].src_addr.clone().unwrap()).unwrap();
        assert!(s.starts_with("fi_srd://192.0.2.2:0/"), "{s}");
        assert_eq!(got[0].addr_format, b::FI_ADDR_STR);
    }
}
