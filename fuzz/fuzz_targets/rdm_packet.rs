//! Fuzzes the RDM packet view: `new_checked` + `Repr::parse` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::wire::rdm::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.packet_type(), p.flags());
    let _ = Repr::parse(&p);
});
