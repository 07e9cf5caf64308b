//! Data operations as the endpoint engines receive them.

use crate::mem::UserIov;

/// A send: message or tagged.
/// How a data call's flags combine with the endpoint's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagMode {
    /// fi_send, fi_recv, ...: the defaults (fi_tx_attr / fi_rx_attr
    /// op_flags) or'ed in.
    Default,
    /// fi_sendmsg, fi_recvmsg, ...: the call's flags alone.
    Msg,
    /// fi_inject and its forms: FI_INJECT, no completion event.
    Inject,
}

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

/// An RMA read or write of one remote range.
#[derive(Debug)]
pub struct RmaOp {
    pub read: bool,
    pub iov: UserIov,
    pub dest: u64,
    pub addr: u64,
    pub key: u64,
    pub data: u64,
    pub context: usize,
    pub flags: u64,
    pub report: bool,
}

/// An atomic operation on `count` elements at one remote address.
#[derive(Debug)]
pub struct AtomicReq {
    pub op: crate::rdm::AtomicOp,
    pub datatype: crate::rdm::Datatype,
    /// Operand bytes (copied at post).
    pub operand: smallvec::SmallVec<[u8; 64]>,
    pub compare: Option<smallvec::SmallVec<[u8; 64]>>,
    pub result: Option<UserIov>,
    pub count: usize,
    pub dest: u64,
    pub addr: u64,
    pub key: u64,
    pub context: usize,
    pub flags: u64,
    pub report: bool,
}
