//! FI_EP_RDM between two processes through the real libfabric core: the
//! test re-executes its own binary in a child role (selected by an
//! environment variable), exchanges endpoint names over the child's
//! stdin/stdout, and runs a tagged ping-pong with data checks.

mod common;

use common::fab::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ROLE: &str = "SRD_FI_TEST_CHILD";
const SIZES: [usize; 6] = [1, 4096, 65_535, 65_537, 1 << 20, 4 << 20];
const ITERS: usize = 3;

fn seed(size: usize, iter: usize, back: bool) -> u8 {
    (size as u8) ^ (iter as u8).wrapping_mul(31) ^ if back { 0x80 } else { 0 }
}

/// Receives one tagged message of `size` into a fresh buffer.
fn recv_one(n: &Node, size: usize, tag: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size];
    assert_eq!(n.s.trecv(&mut buf, ADDR_UNSPEC, tag, 0, 1), 0);
    let got = n.wait(0, 1, 30);
    let e = &got[1][0];
    assert_eq!((e.err, e.len, e.tag), (0, size, tag), "{e:?}");
    assert_eq!(e.src, n.s.peer, "source fi_addr");
    buf
}

fn send_one(n: &Node, data: &[u8], tag: u64) {
    assert_eq!(n.s.tsend(data, n.s.peer, tag, 2), 0);
    let got = n.wait(1, 0, 30);
    assert_eq!(got[0][0].err, 0, "{:?}", got[0][0]);
}

/// The child: echoes every message back after checking it.
#[test]
#[ignore = "a child process's role: the multi-process tests run it (with --ignored)"]
fn child_role() {
    let mut n = Node::new(&Opts::rdm());
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("parent address");
    n.s.peer = av_insert(n.s.av, &unhex(line.trim()));
    println!("\nADDR:{}", hex(&n.s.name));
    std::io::stdout().flush().unwrap();
    for size in SIZES {
        for it in 0..ITERS {
            let tag = (size as u64) << 8 | it as u64;
            let got = recv_one(&n, size, tag);
            assert!(
                got == pattern(size, seed(size, it, false)),
                "child: bad data at {size}"
            );
            send_one(&n, &pattern(size, seed(size, it, true)), tag);
        }
    }
    println!("CHILD-DONE");
}

#[test]
fn rdm_pingpong_between_two_processes() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let mut n = Node::new(&Opts::rdm());
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_role",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", hex(&n.s.name)).unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let l = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child printed its address");
        // libtest may print "test child_role ... " on the same line.
        if let Some(i) = l.find("ADDR:") {
            break unhex(l[i + 5..].trim());
        }
    };
    n.s.peer = av_insert(n.s.av, &addr);
    let t = Instant::now();
    for size in SIZES {
        for it in 0..ITERS {
            let tag = (size as u64) << 8 | it as u64;
            let ping = pattern(size, seed(size, it, false));
            // Post the receive for the echo first, then ping.
            let mut pong = vec![0u8; size];
            assert_eq!(n.s.trecv(&mut pong, ADDR_UNSPEC, tag, 0, 1), 0);
            assert_eq!(n.s.tsend(&ping, n.s.peer, tag, 2), 0);
            let got = n.wait(1, 1, 30);
            assert_eq!(got[0][0].err, 0, "ping {size}: {:?}", got[0][0]);
            let e = &got[1][0];
            assert_eq!(
                (e.err, e.len, e.tag, e.src),
                (0, size, tag, n.s.peer),
                "pong {size}: {e:?}"
            );
            assert!(
                pong == pattern(size, seed(size, it, true)),
                "pong bytes at {size}"
            );
        }
    }
    let done = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains("CHILD-DONE") => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    // Bounded wait for the child's exit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(done, "child did not finish");
    assert!(
        status.is_some_and(|s| s.success()),
        "child exit: {status:?}"
    );
    eprintln!("two-process pingpong took {:?}", t.elapsed());
}
