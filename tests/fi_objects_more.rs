//! Object lifetimes and sharing: closing endpoints with work in flight,
//! one CQ for both directions, CQs shared by endpoints, FI_AV_MAP,
//! FI_THREAD_SAFE use from several threads.

mod common;

use common::fab::*;
use common::*;
use srd_fi::bindings as b;
use std::time::{Duration, Instant};

#[test]
fn closing_endpoints_with_work_in_flight() {
    for o in [Opts::rdm(), Opts::dgram()] {
        let mut p = Pair::new(&o);
        let mut posted = vec![0u8; 1 << 20];
        assert_eq!(p.b.recv(&mut posted, ADDR_UNSPEC, 1), 0);
        if o.ep_type == b::FI_EP_RDM {
            // A long message toward an endpoint that will not progress.
            let big = pattern(4 << 20, 1);
            assert_eq!(p.a.tsend(&big, p.a.peer, 9, 2), 0);
            let _ = poll_cq(p.a.txcq);
            p.a.close();
            drop(big);
        } else {
            p.a.close();
        }
        p.b.close();
        drop(posted);
    }
}

#[test]
fn one_cq_for_both_directions_and_shared_between_endpoints() {
    let info = lo_info(&Opts::rdm());
    // SAFETY: valid entry.
    let fab = fabric(unsafe { &*info.0 }).unwrap();
    let dom = domain(fab, info.0).unwrap();
    let cq = cq_open(dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    let mut eps = vec![];
    let mut avs = vec![];
    for _ in 0..2 {
        let av = av_open(dom, b::FI_AV_MAP).unwrap();
        let ep = endpoint(dom, info.0).unwrap();
        assert_eq!(ep_bind(ep, fid_of(av), 0), 0);
        assert_eq!(ep_bind(ep, fid_of(cq), b::FI_TRANSMIT | b::FI_RECV), 0);
        assert_eq!(enable(ep), 0);
        eps.push(ep);
        avs.push(av);
    }
    let names: Vec<Vec<u8>> = eps.iter().map(|&e| getname(e)).collect();
    let a_to_b = av_insert(avs[0], &names[1]);
    let b_to_a = av_insert(avs[1], &names[0]);
    let side = |i: usize, peer: u64| Side {
        ep: eps[i],
        av: avs[i],
        txcq: cq,
        rxcq: cq,
        txcntr: null(),
        rxcntr: null(),
        name: names[i].clone(),
        peer,
        closed: true, // closed below by hand
    };
    let (a, bb) = (side(0, a_to_b), side(1, b_to_a));
    let mut r1 = vec![0u8; 16];
    let mut r2 = vec![0u8; 16];
    assert_eq!(bb.trecv(&mut r1, ADDR_UNSPEC, 1, 0, 0xB1), 0);
    assert_eq!(a.trecv(&mut r2, ADDR_UNSPEC, 2, 0, 0xA1), 0);
    assert_eq!(a.tsend(b"to-b", a.peer, 1, 0xA2), 0);
    assert_eq!(bb.tsend(b"to-a", bb.peer, 2, 0xB2), 0);
    let mut got: [Vec<Cqe>; 1] = Default::default();
    assert!(progress_until(&[cq], &mut got, 10, |g| g[0].len() == 4));
    let mut ctxs: Vec<usize> = got[0].iter().map(|e| e.ctx).collect();
    ctxs.sort();
    assert_eq!(ctxs, [0xA1, 0xA2, 0xB1, 0xB2]);
    for e in &got[0] {
        let dir = if e.ctx & 1 == 1 {
            b::FI_RECV
        } else {
            b::FI_SEND
        };
        assert_eq!(e.flags & (b::FI_SEND | b::FI_RECV), dir, "{e:?}");
    }
    assert_eq!(&r1[..4], b"to-b");
    assert_eq!(&r2[..4], b"to-a");
    assert_eq!(close(fid_of(cq)), -b::FI_EBUSY);
    for f in [
        fid_of(eps[0]),
        fid_of(eps[1]),
        fid_of(cq),
        fid_of(avs[0]),
        fid_of(avs[1]),
        fid_of(dom),
        fid_of(fab),
    ] {
        assert_eq!(close(f), 0);
    }
}

/// Raw handles moved into threads (the provider is FI_THREAD_SAFE).
#[derive(Clone, Copy)]
struct Handles {
    ep: *mut b::fid_ep,
    peer: u64,
}
// SAFETY: the endpoint is opened FI_THREAD_SAFE; the harness only passes
// the pointers, libfabric serialises inside the provider.
unsafe impl Send for Handles {}

#[test]
fn thread_safe_endpoint_used_from_several_threads() {
    let p = Pair::new(&Opts::rdm());
    // SAFETY: info has domain_attr.
    assert_eq!(
        unsafe { (*(*p.info.0).domain_attr).threading },
        b::FI_THREAD_SAFE
    );
    const PER: usize = 200;
    let mut bufs: Vec<Vec<u8>> = (0..2 * PER).map(|_| vec![0u8; 32]).collect();
    for (i, buf) in bufs.iter_mut().enumerate() {
        let tag = (i / PER) as u64 + 1;
        assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, tag, 0, 1000 + i), 0);
    }
    let h = Handles {
        ep: p.a.ep,
        peer: p.a.peer,
    };
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            std::thread::spawn(move || {
                let h = h;
                let side = Side {
                    ep: h.ep,
                    av: null(),
                    txcq: null(),
                    rxcq: null(),
                    txcntr: null(),
                    rxcntr: null(),
                    name: vec![],
                    peer: h.peer,
                    closed: true,
                };
                let deadline = Instant::now() + Duration::from_secs(20);
                for i in 0..PER {
                    let m = [(t as u8) << 7 | i as u8 & 0x7f; 32];
                    loop {
                        let rc = side.tinject(&m, side.peer, t + 1);
                        if rc == 0 {
                            break;
                        }
                        assert_eq!(rc, EAGAIN, "tinject from thread {t}");
                        assert!(Instant::now() < deadline, "thread {t} stuck");
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let ok = progress_until(&p.cqs(), &mut got, 20, |g| g[3].len() == 2 * PER);
    for t in threads {
        t.join().expect("sender thread");
    }
    assert!(
        ok || progress_until(&p.cqs(), &mut got, 10, |g| g[3].len() == 2 * PER),
        "{} of {}",
        got[3].len(),
        2 * PER
    );
    // Per tag (thread), messages match in that thread's send order.
    for t in 0..2usize {
        for i in 0..PER {
            let b = &bufs[t * PER + i];
            assert_eq!(
                b[0],
                (t as u8) << 7 | i as u8 & 0x7f,
                "thread {t} message {i}"
            );
        }
    }
    assert!(got[3].iter().all(|e| e.err == 0));
}

#[test]
fn eq_open_bind_write_read() {
    let mut p = Pair::new(&Opts {
        enable: false,
        ..Opts::rdm()
    });
    let mut attr = b::fi_eq_attr {
        wait_obj: b::FI_WAIT_UNSPEC,
        ..Default::default()
    };
    let mut eq: *mut b::fid_eq = null();
    // SAFETY: fabric ops populated.
    let rc = unsafe { ((*(*p.fab).ops).eq_open.unwrap())(p.fab, &mut attr, &mut eq, void()) };
    assert_eq!(rc, 0);
    assert_eq!(ep_bind(p.a.ep, fid_of(eq), 0), 0);
    assert_eq!(enable(p.a.ep), 0);
    let mut ev = 0u32;
    let mut buf = [0u8; 64];
    // SAFETY: eq is open; buf has 64 bytes.
    unsafe {
        let ops = &*(*eq).ops;
        let n = (ops.read.unwrap())(eq, &mut ev, buf.as_mut_ptr().cast(), buf.len(), 0);
        assert_eq!(n, EAGAIN, "nothing yet");
        let msg = *b"hello-eq";
        let n = (ops.write.unwrap())(eq, b::FI_NOTIFY, msg.as_ptr().cast(), msg.len(), 0);
        assert_eq!(n, 8);
        let n = (ops.read.unwrap())(eq, &mut ev, buf.as_mut_ptr().cast(), buf.len(), 0);
        assert_eq!((n, ev), (8, b::FI_NOTIFY));
        assert_eq!(&buf[..8], b"hello-eq");
        let mut err = b::fi_eq_err_entry::default();
        assert_eq!((ops.readerr.unwrap())(eq, &mut err, 0), EAGAIN);
        let t = Instant::now();
        let n = (ops.sread.unwrap())(eq, &mut ev, buf.as_mut_ptr().cast(), buf.len(), 50, 0);
        assert_eq!(n, EAGAIN);
        assert!(t.elapsed() < Duration::from_secs(3));
    }
    p.a.close();
    assert_eq!(close(fid_of(eq)), 0);
}

#[test]
fn av_straddr_and_batch_insert_with_sync_err() {
    let p = Pair::new(&Opts::rdm());
    let mut s = [0 as std::os::raw::c_char; 128];
    let mut len = s.len();
    // SAFETY: name is one address; s has len bytes.
    let r = unsafe {
        ((*(*p.a.av).ops).straddr.unwrap())(
            p.a.av,
            p.b.name.as_ptr().cast(),
            s.as_mut_ptr(),
            &mut len,
        )
    };
    assert!(!r.is_null());
    let text = cstr(r);
    assert!(!text.is_empty() && len == text.len() + 1, "{text:?} {len}");
    assert!(text.contains("127.0.0.1"), "{text}");
    // Two good addresses and a bad one in one call; FI_SYNC_ERR reports each.
    let mut recs = p.a.name.clone();
    recs.extend_from_slice(&[0xEEu8; 40]);
    recs.extend_from_slice(&p.b.name);
    let mut fas = [0u64; 3];
    let mut errs = [7i32; 3];
    // SAFETY: 3 records of 40 bytes; fas and errs have 3 slots.
    let n = unsafe {
        ((*(*p.a.av).ops).insert.unwrap())(
            p.a.av,
            recs.as_ptr().cast(),
            3,
            fas.as_mut_ptr(),
            b::FI_SYNC_ERR,
            errs.as_mut_ptr().cast(),
        )
    };
    assert_eq!(n, 2);
    assert_eq!(errs[0], 0);
    assert_ne!(errs[1], 0);
    assert_eq!(errs[2], 0);
    assert_eq!(fas[1], ADDR_UNSPEC);
    assert!(fas[0] != ADDR_UNSPEC && fas[2] != ADDR_UNSPEC && fas[0] != fas[2]);
}

/// A send or receive naming a NULL buffer with a non-zero length (what
/// Open MPI 4.1's mtl ofi posts for MPI_BOTTOM struct datatypes) is refused
/// with -FI_EINVAL before any byte is read; a zero-length one with a NULL
/// buffer is valid and completes.
#[test]
fn null_buffer_with_a_length_is_refused() {
    let p = Pair::new(&Opts::rdm());
    // SAFETY: the endpoint is open; the NULL buffer is never dereferenced.
    let send = |len: usize, ctx: usize| unsafe {
        ((*(*p.a.ep).tagged).send.unwrap())(
            p.a.ep,
            std::ptr::null(),
            len,
            std::ptr::null_mut(),
            p.a.peer,
            5,
            ctx as *mut std::ffi::c_void,
        )
    };
    // SAFETY: as above.
    let recv = |len: usize, ctx: usize| unsafe {
        ((*(*p.b.ep).tagged).recv.unwrap())(
            p.b.ep,
            std::ptr::null_mut(),
            len,
            std::ptr::null_mut(),
            ADDR_UNSPEC,
            5,
            0,
            ctx as *mut std::ffi::c_void,
        )
    };
    assert_eq!(send(4, 1), -(b::FI_EINVAL as isize));
    assert_eq!(recv(4, 2), -(b::FI_EINVAL as isize));
    assert_eq!(recv(0, 3), 0);
    assert_eq!(send(0, 4), 0);
    let got = p.wait(1, 1, 20);
    assert_eq!(got[0][0].ctx, 4);
    assert_eq!((got[3][0].ctx, got[3][0].len), (3, 0));
}

/// AV flags fi_srd(7) accepts (FI_SYMMETRIC) and system memory
/// registrations through fi_mr_regattr (FI_HMEM_SYSTEM; other interfaces
/// are -FI_ENOSYS).
#[test]
fn symmetric_av_and_system_memory_registration() {
    let p = Pair::new(&Opts::rdm());
    let mut attr = b::fi_av_attr {
        type_: b::FI_AV_TABLE,
        flags: b::FI_SYMMETRIC,
        ..Default::default()
    };
    let mut av = std::ptr::null_mut();
    // SAFETY: the domain is open; attr is valid.
    let rc = unsafe {
        ((*(*p.dom).ops).av_open.unwrap())(p.dom, &mut attr, &mut av, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "FI_SYMMETRIC accepted");
    assert_ne!(av_insert(av, &p.a.name), ADDR_UNSPEC);
    assert_eq!(close(fid_of(av)), 0);
    let mut buf = vec![0u8; 64];
    let iov = b::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    for (iface, want) in [(b::FI_HMEM_SYSTEM, 0), (b::FI_HMEM_CUDA, -b::FI_ENOSYS)] {
        let mr_attr = b::fi_mr_attr {
            mr_iov: &iov,
            iov_count: 1,
            access: b::FI_REMOTE_WRITE,
            requested_key: 77,
            iface,
            ..Default::default()
        };
        let mut mr = std::ptr::null_mut();
        // SAFETY: the domain is open; mr_attr and its iov outlive the call.
        let rc =
            unsafe { ((*(*p.dom).mr).regattr.unwrap())(&mut (*p.dom).fid, &mr_attr, 0, &mut mr) };
        assert_eq!(rc, want, "iface {iface}");
        if rc == 0 {
            assert_eq!(close(fid_of(mr)), 0);
        }
    }
}
