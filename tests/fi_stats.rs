//! Live counters through the real libfabric core: the stats page of a
//! running endpoint read by `srd-stat` matches the messages and bytes
//! exchanged, per endpoint and per peer; FI_SRD_STATS=1 and FI_SRD_DUMP=1
//! print them at close; pages go away at close and dead processes' pages
//! are swept.

mod common;

use common::fab::*;
use common::stats::*;
use srd_fi::fi::stats;
use std::process::Command;
use std::time::Duration;

const ROLE: &str = "SRD_FI_STATS_CHILD";

/// Sizes across eager, medium and long-CTS.
const SIZES: [usize; 6] = [0, 1, 1000, 9000, 70_000, 300_000];

/// Sends every size `rounds` times from A to B (checking the bytes) and
/// returns (messages, bytes).
fn exchange(p: &Pair, rounds: usize) -> (u64, u64) {
    let (mut msgs, mut bytes) = (0u64, 0u64);
    for r in 0..rounds {
        for (k, &size) in SIZES.iter().enumerate() {
            let data = pattern(size, (r * 7 + k) as u8);
            let mut back = vec![0u8; size];
            assert_eq!(p.b.recv(&mut back, ADDR_UNSPEC, 1), 0);
            assert_eq!(p.a.send(&data, p.a.peer, 2), 0);
            let g = p.wait(1, 1, 30);
            assert_eq!((g[0][0].err, g[3][0].err, g[3][0].len), (0, 0, size));
            assert!(back == data, "bytes of {size}");
            msgs += 1;
            bytes += size as u64;
        }
    }
    (msgs, bytes)
}

#[test]
fn srd_stat_reads_the_live_counters() {
    let p = Pair::new(&Opts::rdm());
    let (pa, pb) = (page_of(&p.a.name), page_of(&p.b.name));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pa).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "page private to its user");
    let (msgs, bytes) = exchange(&p, 3);
    // B answers once so both directions have traffic.
    let mut one = [0u8; 5];
    assert_eq!(p.a.recv(&mut one, ADDR_UNSPEC, 3), 0);
    assert_eq!(p.b.send(b"hello", p.b.peer, 4), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 20, |g| g[1].len() == 1
        && g[2].len() == 1));
    assert_eq!(&one, b"hello");
    // Nothing drives progress from here on but the keepalive threads,
    // which publish.
    let idle = |s: &stats::Snapshot| ctr(s, "in_flight") == 0 && ctr(s, "rx_msgs") > 0;
    let a = wait_for(&pa, 20, || {}, |s| idle(s) && ctr(s, "tx_msgs") == msgs);
    let b = wait_for(&pb, 20, || {}, |s| idle(s) && ctr(s, "rx_msgs") == msgs);
    std::thread::sleep(Duration::from_millis(50));
    // srd-stat against this live process.
    let all = srd_stat_raw();
    let (ca, peers_a) = &all[&format!("ep{}", a.ep)];
    let (cb, peers_b) = &all[&format!("ep{}", b.ep)];
    assert_eq!((ca["tx_msgs"], ca["tx_msg_bytes"]), (msgs, bytes));
    assert_eq!((cb["rx_msgs"], cb["rx_msg_bytes"]), (msgs, bytes));
    assert_eq!((ca["rx_msgs"], ca["rx_msg_bytes"]), (1, 5));
    assert_eq!((cb["tx_msgs"], cb["tx_msg_bytes"]), (1, 5));
    // Every RDM datagram A sent reached B exactly once, and back.
    assert_eq!(ca["tx_pkts"], cb["rx_pkts"]);
    assert_eq!(cb["tx_pkts"], ca["rx_pkts"]);
    assert_eq!(ca["tx_bytes"], cb["rx_bytes"]);
    // Message bytes travel in datagrams, or (same host, large) as one
    // cross-memory copy the receiver makes.
    assert!(ca["tx_pkts"] >= msgs && ca["tx_bytes"] + cb["cma_bytes"] >= bytes);
    // The same numbers in the per-peer rows (A's AV entry for B, B's for A).
    let pa_b = |f: &str| peers_a[&format!("{} {f}", p.a.peer)];
    let pb_a = |f: &str| peers_b[&format!("{} {f}", p.b.peer)];
    assert_eq!((pa_b("tx_msgs"), pa_b("tx_msg_bytes")), (msgs, bytes));
    assert_eq!((pb_a("rx_msgs"), pb_a("rx_msg_bytes")), (msgs, bytes));
    assert_eq!(pa_b("tx_pkts"), ca["tx_pkts"]);
    assert_eq!(pb_a("rx_pkts"), cb["rx_pkts"]);
    // No drop of any kind on a clean exchange.
    for (n, v) in ca.iter().chain(cb.iter()) {
        if n.starts_with("drop_") || n.starts_with("rma_") {
            assert_eq!(*v, 0, "{n}");
        }
    }
    // The resource dump: one QP, the peer with its path and state.
    let out = Command::new(env!("CARGO_BIN_EXE_srd-stat"))
        .args(["--dump", &std::process::id().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("resources: qps 1"), "{text}");
    let shm = srd_fi::fi::params::Params::from_env().shm;
    let path = if shm { " shm " } else { " udp " };
    assert!(
        text.lines().any(|l| l.contains(path) && l.contains(" up ")),
        "a peer row with path and state: {text}"
    );
    drop(p);
    assert!(!pa.exists() && !pb.exists(), "pages unlinked at close");
}

/// Child: one exchange, then close with FI_SRD_STATS=1 and FI_SRD_DUMP=1.
#[test]
fn child_exchange_and_close() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let p = Pair::new(&Opts::rdm());
    let (msgs, bytes) = exchange(&p, 1);
    drop(p);
    println!("\nEXPECT {msgs} {bytes}");
}

#[test]
fn stats_and_dump_print_at_close() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_exchange_and_close",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .env("FI_SRD_STATS", "1")
        .env("FI_SRD_DUMP", "1")
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{so}\n{se}");
    let exp: Vec<u64> = so
        .lines()
        .find_map(|l| l.strip_prefix("EXPECT "))
        .expect("child expectations")
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let (msgs, bytes) = (exp[0], exp[1]);
    // One FI_SRD_STATS line per endpoint, the sender's and the receiver's.
    let lines: Vec<&str> = se.lines().filter(|l| l.starts_with("srd rdm ")).collect();
    assert_eq!(lines.len(), 2, "{se}");
    let has = |l: &str, kv: String| l.split(' ').any(|w| w == kv);
    assert!(
        lines
            .iter()
            .any(|l| has(l, format!("tx_msgs={msgs}")) && has(l, format!("tx_msg_bytes={bytes}"))),
        "{se}"
    );
    assert!(
        lines
            .iter()
            .any(|l| has(l, format!("rx_msgs={msgs}")) && has(l, format!("rx_msg_bytes={bytes}"))),
        "{se}"
    );
    // FI_SRD_DUMP: resources and the peer table of both endpoints.
    assert_eq!(se.matches("resources: qps 1 ").count(), 2, "{se}");
    assert!(se.contains("fi_addr path"), "{se}");
}

#[test]
fn pages_of_dead_processes_are_swept() {
    // A pid that is gone: a child that already exited.
    let mut c = Command::new("true").spawn().unwrap();
    let dead = c.id();
    c.wait().unwrap();
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let path = format!("/dev/shm/srd-stats-{uid}-{dead}-0");
    std::fs::write(&path, vec![0u8; 8]).unwrap();
    assert!(std::path::Path::new(&path).exists());
    stats::sweep();
    assert!(!std::path::Path::new(&path).exists(), "stale page swept");
    // srd-stat says so for a pid without pages.
    let out = Command::new(env!("CARGO_BIN_EXE_srd-stat"))
        .arg(dead.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// While every peer it knows has a ring, an endpoint reads its UDP sockets
/// about once a millisecond, not on every poll: ranks that share a core
/// would otherwise pay a system call on every turn.
#[test]
fn an_endpoint_whose_peers_all_have_rings_seldom_reads_udp() {
    let p = Pair::new(&Opts::rdm());
    let (msgs, _) = exchange(&p, 1);
    assert_eq!(msgs, SIZES.len() as u64);
    let page = page_of(&p.a.name);
    let calls = || ctr(&stats::read(&page).expect("page"), "udp_recv_calls");
    let t0 = std::time::Instant::now();
    let before = calls();
    let _ = p.drain(200);
    let after = calls();
    // The page may be a publishing period old at either read.
    let ms = t0.elapsed().as_millis() as u64 + 2 * stats::PUBLISH_EVERY_NS / 1_000_000;
    // A poll reads each of the endpoint's sockets at most once or twice;
    // every 20 µs this would be thousands.
    assert!(after >= before);
    assert!(
        after - before <= 8 * (ms + 2),
        "{} UDP receive calls in {ms} ms of polling",
        after - before
    );
}
