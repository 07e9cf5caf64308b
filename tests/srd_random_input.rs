//! Randomized inputs to the SRD parsers and device, on stable Rust: random
//! bytes and mutations of valid packets must never panic, and every rejected
//! datagram must be counted. (The cargo-fuzz targets in fuzz/ go further.)

use srd_fi::srd::sim::{Rng, device_addr};
use srd_fi::srd::{Device, DeviceConfig, QpAttr, QpState, QpType, RecvWr, SendWr};
use srd_fi::wire::srd::{Body, NakReason, Packet, PacketType, Repr};
use std::net::SocketAddrV4;

fn rand_bytes(rng: &mut Rng, max: u64) -> Vec<u8> {
    let len = rng.below(max);
    (0..len).map(|_| rng.next_u64().to_le_bytes()[0]).collect()
}

/// Valid packets of every type from device 1, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let a = device_addr(1);
    let base = Repr {
        packet_type: PacketType::SrdData,
        flags: 0,
        path: 1,
        src_ip: a.ip,
        src_port: a.port,
        epoch: 1,
        body: Body::Data {
            dst_qpn: 1,
            src_qpn: 1,
            qkey: 7,
            psn: 0,
            una: 0,
            ack: None,
        },
        payload_len: 16,
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256];
    let payload = [0xabu8; 16];
    for r in [
        base,
        Repr {
            packet_type: PacketType::UdData,
            ..base
        },
        Repr {
            packet_type: PacketType::Ack,
            body: Body::Ack {
                cum_psn: 1,
                sack_words: 2,
                sack: {
                    let mut s = [0; srd_fi::wire::srd::MAX_SACK_WORDS];
                    s[..2].copy_from_slice(&[5, 9]);
                    s
                },
                grant: 7,
            },
            payload_len: 0,
            ..base
        },
        Repr {
            packet_type: PacketType::Nak,
            body: Body::Nak {
                psn: 0,
                reason: NakReason::Rnr,
            },
            payload_len: 0,
            ..base
        },
    ] {
        let p: &[u8] = if r.payload_len > 0 { &payload } else { &[] };
        let n = r.emit(&mut buf, p).unwrap();
        out.push(buf[..n].to_vec());
    }
    out
}

fn mutate(rng: &mut Rng, v: &mut Vec<u8>) {
    match rng.below(5) {
        0 => {
            let n = usize::try_from(rng.below(u64::try_from(v.len()).unwrap() + 1)).unwrap();
            v.truncate(n);
        }
        1 => v.extend(rand_bytes(rng, 32)),
        _ => {
            for _ in 0..=rng.below(4) {
                if v.is_empty() {
                    break;
                }
                let i = usize::try_from(rng.below(u64::try_from(v.len()).unwrap())).unwrap();
                v[i] ^= 1 << rng.below(8);
            }
        }
    }
}

#[test]
fn parser_never_panics_on_random_or_mutated_bytes() {
    let mut rng = Rng::new(0x5eed);
    let seeds = seeds();
    let (mut ok, mut err) = (0, 0);
    for i in 0..200_000 {
        let mut v = if i % 4 == 0 {
            rand_bytes(&mut rng, 128)
        } else {
            seeds[i % seeds.len()].clone()
        };
        if i % 4 != 0 {
            mutate(&mut rng, &mut v);
        }
        match Packet::new_checked(&v[..]).and_then(|p| Repr::parse(&p)) {
            Ok(r) => {
                ok += 1;
                // Whatever parses must re-emit to a packet that parses the same.
                let p = Packet::new_checked(&v[..]).unwrap();
                let mut out = vec![0u8; r.total_len()];
                r.emit(&mut out, p.payload()).unwrap();
                assert_eq!(
                    Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(),
                    r
                );
            }
            Err(_) => err += 1,
        }
    }
    assert!(
        err > 150_000,
        "most mutations must be rejected: ok {ok} err {err}"
    );
}

#[test]
fn device_never_panics_and_counts_every_drop() {
    let mut rng = Rng::new(0xfeed);
    let cfg = DeviceConfig {
        addr: device_addr(0),
        ..DeviceConfig::default()
    };
    let mut d = Device::new(cfg).unwrap();
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(4096).unwrap();
    let mut qps = Vec::new();
    for t in [QpType::Srd, QpType::Ud] {
        let qp = d
            .create_qp(QpAttr {
                pd,
                qp_type: t,
                qkey: 7,
                send_cq: cq,
                recv_cq: cq,
                sq_depth: 64,
                rq_depth: 64,
            })
            .unwrap();
        for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
            d.modify_qp(qp, s).unwrap();
        }
        qps.push(qp);
    }
    // Something in flight to device 1, so acks and NAKs have state to hit.
    let ah = d.create_ah(pd, device_addr(1)).unwrap();
    for k in 0..8 {
        d.post_send(
            qps[0],
            SendWr {
                wr_id: k,
                ah,
                remote_qpn: 1,
                remote_qkey: 7,
                data: b"payload",
            },
        )
        .unwrap();
    }
    let mut out = vec![0u8; d.max_datagram()];
    let mut now = 0u64;
    while d.poll_transmit(now, &mut out).is_some() {}
    let seeds = seeds();
    let src = SocketAddrV4::new(device_addr(1).ip, 7001);
    for i in 0..100_000u64 {
        now += 1_000;
        let mut v = if i % 3 == 0 {
            rand_bytes(&mut rng, 128)
        } else {
            seeds[usize::try_from(i).unwrap() % seeds.len()].clone()
        };
        if i % 3 != 0 {
            mutate(&mut rng, &mut v);
        }
        let before = d.stats().clone();
        d.handle_datagram(now, 0, src, &v);
        let after = d.stats();
        let accepted = after.rx_data > before.rx_data
            || after.rx_acks > before.rx_acks
            || after.rx_naks > before.rx_naks
            || after.duplicates > before.duplicates
            || after.rnr_naks_sent > before.rnr_naks_sent;
        assert!(
            accepted || after.drops() > before.drops(),
            "datagram {i} neither accepted nor counted as a drop: {v:?}"
        );
        // Keep receives posted and the device draining.
        for &qp in &qps {
            while d.recv_posted(qp) < 8 {
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
    }
    let s = d.stats();
    assert!(s.drop_checksum > 10_000, "{s:?}");
    assert!(
        s.drop_truncated > 1_000 && s.drop_bad_version > 100,
        "{s:?}"
    );
    let u = d.usage();
    assert!(
        u.tx_buffers_in_use <= 8 && u.ctrl_queued <= 1024 + u.peers,
        "{u:?}"
    );
}

/// Writes the cargo-fuzz seed corpus (valid packets of every type) into
/// fuzz/seeds/. Run on demand: `cargo test --test srd_random_input -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let hdr = root.join("srd_header");
    let dev = root.join("srd_device");
    std::fs::create_dir_all(&hdr).unwrap();
    std::fs::create_dir_all(&dev).unwrap();
    let mut all = Vec::new();
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(hdr.join(format!("seed{i}")), s).unwrap();
        let mut framed = u16::try_from(s.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(s);
        std::fs::write(dev.join(format!("seed{i}")), &framed).unwrap();
        all.extend(framed);
    }
    std::fs::write(dev.join("seed_all"), all).unwrap();
}
