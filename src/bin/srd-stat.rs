//! srd-stat: shows the live counters of srd endpoints (the stats pages in
//! /dev/shm that each RDM endpoint publishes; see src/fi/stats.rs).
//!
//! ```text
//! srd-stat                  list endpoints of this user (all processes)
//! srd-stat PID              counters and peer table of PID's endpoints
//! srd-stat --dump PID       … plus resources (QPs, AHs, MRs, peers with path and state)
//! srd-stat --watch[=S] PID  refresh every S seconds (default 1) until interrupted
//! srd-stat --all PID        show zero counters too
//! srd-stat --raw PID        one "ep NAME VALUE" line per counter, and
//!                           "peer FI_ADDR PATH STATE FIELD VALUE" per peer value
//! srd-stat --sweep          remove pages whose process is gone
//! ```
//! Exit status: 0, 1 when PID has no endpoint page, 2 on a usage error.

use srd_fi::fi::stats;
use std::process::ExitCode;
use std::time::Duration;

struct Args {
    pid: Option<u32>,
    all: bool,
    dump: bool,
    raw: bool,
    sweep: bool,
    watch: Option<Duration>,
}

const USAGE: &str = "usage: srd-stat [--all] [--dump] [--raw] [--watch[=SECONDS]] [PID] | --sweep";

fn parse() -> Result<Args, String> {
    let mut a = Args {
        pid: None,
        all: false,
        dump: false,
        raw: false,
        sweep: false,
        watch: None,
    };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--all" | "-a" => a.all = true,
            "--dump" | "-d" => a.dump = true,
            "--raw" | "-r" => a.raw = true,
            "--sweep" => a.sweep = true,
            "--watch" | "-w" => a.watch = Some(Duration::from_secs(1)),
            "--help" | "-h" => return Err(String::new()),
            s if s.starts_with("--watch=") => {
                let secs: f64 = s["--watch=".len()..]
                    .parse()
                    .map_err(|_| format!("bad interval in {s}"))?;
                if !(0.01..=3600.0).contains(&secs) {
                    return Err(format!("interval out of range in {s}"));
                }
                a.watch = Some(Duration::from_secs_f64(secs));
            }
            s if !s.starts_with('-') && a.pid.is_none() => {
                a.pid = Some(s.parse().map_err(|_| format!("not a pid: {s}"))?);
            }
            s => return Err(format!("unknown argument {s}")),
        }
    }
    Ok(a)
}

fn list() -> ExitCode {
    let pages = stats::pages(None);
    if pages.is_empty() {
        println!("no srd endpoints of this user are publishing counters");
        return ExitCode::SUCCESS;
    }
    println!(
        "{:>8} {:>4} {:>5} {:>6}  address",
        "pid", "ep", "kind", "peers"
    );
    for p in pages {
        match stats::read(&p) {
            Ok(s) => println!(
                "{:>8} {:>4} {:>5} {:>6}  {}{}",
                s.pid,
                s.ep,
                s.kind,
                s.peers_total,
                s.local,
                if s.alive { "" } else { "  [owner gone]" }
            ),
            Err(e) => println!("{}: {e}", p.display()),
        }
    }
    ExitCode::SUCCESS
}

fn raw(s: &stats::Snapshot) -> String {
    let mut o = String::new();
    for (n, v) in &s.counters {
        o += &format!("ep{} {n} {v}\n", s.ep);
    }
    for p in &s.peers {
        let fi = if p.fi_addr == stats::NOT_IN_AV {
            "-".to_string()
        } else {
            p.fi_addr.to_string()
        };
        for (f, v) in s.peer_fields.iter().zip(&p.values) {
            o += &format!("ep{} peer {fi} {} {} {f} {v}\n", s.ep, p.path, p.state);
        }
    }
    o
}

/// One screen for `pid`; false when it has no endpoint page.
fn show(pid: u32, a: &Args) -> bool {
    let pages = stats::pages(Some(pid));
    if pages.is_empty() {
        return false;
    }
    let mut out = String::new();
    for p in pages {
        match stats::read(&p) {
            Ok(s) if a.raw => out += &raw(&s),
            Ok(s) => {
                out += &stats::render(&s, a.all, a.dump);
                out.push('\n');
            }
            Err(e) => out += &format!("{}: {e}\n", p.display()),
        }
    }
    print!("{out}");
    true
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("srd-stat: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    if a.sweep {
        println!("removed {} stale pages", stats::sweep());
        return ExitCode::SUCCESS;
    }
    let Some(pid) = a.pid else {
        return list();
    };
    match a.watch {
        None => {
            if show(pid, &a) {
                ExitCode::SUCCESS
            } else {
                eprintln!("srd-stat: process {pid} has no srd endpoint publishing counters");
                ExitCode::from(1)
            }
        }
        Some(every) => loop {
            // Clear the terminal and home the cursor.
            print!("\x1b[H\x1b[2J");
            if !show(pid, &a) {
                println!("process {pid} has no srd endpoint publishing counters (any more)");
                return ExitCode::from(1);
            }
            std::thread::sleep(every);
        },
    }
}
