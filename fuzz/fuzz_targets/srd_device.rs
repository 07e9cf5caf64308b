//! Fuzzes a device's receive path. The input is a sequence of datagrams
//! (2-byte big-endian length, then bytes) fed to one device that has sends
//! in flight and receives posted; between datagrams time advances, timers
//! run and transmissions drain. Must never panic; memory stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::srd::sim::device_addr;
use srd_fi::srd::{Device, DeviceConfig, QpAttr, QpState, QpType, RecvWr, SendWr};
use std::net::SocketAddrV4;

fuzz_target!(|data: &[u8]| {
    let cfg = DeviceConfig {
        addr: device_addr(0),
        window: 16,
        tx_buffers: 32,
        ..DeviceConfig::default()
    };
    let Ok(mut d) = Device::new(cfg) else { return };
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(256).unwrap();
    let mut qps = Vec::new();
    for t in [QpType::Srd, QpType::Ud] {
        let attr = QpAttr {
            pd,
            qp_type: t,
            qkey: 7,
            send_cq: cq,
            recv_cq: cq,
            sq_depth: 16,
            rq_depth: 16,
        };
        let qp = d.create_qp(attr).unwrap();
        for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
            d.modify_qp(qp, s).unwrap();
        }
        qps.push(qp);
    }
    let ah = d.create_ah(pd, device_addr(1)).unwrap();
    for k in 0..4 {
        let wr = SendWr {
            wr_id: k,
            ah,
            remote_qpn: 1,
            remote_qkey: 7,
            data: b"fuzz",
        };
        d.post_send(qps[0], wr).unwrap();
    }
    let mut out = vec![0u8; d.max_datagram()];
    let mut now = 0u64;
    while d.poll_transmit(now, &mut out).is_some() {}
    let src = SocketAddrV4::new(device_addr(1).ip, 7000);
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let (pkt, tail) = rest[2..].split_at(len);
        rest = tail;
        now += 50_000;
        d.handle_datagram(now, 0, src, pkt);
        for &qp in &qps {
            while d.recv_posted(qp) < 4 {
                d.post_recv(
                    qp,
                    RecvWr {
                        wr_id: 0,
                        buf: vec![0; 64],
                    },
                )
                .unwrap();
            }
        }
        while d.poll_cq(cq).is_some() {}
        if d.poll_timeout().is_some_and(|t| t <= now) {
            d.handle_timeout(now);
        }
        while d.poll_transmit(now, &mut out).is_some() {}
        let u = d.usage();
        assert!(u.tx_buffers_in_use <= 32 && u.in_flight <= 16 && u.peers <= 1024);
    }
});
