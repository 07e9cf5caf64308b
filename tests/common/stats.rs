//! Reading endpoints' live stats pages from tests (the same pages srd-stat
//! reads), and running the srd-stat binary against this process.
#![allow(dead_code)]

use srd_fi::fi::addr::EpAddr;
use srd_fi::fi::stats::{self, Snapshot};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The page of the endpoint named `name` (fi_getname bytes) in this process.
pub fn page_of(name: &[u8]) -> PathBuf {
    let local = EpAddr::from_bytes(name).expect("our address").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for p in stats::pages(Some(std::process::id())) {
            if stats::read(&p).is_ok_and(|s| s.local == local) {
                return p;
            }
        }
        assert!(Instant::now() < deadline, "no stats page for {local}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the page every 5 ms until `done` holds (the owner publishes
/// every few ms while progress runs), calling `poll` (which drives
/// progress) in between without pause: an endpoint nobody progresses
/// answers nothing.
pub fn wait_for(
    page: &Path,
    secs: u64,
    mut poll: impl FnMut(),
    mut done: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let look = Instant::now() + Duration::from_millis(5);
        loop {
            poll();
            if Instant::now() >= look {
                break;
            }
        }
        let s = stats::read(page).expect("readable page");
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "page never got there: {s:#?}");
    }
}

/// `wait_for`, progressing by reading `cq` (entries found are dropped).
pub fn wait_reading(
    page: &Path,
    secs: u64,
    cq: *mut srd_fi::bindings::fid_cq,
    done: impl FnMut(&Snapshot) -> bool,
) -> Snapshot {
    wait_for(
        page,
        secs,
        || {
            super::fab::poll_cq(cq);
        },
        done,
    )
}

/// A counter of a snapshot (panics on an unknown name: typos fail).
pub fn ctr(s: &Snapshot, name: &str) -> u64 {
    s.get(name).unwrap_or_else(|| panic!("no counter {name}"))
}

/// One endpoint's counters by name, and its peer rows' values by
/// "<fi_addr> <field>".
pub type RawEp = (HashMap<String, u64>, HashMap<String, u64>);

/// Runs `srd-stat --raw <our pid>` and returns, per endpoint page
/// ("ep<N>"), its counters by name and its peer rows' values
/// (keyed by "<fi_addr> <field>").
pub fn srd_stat_raw() -> HashMap<String, RawEp> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_srd-stat"))
        .args(["--raw", &std::process::id().to_string()])
        .output()
        .expect("run srd-stat");
    assert!(out.status.success(), "srd-stat failed: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut m: HashMap<String, RawEp> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [ep, "peer", fi, _path, _state, field, v] => {
                let e = m.entry(ep.to_string()).or_default();
                e.1.insert(format!("{fi} {field}"), v.parse().unwrap());
            }
            [ep, name, v] => {
                let e = m.entry(ep.to_string()).or_default();
                e.0.insert(name.to_string(), v.parse().unwrap());
            }
            _ => panic!("unexpected srd-stat line {l:?}"),
        }
    }
    m
}
