//! Wire formats: checked packet views over byte slices (smoltcp style).
//!
//! No I/O and no allocation here. Every view validates lengths once in
//! `new_checked`; accessors then read the buffer without further checks that
//! could fail. `wire::srd` is the SRD transport header (docs/srd-spec.md §3);
//! `wire::crc32c` is the checksum that header carries.

#![forbid(unsafe_code)]

pub mod crc32c;
pub mod rdm;
pub mod srd;

use std::fmt;

/// Why a buffer was rejected by a parser. Each variant maps to one drop counter
/// in the layer that parses (see `srd::Stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its fixed header or than the length it declares.
    Truncated,
    /// The first byte is a version this build does not speak.
    BadVersion(u8),
    /// A packet type this build does not know (kept, not guessed at).
    UnknownType(u8),
    /// A field holds a value the format forbids (e.g. a length out of range).
    Malformed,
    /// The checksum does not match the bytes: corrupted above UDP.
    Checksum,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "truncated packet"),
            WireError::BadVersion(v) => write!(f, "unsupported wire version {v}"),
            WireError::UnknownType(t) => write!(f, "unknown packet type {t}"),
            WireError::Malformed => write!(f, "malformed packet"),
            WireError::Checksum => write!(f, "checksum mismatch"),
        }
    }
}

impl std::error::Error for WireError {}
