//! Child processes of the test binary itself (the multi-process tests):
//! each runs one `#[test]` entry point in a role its environment selects
//! (ignored in a plain test run: alone it has nothing to do),
//! prints lines the parent waits for and reads lines from stdin.

use super::init;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Kid {
    pub child: std::process::Child,
    pub stdin: ChildStdin,
    pub lines: mpsc::Receiver<String>,
    out: Option<JoinHandle<()>>,
    err: Option<JoinHandle<String>>,
}

/// Runs the test `entry` of this binary with `env` added; its stderr is
/// collected (`stderr`) when `capture_stderr`, else shared with ours.
pub fn spawn(entry: &str, env: &[(&str, &str)], capture_stderr: bool) -> Kid {
    init();
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        entry,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .envs(env.iter().copied())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(if capture_stderr {
        Stdio::piped()
    } else {
        Stdio::inherit()
    });
    let mut child = cmd.spawn().expect("spawn child");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let out = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let err = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    Kid {
        child,
        stdin,
        lines,
        out: Some(out),
        err,
    }
}

impl Kid {
    /// Every line up to and including the first containing `what`.
    pub fn until(&self, what: &str, secs: u64) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self
                .lines
                .recv_timeout(left)
                .map_err(|e| format!("waiting for {what}: {e}; saw {seen:?}"))?;
            let hit = l.contains(what);
            seen.push(l);
            if hit {
                return Ok(seen);
            }
        }
    }

    /// `expect` for a child that needs us meanwhile: `poll` (which drives
    /// our endpoint's progress) runs between looks at its output. A child
    /// whose send waits for our acknowledgement cannot print otherwise:
    /// an ack owed to a message we received leaves only when we progress.
    pub fn expect_progressing(&self, what: &str, secs: u64, mut poll: impl FnMut()) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            poll();
            match self.lines.try_recv() {
                Ok(l) if l.contains(what) => return l[l.find(what).unwrap()..].to_string(),
                Ok(l) => seen.push(l),
                Err(mpsc::TryRecvError::Empty) => {}
                Err(e) => panic!("waiting for {what}: {e}; saw {seen:?}"),
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: timed out; saw {seen:?}"
            );
        }
    }

    /// The next line containing `what`, from where `what` starts.
    pub fn expect(&self, what: &str, secs: u64) -> String {
        let l = self
            .until(what, secs)
            .unwrap_or_else(|e| panic!("{e}"))
            .pop()
            .unwrap();
        l[l.find(what).unwrap()..].to_string()
    }

    /// The address the child printed as `ADDR:<hex>`.
    pub fn addr(&self) -> String {
        self.expect("ADDR:", 60)[5..].trim().to_string()
    }

    /// Writes one line to the child's stdin.
    pub fn say(&mut self, l: &str) {
        writeln!(self.stdin, "{l}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Exit status, waiting at most `secs` (then kills it: None).
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Exit status, waiting at most `secs`; panics if it does not exit.
    pub fn finish(&mut self, secs: u64) -> ExitStatus {
        self.wait_exit(secs).expect("child did not exit")
    }

    /// The stdout lines not read yet, to its end (after the exit).
    pub fn rest(&mut self) -> Vec<String> {
        if let Some(t) = self.out.take() {
            let _ = t.join();
        }
        self.lines.try_iter().collect()
    }

    /// Everything the child wrote to stderr (after the exit; empty if not
    /// captured).
    pub fn stderr(&mut self) -> String {
        self.err
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default()
    }
}
