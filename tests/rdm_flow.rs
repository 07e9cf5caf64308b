//! Resource limits, back-pressure, failures and hostile input.

mod rdm_common;

use rdm_common::{Net, Rng, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{CompFlags, Config, ErrorKind, OpFlags, PacketOutcome, RdmError};
use srd_fi::wire::rdm as w;

#[test]
fn pool_exhaustion_returns_again_then_recovers() {
    let mut net = Net::new(2, 41, |i| Config {
        tx_size: 4,
        rx_size: 2,
        ..cfg(i)
    });
    let p = net.peer(0, 1);
    for k in 0..4 {
        net.eps[0]
            .tsend(net.now, p, owned(100), 1, None, k, OpFlags::empty())
            .unwrap();
    }
    assert_eq!(
        net.eps[0].tsend(net.now, p, owned(100), 1, None, 9, OpFlags::empty()),
        Err(RdmError::Again)
    );
    net.eps[1]
        .trecv(net.now, owned(100), None, 1, 0, 0, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .trecv(net.now, owned(100), None, 1, 0, 1, OpFlags::empty())
        .unwrap();
    assert_eq!(
        net.eps[1].trecv(net.now, owned(100), None, 1, 0, 2, OpFlags::empty()),
        Err(RdmError::Again)
    );
    net.run(1000);
    assert_eq!(net.take(0).len(), 4);
    assert_eq!(net.take(1).len(), 2);
    // Both pools are free again; the two unexpected messages are taken.
    net.eps[0]
        .tsend(net.now, p, owned(100), 1, None, 9, OpFlags::empty())
        .unwrap();
    for k in 0..2 {
        net.eps[1]
            .trecv(net.now, owned(100), None, 1, 0, 10 + k, OpFlags::empty())
            .unwrap();
    }
    net.run(1000);
    assert_eq!(net.take(1).len(), 2);
    assert_eq!(net.take(0).len(), 1);
}

#[test]
fn unexpected_storage_full_applies_back_pressure_without_loss() {
    let mut net = Net::new(2, 43, |i| Config {
        unexp_max_bytes: 60_000,
        unexp_max_count: 16,
        reorder_max_bytes: 30_000,
        reorder_window: 4,
        reorder_overflow: 4,
        ..cfg(i)
    });
    net.rx_depth = 8;
    let p = net.peer(0, 1);
    let n = 120u64;
    let len_of = |k: u64| [5usize, 9000, 30_000, 100][k as usize % 4];
    for k in 0..n {
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(pattern(k, len_of(k))),
                3,
                Some(k),
                k,
                OpFlags::empty(),
            )
            .unwrap();
    }
    net.run(5_000);
    assert!(!net.eps[1].can_accept_packets(), "storage is at its limit");
    assert!(net.eps[1].stats().deferred > 0);
    assert!(net.held(1) > 0, "the glue holds deferred requests");
    assert!(
        net.eps[0].pending_ops().0 > 50,
        "the sender is throttled by credit"
    );
    // Bounded: unexpected by its budget (plus messages that turned in
    // order while held), out-of-order by the credit window (16 messages).
    let (u, r) = net.eps[1].stored_bytes();
    assert!(r <= 16 * 30_000, "reorder {r}");
    assert!(u <= 60_000 + 16 * 30_000, "unexpected {u}");
    // Receives drain it; everything arrives, in order, intact.
    let mut got = Vec::new();
    for k in 0..n {
        net.eps[1]
            .trecv(net.now, owned(30_000), None, 3, 0, k, OpFlags::empty())
            .unwrap();
        net.run(200);
        got.extend(net.take(1));
    }
    net.run(100_000);
    got.extend(net.take(1));
    assert_eq!(got.len(), n as usize);
    for c in &got {
        assert_eq!(c.data, c.context, "SAS order kept");
        let len = len_of(c.data);
        assert_eq!(
            c.iov.as_ref().unwrap().to_vec()[..len],
            pattern(c.data, len)[..]
        );
    }
    assert_eq!(net.take(0).len(), n as usize);
    assert_eq!(net.eps[1].stored_bytes(), (0, 0));
    assert!(net.eps[1].can_accept_packets());
}

#[test]
fn control_packets_flow_while_requests_are_deferred() {
    // Endpoint 1's storage is full of messages from 0; 1's own long send
    // to 0 still completes (CTS from 0 is consumed, not deferred).
    let mut net = Net::new(2, 45, |i| Config {
        unexp_max_bytes: 20_000,
        unexp_max_count: 4,
        ..cfg(i)
    });
    net.rx_depth = 1000;
    let (p01, p10) = (net.peer(0, 1), net.peer(1, 0));
    for k in 0..20 {
        net.eps[0]
            .tsend(net.now, p01, owned(9000), 1, None, k, OpFlags::empty())
            .unwrap();
    }
    net.run(2000);
    assert!(!net.eps[1].can_accept_packets());
    net.eps[0]
        .trecv(net.now, owned(1 << 20), None, 2, 0, 0, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .tsend(
            net.now,
            p10,
            UserIov::from_vec(pattern(5, 1 << 20)),
            2,
            None,
            7,
            OpFlags::DELIVERY_COMPLETE,
        )
        .unwrap();
    net.run(100_000);
    let sc = net.take(1);
    assert_eq!(sc.len(), 1);
    assert_eq!(sc[0].context, 7);
    let rc = net.take(0);
    let r = rc
        .iter()
        .find(|c| c.flags.contains(CompFlags::RECV))
        .unwrap();
    assert_eq!(r.iov.as_ref().unwrap().to_vec(), pattern(5, 1 << 20));
}

#[test]
fn peer_that_never_answers_times_out() {
    let mut net = Net::new(1, 47, |i| Config {
        handshake_timeout_ns: 5_000_000,
        ..cfg(i)
    });
    let ghost = net.eps[0].insert_peer(b"nobody-home").unwrap();
    net.eps[0]
        .tsend(net.now, ghost, owned(10), 1, None, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(net.now, ghost, owned(200_000), 1, None, 2, OpFlags::empty())
        .unwrap();
    net.run(100);
    assert!(net.take(0).is_empty());
    assert!(net.eps[0].poll_timeout().is_some());
    net.advance(6_000_000);
    let mut cs = net.take(0);
    cs.sort_by_key(|c| c.context);
    assert_eq!(cs.len(), 2);
    for c in &cs {
        assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::TimedOut);
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert_eq!(net.eps[0].stats().timeouts, 1);
}

#[test]
fn slow_but_alive_peer_is_not_timed_out() {
    let mut net = Net::new(2, 49, |i| Config {
        handshake_timeout_ns: 1_000_000,
        ..cfg(i)
    });
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(net.now, p, owned(200_000), 1, None, 1, OpFlags::empty())
        .unwrap();
    net.advance(10_000_000);
    assert!(net.take(0).is_empty(), "waits for the receive, no timeout");
    net.eps[1]
        .trecv(net.now, owned(200_000), None, 1, 0, 1, OpFlags::empty())
        .unwrap();
    net.run(100_000);
    assert!(net.take(0)[0].err.is_none());
}

#[test]
fn transport_failure_fails_the_send() {
    let mut net = Net::new(2, 51, cfg);
    let p = net.peer(0, 1);
    net.fail_to.insert(1);
    for (k, len) in [0usize, 100, 30_000, 500_000].into_iter().enumerate() {
        net.eps[0]
            .tsend(net.now, p, owned(len), 1, None, k as u64, OpFlags::empty())
            .unwrap();
    }
    net.run(1000);
    let cs = net.take(0);
    assert_eq!(cs.len(), 4);
    for c in &cs {
        assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::Unreachable);
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert!(net.eps[0].stats().send_failures >= 1);
    // The message sequence to that peer is broken (a lost msg_id would
    // stall its receiver): later sends fail at once, they do not hang.
    net.fail_to.clear();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![1, 2, 3]),
            1,
            None,
            9,
            OpFlags::empty(),
        )
        .unwrap();
    let c = net.eps[0].poll_completion().unwrap();
    assert_eq!(
        (c.context, c.err.unwrap().kind),
        (9, ErrorKind::Unreachable)
    );
    assert_eq!(c.iov.unwrap().to_vec(), vec![1, 2, 3]);
    // Other peers are unaffected.
    let mut net3 = Net::new(3, 52, cfg);
    net3.fail_to.insert(1);
    let (p1, p2) = (net3.peer(0, 1), net3.peer(0, 2));
    net3.eps[0]
        .tsend(net3.now, p1, owned(10), 1, None, 1, OpFlags::empty())
        .unwrap();
    net3.eps[2]
        .trecv(net3.now, owned(10), None, 1, 0, 5, OpFlags::empty())
        .unwrap();
    net3.eps[0]
        .tsend(net3.now, p2, owned(10), 1, None, 2, OpFlags::empty())
        .unwrap();
    net3.run(1000);
    let mut cs = net3.take(0);
    cs.sort_by_key(|c| c.context);
    assert_eq!(cs[0].err.as_ref().unwrap().kind, ErrorKind::Unreachable);
    assert!(cs[1].err.is_none());
    assert_eq!(net3.take(2).len(), 1);
}

#[test]
fn failed_cts_fails_the_receive() {
    // The receiver's CTS cannot reach the sender: the receive fails
    // instead of waiting for data that will not come.
    let mut net = Net::new(2, 59, cfg);
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(net.now, p, owned(500_000), 1, None, 1, OpFlags::empty())
        .unwrap();
    net.run(200);
    net.fail_to.insert(0);
    net.eps[1]
        .trecv(net.now, owned(500_000), None, 1, 0, 7, OpFlags::empty())
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    assert_eq!(rc.len(), 1);
    assert_eq!(rc[0].context, 7);
    assert_eq!(rc[0].err.as_ref().unwrap().kind, ErrorKind::Unreachable);
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
}

fn valid_req(payload: &[u8], msg_id: u32) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    let n = w::emit_req(
        &mut b,
        &w::ReqRepr {
            flags: w::REQ_TAGGED,
            proto: w::Proto::Eager,
            msg_id,
            tx_id: 0,
            tag: 1,
            cq_data: 0,
            total_len: payload.len() as u64,
            offset: 0,
        },
        Some(&rdm_common::addr(0)),
    );
    b[n..n + payload.len()].copy_from_slice(payload);
    b.truncate(n + payload.len());
    b
}

#[test]
fn malformed_packets_are_dropped_and_counted() {
    let mut net = Net::new(2, 53, cfg);
    let d = PacketOutcome::Dropped;
    assert_eq!(net.inject_raw(1, Some(0), &[]), d);
    assert_eq!(net.inject_raw(1, Some(0), &[9, 1, 0, 0, 0, 0]), d);
    assert_eq!(net.inject_raw(1, Some(0), &[w::VERSION, 200, 0, 0]), d);
    let good = valid_req(b"abc", 1000);
    assert_eq!(
        net.inject_raw(1, Some(0), &good[..good.len() - 10]),
        d,
        "eager short of its total"
    );
    // Forged CTS / DATA / RECEIPT referring to nothing.
    let mut b = [0u8; 64];
    let n = w::emit_cts(
        &mut b,
        &w::CtsRepr {
            msg_id: 3,
            tx_id: 77,
            rx_id: 5,
            grant_end: 1 << 30,
        },
    );
    assert_eq!(net.inject_raw(0, Some(1), &b[..n]), PacketOutcome::Consumed);
    let n = w::emit_data(
        &mut b,
        &w::DataRepr {
            msg_id: 3,
            rx_id: 5,
            offset: 0,
        },
    );
    assert_eq!(net.inject_raw(1, Some(0), &b[..n + 8]), d);
    let n = w::emit_receipt(
        &mut b,
        &w::ReceiptRepr {
            msg_id: 3,
            tx_id: 1,
        },
    );
    assert_eq!(net.inject_raw(0, Some(1), &b[..n]), PacketOutcome::Consumed);
    // A REQ from nobody we can identify.
    let mut anon = vec![0u8; 64];
    let n = w::emit_receipt(
        &mut anon,
        &w::ReceiptRepr {
            msg_id: 0,
            tx_id: 0,
        },
    );
    assert_eq!(net.inject_raw(1, None, &anon[..n]), d);
    let s = net.eps[1].stats().clone();
    assert_eq!(s.malformed, 2);
    assert_eq!(s.bad_version, 1);
    assert_eq!(s.unknown_type, 1);
    assert_eq!(s.unknown_src, 1);
    assert!(net.eps[0].stats().stale >= 2);
    // Random mutations of valid packets never panic or corrupt state.
    let mut rng = Rng::new(5);
    for i in 0..20_000 {
        let plen = rng.below(40) as usize;
        let mut pkt = valid_req(&rng.bytes(plen), 500_000 + i);
        let flips = 1 + rng.below(4);
        for _ in 0..flips {
            let at = rng.below(pkt.len() as u64) as usize;
            pkt[at] = rng.next() as u8;
        }
        if rng.below(4) == 0 {
            pkt.truncate(rng.below(pkt.len() as u64) as usize);
        }
        let _ = net.inject_raw(1, Some(0), &pkt);
    }
    // Real traffic still flows both ways afterwards.
    let p = net.peer(0, 1);
    net.eps[1]
        .trecv(net.now, owned(100), None, 77, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(pattern(1, 100)),
            77,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    let c = rc.iter().find(|c| c.context == 1).unwrap();
    assert_eq!(c.iov.as_ref().unwrap().to_vec(), pattern(1, 100));
}

#[test]
fn peer_with_another_version_fails_sends_clearly() {
    let mut net = Net::new(2, 55, cfg);
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(net.now, p, owned(200_000), 1, None, 1, OpFlags::empty())
        .unwrap();
    net.run(100);
    let mut b = [0u8; 64];
    let hs = w::HandshakeRepr {
        flags: 0,
        max_version: w::VERSION + 1,
        window: 16,
        features: 0,
    };
    let n = w::emit_handshake(&mut b, &hs, &rdm_common::addr(1));
    b[0] = w::VERSION + 1;
    assert_eq!(net.inject_raw(0, Some(1), &b[..n]), PacketOutcome::Dropped);
    let c = net.eps[0].poll_completion().unwrap();
    let e = c.err.unwrap();
    assert_eq!(
        (e.kind, e.prov_errno),
        (ErrorKind::Io, srd_fi::rdm::PROV_ERR_VERSION)
    );
    assert_eq!(net.eps[0].stats().bad_version, 1);
}

#[test]
fn removed_peer_is_reported_as_unknown_source() {
    let mut net = Net::new(2, 57, cfg);
    let p01 = net.peer(0, 1);
    let p10 = net.peer(1, 0);
    net.eps[1].remove_peer(p10).unwrap();
    net.eps[1]
        .trecv(net.now, owned(8), None, 1, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p01,
            UserIov::from_vec(vec![4]),
            1,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let c = &net.take(1)[0];
    assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::AddrNotAvail);
    assert_eq!(c.err.as_ref().unwrap().err_data, rdm_common::addr(0));
    // Re-inserting gives the same index back, with its state.
    assert_eq!(net.eps[1].insert_peer(&rdm_common::addr(0)), Ok(p10));
}
