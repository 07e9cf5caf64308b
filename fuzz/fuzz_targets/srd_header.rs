//! Fuzzes the SRD header view: `new_checked` + `Repr::parse` must never
//! panic, and whatever parses must re-emit to bytes that parse identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::wire::srd::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    // Accessors on a checked view must be safe whatever the type byte says.
    let _ = (
        p.packet_type(),
        p.flags(),
        p.path(),
        p.src_ip(),
        p.epoch(),
        p.header_len(),
    );
    let Ok(r) = Repr::parse(&p) else { return };
    let mut out = vec![0u8; r.total_len()];
    let n = r
        .emit(&mut out, p.payload())
        .expect("a parsed repr re-emits");
    let q = Packet::new_checked(&out[..n]).expect("re-emitted packet checks");
    assert_eq!(Repr::parse(&q), Ok(r));
    assert_eq!(q.payload(), p.payload());
});
