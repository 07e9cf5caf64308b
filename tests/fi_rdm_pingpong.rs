//! libfabric-bin's fi_pingpong over `-p srd -e rdm` on loopback, server and
//! client as separate processes, for sizes across every protocol.

mod common;

use std::time::Duration;

#[test]
fn fi_pingpong_rdm_sizes() {
    let mut failures = vec![];
    for (size, iters) in [
        ("1", "10"),
        ("4096", "10"),
        ("65536", "10"),
        ("1048576", "5"),
        ("8388608", "3"),
    ] {
        let args = [
            "-p", "srd", "-d", "lo", "-e", "rdm", "-S", size, "-I", iters,
        ];
        if let Some(f) = common::pingpong::run(&args, Duration::from_secs(60)) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn fi_pingpong_rdm_tagged_with_integrity_checks() {
    let args = [
        "-p", "srd", "-d", "lo", "-e", "rdm", "-m", "tagged", "-c", "-S", "65536", "-I", "10",
    ];
    if let Some(f) = common::pingpong::run(&args, Duration::from_secs(60)) {
        panic!("{f}");
    }
}
