//! Emulated RMA (fi_write/fi_read) through the rdm harness: sizes across
//! packet boundaries, addressing modes, remote CQ data, access errors
//! with memory left untouched, windowing against small traffic,
//! completion semantics, malformed packets, pool limits.

mod rdm_common;
#[path = "rdm_rma_common.rs"]
mod rma_common;

use rdm_common::{Net, cfg, owned, pattern};
use rma_common::{POISON, RO, RW, Registry, WO};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{CompFlags, Completion, Config, ErrorKind, OpFlags, PacketOutcome, RdmError};
use srd_fi::wire::rdm::{OpRef, RTW_LEN, RtaRepr, RtwRepr, emit_rta, emit_rtw};

const KEY: u64 = 0x1111;

/// Two endpoints; endpoint 1 exposes `reg`.
fn pair(seed: u64, mk: impl Fn(usize) -> Config) -> (Net, Registry) {
    let mut net = Net::new(2, seed, mk);
    let reg = Registry::default();
    net.eps[1].set_rma_target(Box::new(reg.clone()));
    (net, reg)
}

fn one(cs: Vec<Completion>, what: &str) -> Completion {
    assert_eq!(cs.len(), 1, "{what}: one completion, got {cs:?}");
    cs.into_iter().next().unwrap()
}

fn rma_sizes(net: &Net) -> Vec<usize> {
    let e = net.mtu - RTW_LEN; // one RTW packet
    vec![0, 1, e - 1, e, e + 1, 64 << 10, 1 << 20, 8 << 20]
}

#[test]
fn write_then_read_every_size() {
    let (mut net, reg) = pair(11, cfg);
    let region = (8 << 20) + 4096;
    reg.add(KEY, region, RW, None);
    let p = net.peer(0, 1);
    for (k, len) in rma_sizes(&net).into_iter().enumerate() {
        let off = 7 + k as u64; // unaligned on purpose
        let data = pattern(k as u64 + 50, len);
        net.eps[0]
            .write(
                net.now,
                p,
                UserIov::from_vec(data.clone()),
                off,
                KEY,
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(400_000);
        let c = one(net.take(0), "write");
        assert!(c.err.is_none(), "len {len}: {:?}", c.err);
        assert_eq!(c.flags, CompFlags::RMA | CompFlags::WRITE);
        assert_eq!((c.context, c.len), (k as u64, len));
        assert_eq!(c.iov.unwrap().to_vec(), data, "source handed back");
        let mem = reg.bytes(KEY);
        assert_eq!(
            &mem[off as usize..off as usize + len],
            &data[..],
            "len {len}"
        );
        assert!(
            net.take(1).is_empty(),
            "no target completion without CQ data"
        );

        net.eps[0]
            .read(
                net.now,
                p,
                owned(len),
                off,
                KEY,
                1000 + k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(400_000);
        let c = one(net.take(0), "read");
        assert!(c.err.is_none(), "len {len}: {:?}", c.err);
        assert_eq!(c.flags, CompFlags::RMA | CompFlags::READ);
        assert_eq!((c.context, c.len), (1000 + k as u64, len));
        assert_eq!(c.iov.unwrap().to_vec(), data, "read back, len {len}");
    }
    // Guards never touched, nothing left behind.
    let back = reg.backing(KEY);
    assert!(back[..64].iter().all(|&b| b == POISON));
    assert!(back[back.len() - 64..].iter().all(|&b| b == POISON));
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
    let counts = net.eps[1].take_remote_counts();
    assert_eq!((counts.reads, counts.writes), (8, 8));
    assert_eq!(net.eps[1].take_remote_counts().writes, 0, "taken");
}

#[test]
fn small_mtu_and_small_window() {
    let (mut net, reg) = pair(12, |i| Config {
        mtu: 1472,
        cts_window: 16 * 1024,
        ..cfg(i)
    });
    reg.add(KEY, 1 << 20, RW, None);
    let p = net.peer(0, 1);
    let data = pattern(3, 1 << 20);
    net.eps[0]
        .write(
            net.now,
            p,
            UserIov::from_vec(data.clone()),
            0,
            KEY,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(400_000);
    assert!(one(net.take(0), "write").err.is_none());
    assert_eq!(reg.bytes(KEY), data);
    net.eps[0]
        .read(net.now, p, owned(1 << 20), 0, KEY, 2, OpFlags::empty())
        .unwrap();
    net.run(400_000);
    assert_eq!(one(net.take(0), "read").iov.unwrap().to_vec(), data);
}

#[test]
fn virtual_address_mode() {
    let (mut net, reg) = pair(13, cfg);
    let base = 0x7f12_3400_0000u64;
    reg.add(KEY, 100_000, RW, Some(base));
    let p = net.peer(0, 1);
    let data = pattern(9, 30_000);
    net.eps[0]
        .write(
            net.now,
            p,
            UserIov::from_vec(data.clone()),
            base + 500,
            KEY,
            None,
            1,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(100_000);
    assert!(one(net.take(0), "write").err.is_none());
    assert_eq!(&reg.bytes(KEY)[500..30_500], &data[..]);
    // An offset (not an address) is outside the region in this mode.
    net.eps[0]
        .read(net.now, p, owned(10), 500, KEY, 2, OpFlags::empty())
        .unwrap();
    net.run(100_000);
    let c = one(net.take(0), "read");
    assert_eq!(c.err.unwrap().kind, ErrorKind::InvalidArgument);
    net.eps[0]
        .read(
            net.now,
            p,
            owned(30_000),
            base + 500,
            KEY,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(100_000);
    assert_eq!(one(net.take(0), "read").iov.unwrap().to_vec(), data);
}

#[test]
fn remote_cq_data_completes_at_target() {
    let (mut net, reg) = pair(14, cfg);
    reg.add(KEY, 1 << 20, RW, None);
    let p = net.peer(0, 1);
    let q = net.peer(1, 0);
    for (k, len) in [0usize, 100, 200_000].into_iter().enumerate() {
        let data = pattern(k as u64, len);
        net.eps[0]
            .write(
                net.now,
                p,
                UserIov::from_vec(data.clone()),
                64,
                KEY,
                Some(0xabcd_0000 + k as u64),
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(200_000);
        let t = one(net.take(1), "target");
        assert_eq!(
            t.flags,
            CompFlags::REMOTE_WRITE | CompFlags::RMA | CompFlags::REMOTE_CQ_DATA
        );
        assert_eq!(t.data, 0xabcd_0000 + k as u64);
        assert_eq!(t.len, len);
        assert_eq!(t.src, Some(q));
        assert!(t.report && t.err.is_none());
        assert!(one(net.take(0), "initiator").err.is_none());
        assert_eq!(&reg.bytes(KEY)[64..64 + len], &data[..]);
    }
}

/// Every refused access: error at the initiator, memory untouched, no
/// target completion, no remote count.
#[test]
fn access_errors_leave_memory_untouched() {
    let (mut net, reg) = pair(15, cfg);
    reg.add(KEY, 100_000, RW, None);
    reg.add(2, 100_000, RO, None);
    reg.add(3, 100_000, WO, None);
    let p = net.peer(0, 1);
    let before: Vec<_> = [KEY, 2, 3].iter().map(|&k| reg.backing(k)).collect();
    let small = pattern(1, 100);
    let big = pattern(2, 70_000);
    // (key, addr, data, errno)
    let writes: Vec<(u64, u64, &[u8], ErrorKind)> = vec![
        (99, 0, &small, ErrorKind::AccessDenied),
        (99, 0, &big, ErrorKind::AccessDenied),
        (KEY, 99_950, &small, ErrorKind::InvalidArgument),
        (KEY, 40_000, &big, ErrorKind::InvalidArgument),
        (KEY, u64::MAX - 50, &small, ErrorKind::InvalidArgument),
        (2, 0, &small, ErrorKind::AccessDenied),
        (2, 0, &big, ErrorKind::AccessDenied),
    ];
    for (i, &(key, addr, data, errno)) in writes.iter().enumerate() {
        let r = net.eps[0].write(
            net.now,
            p,
            UserIov::from_vec(data.to_vec()),
            addr,
            key,
            Some(5),
            i as u64,
            OpFlags::empty(),
        );
        if addr.checked_add(data.len() as u64).is_none() {
            assert_eq!(r, Err(RdmError::InvalidArgument));
            continue;
        }
        r.unwrap();
        net.run(200_000);
        let c = one(net.take(0), "write");
        assert_eq!(c.err.as_ref().map(|e| e.kind), Some(errno), "write {i}");
        assert!(c.report);
        assert_eq!(c.flags, CompFlags::RMA | CompFlags::WRITE);
    }
    let reads: Vec<(u64, u64, usize, ErrorKind)> = vec![
        (99, 0, 10, ErrorKind::AccessDenied),
        (KEY, 99_999, 2, ErrorKind::InvalidArgument),
        (KEY, 1, 100_000, ErrorKind::InvalidArgument),
        (3, 0, 10, ErrorKind::AccessDenied),
        (3, 0, 50_000, ErrorKind::AccessDenied),
    ];
    for (i, &(key, addr, len, errno)) in reads.iter().enumerate() {
        let mut dst = vec![0x11u8; len];
        dst[0] = 0x22;
        net.eps[0]
            .read(
                net.now,
                p,
                UserIov::from_vec(dst.clone()),
                addr,
                key,
                i as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(200_000);
        let c = one(net.take(0), "read");
        assert_eq!(c.err.as_ref().map(|e| e.kind), Some(errno), "read {i}");
        assert_eq!(c.iov.unwrap().to_vec(), dst, "read {i}: buffer untouched");
    }
    let after: Vec<_> = [KEY, 2, 3].iter().map(|&k| reg.backing(k)).collect();
    assert!(before == after, "target memory changed");
    assert!(net.take(1).is_empty(), "no target completions");
    let counts = net.eps[1].take_remote_counts();
    assert_eq!((counts.reads, counts.writes), (0, 0));
    assert!(net.eps[1].stats().rma_refused >= 11);
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}

#[test]
fn endpoint_without_registry_refuses() {
    let mut net = Net::new(2, 16, cfg);
    let p = net.peer(0, 1);
    net.eps[0]
        .write(net.now, p, owned(10), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    assert_eq!(
        one(net.take(0), "w").err.unwrap().kind,
        ErrorKind::NotSupported
    );
}

#[test]
fn long_write_does_not_stall_small_sends() {
    let (mut net, reg) = pair(17, cfg);
    reg.add(KEY, 8 << 20, RW, None);
    let p = net.peer(0, 1);
    let data = pattern(4, 8 << 20);
    net.eps[0]
        .write(
            net.now,
            p,
            UserIov::from_vec(data.clone()),
            0,
            KEY,
            None,
            999,
            OpFlags::empty(),
        )
        .unwrap();
    // Let the write get going, then send small messages behind it.
    for _ in 0..5 {
        net.step();
    }
    let n = 20u64;
    for k in 0..n {
        net.eps[1]
            .recv(net.now, owned(64), None, 100 + k, OpFlags::empty())
            .unwrap();
        net.eps[0]
            .send(
                net.now,
                p,
                UserIov::from_vec(pattern(k, 64)),
                None,
                k,
                OpFlags::empty(),
            )
            .unwrap();
    }
    let start = net.now;
    let mut small_done_at = None;
    let mut write_done_at = None;
    let mut sends = 0;
    for _ in 0..400_000 {
        net.step();
        for c in net.take(0) {
            assert!(c.err.is_none());
            if c.context == 999 {
                write_done_at = Some(net.now);
            } else {
                sends += 1;
                if sends == n {
                    small_done_at = Some(net.now);
                }
            }
        }
        net.take(1);
        if write_done_at.is_some() && small_done_at.is_some() {
            break;
        }
    }
    let (s, w) = (small_done_at.unwrap(), write_done_at.unwrap());
    assert!(
        s < w,
        "small sends took {} ns, the write {} ns",
        s - start,
        w - start
    );
    assert_eq!(reg.bytes(KEY), data);
}

/// A long write has at most a window of packets in the transport, and a
/// send posted behind it goes out at once.
#[test]
fn long_write_is_windowed() {
    let (mut net, reg) = pair(24, cfg);
    reg.add(KEY, 8 << 20, RW, None);
    let p = net.peer(0, 1);
    let q = net.peer(1, 0);
    net.eps[0]
        .write(net.now, p, owned(1), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    net.take(0);
    let data = pattern(5, 8 << 20);
    net.eps[0]
        .write(
            net.now,
            p,
            UserIov::from_vec(data.clone()),
            0,
            KEY,
            None,
            2,
            OpFlags::empty(),
        )
        .unwrap();
    let mut buf = vec![0u8; net.mtu];
    let mut pkts = Vec::new();
    while let Some(t) = net.eps[0].poll_transmit(net.now, &mut buf) {
        pkts.push((buf[..t.len].to_vec(), t.token));
        assert!(pkts.len() < 10_000);
    }
    let window = cfg(0).cts_window / (net.mtu - RTW_LEN);
    assert_eq!(pkts.len(), window, "one window of packets");
    net.eps[1]
        .recv(net.now, owned(64), None, 50, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .send(
            net.now,
            p,
            UserIov::from_vec(pattern(1, 64)),
            None,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    let t = net.eps[0]
        .poll_transmit(net.now, &mut buf)
        .expect("the send");
    assert_eq!(buf[1], 1, "a REQ, not more write data");
    assert!(net.eps[0].poll_transmit(net.now, &mut buf).is_none());
    // The send arrives first and completes.
    assert!(matches!(
        net.eps[1].handle_packet(net.now, Some(q), &buf[..t.len]),
        PacketOutcome::Consumed
    ));
    net.eps[0].on_send_complete(t.token, Ok(()));
    assert_eq!(net.eps[1].poll_completion().unwrap().context, 50);
    // Acknowledging write packets opens the window again.
    for (bytes, tok) in pkts.drain(..) {
        assert_eq!(
            net.eps[1].handle_packet(net.now, Some(q), &bytes),
            PacketOutcome::Consumed
        );
        net.eps[0].on_send_complete(tok, Ok(()));
    }
    let t = net.eps[0]
        .poll_transmit(net.now, &mut buf)
        .expect("more data");
    assert_eq!(
        net.eps[1].handle_packet(net.now, Some(q), &buf[..t.len]),
        PacketOutcome::Consumed
    );
    net.eps[0].on_send_complete(t.token, Ok(()));
    net.run(400_000);
    let cs = net.take(0);
    assert!(cs.iter().any(|c| c.context == 2 && c.err.is_none()));
    assert_eq!(reg.bytes(KEY), data);
}

#[test]
fn delivery_complete_waits_for_the_target() {
    let (mut net, reg) = pair(18, cfg);
    reg.add(KEY, 1 << 20, RW, None);
    let p = net.peer(0, 1);
    for (k, len) in [10usize, 300_000].into_iter().enumerate() {
        let data = pattern(k as u64 + 7, len);
        net.eps[0]
            .write(
                net.now,
                p,
                UserIov::from_vec(data.clone()),
                0,
                KEY,
                None,
                k as u64,
                OpFlags::DELIVERY_COMPLETE,
            )
            .unwrap();
        let mut done = false;
        for _ in 0..200_000 {
            net.step();
            let cs = net.take(0);
            if !cs.is_empty() {
                // At the moment the initiator learns of completion the
                // data is in the target's memory.
                assert_eq!(&reg.bytes(KEY)[..len], &data[..]);
                assert!(cs[0].err.is_none());
                done = true;
                break;
            }
        }
        assert!(done);
    }
}

#[test]
fn inject_write_copies_and_reports_silently() {
    let (mut net, reg) = pair(19, cfg);
    reg.add(KEY, 4096, RW, None);
    let p = net.peer(0, 1);
    let mut buf = pattern(1, 200);
    net.eps[0]
        .inject_write(net.now, p, &buf, 10, KEY, Some(77))
        .unwrap();
    buf.fill(0); // reusable at once
    net.run(10_000);
    let c = one(net.take(0), "inject");
    assert!(!c.report && c.err.is_none());
    assert_eq!(&reg.bytes(KEY)[10..210], &pattern(1, 200)[..]);
    assert_eq!(one(net.take(1), "target").data, 77);
    assert_eq!(
        net.eps[0].inject_write(net.now, p, &[0; 1000], 0, KEY, None),
        Err(RdmError::TooLong)
    );
    // An injected write that fails is reported.
    net.eps[0]
        .inject_write(net.now, p, &[1; 8], 0, 42, None)
        .unwrap();
    net.run(10_000);
    let c = one(net.take(0), "inject err");
    assert!(c.report);
    assert_eq!(c.err.unwrap().kind, ErrorKind::AccessDenied);
}

#[test]
fn pool_exhaustion_returns_again() {
    let (mut net, reg) = pair(20, |i| Config {
        tx_size: 4,
        ..cfg(i)
    });
    reg.add(KEY, 1 << 20, RW, None);
    let p = net.peer(0, 1);
    for k in 0..4 {
        net.eps[0]
            .write(
                net.now,
                p,
                owned(100_000),
                0,
                KEY,
                None,
                k,
                OpFlags::empty(),
            )
            .unwrap();
    }
    assert_eq!(
        net.eps[0].read(net.now, p, owned(1), 0, KEY, 9, OpFlags::empty()),
        Err(RdmError::Again)
    );
    net.run(200_000);
    assert_eq!(net.take(0).len(), 4);
    net.eps[0]
        .read(net.now, p, owned(1), 0, KEY, 9, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    assert!(one(net.take(0), "read").err.is_none());
}

#[test]
fn target_side_limit_defers_without_loss() {
    let (mut net, reg) = pair(21, |i| Config {
        rma_target_max: 2,
        ..cfg(i)
    });
    reg.add(KEY, 8 << 20, RW, None);
    let p = net.peer(0, 1);
    let data: Vec<_> = (0..6).map(|k| pattern(k, 500_000)).collect();
    for (k, d) in data.iter().enumerate() {
        let addr = k as u64 * 600_000;
        net.eps[0]
            .write(
                net.now,
                p,
                UserIov::from_vec(d.clone()),
                addr,
                KEY,
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.eps[0]
            .read(
                net.now,
                p,
                owned(300_000),
                0,
                KEY,
                100 + k as u64,
                OpFlags::empty(),
            )
            .unwrap();
    }
    net.run(1_000_000);
    let cs = net.take(0);
    assert_eq!(cs.len(), 12);
    assert!(cs.iter().all(|c| c.err.is_none()));
    assert!(
        net.eps[1].stats().deferred > 0,
        "reads beyond the limit waited"
    );
    let mem = reg.bytes(KEY);
    for k in 0..6 {
        assert_eq!(&mem[k * 600_000..k * 600_000 + 500_000], &data[k][..]);
    }
}

#[test]
fn transport_failure_fails_rma() {
    let (mut net, reg) = pair(22, cfg);
    reg.add(KEY, 1 << 20, RW, None);
    let p = net.peer(0, 1);
    // Handshake first, then the transport gives up.
    net.eps[0]
        .write(net.now, p, owned(1), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    assert!(one(net.take(0), "w").err.is_none());
    net.fail_to.insert(1);
    net.eps[0]
        .write(
            net.now,
            p,
            owned(500_000),
            0,
            KEY,
            None,
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .read(net.now, p, owned(10), 0, KEY, 3, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    let cs = net.take(0);
    assert_eq!(cs.len(), 2);
    for c in &cs {
        assert_eq!(c.err.as_ref().unwrap().kind, ErrorKind::Unreachable);
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}

#[test]
fn malformed_rma_packets_are_dropped_and_counted() {
    let (mut net, reg) = pair(23, cfg);
    reg.add(KEY, 4096, RW, None);
    let p = net.peer(0, 1);
    // Make the endpoints know each other.
    net.eps[0]
        .write(net.now, p, owned(1), 0, KEY, None, 1, OpFlags::empty())
        .unwrap();
    net.run(10_000);
    net.take(0);
    let before = reg.backing(KEY);
    let m0 = net.eps[1].stats().malformed;
    let op = OpRef {
        tx_id: 0,
        op_gen: 77,
    };
    let mut buf = vec![0u8; 256];
    let w = RtwRepr {
        flags: 0,
        op,
        key: KEY,
        addr: 0,
        total_len: 10,
        offset: 5,
        cq_data: 0,
    };
    let n = emit_rtw(&mut buf, &w);
    // Data past total_len, truncated header, address overflow.
    let bad1 = [&buf[..n], &[1u8; 6][..]].concat();
    let bad2 = buf[..n - 3].to_vec();
    let mut w3 = w;
    w3.addr = u64::MAX - 3;
    let n3 = emit_rtw(&mut buf, &w3);
    let bad3 = buf[..n3].to_vec();
    // Atomics: unknown op, unknown datatype, payload of the wrong size.
    let a = RtaRepr {
        op,
        key: KEY,
        addr: 0,
        atomic_op: 2,
        datatype: 7,
        kind: 0,
        count: 1,
    };
    let mut rta = |f: &dyn Fn(&mut RtaRepr), extra: usize| {
        let mut a = a;
        f(&mut a);
        let n = emit_rta(&mut buf, &a);
        buf[..n + extra].to_vec()
    };
    let bad4 = rta(&|a| a.atomic_op = 77, 8);
    let bad5 = rta(&|a| a.datatype = 99, 8);
    let bad6 = rta(&|_| {}, 5);
    let bad7 = rta(&|a| a.kind = 9, 8);
    for (i, b) in [bad1, bad2, bad3, bad4, bad5, bad6, bad7]
        .iter()
        .enumerate()
    {
        assert_eq!(
            net.inject_raw(1, Some(0), b),
            PacketOutcome::Dropped,
            "packet {i}"
        );
    }
    assert_eq!(net.eps[1].stats().malformed, m0 + 7);
    assert_eq!(reg.backing(KEY), before);
    net.run(1000);
    assert!(net.take(0).is_empty() && net.take(1).is_empty());
}
