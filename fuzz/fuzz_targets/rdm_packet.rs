//! Fuzzes the RDM packet view: `new_checked` + `Repr::parse` must never
//! panic, and what parses must emit and parse again to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::wire::rdm::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (p.packet_type(), p.flags());
    if let Ok(r) = Repr::parse(&p) {
        // What parses emits again and parses to the same.
        let mut out = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut out).expect("sized by buffer_len");
        let again = Packet::new_checked(&out[..n]).and_then(|p| Repr::parse(&p));
        assert_eq!(again.as_ref(), Ok(&r));
    }
});
