//! Same-host bulk transfers between two processes through the real
//! libfabric core, with cross-memory attach on (long-read protocol,
//! single-copy RMA) and off (FI_SRD_SHM_CMA=0: everything through the
//! shared-memory rings). The test starts two children of its own binary,
//! a server and a client, in the mode under test; the client ping-pongs
//! tagged and untagged messages of 1 B to 8 MiB with data checks, then
//! fi_write/fi_read 1 MiB against a region of the server. The children's
//! FI_SRD_STATS lines show which path carried the data.

mod common;

use common::fab::*;
use common::*;
use srd_fi::ffi::bindings as b;
use std::ffi::c_void;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::ptr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

fn opts() -> Opts {
    Opts {
        caps: b::FI_MSG | b::FI_TAGGED | b::FI_RMA | b::FI_DIRECTED_RECV | b::FI_SOURCE,
        ..Opts::rdm()
    }
}

/// A node whose domain takes offsets and application keys (mr_mode 0).
fn node() -> Node {
    let o = opts();
    let info = lo_info(&o);
    // SAFETY: info is our own copy; its domain_attr is valid.
    unsafe { (*(*info.0).domain_attr).mr_mode = 0 };
    // SAFETY: info is a valid entry.
    let fab = fabric(unsafe { &*info.0 }).expect("fi_fabric");
    let dom = domain(fab, info.0).expect("fi_domain");
    let s = Side::open(dom, info.0, &o);
    Node { info, fab, dom, s }
}

fn mr_reg(dom: *mut b::fid_domain, buf: &mut [u8], access: u64, key: u64) -> *mut b::fid_mr {
    let mut mr = ptr::null_mut();
    // SAFETY: dom is open; buf outlives the registration (closed by the caller).
    let rc = unsafe {
        ((*(*dom).mr).reg.unwrap())(
            &mut (*dom).fid,
            buf.as_mut_ptr() as *const c_void,
            buf.len(),
            access,
            0,
            key,
            0,
            &mut mr,
            ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "fi_mr_reg");
    mr
}

fn rma(s: &Side, write: bool, buf: &mut [u8], addr: u64, ctx: usize) -> isize {
    // SAFETY: ep is enabled; buf lives until the completion is read.
    unsafe {
        if write {
            ((*(*s.ep).rma).write.unwrap())(
                s.ep,
                buf.as_ptr() as *const c_void,
                buf.len(),
                ptr::null_mut(),
                s.peer,
                addr,
                KEY,
                ctx as *mut c_void,
            )
        } else {
            ((*(*s.ep).rma).read.unwrap())(
                s.ep,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                ptr::null_mut(),
                s.peer,
                addr,
                KEY,
                ctx as *mut c_void,
            )
        }
    }
}

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
    let mut n = node();
    let mut region = vec![0xeeu8; RMA_LEN + 128];
    let mr = mr_reg(
        n.dom,
        &mut region,
        b::FI_REMOTE_READ | b::FI_REMOTE_WRITE,
        KEY,
    );
    println!("\nADDR:{}", hex(&n.s.name));
    std::io::stdout().flush().unwrap();
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
    let mut n = node();
    n.s.peer = av_insert(n.s.av, &unhex(&read_line()));
    println!("\nADDR:{}", hex(&n.s.name));
    std::io::stdout().flush().unwrap();
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
    let mut data = pattern(RMA_LEN, 0x33);
    assert_eq!(rma(&n.s, true, &mut data, 64, 3), 0, "fi_write");
    let g = n.wait(1, 0, SECS);
    assert_eq!(g[0][0].err, 0, "write: {:?}", g[0][0]);
    assert_eq!(
        g[0][0].flags & (b::FI_RMA | b::FI_WRITE),
        b::FI_RMA | b::FI_WRITE
    );
    let mut back = vec![0u8; RMA_LEN];
    assert_eq!(rma(&n.s, false, &mut back, 64, 4), 0, "fi_read");
    let g = n.wait(1, 0, SECS);
    assert_eq!(g[0][0].err, 0, "read: {:?}", g[0][0]);
    assert!(back == data, "client: fi_read data");
    send_one(&n, &[1], true, 0xdead);
    assert_eq!(recv_one(&n, 1, true, 0xdead), [2]);
    drop(n);
    println!("CLIENT-DONE");
}

#[test]
fn child_role() {
    match std::env::var(ROLE).as_deref() {
        Ok("server") => server(),
        Ok("client") => client(),
        _ => {} // only meaningful when started by a parent test
    }
}

struct Kid {
    child: Child,
    stdin: std::process::ChildStdin,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn spawn(role: &str, cma: bool) -> Kid {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("FI_SRD_SHM_CMA", if cma { "1" } else { "0" })
        .env("FI_SRD_SHM", "1")
        .env("FI_SRD_SHM_CMA_MIN", CMA_MIN.to_string())
        .env("FI_SRD_STATS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdin = child.stdin.take().unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    Kid {
        child,
        stdin,
        out,
        err,
    }
}

fn addr_of(k: &Kid) -> String {
    loop {
        let l = k
            .out
            .recv_timeout(Duration::from_secs(30))
            .expect("child printed its address");
        if let Some(i) = l.find("ADDR:") {
            return l[i + 5..].trim().to_string();
        }
    }
}

/// Waits for the child's exit; returns (success, its stderr, its stdout).
fn finish(mut k: Kid) -> (bool, String, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = k.child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = k.child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(50));
    let err: Vec<String> = k.err.try_iter().collect();
    let out: Vec<String> = k.out.try_iter().collect();
    (
        status.is_some_and(|s| s.success()),
        err.join("\n"),
        out.join("\n"),
    )
}

/// The number after `key` in an FI_SRD_STATS line.
fn stat(text: &str, key: &str) -> Option<u64> {
    let i = text.find(key)? + key.len();
    text[i..].split_whitespace().next()?.parse().ok()
}

fn run(cma: bool) {
    let t = Instant::now();
    let mut server = spawn("server", cma);
    let saddr = addr_of(&server);
    let mut client = spawn("client", cma);
    writeln!(client.stdin, "{saddr}").unwrap();
    let caddr = addr_of(&client);
    writeln!(server.stdin, "{caddr}").unwrap();
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
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    run(true);
}

#[test]
fn bulk_between_processes_through_the_rings() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    run(false);
}
