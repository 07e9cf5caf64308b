//! fi_getinfo(3) hint by hint, through the real libfabric core: node and
//! service with and without FI_SOURCE, every API version from 1.0 to 1.17,
//! mr_mode old and new, op_flags, a second call made from the first
//! answer, and sweeps over every combination of the capability bits the
//! provider claims. Every call answers 0 or -FI_ENODATA, and an answer
//! holds what was asked for.

mod common;

use common::fab::{self, Opts};
use common::*;
use srd_fi::bindings as b;
use srd_fi::fi::addr::{EpAddr, Kind};
use std::ffi::CString;
use std::ptr;
use std::time::{Duration, Instant};

const ENODATA: i32 = -(b::FI_ENODATA);

fn version(minor: u32) -> u32 {
    (1 << 16) | minor
}

fn bytes(p: *mut std::ffi::c_void, len: usize) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: the core hands back `len` bytes at p.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec()
}

fn ep_type(i: &b::fi_info) -> u32 {
    // SAFETY: returned entries carry all attribute structs.
    unsafe { (*i.ep_attr).type_ }
}

fn kind_of(i: &b::fi_info) -> Kind {
    if ep_type(i) == b::FI_EP_DGRAM {
        Kind::Dgram
    } else {
        Kind::Rdm
    }
}

#[test]
fn node_and_service_without_source_fill_dest_addr() {
    for (node, ip) in [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("192.0.2.7", "192.0.2.7"),
    ] {
        let list = getinfo(Some(node), Some("4242"), 0, Some(&hints(0))).expect("served");
        for i in list.iter() {
            assert_eq!(i.dest_addrlen, 40, "{node}: dest_addrlen");
            let a = EpAddr::from_bytes(&bytes(i.dest_addr, i.dest_addrlen)).unwrap();
            assert_eq!(a.sock.to_string(), format!("{ip}:4242"));
            assert_eq!(a.kind, kind_of(i), "the entry's endpoint kind");
            assert_eq!(a.pid, 0, "no shared-memory ring is known for it");
        }
    }
    // Service alone names a local peer (getaddrinfo without AI_PASSIVE).
    let list = getinfo(None, Some("5151"), 0, Some(&hints(b::FI_EP_RDM))).unwrap();
    let i = list.first();
    let a = EpAddr::from_bytes(&bytes(i.dest_addr, i.dest_addrlen)).unwrap();
    assert_eq!(a.sock.to_string(), "127.0.0.1:5151");
    // FI_ADDR_STR: the string form.
    let h = hints(b::FI_EP_RDM);
    // SAFETY: h is a valid fi_info we own.
    unsafe { (*h.0).addr_format = b::FI_ADDR_STR };
    let list = getinfo(Some("127.0.0.1"), Some("4243"), 0, Some(&h)).unwrap();
    let i = list.first();
    let s = String::from_utf8(bytes(i.dest_addr, i.dest_addrlen)).unwrap();
    assert!(s.starts_with("fi_srd://127.0.0.1:4243/"), "{s}");
    // With FI_SOURCE the same arguments are the local address instead.
    let list = getinfo(
        Some("127.0.0.1"),
        Some("4244"),
        b::FI_SOURCE,
        Some(&hints(0)),
    )
    .unwrap();
    for i in list.iter() {
        assert!(i.dest_addr.is_null() && i.dest_addrlen == 0);
        let a = EpAddr::from_bytes(&bytes(i.src_addr, i.src_addrlen)).unwrap();
        assert_eq!(a.sock.to_string(), "127.0.0.1:4244");
    }
    // A name that does not resolve has no entries.
    assert_eq!(
        getinfo(Some("no-such-host.invalid"), Some("1"), 0, Some(&hints(0))).err(),
        Some(ENODATA)
    );
}

/// The fabtests pattern: the server takes its address from node/service
/// with FI_SOURCE, the client gets the same pair as dest_addr, inserts it
/// and sends; the datagram arrives at the server.
#[test]
fn dest_addr_from_node_and_service_reaches_a_server_bound_there() {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port().to_string()
    };
    let o = Opts::dgram();
    let h = fab::lo_hints(&o);
    let srv_info = getinfo(Some("127.0.0.1"), Some(&port), b::FI_SOURCE, Some(&h)).unwrap();
    let cli_info = getinfo(Some("127.0.0.1"), Some(&port), 0, Some(&h)).unwrap();
    let fab_ = fabric(srv_info.first()).unwrap();
    let dom = domain(fab_, srv_info.0).unwrap();
    let mut srv = fab::Side::open(dom, srv_info.0, &o);
    let mut cli = fab::Side::open(dom, cli_info.0, &o);
    let name = EpAddr::from_bytes(&srv.name).unwrap();
    assert_eq!(name.sock.port().to_string(), port, "bound where asked");
    let ci = cli_info.first();
    let dest = bytes(ci.dest_addr, ci.dest_addrlen);
    let d = EpAddr::from_bytes(&dest).unwrap();
    assert_eq!((d.sock, d.qpn, d.qkey), (name.sock, name.qpn, name.qkey));
    let fa = fab::av_insert(cli.av, &dest);
    let mut buf = vec![0u8; 64];
    assert_eq!(srv.recv(&mut buf, fab::ADDR_UNSPEC, 1), 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = None;
    while got.is_none() && Instant::now() < deadline {
        assert_eq!(cli.send(b"hello server", fa, 2), 0);
        let t = Instant::now() + Duration::from_millis(200);
        while got.is_none() && Instant::now() < t {
            let _ = fab::poll_cq(cli.txcq);
            got = fab::poll_cq(srv.rxcq);
        }
    }
    let e = got.expect("the datagram arrived");
    assert_eq!((e.ctx, e.len), (1, 12));
    assert_eq!(&buf[..12], b"hello server");
    cli.close();
    srv.close();
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab_)), 0);
}

#[test]
fn every_api_version_is_served() {
    for minor in 0..=17 {
        let v = version(minor);
        for h in [None, Some(hints(0)), Some(hints(b::FI_EP_RDM))] {
            let list = getinfo_v(v, None, None, 0, h.as_ref())
                .unwrap_or_else(|e| panic!("1.{minor}: {e}"));
            // Without hints the other providers answer too.
            // SAFETY: returned entries carry all attribute structs.
            let ours = list
                .iter()
                .filter(|i| cstr(unsafe { (*i.fabric_attr).prov_name }) == "srd");
            let mut n = 0;
            for i in ours {
                n += 1;
                // SAFETY: returned entries carry all attribute structs.
                let mr = unsafe { (*i.domain_attr).mr_mode };
                if minor < 5 {
                    // An enum then: BASIC or SCALABLE, never UNSPEC.
                    assert_eq!(mr, b::FI_MR_SCALABLE as i32, "1.{minor}");
                } else {
                    assert_eq!(mr, 0, "1.{minor}: no mode required");
                }
            }
            assert!(n > 0, "1.{minor}: srd answered");
        }
        // Old mr_mode values keep their meaning at every version.
        for mr in [b::FI_MR_UNSPEC, b::FI_MR_BASIC, b::FI_MR_SCALABLE] {
            let h = hints(b::FI_EP_RDM);
            // SAFETY: h is a valid fi_info we own.
            unsafe { (*(*h.0).domain_attr).mr_mode = mr as i32 };
            let list = getinfo_v(v, None, None, 0, Some(&h))
                .unwrap_or_else(|e| panic!("1.{minor} mr_mode {mr}: {e}"));
            // SAFETY: as above.
            let got = unsafe { (*list.first().domain_attr).mr_mode };
            let want = match mr {
                m if m == b::FI_MR_UNSPEC && minor < 5 => b::FI_MR_SCALABLE,
                m => m,
            };
            assert_eq!(got, want as i32, "1.{minor} mr_mode {mr}");
        }
        // 1.5 bits (FI_MR_LOCAL, FI_MR_VIRT_ADDR ...) exist from 1.5 on.
        let h = hints(b::FI_EP_RDM);
        let bits = (b::FI_MR_LOCAL | b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY) as i32;
        // SAFETY: as above.
        unsafe { (*(*h.0).domain_attr).mr_mode = bits };
        let r = getinfo_v(v, None, None, 0, Some(&h));
        if minor < 5 {
            assert_eq!(r.err(), Some(ENODATA), "1.{minor}");
        } else {
            let list = r.unwrap();
            // SAFETY: as above.
            let got = unsafe { (*list.first().domain_attr).mr_mode };
            assert_eq!(got, (b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY) as i32);
        }
    }
}

#[test]
fn multi_recv_as_a_default_rx_op_flag_is_served() {
    for caps in [
        0,
        b::FI_MSG,
        b::FI_MSG | b::FI_MULTI_RECV,
        b::FI_TAGGED | b::FI_MSG | b::FI_MULTI_RECV,
    ] {
        let h = hints(b::FI_EP_RDM);
        // SAFETY: h is a valid fi_info we own.
        unsafe {
            (*h.0).caps = caps;
            (*(*h.0).rx_attr).op_flags = b::FI_MULTI_RECV;
        }
        let list = getinfo(None, None, 0, Some(&h)).unwrap_or_else(|e| panic!("{caps:#x}: {e}"));
        let i = list.first();
        // SAFETY: as above.
        let rx = unsafe { &*i.rx_attr };
        assert_eq!(rx.op_flags, b::FI_MULTI_RECV, "the default asked for");
        assert_ne!(
            i.caps & b::FI_MULTI_RECV,
            0,
            "{caps:#x}: the capability comes along"
        );
        assert_ne!(rx.caps & b::FI_MULTI_RECV, 0);
    }
}

/// Clients that open several endpoints ask again with the first answer's
/// names (or the whole answer) and no source address.
#[test]
fn a_second_call_from_the_first_answer_is_served() {
    let first = getinfo(None, None, 0, Some(&hints(b::FI_EP_RDM))).unwrap();
    let f = first.first();
    // SAFETY: returned entries carry their attributes.
    let (fname, dname) = unsafe { (cstr((*f.fabric_attr).name), cstr((*f.domain_attr).name)) };
    // Names only.
    let h = hints(b::FI_EP_RDM);
    // SAFETY: h is valid; strings are freed with it.
    unsafe {
        (*(*h.0).fabric_attr).name = libc::strdup(CString::new(fname.clone()).unwrap().as_ptr());
        (*(*h.0).domain_attr).name = libc::strdup(CString::new(dname.clone()).unwrap().as_ptr());
    }
    let again = getinfo(None, None, 0, Some(&h)).expect("names of the first answer");
    // SAFETY: as above.
    assert_eq!(cstr(unsafe { (*again.first().domain_attr).name }), dname);
    // The whole first answer as hints, without its source address (and
    // with it), through every API version that has these fields.
    for drop_src in [true, false] {
        // SAFETY: duplicate the first node only.
        let dup = InfoList(unsafe { b::fi_dupinfo(first.0) });
        if drop_src {
            // SAFETY: dup's src_addr was malloc'd by fi_dupinfo.
            unsafe {
                libc::free((*dup.0).src_addr);
                (*dup.0).src_addr = ptr::null_mut();
                (*dup.0).src_addrlen = 0;
            }
        }
        for minor in 5..=17 {
            let again = getinfo_v(version(minor), None, None, 0, Some(&dup))
                .unwrap_or_else(|e| panic!("1.{minor} drop_src={drop_src}: {e}"));
            let i = again.first();
            assert_eq!(i.caps & f.caps, f.caps);
            // SAFETY: as above.
            assert_eq!(cstr(unsafe { (*i.domain_attr).name }), dname);
        }
    }
}

/// The bits of `caps`, one by one.
fn bits(caps: u64) -> Vec<u64> {
    (0..64)
        .map(|k| 1u64 << k)
        .filter(|b| caps & b != 0)
        .collect()
}

/// Every combination of `claimed` as hints->caps for `ep`: answers 0 with
/// entries holding every bit asked for, or -FI_ENODATA; nothing else.
/// Returns how many combinations were served.
fn sweep(ep: u32, claimed: u64, extra: u64) -> usize {
    let list = bits(claimed);
    let mut served = 0;
    let h = hints(ep);
    for m in 0u32..(1 << list.len()) {
        let caps = list
            .iter()
            .enumerate()
            .filter(|(k, _)| m >> k & 1 != 0)
            .fold(extra, |c, (_, b)| c | b);
        // SAFETY: h is a valid fi_info we own.
        unsafe { (*h.0).caps = caps };
        match getinfo(None, None, 0, Some(&h)) {
            Ok(got) => {
                served += 1;
                for i in got.iter() {
                    assert_eq!(i.caps & caps, caps, "{caps:#x}: asked bits kept");
                    if ep != 0 {
                        assert_eq!(ep_type(i), ep);
                    }
                }
            }
            Err(e) => assert_eq!(e, ENODATA, "caps {caps:#x} on type {ep}: {e}"),
        }
    }
    served
}

#[test]
fn every_combination_of_the_rdm_capabilities() {
    let claimed = srd_fi::fi::offer::RDM_CAPS;
    // Every combination of what RDM claims is served on RDM.
    let n = sweep(b::FI_EP_RDM, claimed, 0);
    assert_eq!(n, 1 << bits(claimed).len());
}

#[test]
fn every_combination_of_the_dgram_capabilities() {
    let claimed = srd_fi::fi::offer::DGRAM_CAPS;
    let n = sweep(b::FI_EP_DGRAM, claimed, 0);
    assert_eq!(n, 1 << bits(claimed).len());
    // What only RDM has, one bit at a time on top of every DGRAM
    // combination: no DGRAM entry, never an error other than ENODATA.
    for extra in bits(srd_fi::fi::offer::RDM_CAPS & !claimed) {
        assert_eq!(sweep(b::FI_EP_DGRAM, claimed, extra), 0, "{extra:#x}");
    }
}

/// Capabilities no entry has, alone and on top of everything claimed:
/// -FI_ENODATA, never an error.
#[test]
fn unclaimed_capabilities_get_enodata() {
    let all = srd_fi::fi::offer::RDM_CAPS;
    for k in 0..64 {
        let bit = 1u64 << k;
        if all & bit != 0 {
            continue;
        }
        for ep in [0, b::FI_EP_RDM, b::FI_EP_DGRAM] {
            for base in [0, all] {
                let h = hints(ep);
                // SAFETY: h is a valid fi_info we own.
                unsafe { (*h.0).caps = base | bit };
                match getinfo(None, None, 0, Some(&h)) {
                    Ok(l) => {
                        for i in l.iter() {
                            assert_eq!(i.caps & (base | bit), base | bit, "bit {k}");
                        }
                    }
                    Err(e) => assert_eq!(e, ENODATA, "bit {k} on {ep}"),
                }
            }
        }
    }
}

/// The attributes fi_srd(7) lists, as an application sees them.
#[test]
fn advertised_attributes() {
    let h = hints(b::FI_EP_RDM);
    // SAFETY: h is a valid fi_info we own.
    unsafe { (*h.0).mode = b::FI_CONTEXT | b::FI_CONTEXT2 };
    let list = getinfo(None, None, 0, Some(&h)).expect("served");
    let i = list.first();
    assert_eq!(
        i.mode, 0,
        "no mode is required, FI_CONTEXT/FI_CONTEXT2 accepted"
    );
    let both = b::FI_LOCAL_COMM | b::FI_REMOTE_COMM;
    assert_eq!(i.caps & both, both);
    // SAFETY: returned entries carry their attributes.
    let (d, t, r) = unsafe { (&*i.domain_attr, &*i.tx_attr, &*i.rx_attr) };
    assert_eq!(d.threading, b::FI_THREAD_SAFE);
    assert_eq!(d.data_progress, b::FI_PROGRESS_MANUAL);
    assert_eq!(d.control_progress, b::FI_PROGRESS_AUTO);
    assert_eq!(
        (t.msg_order, r.msg_order),
        (b::FI_ORDER_SAS, b::FI_ORDER_SAS)
    );
    // Asking for one of LOCAL/REMOTE_COMM is served too.
    for c in [b::FI_LOCAL_COMM, b::FI_REMOTE_COMM] {
        let h = hints(0);
        // SAFETY: as above.
        unsafe { (*h.0).caps = b::FI_MSG | c };
        assert!(getinfo(None, None, 0, Some(&h)).is_ok());
    }
}
