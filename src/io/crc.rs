//! Hardware CRC32C for the device checksum: the SSE4.2 `crc32` instruction
//! (x86_64), detected at run time and installed through
//! `wire::crc32c::install_accelerated`. The table-driven code stays the
//! fallback elsewhere.

/// Installs the accelerated CRC when the CPU has it; returns whether one is
/// in use (ours or one installed earlier).
pub fn install() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            let _ = crate::wire::crc32c::install_accelerated(update_sse42);
        }
    }
    crate::wire::crc32c::accelerated()
}

#[cfg(target_arch = "x86_64")]
fn update_sse42(state: u32, data: &[u8]) -> u32 {
    // SAFETY: only installed after is_x86_feature_detected!("sse4.2").
    unsafe { crc_sse42(state, data) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc_sse42(state: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u64};
    let mut crc = u64::from(state);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        // SAFETY: the caller enabled sse4.2 (target_feature above).
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(w));
    }
    let mut crc = crc as u32;
    for &b in chunks.remainder() {
        // SAFETY: as above.
        crc = _mm_crc32_u8(crc, b);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crc32c;

    #[test]
    fn hardware_matches_tables() {
        if !install() {
            return; // no SSE4.2: the tables are the implementation
        }
        let data: Vec<u8> = (0..10_016u32)
            .map(|i| (i.wrapping_mul(2654435761u32) >> 13) as u8)
            .collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 1500, 9999] {
            for start in [0, 1, 3] {
                let d = &data[start..start + len];
                assert_eq!(
                    update_sse42(!0, d),
                    crc32c::update_tables(!0, d),
                    "len {len} start {start}"
                );
            }
        }
        // Known vector: CRC32C("123456789") = 0xE3069283.
        assert_eq!(!update_sse42(!0, b"123456789"), 0xE306_9283);
    }
}
