//! Multi-process helpers for the shm tests: the test binary re-executes
//! itself with `SHM_ROLE` set to run one role of a test in a child process.
//! Children talk to the parent through stdout lines `@key value...` and stdin.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use srd_fi::io::shm::ShmToken;

pub const ROLE: &str = "SHM_ROLE";

/// The role this process plays, if it is a child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A child process running `test` (exact name) in `role`; killed on drop.
pub struct Kid {
    pub child: Child,
    pub out: BufReader<ChildStdout>,
    pub inp: Option<ChildStdin>,
}

impl Kid {
    pub fn spawn(test: &str, role: &str, env: &[(&str, String)]) -> Kid {
        let exe = std::env::current_exe().expect("current exe");
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        let inp = child.stdin.take();
        Kid { child, out, inp }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Next `@key ...` line from the child, its words after the key.
    pub fn expect(&mut self, key: &str) -> Vec<String> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).expect("read child stdout");
            assert!(n > 0, "child exited before sending @{key}");
            let mut words = line.split_whitespace();
            if words.next() == Some(&format!("@{key}")) {
                return words.map(str::to_owned).collect();
            }
        }
    }

    pub fn token(&mut self) -> ShmToken {
        let w = self.expect("token");
        parse_token(&w[0])
    }

    pub fn tell(&mut self, line: &str) {
        let inp = self.inp.as_mut().expect("stdin");
        writeln!(inp, "{line}").expect("write child stdin");
        inp.flush().expect("flush");
    }

    /// Waits (bounded) for the child's exit; asserts success.
    pub fn wait_ok(&mut self, limit: Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                assert!(st.success(), "child failed: {st}");
                return;
            }
            assert!(t0.elapsed() < limit, "child did not finish in {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL child");
        self.child.wait().expect("reap child");
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn fmt_token(t: ShmToken) -> String {
    format!("{}:{:x}", t.pid, t.nonce)
}

pub fn parse_token(s: &str) -> ShmToken {
    let (p, n) = s.split_once(':').expect("pid:nonce");
    ShmToken {
        pid: p.parse().expect("pid"),
        nonce: u64::from_str_radix(n, 16).expect("nonce"),
    }
}

/// Child side: announce a line to the parent.
pub fn say(key: &str, rest: &str) {
    println!("@{key} {rest}");
    use std::io::Write as _;
    std::io::stdout().flush().unwrap();
}

/// Child side: next line from the parent.
pub fn hear() -> String {
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).expect("read stdin");
    s.trim().to_owned()
}

/// xorshift64*: deterministic sizes and contents.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Bytes `j as u8` for j in 0..256 + 128 KiB: every packet pattern is a
/// slice of it, so fill and check are memcpy/memcmp even in debug builds.
fn table() -> &'static [u8] {
    static T: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    T.get_or_init(|| (0..256 + (128 << 10)).map(|j| j as u8).collect())
}

fn key(sender: u8, seq: u64) -> usize {
    (seq as u8).wrapping_mul(31).wrapping_add(sender) as usize
}

/// Packet `seq` from `sender` filling `buf` (≤ 128 KiB): byte i is
/// `key + i`, then (if it fits) the sender and the sequence number up front.
pub fn fill(buf: &mut [u8], sender: u8, seq: u64) {
    let k = key(sender, seq);
    buf.copy_from_slice(&table()[k..k + buf.len()]);
    if buf.len() >= 9 {
        buf[0] = sender;
        buf[1..9].copy_from_slice(&seq.to_le_bytes());
    }
}

pub fn check(data: &[u8], sender: u8, seq: u64) -> bool {
    let k = key(sender, seq);
    let t = &table()[k..k + data.len()];
    if data.len() >= 9 {
        data[0] == sender && data[1..9] == seq.to_le_bytes() && data[9..] == t[9..]
    } else {
        data == t
    }
}

/// Files in /dev/shm whose name starts with `prefix`.
pub fn shm_files(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}
