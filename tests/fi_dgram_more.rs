//! More FI_EP_DGRAM behaviour: inject, selective completion, counters,
//! CQ overrun, blocking reads.

mod common;

use common::fab::*;
use srd_fi::bindings as b;
use std::time::{Duration, Instant};

#[test]
fn dgram_inject_honours_inject_size() {
    let p = Pair::new(&Opts::dgram());
    // SAFETY: info has tx_attr.
    let inject_size = unsafe { (*(*p.info.0).tx_attr).inject_size };
    let mut rbuf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    if inject_size >= 5 {
        let mut m = b"hello".to_vec();
        assert_eq!(p.a.inject(&m, p.a.peer), 0);
        m.fill(0);
        let got = p.wait(0, 1, 10);
        assert_eq!(&rbuf[..5], b"hello");
        assert!(
            got[0].is_empty() && p.drain(30)[0].is_empty(),
            "inject completed"
        );
    } else {
        // fi_inject larger than the advertised inject_size is refused.
        assert_eq!(
            p.a.inject(b"hello", p.a.peer),
            -(b::FI_EMSGSIZE as isize),
            "inject of 5 bytes with inject_size {inject_size}"
        );
    }
}

#[test]
fn dgram_selective_completion_and_counters() {
    let p = Pair::new(&Opts {
        tx_bind: b::FI_SELECTIVE_COMPLETION,
        cntrs: true,
        ..Opts::dgram()
    });
    let mut r = [vec![0u8; 64], vec![0u8; 64]];
    let [r0, r1] = &mut r;
    assert_eq!(p.b.recv(r0, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.b.recv(r1, ADDR_UNSPEC, 2), 0);
    assert_eq!(p.a.send(b"quiet", p.a.peer, 10), 0);
    assert_eq!(p.a.sendmsg(b"loud", p.a.peer, 11, 0, b::FI_COMPLETION), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| g[3].len() == 2
        && cntr_read(p.a.txcntr) == 2));
    let _ = progress_until(&p.cqs(), &mut got, 0, |_| false);
    assert_eq!(got[0].iter().map(|e| e.ctx).collect::<Vec<_>>(), [11]);
    assert_eq!(cntr_read(p.b.rxcntr), 2);
    assert_eq!(cntr_wait(p.b.rxcntr, 2, 100), 0);
    assert_eq!(cntr_wait(p.b.rxcntr, 3, 50), -b::FI_ETIMEDOUT);
}

#[test]
fn dgram_cq_of_four_delivers_sixteen() {
    let p = Pair::new(&Opts {
        cq_size: 4,
        ..Opts::dgram()
    });
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 64]).collect();
    for (i, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.recv(buf, ADDR_UNSPEC, 100 + i), 0);
    }
    let mut got: [Vec<Cqe>; 4] = Default::default();
    for i in 0..16 {
        let m = [i as u8; 20];
        let rc = post_retry(&p.cqs(), &mut got, || p.a.send(&m, p.a.peer, 200 + i));
        assert_eq!(rc, 0);
    }
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| g[3].len() == 16
        && g[0].len() == 16));
    let mut rx: Vec<usize> = got[3].iter().map(|e| e.ctx).collect();
    rx.sort();
    assert_eq!(rx, (100..116).collect::<Vec<_>>());
    // Loopback does not lose datagrams here; each buffer got one message.
    let mut firsts: Vec<u8> = bufs.iter().map(|b| b[0]).collect();
    firsts.sort();
    assert_eq!(firsts, (0..16).collect::<Vec<u8>>());
}

#[test]
fn dgram_cq_sread_times_out_and_wakes() {
    let p = Pair::new(&Opts::dgram());
    let mut e = b::fi_cq_data_entry::default();
    let t = Instant::now();
    // SAFETY: room for one entry.
    let n = unsafe {
        ((*(*p.b.rxcq).ops).sread.unwrap())(
            p.b.rxcq,
            (&mut e as *mut b::fi_cq_data_entry).cast(),
            1,
            std::ptr::null(),
            100,
        )
    };
    assert_eq!(n, EAGAIN);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(80) && el < Duration::from_secs(3),
        "{el:?}"
    );
    let mut rbuf = vec![0u8; 8];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 5), 0);
    assert_eq!(p.a.send(b"wake", p.a.peer, 6), 0);
    // SAFETY: as above.
    let n = unsafe {
        ((*(*p.b.rxcq).ops).sread.unwrap())(
            p.b.rxcq,
            (&mut e as *mut b::fi_cq_data_entry).cast(),
            1,
            std::ptr::null(),
            2000,
        )
    };
    assert_eq!(n, 1);
    assert_eq!((e.op_context as usize, e.len), (5, 4));
}

#[test]
fn dgram_prefix_truncation_and_counters_on_errors() {
    let p = Pair::new(&Opts {
        prefix: true,
        cntrs: true,
        ..Opts::dgram()
    });
    let mut sbuf = vec![0u8; 40];
    sbuf.extend_from_slice(&pattern(300, 1));
    let mut rbuf = vec![0u8; 40 + 100];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(&sbuf, p.a.peer, 2), 0);
    let got = p.wait(1, 1, 10);
    let e = &got[3][0];
    assert_eq!(e.err, b::FI_ETRUNC as i32, "{e:?}");
    assert_eq!((e.len, e.olen), (140, 200));
    assert_eq!(rbuf[40..], sbuf[40..140]);
    assert_eq!((cntr_read(p.b.rxcntr), cntr_readerr(p.b.rxcntr)), (0, 1));
    assert_eq!(cntr_read(p.a.txcntr), 1);
}

#[test]
fn dgram_message_without_a_posted_receive_is_dropped() {
    let p = Pair::new(&Opts::dgram());
    assert_eq!(p.a.send(b"nobody", p.a.peer, 1), 0);
    let got = p.drain(100);
    assert_eq!(got[0].len(), 1);
    let mut rbuf = vec![0u8; 16];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 2), 0);
    let later = p.drain(100);
    assert!(
        later[3].is_empty(),
        "a dropped datagram was delivered late: {later:?}"
    );
    assert_eq!(p.a.send(b"fresh", p.a.peer, 3), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!(&rbuf[..5], b"fresh");
    assert_eq!(got[3][0].len, 5);
}

#[test]
fn one_counter_for_both_directions() {
    let mut p = Pair::new(&Opts {
        enable: false,
        ..Opts::dgram()
    });
    let c = cntr_open(p.dom).unwrap();
    for s in [&p.a, &p.b] {
        assert_eq!(ep_bind(s.ep, common::fid_of(c), b::FI_SEND | b::FI_RECV), 0);
        assert_eq!(enable(s.ep), 0);
    }
    let mut rbuf = vec![0u8; 16];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(b"count", p.a.peer, 2), 0);
    let _ = p.wait(1, 1, 10);
    assert_eq!(cntr_read(c), 2, "one send and one receive");
    p.a.close();
    p.b.close();
    assert_eq!(common::close(common::fid_of(c)), 0);
}

/// Remote CQ data on DGRAM (FI_RX_CQ_DATA): advertised (cq_data_size 8,
/// the mode shown to applications that support it), carried by
/// fi_senddata / fi_injectdata with and without the FI_MSG_PREFIX mode, and
/// absent from plain sends' completions.
#[test]
fn dgram_remote_cq_data() {
    let h = common::hints(b::FI_EP_DGRAM);
    // SAFETY: h is a valid fi_info we own.
    unsafe {
        (*h.0).mode = b::FI_RX_CQ_DATA | b::FI_CONTEXT;
        (*(*h.0).domain_attr).cq_data_size = 8;
    }
    let list = common::getinfo(None, None, 0, Some(&h)).expect("DGRAM with CQ data");
    for i in list.iter() {
        assert_ne!(i.mode & b::FI_RX_CQ_DATA, 0);
        // SAFETY: returned entries carry their attributes.
        assert_eq!(unsafe { (*i.domain_attr).cq_data_size }, 8);
    }
    for prefix in [false, true] {
        let o = Opts {
            prefix,
            ..Opts::dgram()
        };
        let p = Pair::new(&o);
        let pre = if prefix { 40 } else { 0 };
        let mut bufs = [
            vec![0u8; pre + 16],
            vec![0u8; pre + 16],
            vec![0u8; pre + 16],
        ];
        for (i, b) in bufs.iter_mut().enumerate() {
            assert_eq!(p.b.recv(b, ADDR_UNSPEC, 10 + i), 0);
        }
        let msg = |t: &[u8]| [vec![0u8; pre], t.to_vec()].concat();
        assert_eq!(p.a.senddata(&msg(b"data"), 0x5151, p.a.peer, 2), 0);
        assert_eq!(p.a.send(&msg(b"plain"), p.a.peer, 3), 0);
        assert_eq!(
            p.a.injectdata(&msg(b"inj"), 0x7777_0000_0000_0001, p.a.peer),
            0
        );
        let got = p.wait(2, 3, 10);
        let mut rx = got[3].clone();
        rx.sort_by_key(|e| e.ctx);
        let seen: Vec<_> = rx
            .iter()
            .map(|e| (e.ctx, e.len, e.flags & b::FI_REMOTE_CQ_DATA != 0, e.data))
            .collect();
        // Datagrams may arrive in any order; each receive got one of them.
        let mut by_len: Vec<_> = seen.iter().map(|s| (s.1 - pre, s.2, s.3)).collect();
        by_len.sort();
        assert_eq!(
            by_len,
            [
                (3, true, 0x7777_0000_0000_0001),
                (4, true, 0x5151),
                (5, false, 0)
            ],
            "prefix={prefix}: {rx:?}"
        );
        for (e, b) in rx.iter().zip(&bufs) {
            let body = &b[pre..e.len];
            let want: &[u8] = match body.len() {
                3 => b"inj",
                4 => b"data",
                _ => b"plain",
            };
            assert_eq!(body, want);
        }
    }
}
