//! FI_EP_RDM under pressure through the libfabric core: floods of
//! unexpected messages, both directions at once, sends to self, more sends
//! than tx_size.

mod common;

use common::fab::*;
use std::time::{Duration, Instant};

/// Sends `n` tagged messages of `size` A→B while B progresses without
/// receives for `hold`, then B posts them all; everything must arrive.
fn unexpected_flood(n: usize, size: usize, hold: Duration) {
    let p = Pair::new(&Opts::rdm());
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| pattern(size, i as u8)).collect();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    for (i, m) in msgs.iter().enumerate() {
        let rc = post_retry(&p.cqs(), &mut got, || p.a.tsend(m, p.a.peer, 7, i));
        assert_eq!(rc, 0, "send {i}");
    }
    let t = Instant::now();
    while t.elapsed() < hold {
        for (k, &cq) in p.cqs().iter().enumerate() {
            while let Some(e) = poll_cq(cq) {
                got[k].push(e);
            }
        }
    }
    let errs: Vec<&Cqe> = got[0].iter().filter(|e| e.err != 0).collect();
    assert!(
        errs.is_empty(),
        "send errors while the receiver held off: {:?}",
        &errs[..errs.len().min(3)]
    );
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; size]).collect();
    for (i, b) in bufs.iter_mut().enumerate() {
        let rc = post_retry(&p.cqs(), &mut got, || {
            p.b.trecv(b, ADDR_UNSPEC, 7, 0, 100_000 + i)
        });
        assert_eq!(rc, 0);
    }
    let ok = progress_until(&p.cqs(), &mut got, 30, |g| {
        g[3].len() >= n && g[0].len() >= n
    });
    assert!(ok, "tx {} rx {} of {n}", got[0].len(), got[3].len());
    assert!(got[0].iter().all(|e| e.err == 0), "send errors");
    assert!(
        got[3].iter().all(|e| e.err == 0 && e.len == size),
        "recv errors"
    );
    for (i, b) in bufs.iter().enumerate() {
        assert!(*b == msgs[i], "message {i} (same tag: send order)");
    }
}

#[test]
fn rdm_many_unexpected_messages_all_arrive() {
    unexpected_flood(2000, 1024, Duration::from_millis(200));
}

#[test]
fn rdm_unexpected_flood_beyond_storage_waits_for_receives() {
    // More than unexp_max_count (4096) messages: back-pressure must hold
    // the senders, not fail them, while the receiver is slow to post.
    unexpected_flood(6000, 64, Duration::from_secs(2));
}

#[test]
fn rdm_both_directions_at_once_large() {
    let p = Pair::new(&Opts::rdm());
    let size = 8 << 20;
    let ma = pattern(size, 1);
    let mb = pattern(size, 2);
    let mut ra = vec![0u8; size];
    let mut rb = vec![0u8; size];
    assert_eq!(p.a.trecv(&mut ra, ADDR_UNSPEC, 1, 0, 1), 0);
    assert_eq!(p.b.trecv(&mut rb, ADDR_UNSPEC, 1, 0, 2), 0);
    assert_eq!(p.a.tsend(&ma, p.a.peer, 1, 3), 0);
    assert_eq!(p.b.tsend(&mb, p.b.peer, 1, 4), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(
        progress_until(&p.cqs(), &mut got, 30, |g| g.iter().all(|v| v.len() == 1)),
        "{got:?}"
    );
    assert!(got.iter().all(|v| v[0].err == 0), "{got:?}");
    assert!(rb == ma && ra == mb);
}

#[test]
fn rdm_send_to_self() {
    let mut p = Pair::new(&Opts::rdm());
    let me = av_insert(p.a.av, &p.a.name.clone());
    let mut buf = vec![0u8; 100_000];
    let m = pattern(100_000, 3);
    assert_eq!(p.a.trecv(&mut buf, ADDR_UNSPEC, 5, 0, 1), 0);
    assert_eq!(p.a.tsend(&m, me, 5, 2), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(
        progress_until(&p.cqs(), &mut got, 10, |g| g[0].len() == 1
            && g[1].len() == 1),
        "{got:?}"
    );
    assert_eq!(
        (got[1][0].err, got[1][0].len, got[1][0].src),
        (0, 100_000, me)
    );
    assert!(buf == m);
    p.a.close();
    p.b.close();
}

#[test]
fn rdm_more_sends_than_tx_size_all_complete() {
    let p = Pair::new(&Opts::rdm());
    // SAFETY: info has tx_attr.
    let tx_size = unsafe { (*(*p.info.0).tx_attr).size };
    let n = tx_size + 100;
    let m = pattern(256, 9);
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; 256]).collect();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    // Sends first (unexpected at B): more than tx_size means -FI_EAGAIN
    // until completions free slots.
    let mut again = 0;
    for i in 0..n {
        loop {
            let rc = p.a.tsend(&m, p.a.peer, 3, i);
            if rc == 0 {
                break;
            }
            assert_eq!(rc, EAGAIN, "send {i}");
            again += 1;
            assert!(again < 10_000_000, "stuck at send {i}");
            for (k, &cq) in p.cqs().iter().enumerate() {
                while let Some(e) = poll_cq(cq) {
                    got[k].push(e);
                }
            }
        }
    }
    for (i, b) in bufs.iter_mut().enumerate() {
        let rc = post_retry(&p.cqs(), &mut got, || p.b.trecv(b, ADDR_UNSPEC, 3, 0, i));
        assert_eq!(rc, 0);
    }
    assert!(progress_until(&p.cqs(), &mut got, 30, |g| g[0].len() == n
        && g[3].len() == n));
    assert!(got[0].iter().chain(&got[3]).all(|e| e.err == 0));
    assert!(bufs.iter().all(|b| *b == m));
}

#[test]
fn rdm_cq_of_four_delivers_sixteen_error_entries() {
    let p = Pair::new(&Opts {
        cq_size: 4,
        ..Opts::rdm()
    });
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 10]).collect();
    for (i, b) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(b, ADDR_UNSPEC, 1, 0, 100 + i), 0);
    }
    let msgs: Vec<Vec<u8>> = (0..16).map(|i| pattern(50, i as u8)).collect();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    for (i, m) in msgs.iter().enumerate() {
        let rc = post_retry(&p.cqs(), &mut got, || p.a.tsend(m, p.a.peer, 1, 200 + i));
        assert_eq!(rc, 0);
    }
    // Let the sender finish while B's small CQ is not read.
    let mut tx: [Vec<Cqe>; 1] = Default::default();
    let _ = progress_until(&[p.a.txcq], &mut tx, 5, |g| g[0].len() + got[0].len() >= 16);
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| g[3].len() >= 16));
    let _ = p.drain(30);
    let mut ctxs: Vec<usize> = got[3].iter().map(|e| e.ctx).collect();
    ctxs.sort();
    assert_eq!(ctxs, (100..116).collect::<Vec<_>>(), "all 16 error entries");
    assert!(
        got[3]
            .iter()
            .all(|e| e.err == srd_fi::bindings::FI_ETRUNC as i32 && e.olen == 40)
    );
}
