//! Named address vectors (FI_SHARED_AV) through the libfabric core: the
//! capability is offered; a writer creates the AV by name, readers open it
//! with FI_READ in this process and in another one and see the same
//! fi_addr values (also for entries added after they opened it); data
//! sent through a reader's fi_addr arrives; readers cannot insert; FI_READ
//! needs an existing name.

mod common;

use common::child;
use common::fab::{self, Opts, Pair};
use common::*;
use srd_fi::bindings as b;
use std::ffi::CString;
use std::os::raw::c_int;

const ROLE: &str = "SRD_SHARED_AV_ROLE";
const NAME: &str = "SRD_SHARED_AV_NAME";

fn av_open_named(dom: *mut b::fid_domain, name: &str, flags: u64) -> Result<*mut b::fid_av, c_int> {
    let cname = CString::new(name).unwrap();
    let mut attr = b::fi_av_attr {
        type_: b::FI_AV_TABLE,
        name: cname.as_ptr(),
        flags,
        ..Default::default()
    };
    let mut av = null();
    // SAFETY: dom is open; attr and the name outlive the call.
    let rc = unsafe { ((*(*dom).ops).av_open.unwrap())(dom, &mut attr, &mut av, void()) };
    if rc == 0 { Ok(av) } else { Err(rc) }
}

fn lookup(av: *mut b::fid_av, fi_addr: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let mut len = buf.len();
    // SAFETY: av is open; buf holds len bytes.
    let rc =
        unsafe { ((*(*av).ops).lookup.unwrap())(av, fi_addr, buf.as_mut_ptr().cast(), &mut len) };
    (rc == 0).then(|| {
        buf.truncate(len);
        buf
    })
}

fn unique_name() -> String {
    format!("test-{}-{}", std::process::id(), fastrand())
}

fn fastrand() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into b.
    unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    u64::from_le_bytes(b)
}

#[test]
fn shared_av_is_offered() {
    let h = hints(b::FI_EP_RDM);
    // SAFETY: h is a valid fi_info we own.
    unsafe { (*h.0).caps = b::FI_MSG | b::FI_SHARED_AV };
    let list = getinfo(None, None, 0, Some(&h)).expect("FI_SHARED_AV served");
    for i in list.iter() {
        assert_ne!(i.caps & b::FI_SHARED_AV, 0);
        // SAFETY: returned entries carry their attributes.
        assert_ne!(unsafe { (*i.domain_attr).caps } & b::FI_SHARED_AV, 0);
    }
}

#[test]
fn readers_share_the_writers_fi_addrs() {
    let o = Opts {
        a_knows_b: false,
        ..Opts::rdm()
    };
    let mut p = Pair::new(&o);
    let name = unique_name();
    // FI_READ needs a name, and the name must exist.
    let mut attr = b::fi_av_attr {
        type_: b::FI_AV_TABLE,
        flags: b::FI_READ,
        ..Default::default()
    };
    let mut av = null();
    // SAFETY: the domain is open.
    let rc = unsafe { ((*(*p.dom).ops).av_open.unwrap())(p.dom, &mut attr, &mut av, void()) };
    assert_eq!(rc, -b::FI_EINVAL);
    assert_eq!(
        av_open_named(p.dom, &name, b::FI_READ).err(),
        Some(-(b::FI_ENOENT as c_int))
    );
    let writer = av_open_named(p.dom, &name, 0).expect("create");
    let fa_b = fab::av_insert(writer, &p.b.name);
    assert_eq!(fa_b, 0);
    let reader = av_open_named(p.dom, &name, b::FI_READ).expect("open to read");
    assert_eq!(lookup(reader, fa_b).as_deref(), Some(&p.b.name[..]));
    // A reader cannot insert.
    let mut out = u64::MAX - 1;
    // SAFETY: reader is open; one address of 40 bytes.
    let n = unsafe {
        ((*(*reader).ops).insert.unwrap())(reader, p.a.name.as_ptr().cast(), 1, &mut out, 0, void())
    };
    assert_eq!(n, 0, "nothing inserted");
    assert_eq!(out, fab::ADDR_UNSPEC);
    // Added after the reader opened it: found by the same fi_addr.
    let fa_a = fab::av_insert(writer, &p.a.name);
    assert_eq!(fa_a, 1);
    assert_eq!(lookup(reader, fa_a).as_deref(), Some(&p.a.name[..]));
    // Another process sees the same.
    let mut kid = child::spawn("child_role", &[(ROLE, "reader"), (NAME, &name)], false);
    let line = kid.expect("addrs ", 60);
    assert_eq!(
        line,
        format!("addrs {} {}", fab::hex(&p.b.name), fab::hex(&p.a.name))
    );
    assert!(kid.finish(60).success());
    // Data through a reader's fi_addr: a fresh endpoint bound to the reader.
    let info = fab::lo_info(&o);
    let ep = fab::endpoint(p.dom, info.0).unwrap();
    let txcq = fab::cq_open(p.dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    assert_eq!(fab::ep_bind(ep, fid_of(reader), 0), 0);
    assert_eq!(
        fab::ep_bind(ep, fid_of(txcq), b::FI_TRANSMIT | b::FI_RECV),
        0
    );
    assert_eq!(fab::enable(ep), 0);
    let side = fab::Side {
        ep,
        av: reader,
        txcq,
        rxcq: txcq,
        txcntr: null(),
        rxcntr: null(),
        name: fab::getname(ep),
        peer: fa_b,
        closed: true,
    };
    let mut buf = vec![0u8; 16];
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 5), 0);
    assert_eq!(side.send(b"via reader", fa_b, 6), 0);
    let mut got: [Vec<fab::Cqe>; 2] = Default::default();
    assert!(fab::progress_until(&[txcq, p.b.rxcq], &mut got, 30, |g| {
        !g[0].is_empty() && !g[1].is_empty()
    }));
    assert_eq!((got[1][0].ctx, got[1][0].len), (5, 10));
    assert_eq!(&buf[..10], b"via reader");
    assert_eq!(close(fid_of(ep)), 0);
    assert_eq!(close(fid_of(txcq)), 0);
    assert_eq!(close(fid_of(reader)), 0);
    assert_eq!(close(fid_of(writer)), 0);
    // The writer's close removes the name.
    assert_eq!(
        av_open_named(p.dom, &name, b::FI_READ).err(),
        Some(-(b::FI_ENOENT as c_int))
    );
    p.a.close();
    p.b.close();
}

/// The child side: opens the AV named in the environment read-only and
/// prints the addresses at fi_addr 0 and 1.
#[test]
#[ignore = "a child process's role: the multi-process tests run it (with --ignored)"]
fn child_role() {
    if std::env::var(ROLE).as_deref() != Ok("reader") {
        return; // only meaningful when started by a parent test
    }
    let name = std::env::var(NAME).unwrap();
    let info = fab::lo_info(&Opts::rdm());
    let fab_ = fabric(info.first()).unwrap();
    let dom = domain(fab_, info.0).unwrap();
    let av = av_open_named(dom, &name, b::FI_READ).expect("named AV");
    let a0 = lookup(av, 0).expect("fi_addr 0");
    let a1 = lookup(av, 1).expect("fi_addr 1");
    println!("addrs {} {}", fab::hex(&a0), fab::hex(&a1));
    assert_eq!(close(fid_of(av)), 0);
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab_)), 0);
}
