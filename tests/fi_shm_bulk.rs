//! Same-host bulk transfers between two processes through the real
//! libfabric core, with cross-memory attach on (long-read protocol,
//! single-copy RMA) and off (FI_SRD_SHM_CMA=0: everything through the
//! shared-memory rings). The test starts two children of its own binary,
//! a server and a client, in the mode under test; the client ping-pongs
//! tagged and untagged messages of 1 B to 8 MiB with data checks, then
//! fi_write/fi_read 1 MiB against a region of the server. The children's
//! FI_SRD_STATS lines show which path carried the data.

mod common;

use common::child::{self, Kid};
use common::fab::*;
use common::*;
use srd_fi::bindings as b;
use std::time::Instant;

const ROLE: &str = "SRD_SHM_BULK_ROLE";
const SIZES: [usize; 10] = [
    1,
    4095,
    32_767,
    32_768,
    65_536,
    100_003,
    1 << 20,
    (1 << 20) + 1,
    4 << 20,
    8 << 20,
];
const RMA_LEN: usize = 1 << 20;
/// FI_SRD_SHM_CMA_MIN for the children (SIZES straddle it).
const CMA_MIN: usize = 32_768;
const KEY: u64 = 0x5eed;
const SECS: u64 = 60;

fn seed(size: usize, tagged: bool, back: bool) -> u8 {
    (size as u8).wrapping_mul(13) ^ if tagged { 0x40 } else { 0 } ^ if back { 0x80 } else { 0 }
}

fn recv_one(n: &Node, size: usize, tagged: bool, tag: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    let rc = if tagged {
        n.s.trecv(&mut buf, ADDR_UNSPEC, tag, 0, 1)
    } else {
        n.s.recv(&mut buf, ADDR_UNSPEC, 1)
    };
    assert_eq!(rc, 0, "post receive");
    let got = n.wait(0, 1, SECS);
    let e = &got[1][0];
    assert_eq!((e.err, e.len), (0, size), "{e:?}");
    if tagged {
        assert_eq!(e.tag, tag);
    }
    assert_eq!(e.src, n.s.peer, "source fi_addr");
    buf
}

fn send_one(n: &Node, data: &[u8], tagged: bool, tag: u64) {
    let rc = if tagged {
        n.s.tsend(data, n.s.peer, tag, 2)
    } else {
        n.s.send(data, n.s.peer, 2)
    };
    assert_eq!(rc, 0, "post send");
    let got = n.wait(1, 0, SECS);
    assert_eq!(got[0][0].err, 0, "{:?}", got[0][0]);
}

fn read_line() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    line.trim().to_string()
}

/// The server: echoes every message, exposes a region for RMA, checks
/// what the client wrote into it.
fn server() {
    let mut n = Node::peer(0);
    let mut region = vec![0xeeu8; RMA_LEN + 128];
    let mr = mr_reg(n.dom, &mut region, REMOTE_RW, KEY);
    n.announce();
    n.s.peer = av_insert(n.s.av, &unhex(&read_line()));
    for tagged in [true, false] {
        for size in SIZES {
            let tag = size as u64;
            let got = recv_one(&n, size, tagged, tag);
            assert!(
                got == pattern(size, seed(size, tagged, false)),
                "server: bad data at {size} tagged {tagged}"
            );
            send_one(&n, &pattern(size, seed(size, tagged, true)), tagged, tag);
        }
    }
    // The client wrote, read back, and says so.
    let msg = recv_one(&n, 1, true, 0xdead);
    assert_eq!(msg, [1]);
    assert!(
        region[64..64 + RMA_LEN] == pattern(RMA_LEN, 0x33)[..],
        "server: fi_write data"
    );
    assert!(
        region[..64]
            .iter()
            .chain(&region[64 + RMA_LEN..])
            .all(|&x| x == 0xee),
        "server: guard bytes"
    );
    send_one(&n, &[2], true, 0xdead);
    assert_eq!(close(fid_of(mr)), 0, "close MR");
    drop(n);
    println!("SERVER-DONE");
}

fn client() {
    let mut n = Node::peer(0);
    n.s.peer = av_insert(n.s.av, &unhex(&read_line()));
    n.announce();
    for tagged in [true, false] {
        for size in SIZES {
            let tag = size as u64;
            let ping = pattern(size, seed(size, tagged, false));
            let mut pong = vec![0u8; size];
            let rc = if tagged {
                n.s.trecv(&mut pong, ADDR_UNSPEC, tag, 0, 1)
            } else {
                n.s.recv(&mut pong, ADDR_UNSPEC, 1)
            };
            assert_eq!(rc, 0);
            let rc = if tagged {
                n.s.tsend(&ping, n.s.peer, tag, 2)
            } else {
                n.s.send(&ping, n.s.peer, 2)
            };
            assert_eq!(rc, 0);
            let got = n.wait(1, 1, SECS);
            assert_eq!(got[0][0].err, 0, "ping {size}: {:?}", got[0][0]);
            let e = &got[1][0];
            assert_eq!((e.err, e.len, e.src), (0, size, n.s.peer), "pong {e:?}");
            assert!(
                pong == pattern(size, seed(size, tagged, true)),
                "client: bad pong at {size} tagged {tagged}"
            );
        }
    }
    let data = pattern(RMA_LEN, 0x33);
    assert_eq!(n.s.write(&data, 64, KEY, 3), 0, "fi_write");
    let g = n.wait(1, 0, SECS);
    assert_eq!(g[0][0].err, 0, "write: {:?}", g[0][0]);
    assert_eq!(
        g[0][0].flags & (b::FI_RMA | b::FI_WRITE),
        b::FI_RMA | b::FI_WRITE
    );
    let mut back = vec![0u8; RMA_LEN];
    assert_eq!(n.s.read(&mut back, 64, KEY, 4), 0, "fi_read");
    let g = n.wait(1, 0, SECS);
    assert_eq!(g[0][0].err, 0, "read: {:?}", g[0][0]);
    assert!(back == data, "client: fi_read data");
    send_one(&n, &[1], true, 0xdead);
    assert_eq!(recv_one(&n, 1, true, 0xdead), [2]);
    drop(n);
    println!("CLIENT-DONE");
}

#[test]
#[ignore = "a child process's role: the multi-process tests run it (with --ignored)"]
fn child_role() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => server(),
        Ok("client") => client(),
        _ => {} // only meaningful when started by a parent test
    }
}

fn spawn(role: &str, cma: bool) -> Kid {
    let min = CMA_MIN.to_string();
    let env = [
        (ROLE, role),
        ("FI_SRD_SHM_CMA", if cma { "1" } else { "0" }),
        ("FI_SRD_SHM", "1"),
        ("FI_SRD_SHM_CMA_MIN", &min),
        ("FI_SRD_STATS", "1"),
    ];
    child::spawn("child_role", &env, true)
}

/// Waits for the child's exit; returns (success, its stderr, its stdout).
fn finish(mut k: Kid) -> (bool, String, String) {
    let status = k.wait_exit(120);
    (
        status.is_some_and(|s| s.success()),
        k.stderr(),
        k.rest().join("\n"),
    )
}

/// The number after `key` in an FI_SRD_STATS line.
fn stat(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    text[i..].split_whitespace().next()?.parse().ok()
}

fn run(cma: bool) {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let t = Instant::now();
    let mut server = spawn("server", cma);
    let saddr = server.addr();
    let mut client = spawn("client", cma);
    client.say(&saddr);
    let caddr = client.addr();
    server.say(&caddr);
    let (cok, cerr, cout) = finish(client);
    let (sok, serr, sout) = finish(server);
    assert!(
        cok && cout.contains("CLIENT-DONE"),
        "client failed:\n{cerr}"
    );
    assert!(
        sok && sout.contains("SERVER-DONE"),
        "server failed:\n{serr}"
    );
    let copies = |e: &str| stat(e, "cma copies ").expect("stats line");
    let shm = |e: &str| stat(e, "shm sent ").expect("shm stats");
    assert!(
        shm(&cerr) > 0 && shm(&serr) > 0,
        "same host: shm carried it"
    );
    let udp = |e: &str| stat(e, "srd data tx ").unwrap_or(0);
    assert_eq!(udp(&cerr) + udp(&serr), 0, "nothing over UDP");
    if cma {
        // The server read the client's sends ≥ threshold and served the
        // RMA; the client read the server's echoes.
        let big = SIZES.iter().filter(|&&s| s >= CMA_MIN).count() as u64 * 2;
        assert_eq!(copies(&serr), big + 2, "server copies:\n{serr}");
        assert_eq!(copies(&cerr), big, "client copies:\n{cerr}");
    } else {
        assert_eq!(copies(&serr) + copies(&cerr), 0, "CMA off");
    }
    eprintln!("shm bulk (cma {cma}) took {:?}", t.elapsed());
}

#[test]
fn bulk_between_processes_with_cma() {
    run(true);
}

#[test]
fn bulk_between_processes_through_the_rings() {
    run(false);
}
