//! Tag matching: wildcards, ignore bits, directed receives, unknown
//! senders, CompFlags::MULTI_RECV, FI_PEEK/FI_CLAIM/FI_DISCARD, cancel.

mod rdm_common;

use rdm_common::{Net, addr, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{CompFlags, Config, ErrorKind, OpFlags, RdmError};

fn payload(c: &srd_fi::rdm::Completion) -> Vec<u8> {
    c.iov.as_ref().unwrap().to_vec()[..c.len].to_vec()
}

#[test]
fn wildcards_and_ignore_bits_take_the_earliest_posted() {
    let mut net = Net::new(2, 21, cfg);
    let p = net.peer(0, 1);
    // Posted in this order: exact 0x105, wildcard 0x1__ , exact 0x105.
    net.eps[1]
        .trecv(net.now, owned(8), None, 0x105, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .trecv(net.now, owned(8), None, 0x100, 0xff, 2, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .trecv(net.now, owned(8), None, 0x105, 0, 3, OpFlags::empty())
        .unwrap();
    for (k, tag) in [0x105u64, 0x105, 0x1aa, 0x205].into_iter().enumerate() {
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(vec![k as u8]),
                tag,
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(1000);
    }
    let rc = net.take(1);
    let got: Vec<_> = rc.iter().map(|c| (c.context, c.tag, payload(c))).collect();
    // The first 0x105 takes receive 1 (posted first), the second takes the
    // wildcard (posted before receive 3).
    assert_eq!(got, vec![(1, 0x105, vec![0]), (2, 0x105, vec![1])]);
    // Message 2 (tag 0x1aa) matches no exact receive, and the wildcard was
    // used by message 1: receive 3 (exact 0x105) must not take it.
    assert_eq!(rc.len(), 2);
    // 0x1aa and 0x205 are unexpected; a wildcard receive takes the earliest.
    net.eps[1]
        .trecv(net.now, owned(8), None, 0, u64::MAX, 4, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .trecv(net.now, owned(8), None, 0x200, 0x0ff, 5, OpFlags::empty())
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    let got: Vec<_> = rc.iter().map(|c| (c.context, c.tag, payload(c))).collect();
    assert_eq!(got, vec![(4, 0x1aa, vec![2]), (5, 0x205, vec![3])]);
    // Receive 3 is still posted.
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![9]),
            0x105,
            None,
            9,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    assert_eq!(net.take(1)[0].context, 3);
}

#[test]
fn directed_receive_only_takes_its_source() {
    let mut net = Net::new(3, 23, cfg);
    let from0 = net.peer(2, 0);
    let from1 = net.peer(2, 1);
    net.eps[2]
        .trecv(net.now, owned(8), Some(from1), 7, 0, 11, OpFlags::empty())
        .unwrap();
    net.eps[2]
        .trecv(net.now, owned(8), Some(from0), 7, 0, 10, OpFlags::empty())
        .unwrap();
    net.eps[2]
        .recv(net.now, owned(8), Some(from1), 21, OpFlags::empty())
        .unwrap();
    let (p0, p1) = (net.peer(0, 2), net.peer(1, 2));
    net.eps[0]
        .tsend(
            net.now,
            p0,
            UserIov::from_vec(vec![0]),
            7,
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .send(
            net.now,
            p0,
            UserIov::from_vec(vec![0]),
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(2);
    assert_eq!(
        rc.len(),
        1,
        "untagged from 0 is unexpected: receive 21 is for 1"
    );
    assert_eq!((rc[0].context, rc[0].src), (10, Some(from0)));
    net.eps[1]
        .tsend(
            net.now,
            p1,
            UserIov::from_vec(vec![1]),
            7,
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[1]
        .send(
            net.now,
            p1,
            UserIov::from_vec(vec![1]),
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let mut rc = net.take(2);
    rc.sort_by_key(|c| c.context);
    assert_eq!(
        rc.iter().map(|c| (c.context, c.src)).collect::<Vec<_>>(),
        vec![(11, Some(from1)), (21, Some(from1))]
    );
    // The untagged message from 0 waits for an any-source receive.
    net.eps[2]
        .recv(net.now, owned(8), None, 22, OpFlags::empty())
        .unwrap();
    let rc = net.take(2);
    assert!(rc.is_empty());
    net.run(10);
    let rc = net.take(2);
    assert_eq!((rc[0].context, rc[0].src), (22, Some(from0)));
}

#[test]
fn unknown_sender_gets_eaddrnotavail_with_its_address() {
    // Endpoint 1 does not have 0 in its AV; 0 has 1.
    let mut net = Net::without_av(2, 25, cfg);
    let p = net.av_insert(0, 1);
    net.eps[1]
        .trecv(net.now, owned(16), None, 1, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(b"hello".to_vec()),
            1,
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    assert_eq!(rc.len(), 1);
    let e = rc[0].err.as_ref().expect("FI_SOURCE_ERR entry");
    assert_eq!(e.kind, ErrorKind::AddrNotAvail);
    assert_eq!(e.err_data, addr(0));
    // The data is in the buffer and the completion is otherwise whole.
    assert_eq!(rc[0].len, 5);
    assert_eq!(payload(&rc[0]), b"hello");
    assert_eq!(rc[0].tag, 1);
    // Long messages from it work too (CTS/DATA go through the internal
    // entry; the glue learned the mapping from NewPeer).
    let data = pattern(1, 300_000);
    net.eps[1]
        .trecv(net.now, owned(300_000), None, 2, 0, 2, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(data.clone()),
            2,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(100_000);
    let rc = net.take(1);
    assert_eq!(rc[0].err.as_ref().unwrap().kind, ErrorKind::AddrNotAvail);
    assert_eq!(payload(&rc[0]), data);
    // Once inserted in the AV, the same entry is used and reports cleanly.
    let q = net.av_insert(1, 0);
    net.eps[1]
        .trecv(net.now, owned(16), None, 3, 0, 3, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(b"x".to_vec()),
            3,
            None,
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    assert!(rc[0].err.is_none());
    assert_eq!(rc[0].src, Some(q));
    assert_eq!(net.take(0).len(), 3);
}

#[test]
fn multi_recv_fills_and_releases() {
    let mut net = Net::new(2, 27, |i| Config {
        min_multi_recv: 100,
        ..cfg(i)
    });
    let p = net.peer(0, 1);
    // 1000-byte buffer; messages of 300 bytes: 3 fit, then 100 left → the
    // 4th (300 bytes) is truncated to 100 and releases the buffer.
    net.eps[1]
        .recv(
            net.now,
            UserIov::from_vec(vec![0; 1000]),
            None,
            42,
            OpFlags::MULTI_RECV,
        )
        .unwrap();
    for k in 0..5u8 {
        net.eps[0]
            .send(
                net.now,
                p,
                UserIov::from_vec(vec![k; 300]),
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(500);
    }
    let rc = net.take(1);
    assert_eq!(rc.len(), 4);
    let offs: Vec<_> = rc.iter().map(|c| (c.buf, c.len)).collect();
    assert_eq!(offs, vec![(0, 300), (300, 300), (600, 300), (900, 100)]);
    assert!(
        rc[..3]
            .iter()
            .all(|c| !c.flags.contains(CompFlags::MULTI_RECV) && c.err.is_none())
    );
    assert_eq!(rc[3].flags & CompFlags::MULTI_RECV, CompFlags::MULTI_RECV);
    assert_eq!(rc[3].err.as_ref().unwrap().kind, ErrorKind::Truncated);
    let buf = rc[3].iov.as_ref().unwrap().to_vec();
    for k in 0..3 {
        assert!(buf[k * 300..(k + 1) * 300].iter().all(|&b| b == k as u8));
    }
    assert!(buf[900..].iter().all(|&b| b == 3));
    // The 5th message waits for a new buffer (unexpected), then lands.
    net.eps[1]
        .recv(
            net.now,
            UserIov::from_vec(vec![0; 1000]),
            None,
            43,
            OpFlags::MULTI_RECV,
        )
        .unwrap();
    net.run(100);
    let rc = net.take(1);
    assert_eq!((rc[0].context, rc[0].len, rc[0].buf), (43, 300, 0));
    // Cancel releases the partly used buffer.
    assert!(net.eps[1].cancel(43));
    let rc: Vec<_> = std::iter::from_fn(|| net.eps[1].poll_completion()).collect();
    assert_eq!(rc[0].err.as_ref().unwrap().kind, ErrorKind::Canceled);
    assert_eq!(rc[0].flags & CompFlags::MULTI_RECV, CompFlags::MULTI_RECV);
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
}

#[test]
fn peek_claim_discard() {
    let mut net = Net::new(2, 29, cfg);
    let p = net.peer(0, 1);
    // Nothing there yet: ErrorKind::NoMessage.
    net.eps[1]
        .trecv(net.now, UserIov::empty(), None, 1, 0, 1, OpFlags::PEEK)
        .unwrap();
    let c = net.eps[1].poll_completion().unwrap();
    assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::NoMessage);
    for (k, len) in [(1u64, 10usize), (2, 20_000), (3, 200_000)] {
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(pattern(k, len)),
                k,
                Some(k),
                k,
                OpFlags::empty(),
            )
            .unwrap();
    }
    net.run(2000);
    // Peek does not consume.
    for _ in 0..2 {
        net.eps[1]
            .trecv(
                net.now,
                UserIov::empty(),
                None,
                0,
                u64::MAX,
                2,
                OpFlags::PEEK,
            )
            .unwrap();
        let c = net.eps[1].poll_completion().unwrap();
        assert!(c.err.is_none());
        assert_eq!((c.tag, c.len, c.data), (1, 10, 1));
    }
    // Peek+claim tag 2 and tag 3; discard tag 1 by peek+discard.
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            2,
            0,
            20,
            OpFlags::PEEK | OpFlags::CLAIM,
        )
        .unwrap();
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            3,
            0,
            30,
            OpFlags::PEEK | OpFlags::CLAIM,
        )
        .unwrap();
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            1,
            0,
            10,
            OpFlags::PEEK | OpFlags::DISCARD,
        )
        .unwrap();
    let cs: Vec<_> = std::iter::from_fn(|| net.eps[1].poll_completion()).collect();
    assert_eq!(
        cs.iter().map(|c| (c.context, c.len)).collect::<Vec<_>>(),
        vec![(20, 20_000), (30, 200_000), (10, 10)]
    );
    // Claimed messages are invisible to ordinary receives and peeks.
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            0,
            u64::MAX,
            5,
            OpFlags::PEEK,
        )
        .unwrap();
    assert_eq!(
        net.eps[1].poll_completion().unwrap().err.unwrap().kind,
        ErrorKind::NoMessage
    );
    // Receive claim 20; discard claim 30; a wrong context fails.
    assert_eq!(
        net.eps[1].trecv(net.now, owned(8), None, 0, 0, 99, OpFlags::CLAIM),
        Err(RdmError::NoMessage)
    );
    net.eps[1]
        .trecv(net.now, owned(20_000), None, 0, 0, 20, OpFlags::CLAIM)
        .unwrap();
    net.eps[1]
        .trecv(
            net.now,
            UserIov::empty(),
            None,
            0,
            0,
            30,
            OpFlags::CLAIM | OpFlags::DISCARD,
        )
        .unwrap();
    net.run(100_000);
    let cs = net.take(1);
    let got = cs.iter().find(|c| c.context == 20).unwrap();
    assert_eq!(payload(got), pattern(2, 20_000));
    assert!(cs.iter().any(|c| c.context == 30 && c.err.is_none()));
    // Every send completed (the discarded long one was drained).
    assert_eq!(net.take(0).len(), 3);
    assert_eq!(net.eps[1].stored_bytes(), (0, 0));
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
}

#[test]
fn cancel_posted_receive() {
    let mut net = Net::new(2, 31, cfg);
    net.eps[1]
        .trecv(
            net.now,
            UserIov::from_vec(vec![7; 4]),
            None,
            1,
            0,
            5,
            OpFlags::empty(),
        )
        .unwrap();
    assert!(!net.eps[1].cancel(6));
    assert!(net.eps[1].cancel(5));
    assert!(!net.eps[1].cancel(5));
    let c = net.eps[1].poll_completion().unwrap();
    assert_eq!(c.context, 5);
    assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::Canceled);
    assert_eq!(c.flags, CompFlags::RECV | CompFlags::TAGGED);
    assert_eq!(c.iov.unwrap().to_vec(), vec![7; 4]);
    // A message sent afterwards is unexpected, not matched to it.
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![1]),
            1,
            None,
            0,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    assert!(net.take(1).is_empty());
    // Held in a small buffer, charged at its size.
    assert_eq!(net.eps[1].stored_bytes().0, srd_fi::rdm::pool::SMALL_CHUNK);
}

#[test]
fn many_posted_receives_match_by_tag() {
    let mut net = Net::new(2, 33, |i| Config {
        rx_size: 12_000,
        ..cfg(i)
    });
    let p = net.peer(0, 1);
    for t in 0..10_000u64 {
        net.eps[1]
            .trecv(net.now, owned(8), None, t, 0, t, OpFlags::empty())
            .unwrap();
    }
    for t in (0..10_000u64).rev().step_by(97) {
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(t.to_le_bytes().to_vec()),
                t,
                None,
                t,
                OpFlags::empty(),
            )
            .unwrap();
    }
    net.run(10_000);
    let rc = net.take(1);
    assert_eq!(rc.len(), (0..10_000).rev().step_by(97).count());
    for c in &rc {
        assert_eq!(c.context, c.tag);
        assert_eq!(payload(c), c.tag.to_le_bytes());
    }
}
