//! Fuzzes the endpoint address parsers (binary and FI_ADDR_STR forms):
//! never panic, and what parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use srd_fi::fi::addr::EpAddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = EpAddr::from_bytes(data) {
        assert_eq!(EpAddr::from_bytes(&a.to_bytes()), Ok(a));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(a) = EpAddr::from_str_form(s) {
            assert_eq!(EpAddr::from_str_form(&a.to_string()), Ok(a));
        }
    }
});
