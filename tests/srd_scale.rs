//! Scale in the simulator (CI sizes): all-to-all among 128 SRD devices and
//! a 100:1 incast over a switched network with a shared bottleneck (link
//! rate, bounded switch queues with tail drop). Asserts exactly-once intact
//! delivery, goodput near link capacity (no congestion collapse), fairness
//! between incast senders, bounded device queues and bounded memory per
//! idle peer. Full sizes (1024 devices, 1000:1) run in benches/srd_scale.rs.
//! Every time here is virtual (deterministic), never wall clock.

#[path = "common/scale.rs"]
mod scale;

use scale::{Pattern, Workload};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);

fn isize_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(isize_of(l.size()), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(isize_of(l.size()), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(isize_of(n) - isize_of(l.size()), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

fn check_common(r: &scale::Report, w: &Workload) {
    println!("{}", r.row());
    // Device queues stay within their configured bounds.
    assert!(r.max_tx_buffers <= w.dev.tx_buffers, "{r:?}");
    assert!(r.max_dev_in_flight <= w.dev.tx_buffers, "{r:?}");
    assert!(r.max_port_queue <= w.link.queue_bytes, "{r:?}");
    assert_eq!(r.duplicates_rx, 0);
}

/// 128 devices, each sending 2 × 4 KiB to each of the 127 others (32 512
/// messages), default device configuration.
#[test]
fn all_to_all_128() {
    let mut w = Workload::new(128, Pattern::AllToAll, 2, 4096);
    w.live_bytes = Some(live);
    let r = scale::run(&w);
    check_common(&r, &w);
    assert!(r.goodput_frac() >= 0.8, "goodput {:.3}", r.goodput_frac());
    assert!(r.jain >= 0.9, "Jain {}", r.jain);
    // After the traffic a device holds little per peer it talked to: its
    // peer entry and address handle, no send ring (given back when idle;
    // up to 16 spare rings, ~14 KiB each, stay device-wide and are counted
    // here too: ~1.8 KiB per peer at 127 peers).
    let per_peer = r.bytes_per_idle_peer.expect("measured");
    assert!(per_peer <= 3072.0, "{per_peer} bytes per idle peer");
}

/// 10:1 and 100:1 incast, 64 × 4 KiB per sender, with delay-based
/// congestion control (`scale::datacenter`): goodput stays near the
/// receiver's link rate as senders grow tenfold, senders share it fairly,
/// and the receiver holds little per idle sender.
#[test]
fn incast_100_to_1() {
    for senders in [10usize, 100] {
        let mut w = Workload::new(senders + 1, Pattern::Incast { senders }, 64, 4096);
        w.dev = scale::datacenter(w.dev);
        w.live_bytes = Some(live);
        let r = scale::run(&w);
        check_common(&r, &w);
        assert!(
            r.goodput_frac() >= 0.85,
            "{senders}:1 goodput {:.3}",
            r.goodput_frac()
        );
        assert!(r.jain >= 0.8, "{senders}:1 Jain {}", r.jain);
        // The receiver never sent: peer entry and receive window only.
        let per_peer = r.bytes_per_idle_peer.expect("measured");
        assert!(per_peer <= 2048.0, "{per_peer} bytes per idle peer");
    }
}
