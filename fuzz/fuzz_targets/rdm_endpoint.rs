//! Fuzzes the RDM endpoint with arbitrary datagrams from a known peer and
//! from an unknown sender, with receives posted: it must never panic, and
//! whatever it transmits in reply must fit the MTU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::mem::UserIov;
use srd_fi::rdm::{Config, Endpoint, OpFlags};

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        mtu: 2048,
        local_addr: vec![1; 40],
        ..Config::default()
    };
    let mut ep = Endpoint::new(cfg);
    let peer = ep.insert_peer(&[2; 40]).ok();
    let _ = ep.trecv(0, UserIov::from_vec(vec![0; 4096]), None, 0, u64::MAX, 1, OpFlags::empty());
    let _ = ep.recv(0, UserIov::from_vec(vec![0; 4096]), None, 2, 0);
    let mut rest = data;
    let mut now = 0;
    while !rest.is_empty() {
        let n = (rest[0] as usize).min(rest.len() - 1);
        let (pkt, tail) = rest[1..].split_at(n);
        let src = if rest[0] & 1 == 0 { peer } else { None };
        let _ = ep.handle_packet(now, src, pkt);
        rest = tail;
        now += 1_000;
        let mut out = vec![0u8; 2048];
        while let Some(tx) = ep.poll_transmit(now, &mut out) {
            assert!(tx.len <= 2048);
            ep.on_send_complete(tx.token, Ok(()));
        }
        while ep.poll_completion().is_some() {}
    }
});
