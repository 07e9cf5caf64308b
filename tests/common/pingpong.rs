//! Runs libfabric-bin's fi_pingpong (server and client on loopback) over
//! the provider under test, with timeouts on everything.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether a TCP socket listens on `port` (from /proc, without connecting:
/// fi_pingpong's server accepts exactly one control connection).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|a| format!("{a} ").ends_with(&want))
                    && l.split_whitespace().nth(3) == Some("0A")
            })
        })
    })
}

fn command(args: &[&str], port: u16, server: bool) -> Command {
    let mut c = Command::new("fi_pingpong");
    c.args(args)
        .env("FI_PROVIDER_PATH", super::provider_dir())
        .env_remove("FI_PROVIDER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if server {
        c.args(["-B", &port.to_string()]);
    } else {
        c.args(["-P", &port.to_string(), "127.0.0.1"]);
    }
    c
}

fn wait_bounded(mut ch: Child, limit: Duration) -> Option<Output> {
    let deadline = Instant::now() + limit;
    loop {
        match ch.try_wait() {
            Ok(Some(_)) => return ch.wait_with_output().ok(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = ch.kill();
                let _ = ch.wait();
                return None;
            }
        }
    }
}

/// A TCP port that is free now (other test runs on this machine may use
/// fixed ones such as fi_pingpong's default 47592).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("an ephemeral port")
}

/// Runs one server/client pair on a free control port; returns a failure
/// description or None.
pub fn run(args: &[&str], limit: Duration) -> Option<String> {
    super::init();
    let port = free_port();
    let server = command(args, port, true)
        .spawn()
        .expect("fi_pingpong (libfabric-bin) runs");
    let t = Instant::now();
    while !listening(port) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = command(args, port, false)
        .spawn()
        .expect("fi_pingpong client");
    let c = wait_bounded(client, limit);
    let s = wait_bounded(
        server,
        limit
            .saturating_sub(t.elapsed())
            .max(Duration::from_secs(5)),
    );
    let show = |o: &Option<Output>| match o {
        None => "timed out (killed)".to_string(),
        Some(o) => format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    };
    let ok = |o: &Option<Output>| o.as_ref().is_some_and(|o| o.status.success());
    if ok(&c) && ok(&s) {
        None
    } else {
        Some(format!(
            "fi_pingpong {args:?}\n-- client: {}\n-- server: {}",
            show(&c),
            show(&s)
        ))
    }
}
