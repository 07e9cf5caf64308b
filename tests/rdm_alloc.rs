//! The steady state allocates nothing (DESIGN §9): after a warm-up, eager,
//! medium and long-CTS messages between two endpoints run through posting,
//! packet handling, matching and completions without one heap allocation.

use srd_fi::mem::UserIov;
use srd_fi::rdm::{Config, Endpoint, OpFlags};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Wire {
    bufs: Vec<Vec<u8>>,
    meta: Vec<(usize, u64)>,
}

fn pump(w: &mut Wire, from: &mut Endpoint, to: &mut Endpoint, src: u32) -> usize {
    let mut n = 0;
    while n < w.bufs.len() {
        match from.poll_transmit(0, &mut w.bufs[n]) {
            Some(t) => {
                w.meta[n] = (t.len, t.token);
                n += 1;
            }
            None => break,
        }
    }
    // Deliver in reverse: packets arrive out of order.
    for i in (0..n).rev() {
        let (len, tok) = w.meta[i];
        to.handle_packet(0, Some(src), &w.bufs[i][..len]);
        from.on_send_complete(tok, Ok(()));
    }
    n
}

fn round(
    a: &mut Endpoint,
    b: &mut Endpoint,
    pb: u32,
    pa: u32,
    w: &mut Wire,
    tx: &mut [u8],
    rx: &mut [u8],
) {
    for (k, len) in [0usize, 100, 30_000, 200_000].into_iter().enumerate() {
        // SAFETY: tx and rx outlive the operations, which complete inside
        // this loop iteration, and are not touched meanwhile.
        let (siov, riov) = unsafe {
            (
                UserIov::from_raw([(tx.as_mut_ptr(), len)]),
                UserIov::from_raw([(rx.as_mut_ptr(), len)]),
            )
        };
        // Half the messages unexpected (receive posted after arrival).
        let early = k % 2 == 0;
        if early {
            b.trecv(0, riov, None, k as u64, 0, 1, OpFlags::empty())
                .unwrap();
        }
        a.tsend(0, pb, siov, k as u64, Some(7), 2, OpFlags::empty())
            .unwrap();
        let mut posted = early;
        let mut riov = None;
        if !posted {
            // SAFETY: as above.
            riov = Some(unsafe { UserIov::from_raw([(rx.as_mut_ptr(), len)]) });
        }
        let mut got = 0;
        for _ in 0..10_000 {
            let moved = pump(w, a, b, pa) + pump(w, b, a, pb);
            if !posted {
                b.trecv(
                    0,
                    riov.take().unwrap(),
                    None,
                    k as u64,
                    0,
                    1,
                    OpFlags::empty(),
                )
                .unwrap();
                posted = true;
            }
            while let Some(c) = b.poll_completion() {
                assert!(c.err.is_none());
                got += 1;
            }
            while let Some(c) = a.poll_completion() {
                assert!(c.err.is_none());
                got += 1;
            }
            if got == 2 && moved == 0 {
                break;
            }
        }
        assert_eq!(got, 2, "len {len}");
        assert_eq!(rx[..len], tx[..len]);
    }
}

#[test]
fn steady_state_allocates_nothing() {
    let cfg = |a: &[u8]| Config {
        local_addr: a.to_vec(),
        cts_window: 64 * 1024,
        ..Config::default()
    };
    let mut a = Endpoint::new(cfg(b"a"));
    let mut b = Endpoint::new(cfg(b"b"));
    let pb = a.insert_peer(b"b").unwrap();
    let pa = b.insert_peer(b"a").unwrap();
    let mut w = Wire {
        bufs: (0..64).map(|_| vec![0u8; 8192]).collect(),
        meta: vec![(0, 0); 64],
    };
    let mut tx: Vec<u8> = (0..200_000).map(|i| (i * 7) as u8).collect();
    let mut rx = vec![0u8; 200_000];
    for _ in 0..3 {
        round(&mut a, &mut b, pb, pa, &mut w, &mut tx, &mut rx);
    }
    ARMED.store(true, Ordering::Relaxed);
    for _ in 0..20 {
        round(&mut a, &mut b, pb, pa, &mut w, &mut tx, &mut rx);
    }
    ARMED.store(false, Ordering::Relaxed);
    assert_eq!(
        ALLOCS.load(Ordering::Relaxed),
        0,
        "allocations in steady state"
    );
}
