//! Scenarios of the same-host fast path (small sends written straight into
//! the peer's ring, eager messages placed without per-message state), run
//! with it on (tests/fi_shm_fast.rs) and off (tests/fi_shm_fast_off.rs,
//! FI_SRD_SHM_FAST=0): the outcomes must be the same, and the counters
//! show which path carried the messages.
#![allow(dead_code)]

use crate::common::fab::*;
use crate::common::stats::{ctr, page_of};
use srd_fi::bindings as b;
use srd_fi::fi::stats;
use std::time::{Duration, Instant};

/// (fast sends of A, eager messages B placed on the fast path), read from
/// the endpoints' stats pages after a few publishing periods of progress.
pub fn fast_counters(p: &Pair) -> (u64, u64) {
    let (pa, pb) = (page_of(&p.a.name), page_of(&p.b.name));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = (u64::MAX, u64::MAX);
    // The pages are published every few ms while progress runs: read until
    // two reads agree.
    loop {
        p.drain(20);
        let (sa, sb) = (stats::read(&pa).unwrap(), stats::read(&pb).unwrap());
        let now = (ctr(&sa, "shm_fast_sends"), ctr(&sb, "fast_placed"));
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Message `i` of a run: its size walks over fast sizes (≤ 4 KiB), a
/// larger eager size and a size that goes by long-read (CMA) or medium,
/// so fast frames and engine packets of one sender interleave.
fn size_of(i: usize) -> usize {
    match i % 6 {
        0 => 8,
        1 => 1,
        2 => 4096,
        3 => 6000,
        4 => 100,
        _ => 40_000,
    }
}

/// Payload of message `i`: its index in the first 4 bytes (when they fit),
/// then a pattern.
fn payload(i: usize) -> Vec<u8> {
    let mut d = pattern(size_of(i), i as u8);
    let n = d.len().min(4);
    d[..n].copy_from_slice(&(i as u32).to_le_bytes()[..n]);
    d
}

/// `n` messages with one tag from A to B, sizes interleaving fast frames
/// and engine packets; the first half of B's receives is posted before
/// the sends (placed on arrival), the rest after (unexpected). Receive `i`
/// (posted i-th) must hold message `i`, whole. Returns how many sends
/// went fast and how many messages were placed fast.
pub fn mixed_sizes_keep_send_order(n: usize) -> (u64, u64) {
    let p = Pair::new(&Opts::rdm());
    let tag = 0x5eed;
    let mut bufs: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; 64 << 10]).collect();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let cqs = p.cqs();
    // Handshakes first, so the fast path is open from the first message.
    warm_up(&p);
    let before = fast_counters(&p);
    let (first, rest) = bufs.split_at_mut(n / 2);
    for (i, buf) in first.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, tag, 0, i), 0);
    }
    let msgs: Vec<Vec<u8>> = (0..n).map(payload).collect();
    for (i, m) in msgs.iter().enumerate() {
        let rc = post_retry(&cqs, &mut got, || p.a.tsend(m, p.a.peer, tag, 0x10_000 + i));
        assert_eq!(rc, 0, "send {i}");
    }
    for (k, buf) in rest.iter_mut().enumerate() {
        let i = n / 2 + k;
        let rc = post_retry(&cqs, &mut got, || p.b.trecv(buf, ADDR_UNSPEC, tag, 0, i));
        assert_eq!(rc, 0, "receive {i}");
    }
    let ok = progress_until(&cqs, &mut got, 30, |g| g[0].len() >= n && g[3].len() >= n);
    assert!(
        ok,
        "{} sends / {} receives completed of {n}",
        got[0].len(),
        got[3].len()
    );
    for e in got[0].iter().chain(&got[3]) {
        assert_eq!(e.err, 0, "error completion {e:?}");
    }
    let mut seen = vec![false; n];
    for e in &got[3] {
        let i = e.ctx;
        assert!(i < n && !seen[i], "receive context {i} twice or unknown");
        seen[i] = true;
        assert_eq!(
            e.len,
            msgs[i].len(),
            "receive {i} got a message of another size"
        );
        assert_eq!(e.tag, tag);
        assert!(
            bufs[i][..e.len] == msgs[i][..],
            "receive {i} holds another message"
        );
    }
    let mut sent: Vec<usize> = got[0].iter().map(|e| e.ctx - 0x10_000).collect();
    sent.sort_unstable();
    assert_eq!(
        sent,
        (0..n).collect::<Vec<_>>(),
        "every send completed once"
    );
    let after = fast_counters(&p);
    (after.0 - before.0, after.1 - before.1)
}

/// One message each way, so both handshakes are done.
pub fn warm_up(p: &Pair) {
    let mut r = [0u8; 8];
    assert_eq!(p.b.trecv(&mut r, ADDR_UNSPEC, 1, 0, 1), 0);
    assert_eq!(p.a.tsend(b"warm-up!", p.a.peer, 1, 2), 0);
    p.wait(1, 1, 10);
    let mut r2 = [0u8; 8];
    assert_eq!(p.a.trecv(&mut r2, ADDR_UNSPEC, 1, 0, 3), 0);
    assert_eq!(p.b.tsend(b"warm-up!", p.b.peer, 1, 4), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let ok = progress_until(&p.cqs(), &mut got, 10, |g| {
        g[1].len() == 1 && g[2].len() == 1
    });
    assert!(ok, "warm-up back: {got:?}");
}

/// Every form of small send (send, senddata, inject, injectdata and their
/// tagged forms) against every kind of small receive that must still work
/// on fast frames: tag with ignore bits, directed, untagged, truncated,
/// peek/claim, multi-receive. Checks bytes, lengths, tags, data, source and
/// flags of every completion.
pub fn every_send_form_and_match_mode() {
    let o = Opts {
        min_multi_recv: Some(64),
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    warm_up(&p);
    let a = &p.a;
    let mut rb = vec![0u8; 256];
    // Tagged with ignore bits, senddata: tag, data and source come through.
    assert_eq!(p.b.trecv(&mut rb, ADDR_UNSPEC, 0xAB00, 0xFF, 10), 0);
    let m = pattern(33, 1);
    assert_eq!(a.tsenddata(&m, 0xDA7A, a.peer, 0xAB42, 11), 0);
    let g = p.wait(1, 1, 10);
    let rx = &g[3][0];
    assert_eq!((rx.ctx, rx.len, rx.tag, rx.data), (10, 33, 0xAB42, 0xDA7A));
    assert_eq!(rx.flags, b::FI_RECV | b::FI_TAGGED | b::FI_REMOTE_CQ_DATA);
    assert_eq!(rx.src, p.b.peer, "source of a fast frame");
    assert!(rb[..33] == m[..]);
    assert_eq!(
        (g[0][0].ctx, g[0][0].flags),
        (11, b::FI_SEND | b::FI_TAGGED)
    );
    // Directed receive.
    let mut db = vec![0u8; 64];
    assert_eq!(p.b.trecv(&mut db, p.b.peer, 7, 0, 20), 0);
    assert_eq!(a.tinject(b"directed", a.peer, 7), 0);
    let g = p.wait(0, 1, 10);
    assert_eq!((g[3][0].ctx, g[3][0].len), (20, 8));
    assert_eq!(&db[..8], b"directed");
    assert!(g[0].is_empty(), "fi_tinject must not complete: {:?}", g[0]);
    // Untagged inject with data.
    let mut ub = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut ub, ADDR_UNSPEC, 30), 0);
    assert_eq!(a.injectdata(b"untagged", 0x77, a.peer), 0);
    let g = p.wait(0, 1, 10);
    let rx = &g[3][0];
    assert_eq!((rx.ctx, rx.len, rx.data), (30, 8, 0x77));
    assert_eq!(rx.flags, b::FI_RECV | b::FI_MSG | b::FI_REMOTE_CQ_DATA);
    assert_eq!(&ub[..8], b"untagged");
    // Truncation: the receive is smaller than the message.
    let mut small = vec![0u8; 4];
    assert_eq!(p.b.trecv(&mut small, ADDR_UNSPEC, 9, 0, 40), 0);
    assert_eq!(a.tsend(&pattern(100, 3), a.peer, 9, 41), 0);
    let g = p.wait(1, 1, 10);
    assert_eq!(g[3][0].err, b::FI_ETRUNC as i32, "{:?}", g[3][0]);
    assert_eq!(g[3][0].olen, 96);
    assert!(small[..] == pattern(100, 3)[..4]);
    // Multi-receive: several fast frames land in one buffer, in order.
    let mut multi = vec![0u8; 1024];
    assert_eq!(
        p.b.recvmsg(&mut multi, ADDR_UNSPEC, 50, b::FI_MULTI_RECV),
        0
    );
    for k in 0..3u8 {
        assert_eq!(a.send(&[k; 16], a.peer, 60 + k as usize), 0);
    }
    let base = multi.as_ptr() as usize;
    let g = p.wait(3, 3, 10);
    for (k, e) in g[3].iter().enumerate() {
        assert_eq!(
            (e.err, e.ctx, e.len, e.buf - base),
            (0, 50, 16, k * 16),
            "{e:?}"
        );
        assert!(multi[k * 16..k * 16 + 16].iter().all(|&x| x == k as u8));
    }
}

/// fi_tinject on `ep` (an endpoint pointer passed between threads).
fn tinject_raw(ep: usize, buf: &[u8], dest: u64, tag: u64) -> isize {
    let ep = ep as *mut b::fid_ep;
    // SAFETY: the endpoint is open for the whole scenario (its threads are
    // joined before it closes) and FI_THREAD_SAFE; the payload is copied
    // during the call.
    unsafe { ((*(*ep).tagged).inject.unwrap())(ep, buf.as_ptr().cast(), buf.len(), dest, tag) }
}

/// `threads` threads send `per` small tagged messages each on one
/// FI_THREAD_SAFE endpoint at once (tag = thread, payload = sequence
/// number), while the receiver posts one receive per message and tag:
/// every message arrives exactly once and each thread's in its order.
/// Returns the number of fast sends.
pub fn concurrent_senders_on_one_endpoint(threads: usize, per: usize) -> u64 {
    let p = Pair::new(&Opts::rdm());
    warm_up(&p);
    let before = fast_counters(&p).0;
    let (ep, dest) = (p.a.ep as usize, p.a.peer);
    let senders: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                for k in 0..per {
                    let m = (k as u64).to_le_bytes();
                    let deadline = Instant::now() + Duration::from_secs(30);
                    loop {
                        match tinject_raw(ep, &m, dest, 100 + t as u64) {
                            0 => break,
                            EAGAIN if Instant::now() < deadline => std::thread::yield_now(),
                            rc => panic!("thread {t} send {k}: {rc}"),
                        }
                    }
                }
            })
        })
        .collect();
    // The receiver: per tag, receives posted in order; completions read
    // while the senders run (their progress comes from our reads and the
    // senders' own calls).
    let mut bufs = vec![[0u8; 8]; threads * per];
    let cqs = p.cqs();
    let mut got: [Vec<Cqe>; 4] = Default::default();
    for k in 0..per {
        for t in 0..threads {
            let i = k * threads + t;
            let buf = &mut bufs[i];
            let rc = post_retry(&cqs, &mut got, || {
                p.b.trecv(buf, ADDR_UNSPEC, 100 + t as u64, 0, i)
            });
            assert_eq!(rc, 0);
        }
    }
    let total = threads * per;
    let ok = progress_until(&cqs, &mut got, 60, |g| g[3].len() >= total);
    for s in senders {
        s.join().expect("sender thread");
    }
    assert!(ok, "{} of {total} messages arrived", got[3].len());
    for e in &got[3] {
        assert_eq!(e.err, 0, "{e:?}");
        let (k, t) = (e.ctx / threads, e.ctx % threads);
        assert_eq!(e.tag, 100 + t as u64);
        let seq = u64::from_le_bytes(bufs[e.ctx]);
        assert_eq!(
            seq, k as u64,
            "thread {t}: its message {seq} matched its receive {k}"
        );
    }
    fast_counters(&p).0 - before
}

/// fi_inject writes no completion event, but a bound send counter counts
/// every one (and a plain send both).
pub fn injects_count_in_the_send_counter() {
    let o = Opts {
        cntrs: true,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    warm_up(&p);
    p.drain(20);
    let before = cntr_read(p.a.txcntr);
    let mut bufs = [[0u8; 8]; 6];
    for (i, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, 5, 0, 70 + i), 0);
    }
    for i in 0..5u8 {
        assert_eq!(p.a.tinject(&[i; 8], p.a.peer, 5), 0);
    }
    assert_eq!(p.a.tsend(&[9; 8], p.a.peer, 5, 80), 0);
    let g = p.wait(1, 6, 10);
    assert_eq!(g[0].len(), 1, "only the plain send completes: {:?}", g[0]);
    assert_eq!(g[0][0].ctx, 80);
    for (i, buf) in bufs.iter().enumerate() {
        let want = if i < 5 { i as u8 } else { 9 };
        assert_eq!(buf, &[want; 8], "receive {i}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while cntr_read(p.a.txcntr) < before + 6 && Instant::now() < deadline {
        p.drain(5);
    }
    assert_eq!(
        cntr_read(p.a.txcntr),
        before + 6,
        "5 injects and 1 send counted"
    );
    assert_eq!(cntr_readerr(p.a.txcntr), 0);
}

/// Frames received straight into posted receives on B (`fast_recvs`),
/// read as `fast_counters` reads its pair.
pub fn fast_recvs(p: &Pair) -> u64 {
    let pb = page_of(&p.b.name);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = u64::MAX;
    loop {
        p.drain(20);
        let now = ctr(&stats::read(&pb).unwrap(), "fast_recvs");
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// fi_tinject from A, retried (A's CQs polled) while A's ring toward B
/// is full: nothing of B is progressed.
fn tinject_a(p: &Pair, m: &[u8], tag: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match p.a.tinject(m, p.a.peer, tag) {
            0 => return,
            EAGAIN if Instant::now() < deadline => {
                for cq in [p.a.txcq, p.a.rxcq] {
                    while poll_cq(cq).is_some() {}
                }
            }
            rc => panic!("tinject: {rc}"),
        }
    }
}

/// B's CQs hold 4 entries; 64 small messages arrive for 64 posted
/// receives while B reads slowly: every completion comes, once, in the
/// order of the messages, with its bytes (a completion the CQ had no
/// room for is kept, and those behind it wait). Returns how many were
/// received straight into their receive.
pub fn full_cq_keeps_completions_in_order() -> u64 {
    let o = Opts {
        cq_size: 4,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    warm_up(&p);
    let before = fast_recvs(&p);
    let n = 64;
    let mut bufs = vec![[0u8; 8]; n];
    for (i, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, 5, 0, 100 + i), 0);
    }
    for i in 0..n {
        tinject_a(&p, &[i as u8; 8], 5);
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        // One entry per read: the CQ stays full while frames arrive.
        if let Some(e) = poll_cq(p.b.rxcq) {
            got.push(e);
        }
        for cq in [p.a.txcq, p.a.rxcq] {
            while poll_cq(cq).is_some() {}
        }
    }
    assert_eq!(got.len(), n, "completions: {got:?}");
    for (i, e) in got.iter().enumerate() {
        assert_eq!((e.err, e.ctx, e.len), (0, 100 + i, 8), "completion {i}");
        assert_eq!(bufs[i], [i as u8; 8], "receive {i}");
    }
    assert!(p.drain(50)[3].is_empty(), "a completion came twice");
    fast_recvs(&p) - before
}

/// Receives on fast frames count in B's receive counter, reported or not:
/// with FI_SELECTIVE_COMPLETION only the receive posted with
/// FI_COMPLETION writes an entry.
pub fn receive_counter_and_selective_completion() {
    let o = Opts {
        cntrs: true,
        rx_bind: b::FI_SELECTIVE_COMPLETION,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    // The warm-up's receives ask for their entries.
    let mut r = [0u8; 8];
    assert_eq!(
        p.b.trecvmsg(&mut r, ADDR_UNSPEC, 1, 0, 1, b::FI_COMPLETION),
        0
    );
    assert_eq!(p.a.tsend(b"warm-up!", p.a.peer, 1, 2), 0);
    p.wait(1, 1, 10);
    let mut r2 = [0u8; 8];
    assert_eq!(
        p.a.trecvmsg(&mut r2, ADDR_UNSPEC, 1, 0, 3, b::FI_COMPLETION),
        0
    );
    assert_eq!(p.b.tsend(b"warm-up!", p.b.peer, 1, 4), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let ok = progress_until(&p.cqs(), &mut got, 10, |g| {
        g[1].len() == 1 && g[2].len() == 1
    });
    assert!(ok, "warm-up back: {got:?}");
    p.drain(20);
    let before = cntr_read(p.b.rxcntr);
    let mut bufs = [[0u8; 8]; 11];
    for (i, buf) in bufs.iter_mut().enumerate() {
        let flags = if i == 10 { b::FI_COMPLETION } else { 0 };
        assert_eq!(p.b.trecvmsg(buf, ADDR_UNSPEC, 6, 0, 200 + i, flags), 0);
    }
    for i in 0..11u8 {
        assert_eq!(p.a.tinject(&[i; 8], p.a.peer, 6), 0);
    }
    let g = p.wait(0, 1, 10);
    assert_eq!(g[3].len(), 1, "only the reported receive: {:?}", g[3]);
    assert_eq!((g[3][0].err, g[3][0].ctx), (0, 210));
    let deadline = Instant::now() + Duration::from_secs(5);
    while cntr_read(p.b.rxcntr) < before + 11 && Instant::now() < deadline {
        p.drain(5);
    }
    assert_eq!(cntr_read(p.b.rxcntr), before + 11, "11 receives counted");
    for (i, buf) in bufs.iter().enumerate() {
        assert_eq!(buf, &[i as u8; 8], "receive {i}");
    }
}

/// A canceled receive takes no fast frame: the frame waits as unexpected
/// for the next receive.
pub fn canceled_receive_takes_no_fast_frame() {
    let p = Pair::new(&Opts::rdm());
    warm_up(&p);
    let mut first = [0u8; 16];
    assert_eq!(p.b.trecv(&mut first, ADDR_UNSPEC, 3, 0, 1), 0);
    assert_eq!(cancel(p.b.ep, 1), 0);
    let g = p.wait(0, 1, 10);
    assert_eq!(
        (g[3][0].ctx, g[3][0].err),
        (1, b::FI_ECANCELED),
        "{:?}",
        g[3]
    );
    assert_eq!(p.a.tinject(b"after-cancel", p.a.peer, 3), 0);
    p.drain(50);
    let mut second = [0u8; 16];
    assert_eq!(p.b.trecv(&mut second, ADDR_UNSPEC, 3, 0, 2), 0);
    let g = p.wait(0, 1, 10);
    assert_eq!((g[3][0].ctx, g[3][0].err, g[3][0].len), (2, 0, 12));
    assert_eq!(&second[..12], b"after-cancel");
    assert_eq!(first, [0u8; 16], "the canceled buffer was written");
}

/// A closes (its ring and liveness lock go away) with small messages
/// still in B's ring, B not having progressed since: B receives every
/// one of them, whole and in order, and then finds A gone (a receive
/// directed at it fails).
pub fn peer_gone_with_fast_frames_in_the_ring() {
    let mut p = Pair::new(&Opts::rdm());
    warm_up(&p);
    p.drain(20);
    let n = 32;
    let mut bufs = vec![[0u8; 8]; n];
    for (i, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(buf, p.b.peer, 8, 0, 300 + i), 0);
    }
    for i in 0..n {
        tinject_a(&p, &[i as u8 ^ 0x5a; 8], 8);
    }
    p.a.close();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n && Instant::now() < deadline {
        while let Some(e) = poll_cq(p.b.rxcq) {
            got.push(e);
        }
    }
    assert_eq!(got.len(), n, "{got:?}");
    for (i, e) in got.iter().enumerate() {
        assert_eq!((e.err, e.ctx, e.len), (0, 300 + i, 8), "completion {i}");
        assert_eq!(bufs[i], [i as u8 ^ 0x5a; 8], "receive {i}");
    }
    let mut after = [0u8; 8];
    assert_eq!(p.b.trecv(&mut after, p.b.peer, 8, 0, 400), 0);
    let mut e = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.is_none() && Instant::now() < deadline {
        e = poll_cq(p.b.rxcq);
    }
    let e = e.expect("the receive directed at the closed peer completes");
    assert_eq!((e.ctx, e.err), (400, b::FI_EHOSTUNREACH), "{e:?}");
}

/// Small messages of one sender that arrive before their receive
/// (unexpected: peeked, claimed, discarded) interleaved with ones that
/// find a posted receive: each is seen by the right call, whole.
pub fn peek_claim_discard_between_received_frames() {
    let p = Pair::new(&Opts::rdm());
    warm_up(&p);
    let m1 = pattern(40, 1);
    assert_eq!(p.a.tsenddata(&m1, 0xD1, p.a.peer, 1, 11), 0);
    let e = peek(&p, 1, 20, b::FI_CLAIM);
    assert_eq!((e.err, e.len, e.data), (0, 40, 0xD1), "{e:?}");
    // A message with a posted receive, behind the claimed one.
    let mut r2 = [0u8; 8];
    assert_eq!(p.b.trecv(&mut r2, ADDR_UNSPEC, 5, 0, 21), 0);
    assert_eq!(p.a.tinject(b"posted!!", p.a.peer, 5), 0);
    // (The send of m1 completed during the peeks.)
    let g = p.wait(0, 1, 10);
    assert_eq!((g[3][0].err, g[3][0].ctx, g[3][0].len), (0, 21, 8));
    assert_eq!(&r2, b"posted!!");
    // The claimed message is still there for its context only.
    assert_eq!(peek_once(&p, 1, 22, 0).err, b::FI_ENOMSG);
    let mut buf = [0u8; 40];
    assert_eq!(
        p.b.trecvmsg(&mut buf, ADDR_UNSPEC, 1, 0, 20, b::FI_CLAIM),
        0
    );
    let g = p.wait(0, 1, 10);
    let e = &g[3][0];
    assert_eq!((e.err, e.ctx, e.len, e.data), (0, 20, 40, 0xD1), "{e:?}");
    assert!(buf[..] == m1[..]);
    // Peek + discard, then a posted receive of the same tag gets the
    // next message, not the discarded one.
    assert_eq!(p.a.tinject(b"discard!", p.a.peer, 6), 0);
    let e = peek(&p, 6, 30, b::FI_DISCARD);
    assert_eq!((e.err, e.len), (0, 8));
    let mut r3 = [0u8; 8];
    assert_eq!(p.b.trecv(&mut r3, ADDR_UNSPEC, 6, 0, 31), 0);
    assert_eq!(p.a.tinject(b"kept it!", p.a.peer, 6), 0);
    let g = p.wait(0, 1, 10);
    assert_eq!((g[3][0].err, g[3][0].ctx), (0, 31));
    assert_eq!(&r3, b"kept it!");
}
