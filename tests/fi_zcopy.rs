//! Zero-copy sends over UDP (FI_SRD_SHM=0, through the real libfabric
//! core): medium and long-CTS data packets go out of the sender's buffers
//! by iovec, the device holding a reference per packet until it is
//! acknowledged (`zc_refs` on the stats page). Every byte arrives at every
//! size; a peer that dies mid-burst fails the sends (or an RMA write) and
//! releases every reference; an endpoint closed mid-burst reports nothing
//! afterwards.

mod common;

use common::child;
use common::fab::*;
use common::stats::{ctr, page_of, wait_for, wait_reading};
use common::{close, fid_of};
use srd_fi::bindings as b;
use std::time::{Duration, Instant};

const ROLE: &str = "SRD_ZCOPY_ROLE";

/// Every test here runs over UDP, with a short peer timeout and no
/// keepalive thread (an endpoint the test does not progress answers
/// nothing), set before the provider loads.
fn setup() {
    common::env_once(&[
        ("FI_SRD_SHM", "0"),
        ("FI_SRD_PEER_TIMEOUT_MS", "1000"),
        ("FI_SRD_PROGRESS_INTERVAL_MS", "0"),
    ]);
}

/// Polls `s`'s CQs for `ms`, returning what showed up (tx, rx).
fn drain(s: &Side, ms: u64) -> [Vec<Cqe>; 2] {
    let mut got: [Vec<Cqe>; 2] = Default::default();
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        for (k, cq) in [s.txcq, s.rxcq].into_iter().enumerate() {
            while let Some(e) = poll_cq(cq) {
                got[k].push(e);
            }
        }
    }
    got
}

#[test]
fn every_size_arrives_whole_from_the_senders_buffers() {
    setup();
    let p = Pair::new(&Opts::rdm());
    let sizes = [
        1usize,
        4096,
        65_535,
        65_537,
        200_000,
        (1 << 20) + 7,
        8 << 20,
    ];
    for (k, &size) in sizes.iter().enumerate() {
        // Both directions: each side sends from its own buffers.
        let (ping, pong) = (pattern(size, k as u8), pattern(size, k as u8 ^ 0x5a));
        let (mut at_b, mut at_a) = (vec![0u8; size], vec![0u8; size]);
        assert_eq!(p.b.recv(&mut at_b, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.a.recv(&mut at_a, ADDR_UNSPEC, 2), 0);
        assert_eq!(p.a.send(&ping, p.a.peer, 3), 0);
        assert_eq!(p.b.send(&pong, p.b.peer, 4), 0);
        let mut got: [Vec<Cqe>; 4] = Default::default();
        let all = |g: &[Vec<Cqe>]| g.iter().all(|q| !q.is_empty());
        assert!(
            progress_until(&p.cqs(), &mut got, 60, all),
            "{size}: {got:?}"
        );
        for e in got.iter().flatten() {
            assert_eq!((e.err, e.len), (0, size), "{size}: {e:?}");
        }
        assert!(at_b == ping, "bytes at B, {size}");
        assert!(at_a == pong, "bytes at A, {size}");
    }
    // The large messages went by reference, and nothing is held now.
    let pa = page_of(&p.a.name);
    let s = wait_reading(&pa, 20, p.a.txcq, |s| {
        ctr(s, "zc_refs") == 0 && ctr(s, "zc_pkts") > 0
    });
    let big: usize = sizes.iter().filter(|&&n| n > 65_536).sum();
    assert!(
        ctr(&s, "zc_bytes") >= big as u64 / 2,
        "most bulk bytes by reference: {} of {big}",
        ctr(&s, "zc_bytes")
    );
    assert_eq!(ctr(&s, "udp_errors"), 0);
    eprintln!(
        "zc_pkts {} zc_gone {} retransmits {}",
        ctr(&s, "zc_pkts"),
        ctr(&s, "zc_gone"),
        ctr(&s, "retransmits")
    );
}

/// The victim: answers one exchange (so both know each other), then
/// receives a long message slowly (progress every 2 ms, no keepalive
/// thread) until it is killed mid-transfer.
/// The peer of the killed-mid-burst tests: says hello, then takes packets
/// slowly (a CQ poll every 2 ms) until it is killed. As the "send" role it
/// has a receive posted for the long message; as the "write" role it
/// exposes `LONG` bytes for remote writes under `WRITE_KEY`.
#[test]
#[ignore = "a child process's role: the multi-process tests run it (with --ignored)"]
fn victim_role() {
    let Some(role) = std::env::var_os(ROLE) else {
        return;
    };
    let mut n = Node::peer(0);
    let mut big = vec![0u8; LONG];
    let mr = (role == "write").then(|| mr_reg(n.dom, &mut big, b::FI_REMOTE_WRITE, WRITE_KEY));
    n.announce();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("peer line");
    n.s.peer = av_insert(n.s.av, &unhex(line.trim()));
    let mut buf = vec![0u8; 64];
    assert_eq!(n.s.recv(&mut buf, ADDR_UNSPEC, 1), 0);
    n.wait(0, 1, 30);
    assert_eq!(n.s.send(&buf, n.s.peer, 2), 0);
    n.wait(1, 0, 30);
    if mr.is_none() {
        assert_eq!(n.s.recv(&mut big, ADDR_UNSPEC, 3), 0);
    }
    println!("SLOW");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        poll_cq(n.s.rxcq);
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A long message (long-CTS: granted by the receiver as it takes data),
/// or a long write.
const LONG: usize = 64 << 20;
const WRITE_KEY: u64 = 0x77;

/// A CQ polled from another thread (the provider is FI_THREAD_SAFE).
struct Cq(*mut b::fid_cq);
// SAFETY: the CQ outlives the thread (joined before it is closed) and the
// provider serialises calls on it.
unsafe impl Send for Cq {}

/// A child killed when the test ends, whatever way.
struct Reaped(child::Kid);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

/// Starts the victim in `role`, says hello, has `start` begin a long
/// operation to it, kills it while the device holds references to the
/// operation's unacknowledged packets, and checks that the operation
/// fails with FI_EHOSTUNREACH, completes once, and that no reference is
/// left.
fn killed_mid_burst(role: &str, start: impl FnOnce(&Side, &[u8])) {
    let mut n = Node::peer(0);
    let mut kid = Reaped(child::spawn(
        "victim_role",
        &[
            (ROLE, role),
            ("FI_SRD_SHM", "0"),
            ("FI_SRD_PROGRESS_INTERVAL_MS", "0"),
        ],
        false,
    ));
    let kid = &mut kid.0;
    n.s.peer = av_insert(n.s.av, &unhex(&kid.addr()));
    kid.say(&hex(&n.s.name));
    let hello = pattern(64, 1);
    assert_eq!(n.s.send(&hello, n.s.peer, 1), 0);
    let mut back = vec![0u8; 64];
    assert_eq!(n.s.recv(&mut back, ADDR_UNSPEC, 2), 0);
    n.wait(1, 1, 30);
    // The victim prints once its reply completed, which takes our ack:
    // progress meanwhile (an ack asked for is owed a few µs, to ride on a
    // reply, and leaves only when we progress; with no keepalive thread a
    // blocked wait here left the victim retrying until it gave us up).
    kid.expect_progressing("SLOW", 30, || {
        poll_cq(n.s.txcq);
    });
    // The peer takes it slowly: the sender holds references to its
    // unacknowledged packets when the peer is killed.
    let long = pattern(LONG, 7);
    start(&n.s, &long);
    let page = page_of(&n.s.name);
    let held = wait_reading(&page, 30, n.s.txcq, |s| ctr(s, "zc_refs") > 0);
    eprintln!(
        "{role}: references held mid-burst: {}",
        ctr(&held, "zc_refs")
    );
    kid.child.kill().expect("SIGKILL the victim");
    kid.finish(10);
    // The operation fails; then no reference is left.
    let mut got: [Vec<Cqe>; 2] = Default::default();
    let ok = progress_until(&[n.s.txcq, n.s.rxcq], &mut got, 30, |g| !g[0].is_empty());
    assert!(ok, "{role}: the operation did not fail: {got:?}");
    assert_eq!(got[0].len(), 1);
    assert_eq!(got[0][0].err, b::FI_EHOSTUNREACH, "{role}: {:?}", got[0][0]);
    let s = wait_reading(&page, 10, n.s.txcq, |s| ctr(s, "zc_refs") == 0);
    assert!(ctr(&s, "zc_pkts") > 0, "{s:#?}");
    assert!(drain(&n.s, 100)[0].is_empty(), "nothing completes twice");
}

#[test]
fn a_peer_killed_mid_burst_fails_the_sends_and_releases_every_reference() {
    setup();
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    killed_mid_burst("send", |s, long| {
        assert_eq!(s.send(long, s.peer, 100), 0);
    });
}

#[test]
fn a_target_killed_mid_write_fails_the_write_and_releases_every_reference() {
    setup();
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    killed_mid_burst("write", |s, long| {
        assert_eq!(s.write(long, 0, WRITE_KEY, 100), 0);
    });
}

#[test]
fn an_endpoint_closed_mid_burst_completes_nothing_afterwards() {
    setup();
    let mut p = Pair::new(&Opts::rdm());
    // Handshake both ways first.
    let mut small = vec![0u8; 8];
    assert_eq!(p.b.recv(&mut small, ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(&pattern(8, 1), p.a.peer, 2), 0);
    p.wait(1, 1, 30);
    // B takes a long message slowly (progress every 2 ms), then stops:
    // A's packets in flight stay unacknowledged, held by reference.
    let long = pattern(LONG, 3);
    let mut at_b = vec![0u8; LONG];
    assert_eq!(p.b.recv(&mut at_b, ADDR_UNSPEC, 3), 0);
    assert_eq!(p.a.send(&long, p.a.peer, 4), 0);
    let pa = page_of(&p.a.name);
    let mut last_b = Instant::now();
    wait_for(
        &pa,
        20,
        || {
            poll_cq(p.a.txcq);
            if last_b.elapsed() > Duration::from_millis(2) {
                poll_cq(p.b.rxcq);
                last_b = Instant::now();
            }
        },
        |s| ctr(s, "zc_refs") > 0,
    );
    // fi_close with the send outstanding while B takes data at full speed
    // (another thread progresses it): the send may well finish during the
    // close, yet afterwards A's CQ stays empty and its buffer is the
    // application's again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b_rx = Cq(p.b.rxcq);
    let b_got = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let b_rx = b_rx;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += usize::from(poll_cq(b_rx.0).is_some());
            }
            n
        })
    };
    assert_eq!(close(fid_of(p.a.ep)), 0, "close ep");
    let t = Instant::now();
    let mut after = 0;
    while t.elapsed() < Duration::from_millis(300) {
        while poll_cq(p.a.txcq).is_some() {
            after += 1;
        }
    }
    assert_eq!(after, 0, "completions after fi_close");
    drop(long);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let got = b_got.join().unwrap();
    eprintln!("B completed {got} receives meanwhile");
    for f in [fid_of(p.a.txcq), fid_of(p.a.rxcq), fid_of(p.a.av)] {
        assert_eq!(close(f), 0, "close child");
    }
    p.a.closed = true;
    // B takes what reached it and goes on working.
    drain(&p.b, 100);
}
