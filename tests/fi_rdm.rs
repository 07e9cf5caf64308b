//! FI_EP_RDM through the real libfabric core: two (or three) endpoints on
//! `lo` in one process. Sizes across every protocol edge with data checks,
//! tag matching, directed receive, ordering, inject, remote CQ data,
//! truncation, cancel, selective completion, counters, multi-receive,
//! peek/claim/discard, unknown senders, CQ overrun and blocking reads.

mod common;

use common::fab::*;
use srd_fi::bindings as b;
use std::time::{Duration, Instant};

const ENOENT: isize = -(b::FI_ENOENT as isize);
const ETIMEDOUT: i32 = -b::FI_ETIMEDOUT;

/// Sizes across the eager, medium and long-CTS edges. On `lo` one packet
/// carries a little under 64 KiB, so the eager edge lies just below the
/// medium edge (64 KiB): every size in between is covered.
fn edge_sizes() -> Vec<usize> {
    let mut v = vec![0, 1, 2, 63, 4095, 4096, 4097, 8191, 8192, 8193];
    v.extend(65536 - 320..=65536 + 1);
    v.extend([100_000, 1 << 20, (1 << 20) + 1, 8 << 20]);
    v
}

/// Sends `data` A→B (tagged or not) into a receive of `rlen` bytes and
/// returns (tx entry, rx entry, receive buffer).
fn one(p: &Pair, data: &[u8], rlen: usize, tagged: bool, tag: u64) -> (Cqe, Cqe, Vec<u8>) {
    let mut rbuf = vec![0u8; rlen];
    let rc = if tagged {
        p.b.trecv(&mut rbuf, ADDR_UNSPEC, tag, 0, 0xB0)
    } else {
        p.b.recv(&mut rbuf, ADDR_UNSPEC, 0xB0)
    };
    assert_eq!(rc, 0, "post receive");
    let rc = if tagged {
        p.a.tsend(data, p.a.peer, tag, 0xA0)
    } else {
        p.a.send(data, p.a.peer, 0xA0)
    };
    assert_eq!(rc, 0, "post send of {}", data.len());
    let secs = 10 + (data.len() >> 20) as u64;
    let got = p.wait(1, 1, secs);
    assert_eq!(got[0].len(), 1);
    assert_eq!(got[3].len(), 1);
    (got[0][0].clone(), got[3][0].clone(), rbuf)
}

fn sizes_roundtrip(tagged: bool) {
    let p = Pair::new(&Opts::rdm());
    let kind = if tagged { b::FI_TAGGED } else { b::FI_MSG };
    for (i, len) in edge_sizes().into_iter().enumerate() {
        let data = pattern(len, i as u8);
        let tag = 0x1000 + i as u64;
        let (tx, rx, rbuf) = one(&p, &data, len.max(1), tagged, tag);
        assert_eq!(tx.err, 0, "send {len}: {tx:?}");
        assert_eq!((tx.ctx, tx.flags), (0xA0, b::FI_SEND | kind), "send {len}");
        assert_eq!(rx.err, 0, "recv {len}: {rx:?}");
        assert_eq!(rx.ctx, 0xB0);
        assert_eq!(rx.flags, b::FI_RECV | kind, "recv flags at {len}");
        assert_eq!(rx.len, len, "recv len");
        if tagged {
            assert_eq!(rx.tag, tag);
        }
        assert!(rbuf[..len] == data[..], "payload of {len} bytes differs");
    }
}

#[test]
fn rdm_msg_sizes_across_protocol_edges() {
    sizes_roundtrip(false);
}

#[test]
fn rdm_tagged_sizes_across_protocol_edges() {
    sizes_roundtrip(true);
}

#[test]
fn rdm_zero_length_with_null_buffer() {
    let p = Pair::new(&Opts::rdm());
    let null = std::ptr::null();
    // SAFETY: zero-length operations with NULL buffers are valid.
    let rc = unsafe {
        ((*(*p.b.ep).tagged).recv.unwrap())(
            p.b.ep,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
            ADDR_UNSPEC,
            3,
            0,
            std::ptr::without_provenance_mut(1),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: as above.
    let rc = unsafe {
        ((*(*p.a.ep).tagged).send.unwrap())(
            p.a.ep,
            null,
            0,
            std::ptr::null_mut(),
            p.a.peer,
            3,
            std::ptr::without_provenance_mut(2),
        )
    };
    assert_eq!(rc, 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].len, got[3][0].tag), (0, 0, 3));
}

#[test]
fn rdm_tag_matching_with_ignore_bits() {
    let p = Pair::new(&Opts::rdm());
    let mut wild = vec![0u8; 64];
    let mut exact = vec![0u8; 64];
    // Matches 0x12xx only.
    assert_eq!(p.b.trecv(&mut wild, ADDR_UNSPEC, 0x1200, 0xFF, 1), 0);
    assert_eq!(p.a.tsend(b"not-this", p.a.peer, 0x2234, 10), 0);
    assert_eq!(p.a.tsend(b"this-one", p.a.peer, 0x1234, 11), 0);
    let got = p.wait(2, 1, 10);
    let rx = &got[3][0];
    assert_eq!(
        (rx.err, rx.ctx, rx.tag, rx.len),
        (0, 1, 0x1234, 8),
        "{rx:?}"
    );
    assert_eq!(&wild[..8], b"this-one");
    // The other waits as unexpected until a receive for it appears.
    assert!(p.drain(30)[3].is_empty());
    assert_eq!(p.b.trecv(&mut exact, ADDR_UNSPEC, 0x2234, 0, 2), 0);
    let got = p.wait(0, 1, 10);
    let rx = &got[3][0];
    assert_eq!((rx.err, rx.ctx, rx.tag), (0, 2, 0x2234));
    assert_eq!(&exact[..8], b"not-this");
}

#[test]
fn rdm_directed_receive_versus_any_source() {
    let o = Opts::rdm();
    let mut p = Pair::new(&o);
    // A third endpoint C in the same domain; B knows A and C.
    let mut c = Side::open(p.dom, p.info.0, &o);
    let c_in_b = av_insert(p.b.av, &c.name);
    c.peer = av_insert(c.av, &p.b.name);
    let mut from_c = vec![0u8; 16];
    let mut any = vec![0u8; 16];
    // A receive for C only, posted first.
    assert_eq!(p.b.trecv(&mut from_c, c_in_b, 7, 0, 0xC), 0);
    assert_eq!(p.a.tsend(b"from-a", p.a.peer, 7, 1), 0);
    let mut got: [Vec<Cqe>; 6] = Default::default();
    let cqs = [p.a.txcq, p.a.rxcq, p.b.txcq, p.b.rxcq, c.txcq, c.rxcq];
    assert!(progress_until(&cqs, &mut got, 10, |g| g[0].len() == 1));
    let _ = progress_until(&cqs, &mut got, 0, |_| false);
    assert!(
        got[3].is_empty(),
        "A's message matched a receive directed at C: {got:?}"
    );
    // Any source takes A's message.
    assert_eq!(p.b.trecv(&mut any, ADDR_UNSPEC, 7, 0, 0xA), 0);
    assert!(progress_until(&cqs, &mut got, 10, |g| g[3].len() == 1));
    assert_eq!((got[3][0].ctx, got[3][0].src), (0xA, p.b.peer));
    assert_eq!(&any[..6], b"from-a");
    // C's message lands in the directed receive.
    assert_eq!(c.tsend(b"from-c", c.peer, 7, 2), 0);
    assert!(progress_until(&cqs, &mut got, 10, |g| g[3].len() == 2));
    assert_eq!((got[3][1].ctx, got[3][1].src), (0xC, c_in_b));
    assert_eq!(&from_c[..6], b"from-c");
    let _ = progress_until(&cqs, &mut got, 10, |g| g[4].len() == 1);
    c.close();
    p.a.close();
    p.b.close();
}

#[test]
fn rdm_same_tag_messages_match_in_send_order() {
    let p = Pair::new(&Opts::rdm());
    // Mixed protocols: eager, medium and long-CTS messages with one tag.
    let sizes = [
        10usize,
        70_000,
        5,
        200_000,
        3000,
        65_536,
        1,
        1 << 20,
        100,
        40_000,
    ];
    let msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(n, 0x40 + i as u8))
        .collect();
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|_| vec![0u8; 1 << 20]).collect();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(p.a.tsend(m, p.a.peer, 42, 100 + i), 0);
    }
    // Receives posted after the sends: unexpected path, then posted path.
    for (i, buf) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, 42, 0, 200 + i), 0);
    }
    let got = p.wait(sizes.len(), sizes.len(), 20);
    for e in &got[3] {
        assert_eq!(e.err, 0, "{e:?}");
        let i = e.ctx - 200;
        assert_eq!(
            e.len, sizes[i],
            "receive {i} got the message of another send"
        );
        assert!(bufs[i][..sizes[i]] == msgs[i][..], "receive {i} bytes");
    }
    let mut tx: Vec<usize> = got[0].iter().map(|e| e.ctx).collect();
    tx.sort();
    assert_eq!(tx, (100..100 + sizes.len()).collect::<Vec<_>>());
}

#[test]
fn rdm_inject_buffer_reusable_and_no_tx_completion() {
    let p = Pair::new(&Opts::rdm());
    let mut buf = pattern(1000, 5);
    let orig = buf.clone();
    let mut r1 = vec![0u8; 2000];
    let mut r2 = vec![0u8; 2000];
    let mut r3 = vec![0u8; 2000];
    let mut r4 = vec![0u8; 2000];
    assert_eq!(p.b.recv(&mut r1, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.b.recv(&mut r2, ADDR_UNSPEC, 2), 0);
    assert_eq!(p.b.trecv(&mut r3, ADDR_UNSPEC, 9, 0, 3), 0);
    assert_eq!(p.b.trecv(&mut r4, ADDR_UNSPEC, 9, 0, 4), 0);
    assert_eq!(p.a.inject(&buf, p.a.peer), 0);
    buf.fill(0xFF); // reusable at once
    assert_eq!(p.a.injectdata(&orig, 0xDA7A, p.a.peer), 0);
    assert_eq!(p.a.tinject(&orig[..10], p.a.peer, 9), 0);
    assert_eq!(p.a.tinjectdata(&orig[..20], 0xBEEF, p.a.peer, 9), 0);
    let got = p.wait(0, 4, 10);
    let rx = &got[3];
    assert!(rx.iter().all(|e| e.err == 0), "{rx:?}");
    assert_eq!(
        (rx[0].ctx, rx[0].len, rx[0].flags),
        (1, 1000, b::FI_RECV | b::FI_MSG)
    );
    assert_eq!(r1[..1000], orig[..]);
    assert_eq!(rx[1].flags, b::FI_RECV | b::FI_MSG | b::FI_REMOTE_CQ_DATA);
    assert_eq!(rx[1].data, 0xDA7A);
    assert_eq!(r2[..1000], orig[..]);
    assert_eq!(
        (rx[2].len, rx[2].tag, rx[2].flags),
        (10, 9, b::FI_RECV | b::FI_TAGGED)
    );
    assert_eq!(
        rx[3].flags,
        b::FI_RECV | b::FI_TAGGED | b::FI_REMOTE_CQ_DATA
    );
    assert_eq!((rx[3].data, rx[3].len), (0xBEEF, 20));
    assert_eq!(r4[..20], orig[..20]);
    let later = p.drain(50);
    assert!(
        got[0].is_empty() && later[0].is_empty(),
        "inject produced a tx completion"
    );
    // Above inject_size: -FI_EMSGSIZE.
    // SAFETY: info has tx_attr.
    let inject_size = unsafe { (*(*p.info.0).tx_attr).inject_size };
    let big = vec![0u8; inject_size + 1];
    assert_eq!(p.a.inject(&big, p.a.peer), -(b::FI_EMSGSIZE as isize));
}

#[test]
fn rdm_senddata_sets_remote_cq_data_in_data_and_tagged_formats() {
    for format in [b::FI_CQ_FORMAT_DATA, b::FI_CQ_FORMAT_TAGGED] {
        let o = Opts {
            cq_format: format,
            ..Opts::rdm()
        };
        let p = Pair::new(&o);
        let mut r1 = vec![0u8; 100_000];
        let mut r2 = vec![0u8; 100];
        let d1 = pattern(100_000, 1);
        assert_eq!(p.b.recv(&mut r1, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.b.trecv(&mut r2, ADDR_UNSPEC, 0x77, 0, 2), 0);
        assert_eq!(p.a.senddata(&d1, 0x1122_3344_5566_7788, p.a.peer, 10), 0);
        assert_eq!(p.a.tsenddata(b"tagged", 0x99, p.a.peer, 0x77, 11), 0);
        let mut got = p.wait(2, 2, 10);
        // Completion order across messages is not defined: sort by context.
        got[3].sort_by_key(|e| e.ctx);
        let rx = &got[3];
        assert_eq!(rx[0].flags, b::FI_RECV | b::FI_MSG | b::FI_REMOTE_CQ_DATA);
        assert_eq!(rx[0].data, 0x1122_3344_5566_7788);
        assert_eq!(rx[0].len, d1.len());
        assert!(r1 == d1);
        assert_eq!(
            rx[1].flags,
            b::FI_RECV | b::FI_TAGGED | b::FI_REMOTE_CQ_DATA
        );
        assert_eq!(rx[1].data, 0x99);
        if format == b::FI_CQ_FORMAT_TAGGED {
            assert_eq!(rx[1].tag, 0x77);
        }
        // Sends without data carry no flag.
        assert_eq!(p.b.recv(&mut r2, ADDR_UNSPEC, 3), 0);
        assert_eq!(p.a.send(b"plain", p.a.peer, 12), 0);
        let got = p.wait(1, 1, 10);
        assert_eq!(got[3][0].flags & b::FI_REMOTE_CQ_DATA, 0);
    }
}

#[test]
fn rdm_truncation_is_etrunc_with_olen() {
    let p = Pair::new(&Opts::rdm());
    for (len, cap) in [(1000usize, 100usize), (20_000, 1000), (300_000, 4096)] {
        let data = pattern(len, 3);
        let (tx, rx, rbuf) = one(&p, &data, cap, true, 5);
        assert_eq!(tx.err, 0, "sender sees success: {tx:?}");
        assert_eq!(rx.err, b::FI_ETRUNC as i32, "{rx:?}");
        assert_eq!((rx.ctx, rx.len, rx.olen), (0xB0, cap, len - cap));
        assert_eq!(rx.tag, 5);
        assert!(rbuf[..] == data[..cap]);
    }
}

#[test]
fn rdm_cancel_posted_receives() {
    let p = Pair::new(&Opts::rdm());
    let mut t = vec![0u8; 100];
    let mut m = vec![0u8; 100];
    assert_eq!(p.b.trecv(&mut t, ADDR_UNSPEC, 1, 0, 0x51), 0);
    assert_eq!(p.b.recv(&mut m, ADDR_UNSPEC, 0x52), 0);
    assert_eq!(cancel(p.b.ep, 0x51), 0);
    assert_eq!(cancel(p.b.ep, 0x52), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| g[3].len() == 2));
    for (e, ctx, kind) in [
        (&got[3][0], 0x51, b::FI_TAGGED),
        (&got[3][1], 0x52, b::FI_MSG),
    ] {
        assert_eq!((e.err, e.ctx), (b::FI_ECANCELED, ctx), "{e:?}");
        assert_ne!(e.flags & kind, 0);
    }
    assert_eq!(cancel(p.b.ep, 0x51), ENOENT);
    // The canceled receives take nothing.
    assert_eq!(p.a.tsend(b"x", p.a.peer, 1, 1), 0);
    let later = p.drain(50);
    assert!(later[3].is_empty(), "{later:?}");
}

#[test]
fn rdm_selective_completion_and_counters() {
    let o = Opts {
        tx_bind: b::FI_SELECTIVE_COMPLETION,
        rx_bind: b::FI_SELECTIVE_COMPLETION,
        cntrs: true,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let mut r = [vec![0u8; 64], vec![0u8; 64]];
    let [r0, r1] = &mut r;
    // Receive without FI_COMPLETION: no entry; with it: an entry.
    assert_eq!(p.b.recv(r0, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.b.recvmsg(r1, ADDR_UNSPEC, 2, b::FI_COMPLETION), 0);
    assert_eq!(p.a.send(b"quiet", p.a.peer, 10), 0);
    assert_eq!(p.a.sendmsg(b"loud", p.a.peer, 11, 0, b::FI_COMPLETION), 0);
    // Both sides must progress (a software device acks only when polled):
    // poll the CQs until the counters show both operations.
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let counted = progress_until(&p.cqs(), &mut got, 10, |_| {
        cntr_read(p.a.txcntr) + cntr_readerr(p.a.txcntr) >= 2
            && cntr_read(p.b.rxcntr) + cntr_readerr(p.b.rxcntr) >= 2
    });
    assert!(counted, "counters: {got:?}");
    // Reached thresholds return at once.
    assert_eq!(cntr_wait(p.a.txcntr, 2, 5000), 0, "both sends counted");
    assert_eq!(cntr_wait(p.b.rxcntr, 2, 5000), 0, "both receives counted");
    let more = p.drain(50);
    for k in 0..4 {
        got[k].extend(more[k].iter().cloned());
    }
    assert_eq!(
        got[0].iter().map(|e| e.ctx).collect::<Vec<_>>(),
        [11],
        "tx: {got:?}"
    );
    assert_eq!(
        got[3].iter().map(|e| e.ctx).collect::<Vec<_>>(),
        [2],
        "rx: {got:?}"
    );
    assert_eq!(&r[0][..5], b"quiet");
    assert_eq!(&r[1][..4], b"loud");
    assert_eq!(cntr_read(p.a.txcntr), 2);
    assert_eq!(cntr_read(p.b.rxcntr), 2);
    assert_eq!((cntr_readerr(p.a.txcntr), cntr_readerr(p.b.rxcntr)), (0, 0));
    // Nothing else will arrive: waiting times out, in about the time asked.
    let t = Instant::now();
    assert_eq!(cntr_wait(p.b.rxcntr, 3, 100), ETIMEDOUT);
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(90) && el < Duration::from_secs(3),
        "{el:?}"
    );
}

#[test]
fn rdm_multi_recv_buffer_takes_several_messages() {
    let o = Opts {
        min_multi_recv: Some(1024),
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let mut big = vec![0u8; 4096];
    let base = big.as_ptr() as usize;
    assert_eq!(p.b.recvmsg(&mut big, ADDR_UNSPEC, 0x3, b::FI_MULTI_RECV), 0);
    let msgs: Vec<Vec<u8>> = (0..4).map(|i| pattern(1000, i)).collect();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(p.a.send(m, p.a.peer, 10 + i), 0);
    }
    let got = p.wait(4, 4, 10);
    let rx = &got[3];
    let mut offs = vec![];
    for (i, e) in rx.iter().enumerate() {
        assert_eq!((e.err, e.ctx, e.len), (0, 0x3, 1000), "{e:?}");
        let off = e.buf - base;
        assert!(off + 1000 <= 4096, "entry {i} outside the buffer");
        assert!(
            big[off..off + 1000] == msgs[i][..],
            "message {i} at offset {off}"
        );
        offs.push(off);
        // 4096 - 3*1000 = 1096 >= 1024: released only by the fourth.
        let released = e.flags & b::FI_MULTI_RECV != 0;
        assert_eq!(released, i == 3, "FI_MULTI_RECV on entry {i}: {e:?}");
    }
    offs.dedup();
    assert_eq!(offs.len(), 4, "distinct offsets");
    // The released buffer takes nothing more.
    assert_eq!(p.a.send(b"more", p.a.peer, 20), 0);
    assert!(p.drain(50)[3].is_empty());
    // Smaller than FI_OPT_MIN_MULTI_RECV: refused.
    let mut small = vec![0u8; 512];
    assert_eq!(
        p.b.recvmsg(&mut small, ADDR_UNSPEC, 4, b::FI_MULTI_RECV),
        -(b::FI_EINVAL as isize)
    );
}

#[test]
fn rdm_peek_claim_discard_on_unexpected_messages() {
    let p = Pair::new(&Opts::rdm());
    // Nothing there yet: FI_ENOMSG.
    assert_eq!(p.b.trecvmsg(&mut [], ADDR_UNSPEC, 1, 0, 9, b::FI_PEEK), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    assert_eq!((got[3][0].err, got[3][0].ctx), (b::FI_ENOMSG, 9));

    let m1 = pattern(300, 1);
    let m2 = pattern(200, 2);
    assert_eq!(p.a.tsenddata(&m1, 0xD1, p.a.peer, 1, 11), 0);
    assert_eq!(p.a.tsend(&m2, p.a.peer, 2, 12), 0);
    // Plain peek: reports, leaves the message.
    let e = peek(&p, 1, 20, 0);
    assert_eq!((e.err, e.ctx, e.len, e.tag), (0, 20, 300, 1), "{e:?}");
    assert_eq!(
        e.flags & (b::FI_RECV | b::FI_TAGGED),
        b::FI_RECV | b::FI_TAGGED
    );
    assert_eq!(
        (e.flags & b::FI_REMOTE_CQ_DATA, e.data),
        (b::FI_REMOTE_CQ_DATA, 0xD1)
    );
    let e = peek(&p, 1, 21, 0);
    assert_eq!((e.ctx, e.len), (21, 300), "still there");
    // Peek + claim, then receive the claimed message by context.
    let e = peek(&p, 1, 22, b::FI_CLAIM);
    assert_eq!((e.err, e.len), (0, 300));
    let e = peek_once(&p, 1, 23, 0);
    assert_eq!(e.err, b::FI_ENOMSG, "claimed message is no longer visible");
    let mut buf = vec![0u8; 300];
    assert_eq!(
        p.b.trecvmsg(&mut buf, ADDR_UNSPEC, 1, 0, 22, b::FI_CLAIM),
        0
    );
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    let e = &got[3][0];
    assert_eq!(
        (e.err, e.ctx, e.len, e.tag, e.data),
        (0, 22, 300, 1, 0xD1),
        "{e:?}"
    );
    assert!(buf == m1);
    // Peek + discard: gone.
    let e = peek(&p, 2, 30, b::FI_DISCARD);
    assert_eq!((e.err, e.len), (0, 200));
    let e = peek_once(&p, 2, 31, 0);
    assert_eq!(e.err, b::FI_ENOMSG, "discarded");
    // Claim then discard through FI_CLAIM|FI_DISCARD.
    assert_eq!(p.a.tsend(&m2, p.a.peer, 3, 13), 0);
    let e = peek(&p, 3, 40, b::FI_CLAIM);
    assert_eq!((e.err, e.len), (0, 200));
    assert_eq!(
        p.b.trecvmsg(&mut [], ADDR_UNSPEC, 3, 0, 40, b::FI_CLAIM | b::FI_DISCARD),
        0
    );
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    assert_eq!((got[3][0].err, got[3][0].ctx), (0, 40));
    let e = peek_once(&p, 3, 41, 0);
    assert_eq!(e.err, b::FI_ENOMSG);
    // A claim for a context that claimed nothing.
    assert_eq!(
        p.b.trecvmsg(&mut buf, ADDR_UNSPEC, 3, 0, 99, b::FI_CLAIM),
        -(b::FI_ENOMSG as isize)
    );
}

#[test]
fn rdm_unknown_sender_with_source_err_is_eaddrnotavail() {
    let o = Opts {
        caps: Opts::rdm().caps | b::FI_SOURCE_ERR,
        b_knows_a: false,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let data = pattern(500, 4);
    let mut rbuf = vec![0u8; 500];
    assert_eq!(p.b.trecv(&mut rbuf, ADDR_UNSPEC, 8, 0, 0x5E), 0);
    assert_eq!(p.a.tsend(&data, p.a.peer, 8, 1), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!(got[0][0].err, 0, "{:?}", got[0][0]);
    let e = &got[3][0];
    assert_eq!(
        (e.err, e.ctx, e.len, e.tag),
        (b::FI_EADDRNOTAVAIL, 0x5E, 500, 8),
        "{e:?}"
    );
    assert_eq!(e.err_data, p.a.name, "err_data holds the sender's address");
    assert!(rbuf == data, "the data is placed");
}

#[test]
fn rdm_unknown_sender_once_inserted_is_reported_by_fi_addr() {
    let o = Opts {
        caps: Opts::rdm().caps | b::FI_SOURCE_ERR,
        b_knows_a: false,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let data = pattern(500, 4);
    let mut rbuf = vec![0u8; 500];
    assert_eq!(p.b.trecv(&mut rbuf, ADDR_UNSPEC, 8, 0, 0x5E), 0);
    assert_eq!(p.a.tsend(&data, p.a.peer, 8, 1), 0);
    let got = p.wait(1, 1, 10);
    let e = &got[3][0];
    assert_eq!(e.err, b::FI_EADDRNOTAVAIL, "{e:?}");
    // Once inserted, the same sender is reported by fi_addr (fi_cq(3):
    // the application inserts err_data and later entries carry its fi_addr).
    let fa = av_insert(p.b.av, &e.err_data);
    assert_eq!(p.b.trecv(&mut rbuf, ADDR_UNSPEC, 8, 0, 0x5F), 0);
    assert_eq!(p.a.tsend(&data, p.a.peer, 8, 2), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].src), (0, fa), "{:?}", got[3][0]);
}

#[test]
fn rdm_cq_of_four_delivers_sixteen_completions() {
    let o = Opts {
        cq_size: 4,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 100]).collect();
    for (i, b) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(b, ADDR_UNSPEC, 1, 0, 100 + i), 0);
    }
    let mut got: [Vec<Cqe>; 4] = Default::default();
    for i in 0..16 {
        let m = pattern(50, i as u8);
        let rc = post_retry(&p.cqs(), &mut got, || p.a.tsend(&m, p.a.peer, 1, 200 + i));
        assert_eq!(rc, 0);
        // Keep each message alive until its completion: eager copies, so
        // a local clone is enough for this test's sizes only if the
        // provider copied; wait for the tx completion to be safe.
        assert!(progress_until(&p.cqs(), &mut got, 10, |g| g[0]
            .iter()
            .any(|e| e.ctx == 200 + i)));
    }
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| g[3].len() >= 16));
    let _ = p.drain(30);
    let mut rx: Vec<usize> = got[3].iter().map(|e| e.ctx).collect();
    rx.sort();
    assert_eq!(rx, (100..116).collect::<Vec<_>>(), "all 16, none twice");
    for (i, b) in bufs.iter().enumerate() {
        assert!(b[..50] == pattern(50, i as u8)[..], "message {i}");
    }
    assert!(got[3].iter().all(|e| e.err == 0));
}

#[test]
fn rdm_cq_of_four_with_sixteen_pending_at_once() {
    let o = Opts {
        cq_size: 4,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let msgs: Vec<Vec<u8>> = (0..16).map(|i| pattern(50, i as u8)).collect();
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 100]).collect();
    for (i, b) in bufs.iter_mut().enumerate() {
        assert_eq!(p.b.trecv(b, ADDR_UNSPEC, 1, 0, 100 + i), 0);
    }
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(p.a.tsend(m, p.a.peer, 1, 200 + i), 0);
    }
    // Progress only the sender until everything is surely there: B's CQ
    // of 4 cannot hold 16 entries.
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let _ = progress_until(&[p.a.txcq], &mut got[..1], 10, |g| g[0].len() >= 16);
    // Read B's CQ four entries at a time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rx = vec![];
    while rx.len() < 16 && Instant::now() < deadline {
        let mut es = [b::fi_cq_tagged_entry::default(); 4];
        // SAFETY: room for 4 tagged entries.
        let n = unsafe { ((*(*p.b.rxcq).ops).read.unwrap())(p.b.rxcq, es.as_mut_ptr().cast(), 4) };
        if n > 0 {
            assert!(n <= 4);
            rx.extend(es[..n as usize].iter().map(|e| e.op_context as usize));
        } else {
            assert_eq!(n, EAGAIN, "fi_cq_read");
            let _ = poll_cq(p.a.txcq);
        }
    }
    rx.sort();
    assert_eq!(
        rx,
        (100..116).collect::<Vec<_>>(),
        "all 16 delivered, none dropped"
    );
    for (i, b) in bufs.iter().enumerate() {
        assert!(b[..50] == msgs[i][..]);
    }
}

#[test]
fn rdm_cq_sread_times_out_with_eagain() {
    let p = Pair::new(&Opts::rdm());
    let mut e = b::fi_cq_tagged_entry::default();
    let t = Instant::now();
    // SAFETY: room for one entry.
    let n = unsafe {
        ((*(*p.b.rxcq).ops).sread.unwrap())(
            p.b.rxcq,
            (&mut e as *mut b::fi_cq_tagged_entry).cast(),
            1,
            std::ptr::null(),
            200,
        )
    };
    let el = t.elapsed();
    assert_eq!(n, EAGAIN);
    assert!(
        el >= Duration::from_millis(150) && el < Duration::from_secs(3),
        "{el:?}"
    );
    // And a blocking read returns as soon as something arrives.
    let mut rbuf = vec![0u8; 8];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 5), 0);
    assert_eq!(p.a.send(b"wake", p.a.peer, 6), 0);
    let mut n = 0;
    for _ in 0..50 {
        // SAFETY: as above.
        n = unsafe {
            ((*(*p.b.rxcq).ops).sread.unwrap())(
                p.b.rxcq,
                (&mut e as *mut b::fi_cq_tagged_entry).cast(),
                1,
                std::ptr::null(),
                100,
            )
        };
        if n == 1 {
            break;
        }
        let _ = poll_cq(p.a.txcq);
    }
    assert_eq!(n, 1);
    assert_eq!(e.op_context as usize, 5);
}

#[test]
fn rdm_cq_strerror_gives_a_string() {
    let p = Pair::new(&Opts::rdm());
    for prov_errno in [0, 1, 2, 12345] {
        let mut buf = [0 as std::os::raw::c_char; 128];
        // SAFETY: buf has 128 bytes.
        let s = unsafe {
            ((*(*p.b.rxcq).ops).strerror.unwrap())(
                p.b.rxcq,
                prov_errno,
                std::ptr::null(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        assert!(!s.is_null());
        assert!(!common::cstr(s).is_empty(), "strerror({prov_errno})");
        // SAFETY: as above, without a buffer: a static string.
        let s = unsafe {
            ((*(*p.b.rxcq).ops).strerror.unwrap())(
                p.b.rxcq,
                prov_errno,
                std::ptr::null(),
                std::ptr::null_mut(),
                0,
            )
        };
        assert!(!common::cstr(s).is_empty());
    }
}

#[test]
fn rdm_peer_that_does_not_poll_for_a_while_is_not_unreachable() {
    // An application rank may compute for a long time without calling into
    // libfabric; its peer's sends must wait, not fail.
    let p = Pair::new(&Opts::rdm());
    let mut rbuf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut rbuf, ADDR_UNSPEC, 1), 0);
    let t = Instant::now();
    assert_eq!(p.a.send(b"patience", p.a.peer, 2), 0);
    // Only A progresses for 3 s.
    let mut early = None;
    while t.elapsed() < Duration::from_secs(3) {
        if let Some(e) = poll_cq(p.a.txcq) {
            early = Some((e, t.elapsed()));
            break;
        }
    }
    if let Some((e, when)) = &early {
        assert_eq!(
            e.err, 0,
            "send failed after {when:?} while the peer was not polling: {e:?}"
        );
    }
    let got = p.wait(usize::from(early.is_none()), 1, 10);
    assert_eq!(&rbuf[..8], b"patience");
    assert!(got[0].iter().all(|e| e.err == 0), "{got:?}");
}
