//! The protocols by message size, sender side: which one a message uses
//! and how its packets are built. The receive side of every protocol goes
//! through `rx` (REQ, DATA) since they share matching and placement.
//!
//! Long-read (the receiver reads the sender's memory with CMA) is chosen
//! by the endpoint before the size cut-offs, for peers CMA reaches
//! (`Endpoint::choose_proto`).

pub mod eager;
pub mod longcts;
pub mod longread;
pub mod medium;

use super::tx::TxOp;
use crate::mem::UserIov;
use crate::wire::rdm::{Proto, REQ_CQ_DATA, REQ_RECEIPT, REQ_TAGGED, ReqRepr};

/// Sizes that pick the protocol, fixed at endpoint creation.
#[derive(Clone, Copy, Debug)]
pub struct Cutoffs {
    pub eager_max: usize,
    pub medium_max: usize,
}

pub fn choose(c: Cutoffs, len: usize) -> Proto {
    if len <= c.eager_max {
        Proto::Eager
    } else if len <= c.medium_max {
        Proto::Medium
    } else {
        Proto::LongCts
    }
}

/// Where a send's bytes come from: the caller's iov, or the copy made at
/// post time for FI_INJECT.
pub struct Source<'a> {
    pub iov: Option<&'a UserIov>,
    pub inject: &'a [u8],
}

impl Source<'_> {
    pub fn copy_out(&self, off: u64, dst: &mut [u8]) -> usize {
        match self.iov {
            Some(iov) => iov.copy_out(off as usize, dst),
            None => {
                let off = (off as usize).min(self.inject.len());
                let n = dst.len().min(self.inject.len() - off);
                dst[..n].copy_from_slice(&self.inject[off..off + n]);
                n
            }
        }
    }
}

/// Where a packet's payload bytes `off..off + n` go: copied into `dst`,
/// or — with `zc`, from the caller's iov (not an inject copy) when they
/// lie in at most `EXT_PIECES` of its segments — left there for the
/// transport to gather (zero copy). Returns (bytes copied, bytes left).
pub fn payload(op: &TxOp, inject: &[u8], off: u64, dst: &mut [u8], zc: bool) -> (usize, u32) {
    let n = dst.len();
    if zc
        && op
            .iov
            .as_ref()
            .is_some_and(|iov| leaves_in_place(iov, off as usize, n))
    {
        return (0, n as u32);
    }
    let src = Source {
        iov: op.iov.as_ref(),
        inject,
    };
    (src.copy_out(off, dst), 0)
}

/// Whether bytes `off..off + n` of `iov` may stay where they are, the
/// tail of a zero-copy packet (`TxInfo::ext`): present, and in at most
/// `EXT_PIECES` segments.
pub fn leaves_in_place(iov: &UserIov, off: usize, n: usize) -> bool {
    n > 0 && off.saturating_add(n) <= iov.len() && iov.pieces(off, n) <= super::EXT_PIECES
}

/// The REQ header of `op` for the packet at `offset`.
pub fn req_header(op: &TxOp, tx_id: u32, offset: u64) -> ReqRepr {
    let mut flags = 0;
    if op.tagged {
        flags |= REQ_TAGGED;
    }
    if op.data.is_some() {
        flags |= REQ_CQ_DATA;
    }
    if op.want_receipt {
        flags |= REQ_RECEIPT;
    }
    ReqRepr {
        flags,
        proto: op.proto,
        msg_id: op.msg_id,
        tx_id,
        tag: op.tag,
        cq_data: op.data.unwrap_or(0),
        total_len: op.len,
        offset,
    }
}

/// Builds the next packet of `op` into `out`; `None` when it has nothing
/// to send now (long-CTS waiting for credits) or `out` is too small.
/// Returns the bytes written and, with `zc` (medium and long-CTS data),
/// how many payload bytes follow them from the caller's iov instead.
pub fn emit(
    op: &mut TxOp,
    tx_id: u32,
    inject: &[u8],
    pid: u32,
    addr: Option<&[u8]>,
    out: &mut [u8],
    zc: bool,
) -> Option<(usize, u32)> {
    match op.proto {
        Proto::Eager => eager::emit(op, tx_id, inject, addr, out).map(|n| (n, 0)),
        Proto::Medium => medium::emit(op, tx_id, inject, addr, out, zc),
        Proto::LongCts => longcts::emit(op, tx_id, inject, addr, out, zc),
        Proto::LongRead => longread::emit(op, tx_id, pid, addr, out).map(|n| (n, 0)),
        Proto::Unknown(_) => None,
    }
}

/// Whether `op` still has packets it may send now.
pub fn has_more(op: &TxOp) -> bool {
    match op.proto {
        Proto::Eager | Proto::Medium => !op.req_sent || op.next_off < op.len,
        Proto::LongCts => !op.req_sent || op.next_off < op.granted.min(op.len),
        // The receiver moves the data; a FIN marks it all sent.
        Proto::LongRead => !op.req_sent,
        Proto::Unknown(_) => false,
    }
}

/// Whether every byte of `op` has been handed to the transport.
pub fn all_sent(op: &TxOp) -> bool {
    op.req_sent && op.next_off >= op.len
}
