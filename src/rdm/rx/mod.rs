//! The receive part of the endpoint: posted receives, incoming messages
//! from their first packet to their completion, per-peer ordering (SAS),
//! tag matching, placement, and the storage of data that arrived before
//! its receive (module `store`). The receive-side calls (recv/trecv,
//! FI_PEEK/FI_CLAIM/FI_DISCARD, FI_MULTI_RECV, cancel) are in `post`.
//!
//! Invariants kept here: a message is in its peer's reorder window (or
//! the overflow list) until it is delivered; a delivered message is
//! attached to a receive, in a matcher's unexpected list, claimed,
//! discarded or done; a medium message expecting packets is in
//! `inflight`; a receive's `refs` counts the messages being placed in it,
//! and it is freed (its buffer handed back) when it is out of its matcher
//! and `refs` is 0; what a message stores is charged to the budget of its
//! state (`store`).

mod post;
pub(super) use post::Want;
mod store;

use super::cma::{self, CmaError, Segs};
use super::matcher::{Matcher, TagHasher};
use super::outbox::{Ctrl, Ctx, TOK_CREDIT, TOK_CTS, peer_token, token};
use super::peer::PeerIdx;
use super::pool::{Handle, NIL, Slab};
use super::proto::longcts;
use super::reorder::{self, Overflow, Place, Window};
use super::types::{CompFlags, ErrorKind};
use super::{
    Completion, CompletionError, Config, FastRecv, MAX_MEDIUM, PacketOutcome, TxError, TxInfo,
};
use crate::mem::UserIov;
use crate::wire::rdm::{
    CREDIT_LEN, CTS_LEN, CmaDesc, CreditRepr, CtsRepr, DataRepr, Proto, REQ_CQ_DATA, REQ_LEN,
    REQ_RECEIPT, REQ_TAGGED, ReqRepr, Status, emit_credit, emit_cts,
};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use store::{Limits, Stash, Store};

/// One posted receive.
#[derive(Debug)]
struct RxOp {
    iov: Option<UserIov>,
    len: usize,
    context: u64,
    tagged: bool,
    multi: bool,
    /// FI_MULTI_RECV: bytes handed out so far.
    used: usize,
    /// Messages placed (or being placed) in this buffer, not completed.
    refs: u32,
    /// In the matcher (a multi-receive buffer stays until nearly full).
    posted: Option<Handle>,
    report: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgState {
    /// First packet being admitted (not counted anywhere yet).
    New,
    /// Arrived ahead of an earlier message of its peer.
    Pending,
    /// In order, no receive yet.
    Unexpected(Handle),
    /// FI_PEEK|FI_CLAIM reserved it for this context.
    Claimed(u64),
    /// Placing into receive `rx`.
    Attached(Handle),
    /// FI_DISCARD: the rest of its data is dropped.
    Discard,
    /// Completed; waits for CTS datagram verdicts before being freed.
    Done,
}

/// One incoming message, from its first packet to its completion.
#[derive(Debug)]
struct RxMsg {
    peer: PeerIdx,
    msg_id: u32,
    tx_id: u32,
    proto: Proto,
    tagged: bool,
    tag: u64,
    data: Option<u64>,
    total: u64,
    want_receipt: bool,
    /// Payload bytes arrived (placed, stored or dropped).
    received: u64,
    state: MsgState,
    /// What arrived before a receive (`store` charges it).
    stash: Stash,
    /// Where it lands in the receive iov, and how much of it fits.
    base: usize,
    cap: usize,
    /// Long-CTS: bytes granted so far; CTS datagrams not yet confirmed.
    granted: u64,
    cts_out: u32,
    cts_queued: bool,
    /// Long-read: the sender's buffer and the pid its descriptor states.
    desc: Segs,
    desc_pid: u32,
}

impl RxMsg {
    /// Being placed in a receive buffer (or dropped) and still missing
    /// data from its sender.
    fn waits_on_sender(&self) -> bool {
        matches!(self.state, MsgState::Attached(_)) && self.received < self.total
    }
}

/// The receive side of one peer.
#[derive(Debug, Default)]
struct PeerRx {
    /// Receive ordering, created on first message from it.
    window: Option<Window>,
    /// The `next` we last advertised in a CREDIT.
    advertised: u32,
    credit_queued: bool,
}

/// Key of a message in `inflight`.
fn msg_key(peer: PeerIdx, msg_id: u32) -> u64 {
    (u64::from(peer) << 32) | u64::from(msg_id)
}

fn kind_flags(tagged: bool) -> CompFlags {
    CompFlags::msg(CompFlags::RECV, tagged)
}

pub(super) struct Rx {
    recvs: Slab<RxOp>,
    msgs: Slab<RxMsg>,
    /// Medium messages that still expect packets, by `msg_key`.
    inflight: HashMap<u64, Handle, BuildHasherDefault<TagHasher>>,
    tagged: Matcher,
    untagged: Matcher,
    overflow: Overflow,
    /// Per peer, by index (grown as peers first send).
    peers: Vec<PeerRx>,
    store: Store,
    /// Settings (from `Config`).
    window: usize,
    overflow_max: usize,
    cts_window: u64,
    min_multi: usize,
    selective: bool,
    fast_eager: bool,
}

impl Rx {
    pub fn new(cfg: &Config) -> Self {
        let max_msgs = cfg.rx_size + cfg.unexp_max_count;
        // One chunk per stored packet; packets carry at least one byte.
        let chunk_payload = (cfg.mtu - REQ_LEN).max(1);
        // Each stored packet is a chunk of up to `mtu` bytes: limiting
        // their number bounds the memory, not just the payload bytes.
        let max_unexp_chunks = cfg.unexp_max_bytes / chunk_payload + cfg.unexp_max_count + 16;
        let max_chunks = max_unexp_chunks + cfg.reorder_max_bytes / chunk_payload;
        let lim = Limits {
            max_bytes: cfg.unexp_max_bytes,
            max_msgs: cfg.unexp_max_count,
            max_chunks: max_unexp_chunks,
        };
        Rx {
            recvs: Slab::with_capacity(cfg.rx_size),
            msgs: Slab::with_capacity(max_msgs),
            inflight: HashMap::with_capacity_and_hasher(max_msgs, Default::default()),
            tagged: Matcher::new(cfg.rx_size, max_msgs),
            untagged: Matcher::new(cfg.rx_size, max_msgs),
            overflow: Overflow::new(cfg.reorder_overflow),
            peers: Vec::new(),
            store: Store::new(lim, max_chunks, cfg.mtu),
            window: cfg.reorder_window,
            overflow_max: cfg.reorder_overflow,
            cts_window: cfg.cts_window as u64,
            min_multi: cfg.min_multi_recv,
            selective: cfg.rx_selective,
            fast_eager: cfg.fast_eager,
        }
    }

    /// Messages the control queue may hold at once (sizing).
    pub fn max_msgs(cfg: &Config) -> usize {
        cfg.rx_size + cfg.unexp_max_count
    }

    /// Posted receives (and receives still being filled).
    pub fn len(&self) -> usize {
        self.recvs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recvs.is_empty()
    }

    /// False while unexpected storage is at its limit.
    pub fn can_accept(&self) -> bool {
        self.store.has_room()
    }

    /// Bytes held for unexpected and out-of-order messages.
    pub fn stored_bytes(&self) -> (usize, usize) {
        self.store.bytes()
    }

    /// Appends the peers receives wait on: those filling a receive, and
    /// those directed receives name.
    pub fn waited_peers(&self, out: &mut Vec<PeerIdx>) {
        out.extend(
            self.msgs
                .iter()
                .filter(|(_, m)| m.waits_on_sender())
                .map(|(_, m)| m.peer),
        );
        self.tagged.directed_sources(out);
        self.untagged.directed_sources(out);
    }

    fn peer_mut(&mut self, peer: PeerIdx) -> &mut PeerRx {
        let i = peer as usize;
        if i >= self.peers.len() {
            self.peers.resize_with(i + 1, PeerRx::default);
        }
        &mut self.peers[i]
    }

    fn matcher(&self, tagged: bool) -> &Matcher {
        if tagged { &self.tagged } else { &self.untagged }
    }

    fn matcher_mut(&mut self, tagged: bool) -> &mut Matcher {
        if tagged {
            &mut self.tagged
        } else {
            &mut self.untagged
        }
    }

    // ---- packets -----------------------------------------------------------

    /// A REQ from `peer` (known to the peer table).
    pub fn on_req(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        hdr: ReqRepr,
        payload: &[u8],
    ) -> PacketOutcome {
        // Only medium messages have several REQs (one per packet).
        if hdr.proto == Proto::Medium
            && let Some(&m) = self.inflight.get(&msg_key(peer, hdr.msg_id))
        {
            return self.msg_data(ctx, m, hdr.offset, payload);
        }
        let mut desc = Segs::new();
        let mut desc_pid = 0;
        let ok = match hdr.proto {
            Proto::Eager => hdr.offset == 0 && payload.len() as u64 == hdr.total_len,
            // Bounds what one out-of-order message can make us store.
            Proto::Medium => hdr.total_len <= MAX_MEDIUM as u64,
            Proto::LongCts => payload.is_empty(),
            // The payload describes the sender's buffer (checked by the
            // parser); it is kept with the message, not stored as data.
            Proto::LongRead => match CmaDesc::parse(payload, hdr.total_len) {
                Ok(d) => {
                    desc = cma::clip(d.segments(), hdr.total_len);
                    desc_pid = d.pid;
                    true
                }
                Err(_) => false,
            },
            Proto::Unknown(_) => {
                ctx.out.stats.unsupported += 1;
                return PacketOutcome::Dropped;
            }
        };
        if !ok {
            ctx.out.stats.malformed += 1;
            return PacketOutcome::Dropped;
        }
        let payload = if hdr.proto == Proto::LongRead {
            &[][..]
        } else {
            payload
        };
        if ctx.peers.get(peer).is_none() {
            return PacketOutcome::Dropped;
        }
        let window = self.window;
        let next = self
            .peer_mut(peer)
            .window
            .get_or_insert_with(|| Window::new(window))
            .next_id();
        let tagged = hdr.flags & REQ_TAGGED != 0;
        let tag = if tagged { hdr.tag } else { 0 };
        // Admission: everything this first packet needs must be available
        // before any state changes, so a refusal leaves nothing behind.
        let in_order = hdr.msg_id == next;
        // Out-of-order messages are always taken: the credit window bounds
        // them per peer, and refusing one could block the message it waits
        // for behind it in the glue's held buffers. In-order messages
        // without a receive wait for unexpected storage.
        let matched = if in_order {
            self.matcher(tagged).match_posted(tag, peer)
        } else {
            None
        };
        if in_order && matched.is_none() && !self.store.admits(payload.len()) {
            return PacketOutcome::Deferred(peer);
        }
        if in_order
            && self.fast_eager
            && hdr.proto == Proto::Eager
            && let Some((ph, rx)) = matched
            && self.place_eager(ctx, peer, &hdr, tagged, tag, ph, rx, payload)
        {
            self.advance_peer(ctx, peer);
            return PacketOutcome::Consumed;
        }
        let ahead = hdr.msg_id.wrapping_sub(next) as usize;
        if !in_order && ahead >= window + self.overflow_max {
            // Beyond any credit we grant: a misbehaving sender.
            ctx.out.stats.stale += 1;
            return PacketOutcome::Dropped;
        }
        let msg = RxMsg {
            peer,
            msg_id: hdr.msg_id,
            tx_id: hdr.tx_id,
            proto: hdr.proto,
            tagged,
            tag,
            data: (hdr.flags & REQ_CQ_DATA != 0).then_some(hdr.cq_data),
            total: hdr.total_len,
            want_receipt: hdr.flags & REQ_RECEIPT != 0,
            received: 0,
            state: MsgState::New,
            stash: Stash::default(),
            base: 0,
            cap: 0,
            granted: 0,
            cts_out: 0,
            cts_queued: false,
            desc,
            desc_pid,
        };
        // The slab's capacity is a sizing hint: the limits above bound the
        // stored messages, receives bound the attached ones, and the credit
        // window the out-of-order ones.
        let m = self.msgs.insert_force(msg);
        let Some(w) = self
            .peers
            .get_mut(peer as usize)
            .and_then(|p| p.window.as_mut())
        else {
            return PacketOutcome::Dropped;
        };
        match reorder::place(w, &mut self.overflow, peer, hdr.msg_id, m.idx()) {
            Place::Stale => {
                self.msgs.remove(m);
                ctx.out.stats.stale += 1;
                PacketOutcome::Dropped
            }
            Place::Full => {
                self.msgs.remove(m);
                PacketOutcome::Deferred(peer)
            }
            Place::Held => {
                if let Some(msg) = self.msgs.get_mut(m) {
                    self.store.hold(&mut msg.stash);
                    msg.state = MsgState::Pending;
                }
                if hdr.proto == Proto::Medium {
                    self.inflight.insert(msg_key(peer, hdr.msg_id), m);
                }
                self.first_data(ctx, m, hdr.offset, payload)
            }
            Place::Now => {
                if hdr.proto == Proto::Medium {
                    self.inflight.insert(msg_key(peer, hdr.msg_id), m);
                }
                self.deliver_matched(ctx, m, matched);
                let out = self.first_data(ctx, m, hdr.offset, payload);
                self.advance_peer(ctx, peer);
                out
            }
        }
    }

    /// The common case of a small message, without an `RxMsg`: the next
    /// eager message of its peer, with a posted receive (not a
    /// multi-receive) that holds it, from a peer in the AV, wanting no
    /// receipt. Placed and completed at once; `false` (nothing changed)
    /// when one of those does not hold and the general path takes it.
    #[allow(clippy::too_many_arguments)]
    fn place_eager(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        hdr: &ReqRepr,
        tagged: bool,
        tag: u64,
        posted: Handle,
        rx: u32,
        payload: &[u8],
    ) -> bool {
        let mut iov = None;
        let taken = self.take_eager(ctx, peer, hdr, (tagged, tag), posted, rx, payload, &mut iov);
        let Some(d) = taken else {
            return false;
        };
        ctx.out.complete(Completion {
            context: d.context,
            flags: d.flags,
            len: d.len,
            buf: d.buf,
            data: d.data,
            tag: d.tag,
            src: Some(peer),
            report: d.report,
            err: None,
            iov,
        });
        true
    }

    /// `place_eager`'s placement: the data copied into receive `rx`, the
    /// receive out of its matcher and freed (its buffers into `iov_out`);
    /// what its completion says is returned, not queued.
    #[allow(clippy::too_many_arguments)]
    fn take_eager(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        hdr: &ReqRepr,
        (tagged, tag): (bool, u64),
        posted: Handle,
        rx: u32,
        payload: &[u8],
        iov_out: &mut Option<UserIov>,
    ) -> Option<FastRecv> {
        if hdr.flags & REQ_RECEIPT != 0 || !ctx.peers.get(peer).is_some_and(|p| p.in_av()) {
            return None;
        }
        let rx = self.recvs.handle_at(rx)?;
        let op = self.recvs.get_mut(rx)?;
        if op.multi || payload.len() > op.len {
            return None;
        }
        op.posted.take()?;
        if let Some(iov) = op.iov.as_mut() {
            iov.copy_in(0, payload);
        }
        let mut flags = kind_flags(tagged);
        let data = (hdr.flags & REQ_CQ_DATA != 0).then_some(hdr.cq_data);
        if data.is_some() {
            flags |= CompFlags::REMOTE_CQ_DATA;
        }
        let (context, report) = (op.context, op.report);
        let buf = op.iov.as_ref().map_or(0, UserIov::base_addr);
        self.matcher_mut(tagged).unpost(posted);
        *iov_out = self.recvs.remove(rx).and_then(|op| op.iov);
        ctx.out.stats.fast_placed += 1;
        Some(FastRecv {
            context,
            flags,
            len: payload.len(),
            buf,
            data: data.unwrap_or(0),
            tag,
            peer,
            report,
        })
    }

    /// The receive of a ring frame straight into a posted receive
    /// (`Endpoint::fast_recv`): `hdr` is a plain eager REQ from `peer`
    /// (settled, in the AV). Taken when it is the next message of that
    /// peer and a plain receive that holds it is posted; its completion
    /// is returned to the caller instead of queued. `None`: nothing
    /// changed, the general path takes the packet.
    pub fn fast_recv(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        hdr: &ReqRepr,
        payload: &[u8],
    ) -> Option<FastRecv> {
        let next = self.peers.get(peer as usize)?.window.as_ref()?.next_id();
        if hdr.msg_id != next {
            return None;
        }
        let tagged = hdr.flags & REQ_TAGGED != 0;
        let tag = if tagged { hdr.tag } else { 0 };
        let (ph, rx) = self.matcher(tagged).match_posted(tag, peer)?;
        // The receive's buffers are dropped, not handed back: the glue's
        // are the application's memory.
        let mut iov = None;
        let done = self.take_eager(ctx, peer, hdr, (tagged, tag), ph, rx, payload, &mut iov)?;
        self.advance_peer(ctx, peer);
        Some(done)
    }

    /// A DATA packet of a long-CTS message.
    pub fn on_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer: PeerIdx,
        hdr: DataRepr,
        payload: &[u8],
    ) -> PacketOutcome {
        let m = self.msgs.entry_at(hdr.rx_id).filter(|(_, m)| {
            m.peer == peer
                && m.msg_id == hdr.msg_id
                && m.proto == Proto::LongCts
                && matches!(m.state, MsgState::Attached(_) | MsgState::Discard)
                && hdr
                    .offset
                    .checked_add(payload.len() as u64)
                    .is_some_and(|e| e <= m.granted)
        });
        let Some((m, _)) = m else {
            ctx.out.stats.stale += 1;
            return PacketOutcome::Dropped;
        };
        self.msg_data(ctx, m, hdr.offset, payload)
    }

    /// Delivers the held messages of `peer` that are now in order, and
    /// advertises the progress when it moved half a window.
    fn advance_peer(&mut self, ctx: &mut Ctx<'_>, peer: PeerIdx) {
        loop {
            let Some(w) = self
                .peers
                .get_mut(peer as usize)
                .and_then(|p| p.window.as_mut())
            else {
                return;
            };
            match reorder::advance(w, &mut self.overflow, peer) {
                Some(m) => {
                    if let Some(m) = self.msgs.handle_at(m) {
                        self.deliver(ctx, m);
                    }
                }
                None => break,
            }
        }
        let half = (self.window / 2).max(1) as u32;
        let Some(p) = self.peers.get_mut(peer as usize) else {
            return;
        };
        let Some(next) = p.window.as_ref().map(|w| w.next_id()) else {
            return;
        };
        if !p.credit_queued && next.wrapping_sub(p.advertised) >= half {
            p.credit_queued = true;
            ctx.out.ctrl.push_back(Ctrl::Credit(peer));
        }
    }

    /// Message `m` is next in its peer's order: match it or keep it.
    fn deliver(&mut self, ctx: &mut Ctx<'_>, m: Handle) {
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let matched = self.matcher(msg.tagged).match_posted(msg.tag, msg.peer);
        self.deliver_matched(ctx, m, matched);
    }

    /// `deliver` with the match already looked up (posted handle, receive
    /// slot).
    fn deliver_matched(&mut self, ctx: &mut Ctx<'_>, m: Handle, matched: Option<(Handle, u32)>) {
        let matched = matched.and_then(|(_, rx)| self.recvs.handle_at(rx));
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let (tagged, tag, peer) = (msg.tagged, msg.tag, msg.peer);
        if let Some(rx) = matched {
            self.attach(ctx, m, rx);
            return;
        }
        // The unexpected table is as large as the message slab: no failure.
        let h = self
            .matcher_mut(tagged)
            .add_unexpected(tag, peer, m.idx())
            .unwrap_or(Handle::from_parts(NIL, 0));
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        msg.state = MsgState::Unexpected(h);
        self.store.keep(&mut msg.stash);
    }

    /// Gives message `m` the buffer of receive `rx`, copying what was
    /// stored so far.
    fn attach(&mut self, ctx: &mut Ctx<'_>, m: Handle, rx: Handle) {
        let min_multi = self.min_multi;
        let (Some(op), Some(msg)) = (self.recvs.get_mut(rx), self.msgs.get_mut(m)) else {
            return;
        };
        let mut unpost = None;
        if op.multi {
            msg.base = op.used;
            msg.cap = (op.len - op.used).min(msg.total as usize);
            op.used += msg.cap;
            if op.len - op.used < min_multi {
                unpost = op.posted.take();
            }
        } else {
            msg.base = 0;
            msg.cap = op.len;
            unpost = op.posted.take();
        }
        op.refs += 1;
        let tagged = op.tagged;
        msg.state = MsgState::Attached(rx);
        let (base, cap) = (msg.base, msg.cap);
        match op.iov.as_mut() {
            Some(iov) => self.store.release(&mut msg.stash, |off, data| {
                place(iov, base, cap, off, data);
            }),
            None => self.store.release(&mut msg.stash, |_, _| {}),
        }
        if let Some(h) = unpost {
            self.matcher_mut(tagged).unpost(h);
        }
        self.msg_progress(ctx, m);
        // The rest of a message whose sender broke will not come.
        let broken = self.msgs.get(m).and_then(|msg| {
            let waiting = msg.state == MsgState::Attached(rx) && msg.received < msg.total;
            waiting.then_some(msg.peer)
        });
        if let Some(kind) = broken.and_then(|p| ctx.peers.broken(p)) {
            self.fail_msg(ctx, m, kind);
        }
    }

    /// The data of a message's first packet. An empty one may have let the
    /// message complete (and be freed) already.
    fn first_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: Handle,
        off: u64,
        payload: &[u8],
    ) -> PacketOutcome {
        if payload.is_empty() {
            return PacketOutcome::Consumed;
        }
        self.msg_data(ctx, m, off, payload)
    }

    /// Bytes of message `m` at `off`: placed, stored, or dropped.
    fn msg_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: Handle,
        off: u64,
        payload: &[u8],
    ) -> PacketOutcome {
        let Some(msg) = self.msgs.get_mut(m) else {
            return PacketOutcome::Dropped;
        };
        match msg.state {
            // Out of order: always stored (see `on_req`); unexpected:
            // within the budget, else presented again later.
            MsgState::Pending | MsgState::Unexpected(_) | MsgState::Claimed(_) => {
                if self.store.push(&mut msg.stash, off, payload).is_err() {
                    return PacketOutcome::Deferred(msg.peer);
                }
            }
            MsgState::Attached(rx) => {
                if let Some(iov) = self.recvs.get_mut(rx).and_then(|op| op.iov.as_mut()) {
                    place(iov, msg.base, msg.cap, off, payload);
                }
            }
            MsgState::New | MsgState::Discard | MsgState::Done => {}
        }
        msg.received += payload.len() as u64;
        self.msg_progress(ctx, m);
        PacketOutcome::Consumed
    }

    /// Completes `m` when all its data is in; asks for more (CTS) if not.
    fn msg_progress(&mut self, ctx: &mut Ctx<'_>, m: Handle) {
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let placing = matches!(msg.state, MsgState::Attached(_) | MsgState::Discard);
        if placing && msg.proto == Proto::LongRead && msg.received < msg.total {
            self.long_read(ctx, m);
        }
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        let placing = matches!(msg.state, MsgState::Attached(_) | MsgState::Discard);
        if placing && msg.received >= msg.total {
            let st = msg.state;
            msg.state = MsgState::Done;
            if msg.proto == Proto::Medium {
                self.inflight.remove(&msg_key(msg.peer, msg.msg_id));
            }
            if msg.proto == Proto::LongRead {
                // The sender completes on it (it also stands for a receipt).
                ctx.out.ctrl.push_back(Ctrl::Fin {
                    peer: msg.peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                    status: Status::Ok,
                });
            } else if msg.want_receipt {
                ctx.out.ctrl.push_back(Ctrl::Receipt {
                    peer: msg.peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                });
            }
            if let MsgState::Attached(rx) = st {
                self.complete_recv(ctx, m, rx, None);
            }
        } else if placing && msg.proto == Proto::LongCts {
            let window = self.cts_window;
            if let Some(g) = longcts::next_grant(msg.total, msg.received, msg.granted, window) {
                msg.granted = g;
                if !msg.cts_queued {
                    msg.cts_queued = true;
                    ctx.out.ctrl.push_back(Ctrl::Cts(m));
                }
            }
        }
        if let Some(msg) = self.msgs.get(m)
            && msg.state == MsgState::Done
            && msg.cts_out == 0
            && !msg.cts_queued
        {
            self.free_msg(m);
        }
    }

    /// Long-read message `m` is matched (or discarded): copy what fits
    /// from the sender's memory. Refused → the message turns long-CTS
    /// (the caller's `msg_progress` then grants); failed → the receive
    /// and the send fail.
    fn long_read(&mut self, ctx: &mut Ctx<'_>, m: Handle) {
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let rx = match msg.state {
            MsgState::Attached(rx) => rx,
            _ => {
                // Discarded: nothing to copy, the sender may complete.
                if let Some(msg) = self.msgs.get_mut(m) {
                    msg.received = msg.total;
                }
                return;
            }
        };
        let n = (msg.cap as u64).min(msg.total);
        let (peer, base) = (msg.peer, msg.base);
        let pid = ctx.peers.cma_pid_for(peer, msg.desc_pid, ctx.cma.is_some());
        let res = match pid {
            None => Err(CmaError::Denied),
            Some(_) if n == 0 => Ok(()),
            Some(pid) => {
                let segs = cma::clip(msg.desc.iter().copied(), n);
                match (
                    ctx.cma.as_deref_mut(),
                    self.recvs.get_mut(rx).and_then(|o| o.iov.as_mut()),
                ) {
                    (Some(c), Some(iov)) => c.read(pid, &segs, iov, base),
                    _ => Err(CmaError::Denied),
                }
            }
        };
        cma::count(&mut ctx.out.stats, res, n);
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        match res {
            Ok(()) => msg.received = msg.total,
            Err(CmaError::Denied) => {
                msg.proto = Proto::LongCts;
                ctx.peers.cma_refused(peer);
            }
            Err(e) => {
                let kind = if e == CmaError::Gone {
                    ErrorKind::Unreachable
                } else {
                    ErrorKind::Io
                };
                ctx.out.ctrl.push_back(Ctrl::Fin {
                    peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                    status: kind.status(),
                });
                // Not a long-read any more as far as completion goes: the
                // FIN is out already.
                msg.proto = Proto::LongCts;
                self.fail_msg(ctx, m, kind);
            }
        }
    }

    /// The receive completion of message `m` in buffer `rx`; `fail`
    /// overrides (a failed CTS).
    fn complete_recv(&mut self, ctx: &mut Ctx<'_>, m: Handle, rx: Handle, fail: Option<ErrorKind>) {
        let (Some(msg), Some(op)) = (self.msgs.get(m), self.recvs.get_mut(rx)) else {
            return;
        };
        let peer = ctx.peers.get(msg.peer);
        let len = msg.cap.min(msg.total as usize);
        let mut flags = kind_flags(msg.tagged);
        if msg.data.is_some() {
            flags |= CompFlags::REMOTE_CQ_DATA;
        }
        let err = if let Some(e) = fail {
            Some((e, 0, Vec::new()))
        } else if msg.total as usize > msg.cap {
            Some((
                ErrorKind::Truncated,
                msg.total as usize - msg.cap,
                Vec::new(),
            ))
        } else if peer.is_some_and(|p| !p.in_av()) {
            // The data is placed; the address rides along (FI_SOURCE_ERR).
            Some((
                ErrorKind::AddrNotAvail,
                0,
                peer.map(|p| p.addr().to_vec()).unwrap_or_default(),
            ))
        } else {
            None
        };
        op.refs -= 1;
        let release = op.posted.is_none() && op.refs == 0;
        if op.multi && release {
            flags |= CompFlags::MULTI_RECV;
        }
        let buf = op.iov.as_ref().map_or(0, UserIov::base_addr) + msg.base;
        ctx.out.complete(Completion {
            context: op.context,
            flags,
            len,
            buf,
            data: msg.data.unwrap_or(0),
            tag: msg.tag,
            src: Some(msg.peer),
            report: op.report || err.is_some(),
            err: err.map(|(kind, olen, err_data)| CompletionError {
                kind,
                prov_errno: 0,
                olen,
                err_data,
            }),
            iov: None,
        });
        if release
            && let Some(op) = self.recvs.remove(rx)
            && let Some(c) = ctx.out.cq.back_mut()
        {
            c.iov = op.iov;
        }
    }

    /// Message `m` will not get its data (a CTS could not be delivered,
    /// its sender broke, a read failed): its receive fails.
    fn fail_msg(&mut self, ctx: &mut Ctx<'_>, m: Handle, kind: ErrorKind) {
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        let st = msg.state;
        msg.state = MsgState::Done;
        msg.cts_queued = false;
        if msg.proto == Proto::Medium {
            self.inflight.remove(&msg_key(msg.peer, msg.msg_id));
        }
        if let MsgState::Attached(rx) = st {
            self.complete_recv(ctx, m, rx, Some(kind));
        }
        self.msg_progress(ctx, m);
    }

    /// `peer` broke: the receives it was filling fail (its data will not
    /// come), and so do the posted receives directed at it.
    pub fn fail_peer(&mut self, ctx: &mut Ctx<'_>, peer: PeerIdx, kind: ErrorKind) {
        for i in 0..self.msgs.slots() {
            if let Some((h, m)) = self.msgs.entry_at(i)
                && m.peer == peer
                && m.waits_on_sender()
            {
                self.fail_msg(ctx, h, kind);
            }
        }
        self.fail_directed(ctx.out, peer, kind);
    }

    fn free_msg(&mut self, m: Handle) {
        if let Some(mut msg) = self.msgs.remove(m) {
            self.store.release(&mut msg.stash, |_, _| {});
        }
    }

    // ---- control packets of the receive side ------------------------------

    /// The CTS of message `m` (long-CTS grant), into `out`.
    pub fn emit_cts(&mut self, m: Handle, out: &mut [u8]) -> Option<TxInfo> {
        if out.len() < CTS_LEN {
            return None;
        }
        let msg = self.msgs.get_mut(m)?;
        msg.cts_queued = false;
        msg.cts_out += 1;
        let len = emit_cts(
            out,
            &CtsRepr {
                msg_id: msg.msg_id,
                tx_id: msg.tx_id,
                rx_id: m.idx(),
                grant_end: msg.granted,
            },
        );
        Some(TxInfo {
            peer: msg.peer,
            len,
            token: token(TOK_CTS, m),
            ext: None,
        })
    }

    /// The transport's verdict on a CTS: the message's peer (for the
    /// coordinator: alive, or failed), `None` for a message gone.
    pub fn cts_sent(
        &mut self,
        ctx: &mut Ctx<'_>,
        m: Handle,
        res: Result<(), TxError>,
    ) -> Option<PeerIdx> {
        let msg = self.msgs.get_mut(m)?;
        msg.cts_out = msg.cts_out.saturating_sub(1);
        let peer = msg.peer;
        match res {
            Ok(()) => self.msg_progress(ctx, m),
            Err(e) => self.fail_msg(ctx, m, e.kind()),
        }
        Some(peer)
    }

    /// The CREDIT to `peer`: the next msg_id we deliver, into `out`.
    pub fn emit_credit(&mut self, peer: PeerIdx, out: &mut [u8]) -> Option<TxInfo> {
        let p = self.peers.get_mut(peer as usize)?;
        p.credit_queued = false;
        let next = p.window.as_ref()?.next_id();
        p.advertised = next;
        if out.len() < CREDIT_LEN {
            return None;
        }
        let len = emit_credit(out, &CreditRepr { next_msg_id: next });
        Some(TxInfo {
            peer,
            len,
            token: peer_token(TOK_CREDIT, peer),
            ext: None,
        })
    }
}

/// Copies `data` (message offset `off`) into `iov` at `base`, clipped to
/// the `cap` bytes the message may use (truncation).
fn place(iov: &mut UserIov, base: usize, cap: usize, off: u64, data: &[u8]) {
    let off = off as usize;
    if off >= cap {
        return;
    }
    let n = data.len().min(cap - off);
    iov.copy_in(base + off, &data[..n]);
}
