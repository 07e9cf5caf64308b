//! The send part of the endpoint: send operations, their inject copies,
//! the queue of sends with packets to go, and per peer the msg_id sequence,
//! the msg credit window and the glue's pause.
//!
//! Invariants kept here: a send is in `queue` (or in its peer's `blocked`
//! or `parked` list) exactly when its `queued` flag is set, or was dropped
//! from there after it ended (handles of ended sends are refused by the
//! slab); a message starts only inside its peer's credit window
//! (`msg_id - next_acked < window`); `paused` counts the peers paused.
//! The protocols' packet building is in `proto`.

use super::outbox::{Outbox, TOK_TX, token};
use super::peer::{INITIAL_WINDOW, PeerIdx, Peers};
use super::pool::{Handle, Slab};
use super::proto::{self, longcts};
use super::{Completion, CompletionError, ErrorKind, ExtSlice, RdmError, TxError, TxInfo};
use crate::mem::UserIov;
use crate::wire::rdm::{CtsRepr, FinRepr, Proto, ReceiptRepr};
use std::collections::VecDeque;

/// One send operation.
#[derive(Debug)]
pub(super) struct TxOp {
    pub peer: PeerIdx,
    pub context: u64,
    pub tagged: bool,
    pub tag: u64,
    pub data: Option<u64>,
    pub len: u64,
    pub msg_id: u32,
    pub proto: Proto,
    /// Caller buffers (None for inject: the copy is in the part's inject
    /// buffer of the op's slot).
    pub iov: Option<UserIov>,
    /// Next byte to hand to the transport.
    pub next_off: u64,
    pub req_sent: bool,
    /// Long-CTS: bytes below this may be sent.
    pub granted: u64,
    pub rx_id: u32,
    pub want_receipt: bool,
    pub receipt_got: bool,
    /// The completion went out already (inject completes at once).
    pub reported: bool,
    /// Selective completion verdict.
    pub report: bool,
    /// In the send queue (or a peer's blocked/parked list).
    pub queued: bool,
    /// Datagrams handed to the transport / confirmed by it.
    pub sent_pkts: u32,
    pub acked_pkts: u32,
}

impl TxError {
    pub fn kind(self) -> ErrorKind {
        match self {
            TxError::Unreachable => ErrorKind::Unreachable,
            TxError::Io => ErrorKind::Io,
        }
    }
}

/// A send the coordinator has checked and chosen a protocol for.
pub(super) struct NewSend {
    pub peer: PeerIdx,
    pub context: u64,
    pub tagged: bool,
    pub tag: u64,
    pub data: Option<u64>,
    pub len: usize,
    pub proto: Proto,
    pub want_receipt: bool,
    /// Selective completion verdict.
    pub report: bool,
    /// Copy the payload now (FI_INJECT).
    pub inject: bool,
    /// Complete at once (inject without transmit/delivery complete).
    pub early: bool,
}

/// The send side of one peer.
#[derive(Debug)]
struct PeerTx {
    /// Next msg_id we send to it.
    next_msg: u32,
    /// Msg credit window: the peer delivered every message below
    /// `next_acked`; we start messages below `next_acked + window` only.
    next_acked: u32,
    window: u32,
    /// Sends waiting for credit, in msg_id order.
    blocked: VecDeque<Handle>,
    /// The glue's link to it is full: sends wait in `parked` (still
    /// marked `queued`) until it has room.
    paused: bool,
    parked: VecDeque<Handle>,
}

impl Default for PeerTx {
    fn default() -> Self {
        PeerTx {
            next_msg: 0,
            next_acked: 0,
            window: INITIAL_WINDOW,
            blocked: VecDeque::new(),
            paused: false,
            parked: VecDeque::new(),
        }
    }
}

/// What a CTS did to the send it names.
pub(super) enum CtsOutcome {
    /// No such send (or not one a CTS applies to): counted as stale.
    Stale,
    Granted,
    /// A long-read send the receiver could not read: it goes on as
    /// long-CTS, and the peer should not be offered CMA again.
    FellBack,
}

pub(super) struct Tx {
    ops: Slab<TxOp>,
    /// Inject copies, one buffer per slot, allocated once.
    inject: Vec<Vec<u8>>,
    /// Sends with packets to go now.
    queue: VecDeque<Handle>,
    /// Per peer, by index (grown as peers are first sent to).
    peers: Vec<PeerTx>,
    paused: usize,
}

impl Tx {
    pub fn new(size: usize, inject_size: usize) -> Self {
        Tx {
            ops: Slab::with_capacity(size),
            inject: (0..size).map(|_| Vec::with_capacity(inject_size)).collect(),
            queue: VecDeque::with_capacity(size),
            peers: Vec::new(),
            paused: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.ops.is_full()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    fn peer_mut(&mut self, p: PeerIdx) -> &mut PeerTx {
        let i = p as usize;
        if i >= self.peers.len() {
            self.peers.resize_with(i + 1, PeerTx::default);
        }
        &mut self.peers[i]
    }

    /// Starts a send: it takes `peer`'s next msg_id, an inject payload is
    /// copied now (so the caller may reuse its buffer at once), and an
    /// early completion goes out at once.
    pub fn post(
        &mut self,
        s: NewSend,
        iov: Option<UserIov>,
        inject_src: &[u8],
        out: &mut Outbox,
    ) -> Result<(), RdmError> {
        let msg_id = self.peer_mut(s.peer).next_msg;
        let op = TxOp {
            peer: s.peer,
            context: s.context,
            tagged: s.tagged,
            tag: s.tag,
            data: s.data,
            len: s.len as u64,
            msg_id,
            proto: s.proto,
            iov: None,
            next_off: 0,
            req_sent: false,
            granted: 0,
            rx_id: 0,
            want_receipt: s.want_receipt,
            receipt_got: false,
            reported: false,
            report: s.report,
            queued: true,
            sent_pkts: 0,
            acked_pkts: 0,
        };
        let Ok(h) = self.ops.insert(op) else {
            return Err(RdmError::Again);
        };
        self.peer_mut(s.peer).next_msg = msg_id.wrapping_add(1);
        if s.inject {
            let buf = &mut self.inject[h.idx() as usize];
            buf.clear();
            match &iov {
                Some(v) => {
                    buf.resize(s.len, 0);
                    v.copy_out(0, buf);
                }
                None => buf.extend_from_slice(inject_src),
            }
        }
        let op = self.ops.get_mut(h).ok_or(RdmError::Again)?;
        // An injected send never reads the caller's iov again.
        let mut iov = iov;
        if !s.inject {
            op.iov = iov.take();
        }
        if s.early {
            // Inject: the buffer is free now; the completion says so.
            op.reported = true;
            out.complete(Completion::sent(
                s.context,
                s.tagged,
                s.len,
                s.report,
                iov.take(),
            ));
        }
        self.queue.push_back(h);
        Ok(())
    }

    /// The next packet of a queued send, written into `out` (already cut
    /// to the endpoint's MTU or more; a peer's link may take up to all of
    /// it). Sends of a paused peer are parked, sends without credit
    /// blocked. Until the peer's handshake shows it knows us, REQs carry
    /// `local_addr` so it can identify us (EFA does the same).
    pub fn next_packet(
        &mut self,
        peers: &Peers,
        local_addr: &[u8],
        pid: u32,
        out: &mut [u8],
    ) -> Option<TxInfo> {
        while let Some(h) = self.queue.pop_front() {
            let Some(op) = self.ops.get_mut(h) else {
                continue;
            };
            let Some(peer) = peers.get(op.peer) else {
                op.queued = false;
                continue;
            };
            let i = op.peer as usize;
            if i >= self.peers.len() {
                self.peers.resize_with(i + 1, PeerTx::default);
            }
            let pt = &mut self.peers[i];
            if pt.paused {
                // Stays `queued`: a CTS must not queue it a second time.
                pt.parked.push_back(h);
                continue;
            }
            op.queued = false;
            // A new message needs credit: the receiver holds at most
            // `window` messages ahead of the one it waits for.
            if !op.req_sent && op.msg_id.wrapping_sub(pt.next_acked) >= pt.window {
                pt.blocked.push_back(h);
                continue;
            }
            let addr = (!peer.hs_recv()).then_some(local_addr);
            let lim = peers.mtu(op.peer).min(out.len());
            let inject = &self.inject[h.idx() as usize];
            let (off, zc) = (op.next_off, peers.zero_copy(op.peer));
            let Some((len, ext)) = proto::emit(op, h.idx(), inject, pid, addr, &mut out[..lim], zc)
            else {
                continue;
            };
            op.sent_pkts += 1;
            if proto::has_more(op) {
                op.queued = true;
                self.queue.push_back(h);
            }
            return Some(TxInfo {
                peer: op.peer,
                len,
                token: token(TOK_TX, h),
                ext: (ext > 0).then_some(ExtSlice { off, len: ext }),
            });
        }
        None
    }

    /// Whether a new message to `peer` may skip the send queue (the
    /// same-host fast path): nothing queued that it could overtake, the
    /// peer neither paused nor waiting for credit, and credit for one more
    /// message.
    pub fn may_bypass(&self, peer: PeerIdx) -> bool {
        if !self.queue.is_empty() {
            return false;
        }
        match self.peers.get(peer as usize) {
            Some(p) => {
                !p.paused
                    && p.blocked.is_empty()
                    && p.parked.is_empty()
                    && p.next_msg.wrapping_sub(p.next_acked) < p.window
            }
            None => true,
        }
    }

    /// Takes `peer`'s next msg_id for a message that skips the queue.
    pub fn bypass_msg_id(&mut self, peer: PeerIdx) -> u32 {
        let p = self.peer_mut(peer);
        let id = p.next_msg;
        p.next_msg = id.wrapping_add(1);
        id
    }

    /// Whether sends have packets to go now.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The transport's verdict on a packet of send `h`: its peer, or
    /// `None` for an ended send. A confirmed packet may complete the send.
    pub fn sent(&mut self, h: Handle, ok: bool, out: &mut Outbox) -> Option<PeerIdx> {
        let op = self.ops.get_mut(h)?;
        let peer = op.peer;
        if ok {
            op.acked_pkts += 1;
            self.finish(h, None, out);
        }
        Some(peer)
    }

    /// Completes send `h` if it is done, or with `err`. A send with an
    /// error is freed at once: its handle in tokens and lists goes stale.
    pub fn finish(&mut self, h: Handle, err: Option<(ErrorKind, i32)>, out: &mut Outbox) {
        let Some(op) = self.ops.get(h) else {
            return;
        };
        if err.is_none() {
            // FI_TRANSMIT_COMPLETE: every datagram handed over and
            // confirmed (long-CTS: the receiver pulled every byte); a
            // receipt confirms placement for FI_DELIVERY_COMPLETE.
            let acked = op.sent_pkts == op.acked_pkts;
            if !(proto::all_sent(op) && acked && (!op.want_receipt || op.receipt_got)) {
                return;
            }
        }
        let Some(mut op) = self.ops.remove(h) else {
            return;
        };
        if op.reported {
            if err.is_some() {
                out.stats.errors_after_inject += 1;
            }
            return;
        }
        let report = op.report || err.is_some();
        let len = if err.is_some() { 0 } else { op.len as usize };
        let sent = Completion::sent(op.context, op.tagged, len, report, op.iov.take());
        out.complete(Completion {
            err: err.map(|(kind, prov_errno)| CompletionError {
                kind,
                prov_errno,
                olen: 0,
                err_data: Vec::new(),
            }),
            ..sent
        });
    }

    /// The caller's buffers of live send `h` (not of an inject).
    pub fn iov_of(&self, h: Handle) -> Option<&UserIov> {
        self.ops.get(h)?.iov.as_ref()
    }

    /// The live send a packet from `peer` names by slot, if its message
    /// matches.
    fn named(&self, peer: PeerIdx, tx_id: u32, msg_id: u32) -> Option<Handle> {
        let (h, op) = self.ops.entry_at(tx_id)?;
        (op.peer == peer && op.msg_id == msg_id).then_some(h)
    }

    /// Long-CTS (or long-read) sender: a CTS from the receiver.
    pub fn on_cts(&mut self, peer: PeerIdx, c: CtsRepr) -> CtsOutcome {
        let Some(h) = self.named(peer, c.tx_id, c.msg_id) else {
            return CtsOutcome::Stale;
        };
        let Some(op) = self.ops.get_mut(h) else {
            return CtsOutcome::Stale;
        };
        let long_read = op.proto == Proto::LongRead;
        if !(op.proto == Proto::LongCts || long_read) {
            return CtsOutcome::Stale;
        }
        if long_read {
            // The receiver could not read our memory: send the data.
            op.proto = Proto::LongCts;
        }
        longcts::on_cts(op, c.rx_id, c.grant_end);
        if !op.queued && proto::has_more(op) {
            op.queued = true;
            self.queue.push_back(h);
        }
        if long_read {
            CtsOutcome::FellBack
        } else {
            CtsOutcome::Granted
        }
    }

    /// The peer delivered every message below `next`: unblock sends.
    pub fn on_credit(&mut self, peer: PeerIdx, next: u32) {
        let p = self.peer_mut(peer);
        // Credits may arrive out of order: only move forward (and never
        // past what we sent).
        let ahead = next.wrapping_sub(p.next_acked);
        let sent = p.next_msg.wrapping_sub(p.next_acked);
        if ahead == 0 || ahead > sent {
            return;
        }
        p.next_acked = next;
        self.release_blocked(peer);
    }

    /// The peer's handshake stated its reorder window: our credit window
    /// toward it (never below the initial one); sends blocked on the
    /// initial window may go now.
    pub fn set_window(&mut self, peer: PeerIdx, window: u16) {
        self.peer_mut(peer).window = u32::from(window).max(INITIAL_WINDOW);
        self.release_blocked(peer);
    }

    /// Requeues the blocked sends of `peer` that now have credit, in
    /// msg_id order. Every entry is looked at, not just the front: a send
    /// with credit must never wait behind one without (the receiver would
    /// wait for it, and the credit for the other would never come).
    fn release_blocked(&mut self, peer: PeerIdx) {
        let Some(p) = self.peers.get_mut(peer as usize) else {
            return;
        };
        let (ops, queue) = (&self.ops, &mut self.queue);
        let (acked, window) = (p.next_acked, p.window);
        p.blocked.retain(|&h| {
            let credit = match ops.get(h) {
                Some(op) => op.msg_id.wrapping_sub(acked) < window,
                None => return false, // gone: drop it from the list
            };
            if credit {
                queue.push_back(h);
            }
            !credit
        });
    }

    /// FI_DELIVERY_COMPLETE: the receiver placed the data. `false`: stale.
    pub fn on_receipt(&mut self, peer: PeerIdx, r: ReceiptRepr, out: &mut Outbox) -> bool {
        let Some(h) = self.named(peer, r.tx_id, r.msg_id) else {
            return false;
        };
        let Some(op) = self.ops.get_mut(h).filter(|op| op.want_receipt) else {
            return false;
        };
        op.receipt_got = true;
        self.finish(h, None, out);
        true
    }

    /// Long-read: the receiver copied the message (or could not).
    /// `false`: stale.
    pub fn on_fin(&mut self, peer: PeerIdx, f: FinRepr, out: &mut Outbox) -> bool {
        let Some(h) = self.named(peer, f.tx_id, f.msg_id) else {
            return false;
        };
        let Some(op) = self
            .ops
            .get_mut(h)
            .filter(|op| op.proto == Proto::LongRead && op.req_sent)
        else {
            return false;
        };
        if let Some(kind) = ErrorKind::from_status(f.status) {
            self.finish(h, Some((kind, 0)), out);
            return true;
        }
        // Every byte is placed: sent, and delivered.
        op.next_off = op.len;
        op.receipt_got = true;
        self.finish(h, None, out);
        true
    }

    /// Fails every send toward `peer`.
    pub fn fail_peer(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32, out: &mut Outbox) {
        for i in 0..self.ops.slots() {
            if let Some((h, op)) = self.ops.entry_at(i)
                && op.peer == peer
            {
                self.finish(h, Some((kind, prov_errno)), out);
            }
        }
    }

    /// `peer` broke: nothing waits for its credit or its link any more.
    pub fn forget_peer(&mut self, peer: PeerIdx) {
        let Some(p) = self.peers.get_mut(peer as usize) else {
            return;
        };
        p.blocked.clear();
        p.parked.clear();
        if p.paused {
            p.paused = false;
            self.paused -= 1;
        }
    }

    /// The glue's link to `peer` is full (`true`) or has room again.
    pub fn set_paused(&mut self, peer: PeerIdx, paused: bool) {
        let p = self.peer_mut(peer);
        if p.paused == paused {
            return;
        }
        p.paused = paused;
        if paused {
            self.paused += 1;
        } else {
            self.paused -= 1;
            // Ahead of what was queued meanwhile, in their order: they were
            // popped first, so they hold the lower msg_ids.
            let p = &mut self.peers[peer as usize];
            for e in p.parked.drain(..).rev() {
                self.queue.push_front(e);
            }
        }
    }

    pub fn paused_peers(&self) -> usize {
        self.paused
    }

    pub fn peer_paused(&self, peer: PeerIdx) -> bool {
        self.peers.get(peer as usize).is_some_and(|p| p.paused)
    }

    /// Appends the peers of the sends in flight.
    pub fn waited_peers(&self, out: &mut Vec<PeerIdx>) {
        out.extend(self.ops.iter().map(|(_, o)| o.peer));
    }
}
