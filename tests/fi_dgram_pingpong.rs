//! libfabric-bin's fi_pingpong over `-p srd -e dgram` on loopback.

mod common;

use std::time::Duration;

#[test]
fn fi_pingpong_dgram_64() {
    let args = [
        "-p", "srd", "-d", "lo", "-e", "dgram", "-S", "64", "-I", "10",
    ];
    if let Some(f) = common::pingpong::run(&args, Duration::from_secs(60)) {
        panic!("{f}");
    }
}

#[test]
fn fi_pingpong_dgram_with_integrity_checks() {
    let args = [
        "-p", "srd", "-d", "lo", "-e", "dgram", "-c", "-S", "1024", "-I", "10",
    ];
    if let Some(f) = common::pingpong::run(&args, Duration::from_secs(60)) {
        panic!("{f}");
    }
}
