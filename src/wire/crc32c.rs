//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven,
//! slicing-by-16, in plain safe Rust.
//!
//! Why CRC32C: UDP's 16-bit ones'-complement sum misses many multi-bit errors
//! (and is often offloaded or zero on loopback), so the SRD header carries a
//! 32-bit CRC over header and payload (docs/srd-spec.md §3.4). Castagnoli is
//! the polynomial iSCSI, ext4 and SCTP use; hardware has it, should we later
//! add an optional accelerated path in a backend.

use std::sync::OnceLock;

const POLY: u32 = 0x82F6_3B78;

/// A raw CRC32C update (state in, state out; no pre/post inversion), e.g.
/// over the SSE4.2 `crc32` or ARMv8 `crc32c` instructions. Those need
/// `unsafe` (runtime feature detection), which this module may not contain,
/// so a backend installs one; the table-driven code is the fallback.
pub type UpdateFn = fn(u32, &[u8]) -> u32;

static ACCELERATED: OnceLock<UpdateFn> = OnceLock::new();

/// Installs an accelerated update for the whole process. Returns false if
/// one was already installed. The function must compute exactly CRC32C.
pub fn install_accelerated(f: UpdateFn) -> bool {
    ACCELERATED.set(f).is_ok()
}

/// Is an accelerated update installed?
pub fn accelerated() -> bool {
    ACCELERATED.get().is_some()
}

/// `t[s][i]` is the CRC state after feeding byte `i` and then `s` zero bytes,
/// i.e. `8 * (s + 1)` single-bit reduction steps starting from `i`.
const fn make_tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut i = 0usize;
    let mut v = 0u32; // == i, kept in parallel so no integer cast is needed
    while i < 256 {
        let mut crc = v;
        let mut s = 0;
        while s < 16 {
            let mut k = 0;
            while k < 8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
                k += 1;
            }
            t[s][i] = crc;
            s += 1;
        }
        i += 1;
        v += 1;
    }
    t
}

static TABLES: [[u32; 256]; 16] = make_tables();

/// Running CRC32C state, so a checksum can cover discontiguous pieces (the
/// header with its checksum field zeroed, then the payload) without a copy.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    pub const fn new() -> Self {
        Crc32c(!0)
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(f) = ACCELERATED.get() {
            self.0 = f(self.0, data);
            return;
        }
        self.0 = update_tables(self.0, data);
    }

    pub fn finish(self) -> u32 {
        !self.0
    }
}

/// The portable raw update: slicing-by-16 over 16 KiB of tables.
pub fn update_tables(state: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut crc = state;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        // A fixed-size array lets the compiler drop every bounds check.
        let Ok(c) = <&[u8; 16]>::try_from(c) else {
            break;
        };
        let x = crc.to_le_bytes();
        let i = |k: usize| usize::from(c[k]);
        let j = |k: usize| usize::from(c[k] ^ x[k]);
        crc = t[15][j(0)]
            ^ t[14][j(1)]
            ^ t[13][j(2)]
            ^ t[12][j(3)]
            ^ t[11][i(4)]
            ^ t[10][i(5)]
            ^ t[9][i(6)]
            ^ t[8][i(7)]
            ^ t[7][i(8)]
            ^ t[6][i(9)]
            ^ t[5][i(10)]
            ^ t[4][i(11)]
            ^ t[3][i(12)]
            ^ t[2][i(13)]
            ^ t[1][i(14)]
            ^ t[0][i(15)];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][usize::from(crc.to_le_bytes()[0] ^ b)];
    }
    crc
}

/// CRC32C of one contiguous buffer.
pub fn checksum(data: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ POLY
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn known_vectors() {
        // RFC 3720 B.4 and the common check value.
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(checksum(&[0xffu8; 32]), 0x62A8_AB43);
        let inc: Vec<u8> = (0..32u8).collect();
        assert_eq!(checksum(&inc), 0x46DD_794E);
        assert_eq!(checksum(&[]), 0);
    }

    #[test]
    fn matches_bitwise_and_is_split_invariant() {
        let data: Vec<u8> = (0..1000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 999, 1000] {
            let want = bitwise(&data[..len]);
            assert_eq!(checksum(&data[..len]), want, "len {len}");
            for split in [0, 1, 5, len / 2, len] {
                let mut c = Crc32c::new();
                c.update(&data[..split.min(len)]);
                c.update(&data[split.min(len)..len]);
                assert_eq!(c.finish(), want, "len {len} split {split}");
            }
        }
    }
}
