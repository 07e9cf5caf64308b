//! Data operations as the endpoint engines receive them.

use crate::ffi::iov::UserIov;

/// A send: message or tagged.
#[derive(Debug)]
pub struct SendOp {
    pub iov: UserIov,
    pub dest: u64,
    pub tag: u64,
    pub data: u64,
    pub context: usize,
    /// Flags in force (defaults applied).
    pub flags: u64,
    pub tagged: bool,
    /// Whether success is written to the CQ (selective completion, inject).
    pub report: bool,
}

/// A receive: message or tagged.
#[derive(Debug)]
pub struct RecvOp {
    pub iov: UserIov,
    /// FI_ADDR_UNSPEC for any source.
    pub src: u64,
    pub tag: u64,
    pub ignore: u64,
    pub context: usize,
    pub flags: u64,
    pub tagged: bool,
    pub report: bool,
}
