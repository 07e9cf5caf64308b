//! Zero-copy packets at the protocol level (`set_peer_zero_copy`): medium
//! and long-CTS data leave their payload in the send's iov (`TxInfo::ext`,
//! gathered by the harness as the transport gathers it), across segment
//! boundaries of multi-segment iovs, under reordering; a range over more
//! than `EXT_PIECES` segments is copied. Every byte arrives; a send that is
//! over no longer resolves. The same for the data packets of RMA writes.

mod rdm_common;
#[path = "rdm_rma_common.rs"]
mod rma_common;

use rdm_common::{Net, cfg, datagram, owned, pattern};
use rma_common::{RW, Registry};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{ExtSlice, OpFlags};

/// `data` cut into segments of `seg` bytes.
fn segmented(data: &[u8], seg: usize) -> UserIov {
    UserIov::from_vecs(data.chunks(seg.max(1)).map(<[u8]>::to_vec).collect())
}

#[test]
fn zero_copy_packets_carry_every_byte_across_segments() {
    let mut net = Net::new(2, 7, cfg);
    for (i, j) in [(0, 1), (1, 0)] {
        let p = net.peer(i, j);
        net.eps[i].set_peer_zero_copy(p, true).unwrap();
    }
    let p = net.peer(0, 1);
    let m = net.eps[0].medium_max();
    // (size, segment size): whole buffers, segments inside packets (a
    // packet spans several: by reference up to 3, copied beyond), 1-byte
    // segments (always copied).
    let cases = [
        (m, usize::MAX),
        (m + 1, 5000),
        (300_000, 3000),
        (300_000, 1000),
        (200_000, 97),
        (70_000, 1),
        (4 << 20, usize::MAX),
    ];
    for (k, &(len, seg)) in cases.iter().enumerate() {
        let data = pattern(k as u64, len);
        net.eps[1]
            .recv(net.now, owned(len), None, 100 + k as u64, OpFlags::empty())
            .unwrap();
        let before = net.eps[0].stats().zc_packets;
        net.eps[0]
            .send(
                net.now,
                p,
                segmented(&data, seg),
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(200_000);
        let rc = net.take(1);
        assert_eq!(rc.len(), 1, "{len}/{seg}: one receive");
        assert!(rc[0].err.is_none(), "{len}/{seg}: {:?}", rc[0].err);
        assert_eq!(
            rc[0].iov.as_ref().unwrap().to_vec(),
            data,
            "{len}/{seg}: bytes"
        );
        let sc = net.take(0);
        assert_eq!(sc.len(), 1);
        assert!(sc[0].err.is_none());
        let by_ref = net.eps[0].stats().zc_packets - before;
        // A packet (about one MTU) spans at most 3 segments of half an MTU
        // or more, and at least 5 of under a quarter.
        let mtu = net.eps[0].config().mtu;
        if seg.saturating_mul(2) >= mtu {
            assert!(by_ref > 0, "{len}/{seg}: data went by reference");
        } else if seg * 4 < mtu {
            assert_eq!(
                by_ref, 0,
                "{len}/{seg}: too many segments per packet: copied"
            );
        }
        // The send is over: its token resolves to nothing.
        let tok = 1u64 << 56;
        let e = ExtSlice { off: 0, len: 1 };
        assert!(!net.eps[0].ext_copy(tok, e, &mut [0u8; 1]));
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert!(net.eps[0].stats().zc_bytes > 4 << 20);
}

/// Token of RMA operation slot `slot`, generation `generation` (the
/// engine's token layout: kind 6 in the top byte).
fn rma_token(generation: u64, slot: u64) -> u64 {
    (6 << 56) | (generation << 32) | slot
}

#[test]
fn rma_write_packets_leave_their_data_in_the_callers_buffer() {
    const KEY: u64 = 0x2222;
    let mut net = Net::new(2, 9, cfg);
    let reg = Registry::default();
    net.eps[1].set_rma_target(Box::new(reg.clone()));
    reg.add(KEY, (4 << 20) + 64, RW, None);
    let p = net.peer(0, 1);
    net.eps[0].set_peer_zero_copy(p, true).unwrap();
    let cases = [
        (1usize, usize::MAX),
        (100_000, 3000),
        (300_000, 1000),
        (200_000, 97),
        (4 << 20, usize::MAX),
    ];
    let one = ExtSlice { off: 0, len: 1 };
    for (k, &(len, seg)) in cases.iter().enumerate() {
        let data = pattern(k as u64 + 70, len);
        let off = 13 + k as u64;
        let before = net.eps[0].stats().zc_packets;
        net.eps[0]
            .write(
                net.now,
                p,
                segmented(&data, seg),
                off,
                KEY,
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        if k == 0 {
            // Live: the write's buffer resolves (what the transport gathers).
            assert!(net.eps[0].ext_copy(rma_token(0, 0), one, &mut [0u8; 1]));
        }
        net.run(400_000);
        let c = net.take(0);
        assert_eq!(c.len(), 1, "{len}/{seg}: one completion");
        assert!(c[0].err.is_none(), "{len}/{seg}: {:?}", c[0].err);
        assert_eq!(
            c[0].iov.as_ref().unwrap().to_vec(),
            data,
            "source handed back"
        );
        let mem = reg.bytes(KEY);
        assert_eq!(
            &mem[off as usize..off as usize + len],
            &data[..],
            "{len}/{seg}: bytes"
        );
        let by_ref = net.eps[0].stats().zc_packets - before;
        let mtu = net.eps[0].config().mtu;
        if seg.saturating_mul(2) >= mtu && len > 1 {
            assert!(by_ref > 1, "{len}/{seg}: data went by reference ({by_ref})");
        } else if seg * 4 < mtu {
            assert_eq!(
                by_ref, 0,
                "{len}/{seg}: too many segments per packet: copied"
            );
        }
    }
    // Every write is over: none of their tokens resolves any more.
    for g in 0..=cases.len() as u64 {
        assert!(
            !net.eps[0].ext_copy(rma_token(g, 0), one, &mut [0u8; 1]),
            "generation {g}"
        );
    }
    // A refused write (unknown key) ends early: its buffer is released
    // with the error, and nothing of it is read afterwards.
    let data = pattern(99, 1 << 20);
    net.eps[0]
        .write(
            net.now,
            p,
            UserIov::from_vec(data),
            0,
            KEY + 1,
            None,
            77,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(400_000);
    let c = net.take(0);
    assert_eq!(c.len(), 1);
    assert!(c[0].err.is_some(), "refused write fails");
    for g in 0..=cases.len() as u64 + 1 {
        assert!(
            !net.eps[0].ext_copy(rma_token(g, 0), one, &mut [0u8; 1]),
            "generation {g}"
        );
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}

/// The datagrams endpoint `i` has to send now, each with its zero-copy
/// tail gathered (as the transport does), and their tokens.
fn transmit_all(net: &mut Net, i: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; net.mtu];
    while let Some(t) = net.eps[i].poll_transmit(net.now, &mut buf) {
        out.push((t.token, datagram(&net.eps[i], &t, &buf)));
    }
    out
}

/// A write's response can overtake the acknowledgements of its packets
/// (the transport confirms a datagram when the peer's ack arrives, and
/// acks are delayed or lost): a zero-copy write completes only when both
/// are in, so a resend of an unconfirmed packet still finds its bytes.
#[test]
fn a_zero_copy_write_completes_after_its_packets_are_confirmed() {
    const KEY: u64 = 0x3333;
    let mut net = Net::new(2, 5, cfg);
    let reg = Registry::default();
    net.eps[1].set_rma_target(Box::new(reg.clone()));
    reg.add(KEY, 64 << 10, RW, None);
    let (p01, p10) = (net.peer(0, 1), net.peer(1, 0));
    net.eps[0].set_peer_zero_copy(p01, true).unwrap();
    // Settle both handshakes with a message each way.
    for (i, j) in [(0, 1), (1, 0)] {
        net.eps[j]
            .recv(net.now, owned(8), None, 1, OpFlags::empty())
            .unwrap();
        let p = net.peer(i, j);
        net.eps[i]
            .send(
                net.now,
                p,
                UserIov::from_vec(vec![7; 8]),
                None,
                2,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(10_000);
        net.take(0);
        net.take(1);
    }
    let data = pattern(31, 3 * net.mtu);
    net.eps[0]
        .write(
            net.now,
            p01,
            UserIov::from_vec(data.clone()),
            0,
            KEY,
            None,
            9,
            OpFlags::empty(),
        )
        .unwrap();
    let pkts = transmit_all(&mut net, 0);
    assert!(pkts.len() >= 3, "{} packets", pkts.len());
    let now = net.now;
    for (_, b) in &pkts {
        net.eps[1].handle_packet(now, Some(p10), b);
    }
    // The target placed every byte and answers; its response arrives
    // before any of our packets is confirmed.
    let rsp = transmit_all(&mut net, 1);
    assert_eq!(rsp.len(), 1, "one WRITERSP");
    for (tok, b) in &rsp {
        net.eps[0].handle_packet(now, Some(p01), b);
        net.eps[1].on_send_complete(*tok, Ok(()));
    }
    assert_eq!(&reg.bytes(KEY)[..data.len()], &data[..]);
    assert!(
        net.eps[0].poll_completion().is_none(),
        "complete before its packets are confirmed"
    );
    let (tok, _) = &pkts[0];
    let one = ExtSlice { off: 0, len: 1 };
    assert!(
        net.eps[0].ext_copy(*tok, one, &mut [0u8; 1]),
        "a resend still finds the buffer"
    );
    for (tok, _) in &pkts {
        net.eps[0].on_send_complete(*tok, Ok(()));
    }
    let c = net.eps[0].poll_completion().expect("the write completes");
    assert!(c.err.is_none(), "{:?}", c.err);
    assert_eq!((c.context, c.len), (9, data.len()));
    assert!(
        !net.eps[0].ext_copy(*tok, one, &mut [0u8; 1]),
        "over: nothing resolves"
    );
    assert!(transmit_all(&mut net, 0).is_empty(), "nothing more to send");
}
