//! fork() in a process that has the provider open: fabric, domain, AV, CQs,
//! an enabled RDM endpoint exchanging data with a peer process (shared-
//! memory rings mapped, keepalive thread running) and a registered MR.
//! Children that exec (/bin/true) and children that only call libc and exit
//! leave the parent working (verified exchanges, RMA, after every fork) and
//! are themselves clean: exit status 0, no output, one thread (the
//! keepalive thread is not there), no mapping of the rings and no
//! descriptor of the parent's segment (so a child cannot keep its parent
//! "alive" for peers), and the parent's segment is neither unlinked nor
//! taken over. Runs on the shared-memory path and over UDP.

mod common;

use common::child::{self, Kid};
use common::fab::*;
use common::*;
use std::ptr;
use std::time::Duration;

const ROLE: &str = "SRD_FORK_ROLE";
const ECHO: u64 = 0xF0_0000;
const ECHO_MASK: u64 = 0xFFFF;
const STOP: u64 = ECHO | 0xFFFF;
const MR_KEY: u64 = 7;
const MR_LEN: usize = 1 << 20;
const SIZES: [usize; 3] = [64, 70_000, 300_000];

/// Child exit codes (what went wrong in the child).
const C_THREADS: i32 = 3;
const C_MAPPED: i32 = 4;
const C_FD: i32 = 5;
const C_EXEC: i32 = 127;

fn seed(round: u64, back: bool) -> u8 {
    (round as u8).wrapping_mul(29) ^ if back { 0xA5 } else { 0 }
}

fn read_peer_line() -> Vec<u8> {
    let mut l = String::new();
    std::io::stdin().read_line(&mut l).expect("peer line");
    unhex(l.trim().strip_prefix("PEER ").expect("PEER line"))
}

/// Waits for one completion of context `ctx` on either CQ.
fn wait_ctx(n: &Node, ctx: usize) -> Cqe {
    let mut got: [Vec<Cqe>; 2] = Default::default();
    let ok = progress_until(&[n.s.txcq, n.s.rxcq], &mut got, 30, |g| {
        g.iter().flatten().any(|e| e.ctx == ctx)
    });
    assert!(ok, "context {ctx} timed out: {got:?}");
    let all: Vec<Cqe> = got.into_iter().flatten().collect();
    assert_eq!(all.len(), 1, "unexpected completions: {all:?}");
    all.into_iter().next().unwrap()
}

/// One verified round trip with the echo peer.
fn round_trip(n: &Node, round: u64, size: usize) {
    let tag = ECHO | round;
    let out = pattern(size, seed(round, false));
    let mut back = vec![0u8; size];
    assert_eq!(n.s.trecv(&mut back, n.s.peer, tag, 0, 1), 0);
    assert_eq!(n.s.tsend(&out, n.s.peer, tag, 2), 0);
    let got = n.wait(1, 1, 30);
    assert_eq!(got[0][0].err, 0, "send: {:?}", got[0][0]);
    let r = &got[1][0];
    assert_eq!((r.err, r.len, r.tag), (0, size, tag), "recv: {r:?}");
    assert!(
        back == pattern(size, seed(round, true)),
        "echo bytes {round}"
    );
}

/// RMA write to the peer's MR and read back.
fn rma_check(n: &Node, round: u64) {
    let data = pattern(100_000, seed(round, false) ^ 0x3C);
    assert_eq!(n.s.write(&data, 4096, MR_KEY, 3), 0);
    assert_eq!(wait_ctx(n, 3).err, 0, "write");
    let mut back = vec![0u8; data.len()];
    assert_eq!(n.s.read(&mut back, 4096, MR_KEY, 4), 0);
    assert_eq!(wait_ctx(n, 4).err, 0, "read");
    assert_eq!(back, data, "RMA bytes after fork");
}

fn echo_role() {
    let mut n = Node::peer(0);
    let mut mem = vec![0u8; MR_LEN];
    let mr = mr_reg(n.dom, &mut mem, REMOTE_RW, MR_KEY);
    n.announce();
    n.s.peer = av_insert(n.s.av, &read_peer_line());
    let mut buf = vec![0u8; SIZES[2]];
    loop {
        assert_eq!(n.s.trecv(&mut buf, n.s.peer, ECHO, ECHO_MASK, 1), 0);
        let e = wait_ctx_long(&n, 1);
        assert_eq!(e.err, 0, "{e:?}");
        if e.tag == STOP {
            break;
        }
        let round = e.tag & ECHO_MASK;
        assert!(buf[..e.len] == pattern(e.len, seed(round, false))[..]);
        let reply = pattern(e.len, seed(round, true));
        assert_eq!(n.s.tsend(&reply, n.s.peer, e.tag, 2), 0);
        assert_eq!(wait_ctx(&n, 2).err, 0);
    }
    assert_eq!(close(fid_of(mr)), 0);
    println!("ECHO-DONE");
}

/// As `wait_ctx`, for the echo loop's receive (RMA is served meanwhile).
fn wait_ctx_long(n: &Node, ctx: usize) -> Cqe {
    let mut got: [Vec<Cqe>; 2] = Default::default();
    let ok = progress_until(&[n.s.txcq, n.s.rxcq], &mut got, 120, |g| {
        g.iter().flatten().any(|e| e.ctx == ctx)
    });
    assert!(ok, "echo: nothing for 120 s");
    got.into_iter().flatten().find(|e| e.ctx == ctx).unwrap()
}

/// Our segments in /dev/shm (named srd-<uid>-<pid>-<nonce>).
fn own_segments(pid: u32) -> Vec<String> {
    let uid = unsafe { libc::getuid() };
    let prefix = format!("srd-{uid}-{pid}-");
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// In the child: checks its own state with plain libc-backed calls, then
/// exits with a code saying what was wrong (0: nothing).
fn child_checks(ring_path: &str) -> i32 {
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0);
    if threads != 1 {
        return C_THREADS;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    if !ring_path.is_empty() && maps.contains(ring_path) {
        return C_MAPPED;
    }
    if !ring_path.is_empty()
        && let Ok(d) = std::fs::read_dir("/proc/self/fd")
    {
        for e in d.flatten() {
            if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains(ring_path)) {
                return C_FD;
            }
        }
    }
    0
}

/// Forks; the child execs /bin/true (`exec`) or runs `child_checks` and
/// calls exit(3) (atexit handlers, libfabric's destructor included).
/// Returns the child's exit status.
fn fork_child(exec: bool, ring_path: &str) -> i32 {
    let prog = c"/bin/true";
    let argv = [prog.as_ptr(), ptr::null()];
    // SAFETY: the child only execs or makes libc-backed calls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        if exec {
            // SAFETY: argv is a NULL-terminated array of C strings.
            unsafe {
                libc::execv(prog.as_ptr(), argv.as_ptr());
                libc::_exit(C_EXEC);
            }
        }
        let code = child_checks(ring_path);
        // SAFETY: exit(3) from the child: runs atexit handlers.
        unsafe { libc::exit(code) };
    }
    let mut st = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(st), "child status {st:#x}");
    libc::WEXITSTATUS(st)
}

fn forker_role() {
    let shm = std::env::var("FI_SRD_SHM").as_deref() != Ok("0");
    let mut n = Node::peer(0);
    let mut mem = vec![0u8; MR_LEN];
    let mr = mr_reg(n.dom, &mut mem, REMOTE_RW, MR_KEY);
    n.announce();
    n.s.peer = av_insert(n.s.av, &read_peer_line());
    let mut round = 0u64;
    for &size in &SIZES {
        round += 1;
        round_trip(&n, round, size);
    }
    rma_check(&n, round);
    let me = std::process::id();
    let segs = own_segments(me);
    assert_eq!(segs.len(), usize::from(shm), "our ring segment: {segs:?}");
    let ring_path = segs.first().cloned().unwrap_or_default();
    if shm {
        // What the children must not have, the parent has: the checks in
        // `child_checks` can fail.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(maps.contains(&ring_path), "parent maps its ring");
        let fds = std::fs::read_dir("/proc/self/fd").unwrap();
        let has_fd = fds.flatten().any(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().contains(&ring_path))
        });
        assert!(has_fd, "parent holds its ring's descriptor");
    }
    // Let the keepalive thread step in (no progress for > 10 ms) so it may
    // be anywhere, the endpoint lock included, when we fork.
    for k in 0..20 {
        std::thread::sleep(Duration::from_millis(3 + k % 15));
        let exec = k % 2 == 0;
        let code = fork_child(exec, &ring_path);
        assert_eq!(code, 0, "child {k} (exec {exec}) exit code");
        round += 1;
        round_trip(&n, round, SIZES[k as usize % 3]);
        if k % 5 == 4 {
            rma_check(&n, round);
        }
    }
    assert_eq!(own_segments(me), segs, "segment unchanged by the children");
    // Forks while a long (CTS) exchange is in flight.
    for k in 0..4 {
        round += 1;
        let tag = ECHO | round;
        let out = pattern(SIZES[2], seed(round, false));
        let mut back = vec![0u8; SIZES[2]];
        assert_eq!(n.s.trecv(&mut back, n.s.peer, tag, 0, 1), 0);
        assert_eq!(n.s.tsend(&out, n.s.peer, tag, 2), 0);
        assert_eq!(fork_child(k % 2 == 0, &ring_path), 0, "child in flight");
        let got = n.wait(1, 1, 30);
        assert_eq!((got[0][0].err, got[1][0].err), (0, 0), "{got:?}");
        assert!(
            back == pattern(SIZES[2], seed(round, true)),
            "bytes across a fork"
        );
    }
    let stop = [0u8; 4];
    assert_eq!(n.s.tsend(&stop, n.s.peer, STOP, 5), 0);
    assert_eq!(wait_ctx(&n, 5).err, 0);
    assert_eq!(close(fid_of(mr)), 0);
    drop(n);
    println!("FORKER-OK rounds={round}");
}

#[test]
#[ignore = "a child process's role: the multi-process tests run it (with --ignored)"]
fn child_roles() {
    match std::env::var(ROLE).as_deref() {
        Ok("forker") => forker_role(),
        Ok("echo") => echo_role(),
        _ => {}
    }
}

fn spawn(role: &str, shm: bool) -> Kid {
    let shm = if shm { "1" } else { "0" };
    child::spawn("child_roles", &[(ROLE, role), ("FI_SRD_SHM", shm)], true)
}

/// Exit status, the stdout lines not read yet and the stderr of `p`.
fn finish(p: &mut Kid, secs: u64) -> (std::process::ExitStatus, Vec<String>, String) {
    let st = p.finish(secs);
    (st, p.rest(), p.stderr())
}

fn scenario(shm: bool) {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let mut forker = spawn("forker", shm);
    let mut echo = spawn("echo", shm);
    let (fa, ea) = (forker.addr(), echo.addr());
    forker.say(&format!("PEER {ea}"));
    echo.say(&format!("PEER {fa}"));
    let mut out = match forker.until("FORKER-OK", 180) {
        Ok(v) => v,
        Err(e) => {
            let (st, _, err) = finish(&mut forker, 30);
            panic!("{e}\nforker {st:?}, stderr:\n{err}");
        }
    };
    eprintln!("shm={shm}: {}", out.last().unwrap());
    let (st, rest, err) = finish(&mut forker, 30);
    out.extend(rest);
    assert!(st.success(), "forker: {st:?}\n{err}");
    // The children wrote nothing: only the harness's and our own lines.
    for l in &out {
        let known = l.is_empty()
            || l == "ok"
            || l.starts_with("running ")
            || l.starts_with("test ")
            || l.contains("FORKER-OK")
            || l.starts_with("successes")
            || l.starts_with("test result")
            || l.starts_with("    child_roles");
        assert!(known, "stray output line: {l:?}");
    }
    assert!(
        !err.to_lowercase().contains("srd") && !err.contains("panicked"),
        "stray stderr: {err}"
    );
    let (st, _, err) = finish(&mut echo, 30);
    assert!(st.success(), "echo: {st:?}\n{err}");
}

#[test]
fn fork_keeps_parent_working_shm() {
    scenario(true);
}

#[test]
fn fork_keeps_parent_working_udp() {
    scenario(false);
}
