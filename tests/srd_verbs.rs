//! The verbs face of the SRD device: object lifetimes, the QP state machine,
//! bounded queues and argument checks (docs/srd-spec.md §2, §5).

use srd_fi::srd::sim::device_addr;
use srd_fi::srd::{
    Access, Cq, Device, DeviceConfig, Pd, QpAttr, QpState, QpType, Qpn, RecvWr, SendWr, SrdError,
    WcStatus,
};

fn device() -> Device {
    Device::new(DeviceConfig {
        addr: device_addr(0),
        sq_depth: 4,
        rq_depth: 2,
        tx_buffers: 6,
        max_payload: 100,
        ..DeviceConfig::default()
    })
    .unwrap()
}

/// An SRD QP's attributes: one CQ for both queues, the device's depths.
fn srd_attr(pd: Pd, cq: Cq) -> QpAttr {
    QpAttr {
        pd,
        qp_type: QpType::Srd,
        qkey: 1,
        send_cq: cq,
        recv_cq: cq,
        sq_depth: 0,
        rq_depth: 0,
    }
}

/// An SRD QP of the device's default depths, brought to RTS.
fn rts_qp(d: &mut Device, pd: Pd, cq: Cq) -> Qpn {
    let qp = d.create_qp(srd_attr(pd, cq)).unwrap();
    for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
        d.modify_qp(qp, s).unwrap();
    }
    qp
}

#[test]
fn config_is_validated() {
    let bad = [
        DeviceConfig {
            paths: 0,
            ..DeviceConfig::default()
        },
        DeviceConfig {
            paths: 17,
            ..DeviceConfig::default()
        },
        DeviceConfig {
            max_payload: 65_535,
            ..DeviceConfig::default()
        },
        DeviceConfig {
            window: 2048,
            ..DeviceConfig::default()
        },
        DeviceConfig {
            window: 300,
            ..DeviceConfig::default()
        },
        DeviceConfig {
            min_rto: 10,
            max_rto: 5,
            ..DeviceConfig::default()
        },
    ];
    for c in bad {
        assert_eq!(Device::new(c).unwrap_err(), SrdError::InvalidArg);
    }
    let d = Device::new(DeviceConfig::default()).unwrap();
    assert_eq!(
        d.max_datagram(),
        d.max_payload() + srd_fi::wire::srd::DATA_HEADER_LEN
    );
}

#[test]
fn qp_state_machine_gates_verbs() {
    let mut d = device();
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(6).unwrap();
    let qp = d.create_qp(srd_attr(pd, cq)).unwrap();
    let ah = d.create_ah(pd, device_addr(1)).unwrap();
    let wr = |data: &'static [u8]| SendWr {
        wr_id: 1,
        ah,
        remote_qpn: 5,
        remote_qkey: 1,
        data,
    };
    assert_eq!(d.qp_state(qp), Some(QpState::Reset));
    assert_eq!(
        d.post_recv(
            qp,
            RecvWr {
                wr_id: 0,
                buf: vec![]
            }
        )
        .unwrap_err(),
        SrdError::InvalidState
    );
    assert_eq!(
        d.post_send(qp, wr(b"x")).unwrap_err(),
        SrdError::InvalidState
    );
    assert_eq!(
        d.modify_qp(qp, QpState::Rts).unwrap_err(),
        SrdError::InvalidTransition
    );
    d.modify_qp(qp, QpState::Init).unwrap();
    d.post_recv(
        qp,
        RecvWr {
            wr_id: 10,
            buf: vec![1; 8],
        },
    )
    .unwrap();
    assert_eq!(
        d.post_send(qp, wr(b"x")).unwrap_err(),
        SrdError::InvalidState
    );
    d.modify_qp(qp, QpState::Rtr).unwrap();
    assert_eq!(
        d.post_send(qp, wr(b"x")).unwrap_err(),
        SrdError::InvalidState
    );
    d.modify_qp(qp, QpState::Rts).unwrap();
    d.post_recv(
        qp,
        RecvWr {
            wr_id: 11,
            buf: vec![2; 8],
        },
    )
    .unwrap();
    assert_eq!(
        d.post_recv(
            qp,
            RecvWr {
                wr_id: 12,
                buf: vec![]
            }
        )
        .unwrap_err(),
        SrdError::QueueFull
    );
    assert_eq!(
        d.post_send(qp, wr(&[0; 101])).unwrap_err(),
        SrdError::TooLong
    );
    for _ in 0..4 {
        d.post_send(qp, wr(b"hello")).unwrap();
    }
    assert_eq!(d.send_room(qp), 0);
    assert_eq!(d.post_send(qp, wr(b"x")).unwrap_err(), SrdError::QueueFull);
    // ERR flushes every WR; receive buffers come back.
    d.modify_qp(qp, QpState::Err).unwrap();
    let mut flushed = Vec::new();
    while let Some(c) = d.poll_cq(cq) {
        assert_eq!(c.status, WcStatus::Flushed);
        flushed.push(c);
    }
    assert_eq!(flushed.len(), 6);
    let bufs: Vec<Vec<u8>> = flushed.into_iter().filter_map(|c| c.buf).collect();
    assert_eq!(bufs, vec![vec![1; 8], vec![2; 8]]);
    assert_eq!(d.usage().tx_buffers_in_use, 0);
    assert_eq!(d.send_room(qp), 4);
    assert_eq!(
        d.post_recv(
            qp,
            RecvWr {
                wr_id: 0,
                buf: vec![]
            }
        )
        .unwrap_err(),
        SrdError::InvalidState
    );
    assert_eq!(
        d.modify_qp(qp, QpState::Rts).unwrap_err(),
        SrdError::InvalidTransition
    );
    d.modify_qp(qp, QpState::Reset).unwrap();
    d.modify_qp(qp, QpState::Init).unwrap();
}

#[test]
fn objects_are_checked_and_bounded() {
    let mut d = device();
    let pd = d.alloc_pd().unwrap();
    let pd2 = d.alloc_pd().unwrap();
    let cq = d.create_cq(6).unwrap();
    let small = d.create_cq(5).unwrap();
    let attr = QpAttr {
        pd,
        qp_type: QpType::Ud,
        qkey: 1,
        send_cq: small,
        recv_cq: small,
        sq_depth: 0,
        rq_depth: 0,
    };
    assert_eq!(
        d.create_qp(attr).unwrap_err(),
        SrdError::InvalidArg,
        "CQ too small for SQ+RQ"
    );
    let qp = d
        .create_qp(QpAttr {
            send_cq: cq,
            recv_cq: cq,
            ..attr
        })
        .unwrap();
    assert_eq!(d.destroy_cq(cq).unwrap_err(), SrdError::Busy);
    assert_eq!(d.dealloc_pd(pd).unwrap_err(), SrdError::Busy);
    let ah2 = d.create_ah(pd2, device_addr(1)).unwrap();
    for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
        d.modify_qp(qp, s).unwrap();
    }
    let wr = SendWr {
        wr_id: 1,
        ah: ah2,
        remote_qpn: 1,
        remote_qkey: 1,
        data: b"",
    };
    assert_eq!(
        d.post_send(qp, wr).unwrap_err(),
        SrdError::InvalidAh,
        "AH of another PD"
    );
    d.destroy_ah(ah2).unwrap();
    assert_eq!(d.destroy_ah(ah2).unwrap_err(), SrdError::InvalidAh);
    d.destroy_qp(qp).unwrap();
    assert_eq!(
        d.modify_qp(qp, QpState::Err).unwrap_err(),
        SrdError::InvalidQp
    );
    assert!(d.poll_cq(cq).is_none());
    d.destroy_cq(cq).unwrap();
    d.dealloc_pd(pd2).unwrap();

    let mr = d
        .reg_mr(pd, 0x1000, 0x100, Access::LOCAL_WRITE | Access::REMOTE_READ)
        .unwrap();
    assert_ne!(mr.lkey, mr.rkey);
    assert!(
        d.check_mr(pd, mr.lkey, false, 0x1000, 0x100, Access::LOCAL_WRITE)
            .is_ok()
    );
    assert!(
        d.check_mr(pd, mr.rkey, true, 0x1080, 0x10, Access::REMOTE_READ)
            .is_ok()
    );
    let denied = [
        d.check_mr(pd, mr.rkey, true, 0x1080, 0x10, Access::REMOTE_WRITE),
        d.check_mr(pd, mr.rkey, true, 0x10f0, 0x20, Access::REMOTE_READ),
        d.check_mr(pd, mr.lkey, true, 0x1000, 1, Access::REMOTE_READ),
        d.check_mr(pd, mr.rkey, false, 0x1000, 1, Access::default()),
        d.check_mr(pd, mr.lkey, false, u64::MAX, 2, Access::default()),
    ];
    assert!(
        denied.iter().all(|r| *r == Err(SrdError::AccessDenied)),
        "{denied:?}"
    );
    d.dereg_mr(mr.lkey).unwrap();
    assert_eq!(
        d.check_mr(pd, mr.lkey, false, 0x1000, 1, Access::default()),
        Err(SrdError::AccessDenied)
    );
}

#[test]
fn send_buffer_pool_is_shared_and_bounded() {
    let mut d = device();
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(12).unwrap();
    let ah = d.create_ah(pd, device_addr(1)).unwrap();
    let mut qps = Vec::new();
    for _ in 0..2 {
        qps.push(rts_qp(&mut d, pd, cq));
    }
    let wr = SendWr {
        wr_id: 1,
        ah,
        remote_qpn: 1,
        remote_qkey: 1,
        data: b"abc",
    };
    for _ in 0..4 {
        d.post_send(qps[0], wr).unwrap();
    }
    assert_eq!(d.send_room(qps[1]), 2, "6 pool buffers, 4 taken");
    d.post_send(qps[1], wr).unwrap();
    d.post_send(qps[1], wr).unwrap();
    assert_eq!(d.post_send(qps[1], wr).unwrap_err(), SrdError::QueueFull);
    assert_eq!(d.usage().tx_buffers_in_use, 6);
}

#[test]
fn lent_send_buffers_are_posted_in_place_or_given_back() {
    let mut d = device();
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(12).unwrap();
    let ah = d.create_ah(pd, device_addr(1)).unwrap();
    let qp = rts_qp(&mut d, pd, cq);
    let wr = |wr_id| SendWr {
        wr_id,
        ah,
        remote_qpn: 1,
        remote_qkey: 1,
        data: &[],
    };
    let b = d.lend(100).unwrap();
    assert!(d.lent_mut(&b).len() >= 100);
    d.lent_mut(&b)[..5].copy_from_slice(b"hello");
    assert_eq!(d.lent(&b, 5), b"hello");
    d.post_lent(qp, b, 5, wr(7)).unwrap();
    assert_eq!(d.usage().tx_buffers_in_use, 1);
    // Too long for the peer: refused, the buffer stays with the caller.
    let b = d.lend(200).unwrap();
    let (e, b) = d.post_lent(qp, b, 101, wr(8)).unwrap_err();
    assert_eq!(e, SrdError::TooLong);
    assert_eq!(d.usage().tx_buffers_in_use, 2, "still lent");
    d.give_back(b);
    assert_eq!(d.usage().tx_buffers_in_use, 1);
    // The pool bounds lending as it bounds posting.
    let lent: Vec<_> = std::iter::from_fn(|| d.lend(10)).collect();
    assert_eq!(lent.len(), 5, "6 buffers, 1 posted");
    assert_eq!(d.send_room(qp), 0);
    lent.into_iter().for_each(|b| d.give_back(b));
    // The posted one completes (flushed here) and goes back to the pool.
    d.modify_qp(qp, QpState::Err).unwrap();
    let c = d.poll_cq(cq).unwrap();
    assert_eq!((c.wr_id, c.status), (7, WcStatus::Flushed));
    assert!(
        d.poll_cq(cq).is_none(),
        "nothing for the given-back buffers"
    );
    assert_eq!(d.usage().tx_buffers_in_use, 0);
}

/// A zero-copy send: the device keeps the header and a reference
/// (`ExtRef`) to the payload's tail, resolved by the caller at every
/// transmission (retransmissions too); the reference is released when the
/// send completes, here with an error after the retry limit. A device
/// that checksums payloads refuses such sends (it never sees the bytes).
#[test]
fn zero_copy_sends_resolve_their_tail_at_every_transmission_until_they_complete() {
    use srd_fi::srd::ExtRef;
    let cfg = |i, csum| DeviceConfig {
        addr: device_addr(i),
        max_payload: 2000,
        payload_checksum: csum,
        retry_limit: 2,
        sq_depth: 8,
        rq_depth: 4,
        tx_buffers: 8,
        ..DeviceConfig::default()
    };
    let mut a = Device::new(cfg(0, false)).unwrap();
    let mut b = Device::new(cfg(1, false)).unwrap();
    let (pa, pb) = (a.alloc_pd().unwrap(), b.alloc_pd().unwrap());
    let (ca, cb) = (a.create_cq(16).unwrap(), b.create_cq(16).unwrap());
    let qa = rts_qp(&mut a, pa, ca);
    let qb = rts_qp(&mut b, pb, cb);
    b.post_recv(
        qb,
        RecvWr {
            wr_id: 9,
            buf: vec![0; 2000],
        },
    )
    .unwrap();
    let ah = a.create_ah(pa, device_addr(1)).unwrap();
    let user: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let ext = ExtRef {
        key: 77,
        off: 100,
        len: 1000,
    };
    let buf = a.lend(16).unwrap();
    a.lent_mut(&buf)[..4].copy_from_slice(b"HEAD");
    let wr = SendWr {
        wr_id: 5,
        ah,
        remote_qpn: qb,
        remote_qkey: 1,
        data: &[],
    };
    a.post_lent_ext(qa, buf, 4, ext, wr).unwrap();
    assert_eq!(a.usage().ext_refs, 1);
    let mut resolved = 0;
    let mut out = vec![0u8; a.max_datagram()];
    let mut send = |a: &mut Device, now: u64, resolved: &mut u32| {
        let t = a
            .poll_transmit_with(now, &mut out, |e, dst| {
                assert_eq!(e, ext);
                *resolved += 1;
                dst.copy_from_slice(&user[e.off as usize..][..e.len as usize]);
                true
            })
            .expect("a datagram");
        out[..t.len].to_vec()
    };
    // First transmission: B gets header and tail in one payload.
    let d = send(&mut a, 0, &mut resolved);
    b.handle_datagram(0, 0, device_addr(0).socket(), &d);
    let c = b.poll_cq(cb).unwrap();
    assert_eq!((c.wr_id, c.status, c.len), (9, WcStatus::Success, 1004));
    let got = c.buf.unwrap();
    assert_eq!(&got[..4], b"HEAD");
    assert_eq!(&got[4..1004], &user[100..1100]);
    // Its ack is lost: the timeout resends, reading the tail again.
    let mut now = 0;
    let mut rounds = 0;
    while a.poll_cq(ca).is_none() {
        now = a.poll_timeout().expect("a timer while the send is out");
        a.handle_timeout(now);
        while a.usage().queued > 0 {
            send(&mut a, now, &mut resolved);
        }
        rounds += 1;
        assert!(rounds < 100, "the retry limit ends it");
    }
    assert!(resolved >= 2, "resent from the caller's memory: {resolved}");
    assert_eq!(a.usage().ext_refs, 0, "released with the completion");
    assert_eq!(a.usage().tx_buffers_in_use, 0);
    assert!(
        a.poll_transmit_with(now, &mut out, |_, _| panic!("resolved after completion"))
            .is_none()
    );
    // A device checksumming payloads cannot take a tail it never sees.
    let mut c = Device::new(cfg(2, true)).unwrap();
    let pc = c.alloc_pd().unwrap();
    let cc = c.create_cq(16).unwrap();
    let qc = rts_qp(&mut c, pc, cc);
    let ah = c.create_ah(pc, device_addr(1)).unwrap();
    let buf = c.lend(16).unwrap();
    let wr = SendWr {
        wr_id: 1,
        ah,
        remote_qpn: 1,
        remote_qkey: 1,
        data: &[],
    };
    let (e, buf) = c.post_lent_ext(qc, buf, 4, ext, wr).unwrap_err();
    assert_eq!(e, SrdError::InvalidArg);
    c.give_back(buf);
    assert_eq!(c.usage().ext_refs, 0);
}
