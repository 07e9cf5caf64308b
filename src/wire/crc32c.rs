//! CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven,
//! slicing-by-8, in plain safe Rust.
//!
//! Why CRC32C: UDP's 16-bit ones'-complement sum misses many multi-bit errors
//! (and is often offloaded or zero on loopback), so the SRD header carries a
//! 32-bit CRC over header and payload (docs/srd-spec.md §3.4). Castagnoli is
//! the polynomial iSCSI, ext4 and SCTP use; hardware has it, should we later
//! add an optional accelerated path in a backend.

const POLY: u32 = 0x82F6_3B78;

/// `t[s][i]` is the CRC state after feeding byte `i` and then `s` zero bytes,
/// i.e. `8 * (s + 1)` single-bit reduction steps starting from `i`.
const fn make_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0usize;
    let mut v = 0u32; // == i, kept in parallel so no integer cast is needed
    while i < 256 {
        let mut crc = v;
        let mut s = 0;
        while s < 8 {
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

static TABLES: [[u32; 256]; 8] = make_tables();

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
        let t = &TABLES;
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            crc = t[7][usize::from(lo.to_le_bytes()[0])]
                ^ t[6][usize::from(lo.to_le_bytes()[1])]
                ^ t[5][usize::from(lo.to_le_bytes()[2])]
                ^ t[4][usize::from(lo.to_le_bytes()[3])]
                ^ t[3][usize::from(hi.to_le_bytes()[0])]
                ^ t[2][usize::from(hi.to_le_bytes()[1])]
                ^ t[1][usize::from(hi.to_le_bytes()[2])]
                ^ t[0][usize::from(hi.to_le_bytes()[3])];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ t[0][usize::from(crc.to_le_bytes()[0] ^ b)];
        }
        self.0 = crc;
    }

    pub fn finish(self) -> u32 {
        !self.0
    }
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
