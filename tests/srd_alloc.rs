//! "No heap allocation per packet in steady state" (DESIGN §9), measured: a
//! counting global allocator around a lossy, reordering stream. After a
//! warm-up, the device core and the simulator allocate nothing per packet.
//! What remains are a handful of doubling reallocations of bounded queues
//! (e.g. a peer's pending FIFO reaching its bound for the first time):
//! O(log bound) events, not O(packets). Measured here: 16 over 40 000
//! messages in both directions with loss, duplication and corruption.

use srd_fi::srd::sim::{NetConfig, Sim, device_addr};
use srd_fi::srd::{DeviceConfig, QpAttr, QpState, QpType, RecvWr, SendWr, WcStatus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const QKEY: u32 = 3;

#[test]
fn steady_state_allocates_nothing_per_packet() {
    let net = NetConfig {
        seed: 5,
        loss_ppm: 50_000,
        dup_ppm: 10_000,
        corrupt_ppm: 10_000,
        ..NetConfig::default()
    };
    let cfg = DeviceConfig {
        max_payload: 256,
        ..DeviceConfig::default()
    };
    let mut sim = Sim::new(net, vec![cfg.clone(); 2]).unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        let d = &mut sim.devices[i];
        let pd = d.alloc_pd().unwrap();
        let cq = d.create_cq(cfg.sq_depth + cfg.rq_depth).unwrap();
        let attr = QpAttr {
            pd,
            qp_type: QpType::Srd,
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
        let ah = d.create_ah(pd, device_addr(1 - i)).unwrap();
        for k in 0..cfg.rq_depth {
            d.post_recv(
                qp,
                RecvWr {
                    wr_id: u64::from(k),
                    buf: vec![0; 256],
                },
            )
            .unwrap();
        }
        ids.push((qp, cq, ah));
    }
    let payload = [0x42u8; 256];
    let (mut posted, mut done, mut recvd) = (0u64, 0u64, 0u64);
    let total = 60_000u64;
    let mut before = None;
    while done < total || recvd < total {
        // Warm-up: the first 20 000 messages size every queue.
        if before.is_none() && done >= 20_000 {
            before = Some((ALLOCS.load(Ordering::Relaxed), done));
        }
        for i in 0..2 {
            let (qp, cq, ah) = ids[i];
            let peer_qp = ids[1 - i].0;
            let d = &mut sim.devices[i];
            // Both directions carry data (so both see acks, NAKs, timers).
            while posted < total && d.send_room(qp) > 0 {
                let len = 1 + usize::try_from(posted % 256).unwrap();
                let wr = SendWr {
                    wr_id: posted,
                    ah,
                    remote_qpn: peer_qp,
                    remote_qkey: QKEY,
                    data: &payload[..len],
                };
                d.post_send(qp, wr).unwrap();
                posted += 1;
            }
            while let Some(c) = d.poll_cq(cq) {
                assert_eq!(c.status, WcStatus::Success);
                match c.buf {
                    Some(buf) => {
                        recvd += 1;
                        d.post_recv(
                            qp,
                            RecvWr {
                                wr_id: c.wr_id,
                                buf,
                            },
                        )
                        .unwrap();
                    }
                    None => done += 1,
                }
            }
        }
        if done == total && recvd == total {
            break;
        }
        assert!(sim.step(u64::MAX), "stalled at {done}/{recvd}");
    }
    let (a0, d0) = before.unwrap();
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let msgs = done - d0;
    eprintln!("{allocs} allocations over the last {msgs} messages");
    assert!(allocs <= 64, "{allocs} allocations over {msgs} messages");
}
