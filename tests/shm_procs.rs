//! Multi-process tests of the shared-memory backend: the test binary runs
//! itself again (`SHM_ROLE`) for the other ranks. Every wait is bounded.

mod shm_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shm_common::{Kid, Rng, check, fill, fmt_token, hear, parse_token, role, say};
use srd_fi::io::shm::{CmaMode, ShmConfig, ShmEndpoint, ShmError, ShmPeer, ShmToken};

const LIMIT: Duration = Duration::from_secs(60);

fn open(slots: usize, slot_size: usize, cma: CmaMode) -> ShmEndpoint {
    ShmEndpoint::open(ShmConfig {
        slots,
        slot_size,
        cma,
    })
    .expect("open")
}

fn env_token(key: &str) -> ShmToken {
    parse_token(&std::env::var(key).expect(key))
}

/// Sends with retry on Full, draining our own ring meanwhile via `rx`.
fn send_retry(ep: &mut ShmEndpoint, p: ShmPeer, d: &[u8], mut rx: impl FnMut(&mut ShmEndpoint)) {
    let t0 = Instant::now();
    loop {
        match ep.send(p, d) {
            Ok(()) => return,
            Err(ShmError::Full) => {
                rx(ep);
                std::thread::yield_now();
            }
            Err(e) => panic!("send: {e}"),
        }
        assert!(t0.elapsed() < LIMIT, "send stalled");
    }
}

// ---------------------------------------------------------------------------
// Two processes, 100 000 packets each way, random sizes, contents checked.

const EXCHANGE: u64 = 100_000;
const EX_SLOT: usize = 8192;

/// Sends EXCHANGE packets to `p` while receiving EXCHANGE from it; returns
/// the number of bad packets received.
fn exchange(ep: &mut ShmEndpoint, p: ShmPeer, me: u8, them: u8, peer_tok: ShmToken) -> u64 {
    let mut rng_tx = Rng(0x1000 + me as u64);
    let mut rng_rx = Rng(0x1000 + them as u64);
    let mut buf = vec![0u8; EX_SLOT];
    let (mut sent, mut got, mut bad) = (0u64, 0u64, 0u64);
    let mut pending: Option<usize> = None;
    let t0 = Instant::now();
    while sent < EXCHANGE || got < EXCHANGE {
        assert!(
            t0.elapsed() < LIMIT,
            "exchange stalled: sent {sent} got {got}"
        );
        if sent < EXCHANGE {
            let len = *pending.get_or_insert_with(|| {
                let len = (rng_tx.next() % (EX_SLOT as u64 + 1)) as usize;
                fill(&mut buf[..len], me, sent);
                len
            });
            match ep.send(p, &buf[..len]) {
                Ok(()) => {
                    sent += 1;
                    pending = None;
                }
                Err(ShmError::Full) => {}
                Err(e) => panic!("send: {e}"),
            }
        }
        let n = ep.recv(|src, d| {
            let want = (rng_rx.next() % (EX_SLOT as u64 + 1)) as usize;
            if src != peer_tok || d.len() != want || !check(d, them, got) {
                bad += 1;
            }
            got += 1;
        });
        if n == 0 && pending.is_some() {
            // No progress either way: let the peer run (2 shared cores).
            std::thread::yield_now();
        }
    }
    bad
}

#[test]
fn two_processes_exchange_100k_random_sizes() {
    if role().as_deref() == Some("exchange") {
        let mut ep = open(64, EX_SLOT, CmaMode::Off);
        say("token", &fmt_token(ep.token()));
        let parent = env_token("PARENT");
        let p = ep.connect(parent).unwrap();
        let bad = exchange(&mut ep, p, 2, 1, parent);
        assert_eq!(bad, 0, "child saw bad packets");
        say("done", &format!("{}", ep.stats().full));
        return;
    }
    let mut ep = open(64, EX_SLOT, CmaMode::Off);
    let mut kid = Kid::spawn(
        "two_processes_exchange_100k_random_sizes",
        "exchange",
        &[("PARENT", fmt_token(ep.token()))],
    );
    let kt = kid.token();
    let p = ep.connect(kt).unwrap();
    let bad = exchange(&mut ep, p, 1, 2, kt);
    assert_eq!(bad, 0, "parent saw bad packets");
    assert_eq!(ep.stats().sent, EXCHANGE);
    assert_eq!(ep.stats().received, EXCHANGE);
    kid.expect("done");
    kid.wait_ok(LIMIT);
}

// ---------------------------------------------------------------------------
// Four sender processes into one receiver: per-sender order and contents.

const MPSC_PER: u64 = 25_000;

#[test]
fn four_processes_into_one_ring() {
    if role().as_deref() == Some("mpsc") {
        let me: u8 = std::env::var("SENDER").unwrap().parse().unwrap();
        let mut ep = open(2, 64, CmaMode::Off);
        let p = ep.connect(env_token("PARENT")).unwrap();
        say("token", &fmt_token(ep.token()));
        assert_eq!(hear(), "go");
        let mut rng = Rng(me as u64 + 99);
        let mut buf = [0u8; 1024];
        for seq in 0..MPSC_PER {
            let len = 9 + (rng.next() % 1016) as usize;
            fill(&mut buf[..len], me, seq);
            send_retry(&mut ep, p, &buf[..len], |_| {});
        }
        return;
    }
    let mut rx = open(64, 1024, CmaMode::Off);
    let mut kids: Vec<Kid> = (0..4u8)
        .map(|s| {
            Kid::spawn(
                "four_processes_into_one_ring",
                "mpsc",
                &[("PARENT", fmt_token(rx.token())), ("SENDER", s.to_string())],
            )
        })
        .collect();
    let toks: Vec<ShmToken> = kids.iter_mut().map(|k| k.token()).collect();
    for k in &mut kids {
        k.tell("go");
    }
    let mut next: HashMap<ShmToken, (u8, u64)> = toks
        .iter()
        .enumerate()
        .map(|(i, t)| (*t, (i as u8, 0)))
        .collect();
    let (mut total, mut bad, mut unknown) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    while total < 4 * MPSC_PER {
        assert!(t0.elapsed() < LIMIT, "receiver stalled at {total}");
        let n = rx.recv(|src, d| {
            let Some((s, seq)) = next.get_mut(&src) else {
                unknown += 1;
                return;
            };
            if !check(d, *s, *seq) {
                bad += 1;
            }
            *seq += 1;
        });
        total += n as u64;
        if n == 0 {
            std::thread::yield_now();
        }
    }
    assert_eq!((bad, unknown), (0, 0));
    for t in &toks {
        assert_eq!(next[t].1, MPSC_PER, "per-sender count");
    }
    for k in &mut kids {
        k.wait_ok(LIMIT);
    }
}

// ---------------------------------------------------------------------------
// kill -9: PeerGone for its senders (the sweep is tested in shm_kill.rs).

fn sleeper_role() {
    let ep = open(8, 256, CmaMode::Off);
    say("token", &fmt_token(ep.token()));
    say("name", &ep.name());
    // Wait for the parent's SIGKILL (bounded: exit after the limit).
    let _ = hear();
    std::thread::sleep(LIMIT);
}

#[test]
fn peer_gone_after_kill9() {
    if role().as_deref() == Some("sleeper") {
        return sleeper_role();
    }
    let mut kid = Kid::spawn("peer_gone_after_kill9", "sleeper", &[]);
    let kt = kid.token();
    let mut ep = open(8, 256, CmaMode::Off);
    let p = ep.connect(kt).unwrap();
    ep.send(p, b"before").unwrap();
    assert!(ep.peer_alive(p));
    kid.kill9();
    // The dead peer's ring (8 slots) fills; the first Full checks liveness.
    let mut outcome = Ok(());
    for _ in 0..9 {
        outcome = ep.send(p, b"after");
        if outcome.is_err() {
            break;
        }
    }
    assert_eq!(outcome, Err(ShmError::PeerGone));
    assert_eq!(ep.send(p, b"again"), Err(ShmError::PeerGone));
    assert!(!ep.peer_alive(p));
    assert!(ep.connect(kt).is_err());
}

// ---------------------------------------------------------------------------
// CMA across processes, and the forced fallback through the ring.

const CMA_LEN: usize = 3 << 20;

fn pattern(i: usize, k: u8) -> u8 {
    (i as u8)
        .wrapping_mul(13)
        .wrapping_add(k)
        .wrapping_add((i >> 12) as u8)
}

fn patterned(k: u8) -> Vec<u8> {
    (0..CMA_LEN).map(|i| pattern(i, k)).collect()
}

#[test]
fn cma_read_and_write_across_processes() {
    if role().as_deref() == Some("cma") {
        let ep = open(8, 256, CmaMode::Auto);
        let src = patterned(1);
        let dst = vec![0u8; CMA_LEN];
        say("token", &fmt_token(ep.token()));
        say(
            "bufs",
            &format!("{} {}", src.as_ptr() as usize, dst.as_ptr() as usize),
        );
        assert_eq!(hear(), "check");
        let ok = dst == patterned(2);
        say("result", if ok { "ok" } else { "bad" });
        drop(ep);
        return;
    }
    let mut ep = open(8, 256, CmaMode::Auto);
    let mut kid = Kid::spawn("cma_read_and_write_across_processes", "cma", &[]);
    let kt = kid.token();
    let bufs = kid.expect("bufs");
    let (src_addr, dst_addr): (usize, usize) = (bufs[0].parse().unwrap(), bufs[1].parse().unwrap());
    let p = ep.connect(kt).unwrap();
    if !ep.peer_cma(p) {
        eprintln!("CMA not permitted on this system; skipping the CMA transfer checks");
        return;
    }
    let mut got = vec![0u8; CMA_LEN];
    ep.read_remote(p, src_addr, &mut got).unwrap();
    assert!(got == patterned(1), "read_remote contents");
    // A partial read at an offset.
    let mut part = vec![0u8; 1000];
    ep.read_remote(p, src_addr + 4097, &mut part).unwrap();
    assert!(
        part.iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(i + 4097, 1))
    );
    // Out of the peer's mappings: an error, not a crash.
    assert!(ep.read_remote(p, 8, &mut part).is_err());
    let out = patterned(2);
    ep.write_remote(p, dst_addr, &out).unwrap();
    kid.tell("check");
    assert_eq!(kid.expect("result"), ["ok"]);
    kid.wait_ok(LIMIT);
}

#[test]
fn forced_fallback_moves_bulk_through_the_ring() {
    if role().as_deref() == Some("fallback") {
        // The sender keeps CMA on: the receiver's choice alone turns it off.
        let mut ep = open(8, 256, CmaMode::Auto);
        let p = ep.connect(env_token("PARENT")).unwrap();
        say("token", &fmt_token(ep.token()));
        assert!(!ep.peer_cma(p), "peer forced CMA off");
        let data = patterned(3);
        let chunk = ep.peer_slot_size(p);
        for c in data.chunks(chunk) {
            send_retry(&mut ep, p, c, |_| {});
        }
        return;
    }
    let mut ep = open(16, 64 << 10, CmaMode::Off);
    assert!(!ep.cma_enabled());
    let mut kid = Kid::spawn(
        "forced_fallback_moves_bulk_through_the_ring",
        "fallback",
        &[("PARENT", fmt_token(ep.token()))],
    );
    let kt = kid.token();
    let p = ep.connect(kt).unwrap();
    let mut probe = [0u8; 16];
    let e = ep.read_remote(p, 4096, &mut probe).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    assert_eq!(
        ep.write_remote(p, 4096, &probe).unwrap_err().kind(),
        std::io::ErrorKind::Unsupported
    );
    let mut got = Vec::with_capacity(CMA_LEN);
    let t0 = Instant::now();
    while got.len() < CMA_LEN {
        assert!(t0.elapsed() < LIMIT, "fallback stalled at {}", got.len());
        if ep.recv(|src, d| {
            assert_eq!(src, kt);
            got.extend_from_slice(d);
        }) == 0
        {
            std::thread::yield_now();
        }
    }
    assert_eq!(got.len(), CMA_LEN);
    assert!(got == patterned(3), "ring copy contents");
    kid.wait_ok(LIMIT);
}

// ---------------------------------------------------------------------------
// A sender that dies between claiming a slot and publishing it.

/// Child: claims slot 0 of the ring in $SEG the way a producer does (CAS on
/// the enqueue counter at offset 128, its pid into the slot at 256 + 12),
/// then dies by SIGKILL before publishing.
fn claim_and_die() -> ! {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
    let path = std::ffi::CString::new(std::env::var("SEG").unwrap()).unwrap();
    // SAFETY: plain open/mmap of a segment file; the offsets are the
    // documented layout (header 256 B, enqueue counter at 128, slot 0 at
    // 256 with the writer pid at +12), 8- and 4-aligned in a page-aligned map.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDWR);
        assert!(fd >= 0);
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let base = p as *mut u8;
        let enq = &*(base.add(128) as *const AtomicU64);
        enq.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed)
            .expect("fresh ring");
        (*(base.add(256 + 12) as *const AtomicU32)).store(std::process::id(), Ordering::Relaxed);
        libc::raise(libc::SIGKILL);
    }
    unreachable!()
}

#[test]
fn slot_of_a_sender_killed_mid_push_is_skipped() {
    if role().as_deref() == Some("claimer") {
        claim_and_die();
    }
    let mut rx = open(8, 256, CmaMode::Off);
    let mut kid = Kid::spawn(
        "slot_of_a_sender_killed_mid_push_is_skipped",
        "claimer",
        &[("SEG", format!("/dev/shm/{}", rx.name()))],
    );
    let t0 = Instant::now();
    while kid.child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < LIMIT);
        std::thread::sleep(Duration::from_millis(2));
    }
    // A live sender's packets land behind the abandoned slot.
    let mut tx = open(8, 256, CmaMode::Off);
    let p = tx.connect(rx.token()).unwrap();
    for i in 0..3u8 {
        tx.send(p, &[i; 5]).unwrap();
    }
    let mut got = Vec::new();
    let mut polls = 0u32;
    while got.len() < 3 {
        assert!(
            t0.elapsed() < LIMIT,
            "receiver stuck behind the dead sender's slot"
        );
        rx.recv(|src, d| got.push((src, d.to_vec())));
        polls += 1;
    }
    assert!(
        polls >= 1024,
        "skipped only after a run of empty polls ({polls})"
    );
    assert_eq!(rx.stats().abandoned, 1);
    assert_eq!(
        got,
        (0..3u8)
            .map(|i| (tx.token(), vec![i; 5]))
            .collect::<Vec<_>>()
    );
    // The ring keeps working across the skipped slot's reuse.
    for round in 0..40u8 {
        tx.send(p, &[round]).unwrap();
        let mut one = Vec::new();
        rx.recv(|_, d| one.push(d[0]));
        assert_eq!(one, [round]);
    }
}
