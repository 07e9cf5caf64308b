//! What the endpoint's parts produce for the glue, owned by the
//! coordinator and lent to a part for one call: control packets and RMA
//! packets waiting for `poll_transmit`, completions waiting for
//! `poll_completion`, and the drop/refusal counters. Also the tokens that
//! name a datagram's owner in `on_send_complete`.

use super::peer::{PeerIdx, Peers};
use super::pool::Handle;
use super::{Cma, CompFlags, Completion, CompletionError, ErrorKind, Stats};
use crate::mem::UserIov;
use crate::wire::rdm::{OpRef, Status};
use std::collections::VecDeque;

/// Control packets waiting for `poll_transmit`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ctrl {
    Handshake(PeerIdx),
    Credit(PeerIdx),
    /// Long-CTS receiver: a grant for this message.
    Cts(Handle),
    Receipt {
        peer: PeerIdx,
        msg_id: u32,
        tx_id: u32,
    },
    /// Long-read receiver: the message was read (or not: `status`).
    Fin {
        peer: PeerIdx,
        msg_id: u32,
        tx_id: u32,
        status: Status,
    },
    /// RMA target: a write's status (`flags`: RSP_NO_CMA).
    WriteRsp {
        peer: PeerIdx,
        op: OpRef,
        status: Status,
        flags: u16,
    },
    /// RMA target: an atomic's status; `buf` (a response buffer of the
    /// target part) holds the fetched values.
    AtomRsp {
        peer: PeerIdx,
        op: OpRef,
        status: Status,
        buf: Option<Handle>,
    },
    /// RMA target: a read that sends no data (refused, zero bytes, or
    /// placed with CMA: `flags` READRSP_PLACED).
    ReadDone {
        peer: PeerIdx,
        op: OpRef,
        status: Status,
        flags: u16,
    },
}

/// An entry of the RMA transmit queue: an initiator op or a read being
/// served (one queue, so both kinds go out in the order they were due).
#[derive(Clone, Copy, Debug)]
pub(super) enum RmaQ {
    Op(Handle),
    Serve(Handle),
}

/// The queues and counters the parts share.
pub(super) struct Outbox {
    pub ctrl: VecDeque<Ctrl>,
    pub rma: VecDeque<RmaQ>,
    pub cq: VecDeque<Completion>,
    pub stats: Stats,
}

impl Outbox {
    pub fn new(ctrl: usize, rma: usize, cq: usize) -> Self {
        Outbox {
            ctrl: VecDeque::with_capacity(ctrl),
            rma: VecDeque::with_capacity(rma),
            cq: VecDeque::with_capacity(cq),
            stats: Stats::default(),
        }
    }

    pub fn complete(&mut self, c: Completion) {
        self.cq.push_back(c);
    }

    /// An error completion that moved no data.
    pub fn fail(
        &mut self,
        context: u64,
        flags: CompFlags,
        kind: ErrorKind,
        prov_errno: i32,
        iov: Option<UserIov>,
    ) {
        self.cq.push_back(Completion {
            context,
            flags,
            len: 0,
            buf: 0,
            data: 0,
            tag: 0,
            src: None,
            report: true,
            err: Some(CompletionError {
                kind,
                prov_errno,
                olen: 0,
                err_data: Vec::new(),
            }),
            iov,
        });
    }
}

/// What a part borrows from the coordinator for one call: the outbox, the
/// peer table (read, and told of CMA refusals) and the glue's CMA.
pub(super) struct Ctx<'a> {
    pub out: &'a mut Outbox,
    pub peers: &'a mut Peers,
    pub cma: Option<&'a mut (dyn Cma + Send + 'static)>,
}

/// Token kinds (top byte of a token).
pub(super) const TOK_TX: u64 = 1;
pub(super) const TOK_CTS: u64 = 2;
pub(super) const TOK_HS: u64 = 3;
pub(super) const TOK_RECEIPT: u64 = 4;
pub(super) const TOK_CREDIT: u64 = 5;
pub(super) const TOK_RMA: u64 = 6;
pub(super) const TOK_SERVE: u64 = 7;

/// kind (8 bits) | generation (24 bits) | slot (32 bits) of the slab
/// entry it stands for: a token of a freed and reused slot is refused by
/// the slab as stale.
pub(super) fn token(kind: u64, h: Handle) -> u64 {
    (kind << 56) | (u64::from(h.generation()) << 32) | u64::from(h.idx())
}

/// A token naming a peer rather than an operation.
pub(super) fn peer_token(kind: u64, peer: PeerIdx) -> u64 {
    token(kind, Handle::from_parts(peer, 0))
}

pub(super) fn untoken(t: u64) -> (u64, Handle) {
    (t >> 56, Handle::from_parts(t as u32, (t >> 32) as u32))
}
