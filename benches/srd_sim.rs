//! Device-core throughput: messages per second through post_send → transmit
//! → (simulated network) → deliver → ack → send completion, between two
//! devices in the deterministic simulator, at 0 % and 5 % loss. The
//! reference in the same run is UD (best effort: no PSN, ack, timer or
//! retransmission) through the same simulator and devices at 0 % loss, so
//! the ratio is the cost of reliability.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use srd_fi::srd::sim::{NetConfig, Sim, device_addr};
use srd_fi::srd::{DeviceConfig, QpAttr, QpState, QpType, RecvWr, SendWr, WcStatus};

const MSGS: u64 = 20_000;
const QKEY: u32 = 9;

fn setup(
    loss_ppm: u32,
    size: usize,
    qp_type: QpType,
) -> (Sim, Vec<u32>, Vec<srd_fi::srd::Cq>, srd_fi::srd::Ah) {
    let net = NetConfig {
        seed: 3,
        loss_ppm,
        ..NetConfig::default()
    };
    let cfg = DeviceConfig {
        max_payload: size.max(64),
        ..DeviceConfig::default()
    };
    let mut sim = Sim::new(net, vec![cfg.clone(); 2]).unwrap();
    let (mut qps, mut cqs, mut ah) = (Vec::new(), Vec::new(), None);
    for i in 0..2 {
        let d = &mut sim.devices[i];
        let pd = d.alloc_pd().unwrap();
        let cq = d.create_cq(cfg.sq_depth + cfg.rq_depth).unwrap();
        let attr = QpAttr {
            pd,
            qp_type,
            qkey: QKEY,
            send_cq: cq,
            recv_cq: cq,
            sq_depth: 0,
            rq_depth: 0,
        };
        let qp = d.create_qp(attr).unwrap();
        for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
            d.modify_qp(qp, s).unwrap();
        }
        if i == 0 {
            ah = Some(d.create_ah(pd, device_addr(1)).unwrap());
        } else {
            for k in 0..cfg.rq_depth {
                d.post_recv(
                    qp,
                    RecvWr {
                        wr_id: u64::from(k),
                        buf: vec![0; size + 40],
                    },
                )
                .unwrap();
            }
        }
        qps.push(qp);
        cqs.push(cq);
    }
    (sim, qps, cqs, ah.unwrap())
}

/// Streams MSGS messages; returns virtual ns taken.
fn stream(
    sim: &mut Sim,
    qps: &[u32],
    cqs: &[srd_fi::srd::Cq],
    ah: srd_fi::srd::Ah,
    size: usize,
) -> u64 {
    let payload = vec![0x11u8; size];
    let (mut posted, mut done, mut recvd) = (0u64, 0u64, 0u64);
    while done < MSGS || recvd < MSGS {
        let d0 = &mut sim.devices[0];
        // Keep at most 512 messages unreceived, so UD (which completes sends
        // on transmit) never outruns the 1024 posted receives.
        while posted < MSGS && posted - recvd < 512 && d0.send_room(qps[0]) > 0 {
            let wr = SendWr {
                wr_id: posted,
                ah,
                remote_qpn: qps[1],
                remote_qkey: QKEY,
                data: &payload,
            };
            d0.post_send(qps[0], wr).unwrap();
            posted += 1;
        }
        while let Some(c) = d0.poll_cq(cqs[0]) {
            assert_eq!(c.status, WcStatus::Success);
            done += 1;
        }
        let d1 = &mut sim.devices[1];
        while let Some(c) = d1.poll_cq(cqs[1]) {
            recvd += 1;
            d1.post_recv(
                qps[1],
                RecvWr {
                    wr_id: c.wr_id,
                    buf: c.buf.unwrap(),
                },
            )
            .unwrap();
        }
        if done == MSGS && recvd == MSGS {
            break;
        }
        if !sim.step(u64::MAX) {
            panic!(
                "stalled: done {done} recvd {recvd} {:?}",
                sim.devices[1].stats()
            );
        }
    }
    sim.now
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("srd_sim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(MSGS));
    for &size in &[64usize, 4096] {
        let name = format!("ud_ref_{size}B");
        g.bench_function(BenchmarkId::new("stream", &name), |b| {
            b.iter_batched(
                || setup(0, size, QpType::Ud),
                |(mut sim, qps, cqs, ah)| stream(&mut sim, &qps, &cqs, ah, size),
                BatchSize::LargeInput,
            )
        });
    }
    for &(loss, size) in &[(0u32, 64usize), (50_000, 64), (0, 4096), (50_000, 4096)] {
        let name = format!("srd_loss{}pct_{}B", loss / 10_000, size);
        g.bench_function(BenchmarkId::new("stream", &name), |b| {
            b.iter_batched(
                || setup(loss, size, QpType::Srd),
                |(mut sim, qps, cqs, ah)| stream(&mut sim, &qps, &cqs, ah, size),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    // Virtual-time goodput, printed once (deterministic, so one run suffices).
    for &(loss, size) in &[(0u32, 64usize), (50_000, 64), (0, 4096), (50_000, 4096)] {
        let (mut sim, qps, cqs, ah) = setup(loss, size, QpType::Srd);
        let t = stream(&mut sim, &qps, &cqs, ah, size);
        let s = sim.devices[0].stats();
        println!(
            "srd_sim virtual: loss {}% size {size}: {MSGS} msgs in {:.2} ms virtual, retransmits {} ({:.1}%), rto events {}",
            loss / 10_000,
            t as f64 / 1e6,
            s.retransmits,
            s.retransmits as f64 * 100.0 / MSGS as f64,
            s.rto_events
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
