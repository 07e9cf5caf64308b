//! Receive path: parsing datagrams, ordering messages per peer, matching
//! them to posted receives, placing data, and the receive-side calls
//! (recv/trecv, FI_PEEK/FI_CLAIM/FI_DISCARD, FI_MULTI_RECV, cancel).

use super::cma::{self, CmaError, Segs};
use super::endpoint::{Endpoint, msg_key};
use super::outbox::Ctrl;
use super::peer::PeerIdx;
use super::pool::{ChunkList, Handle, NIL};
use super::proto::longcts;
use super::reorder::{self, Place, Window};
use super::types::{CompFlags, ErrorKind, OpFlags};
use super::{Completion, CompletionError, MAX_MEDIUM, PROV_ERR_VERSION, PacketOutcome, RdmError};
use crate::mem::UserIov;
use crate::wire::rdm::Status;
use crate::wire::rdm::{
    CmaDesc, DataRepr, Packet, PacketType, Proto, REQ_CQ_DATA, REQ_RECEIPT, REQ_TAGGED, Repr,
    ReqRepr, WireError,
};

/// One posted receive.
#[derive(Debug)]
pub(crate) struct RxOp {
    pub iov: Option<UserIov>,
    pub len: usize,
    pub context: u64,
    pub tagged: bool,
    pub multi: bool,
    /// FI_MULTI_RECV: bytes handed out so far.
    pub used: usize,
    /// Messages placed (or being placed) in this buffer, not completed.
    pub refs: u32,
    /// In the matcher (a multi-receive buffer stays until nearly full).
    pub posted: Option<Handle>,
    pub report: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MsgState {
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
pub(crate) struct RxMsg {
    pub peer: PeerIdx,
    pub msg_id: u32,
    pub tx_id: u32,
    pub proto: Proto,
    pub tagged: bool,
    pub tag: u64,
    pub data: Option<u64>,
    pub total: u64,
    pub want_receipt: bool,
    /// Payload bytes arrived (placed, stored or dropped).
    pub received: u64,
    pub state: MsgState,
    pub chunks: ChunkList,
    /// Bytes and number of chunks held in `chunks`.
    pub stored: usize,
    pub nchunks: usize,
    /// Where it lands in the receive iov, and how much of it fits.
    pub base: usize,
    pub cap: usize,
    /// Long-CTS: bytes granted so far; CTS datagrams not yet confirmed.
    pub granted: u64,
    pub cts_out: u32,
    pub cts_queued: bool,
    /// Long-read: the sender's buffer and the pid its descriptor states.
    pub desc: Segs,
    pub desc_pid: u32,
}

/// The receive side of one peer.
#[derive(Debug, Default)]
pub(crate) struct PeerRx {
    /// Receive ordering, created on first message from it.
    pub window: Option<Window>,
    /// The `next` we last advertised in a CREDIT.
    pub advertised: u32,
    pub credit_queued: bool,
}

fn kind_flags(tagged: bool) -> CompFlags {
    CompFlags::msg(CompFlags::RECV, tagged)
}

impl Endpoint {
    fn rx_peer_mut(&mut self, peer: PeerIdx) -> &mut PeerRx {
        let i = peer as usize;
        if i >= self.rx_peers.len() {
            self.rx_peers.resize_with(i + 1, PeerRx::default);
        }
        &mut self.rx_peers[i]
    }

    /// Receive side: advertise `next` when it moved half a window.
    fn maybe_credit(&mut self, peer: PeerIdx) {
        let half = (self.cfg.reorder_window / 2).max(1) as u32;
        let Some(p) = self.rx_peers.get_mut(peer as usize) else {
            return;
        };
        let Some(next) = p.window.as_ref().map(|w| w.next_id()) else {
            return;
        };
        if !p.credit_queued && next.wrapping_sub(p.advertised) >= half {
            p.credit_queued = true;
            self.out.ctrl.push_back(Ctrl::Credit(peer));
        }
    }

    /// A datagram from the transport. `src`: the sender if the transport
    /// could map it to one of our peers.
    pub fn handle_packet(
        &mut self,
        _now: u64,
        src: Option<PeerIdx>,
        bytes: &[u8],
    ) -> PacketOutcome {
        let pkt = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(WireError::BadVersion(_)) => {
                self.out.stats.bad_version += 1;
                // A handshake in another version: fail what we send there
                // rather than let it hang.
                if bytes.get(1).copied() == Some(u8::from(PacketType::Handshake))
                    && let Some(peer) = src
                {
                    self.fail_peer_ops(peer, ErrorKind::Io, PROV_ERR_VERSION);
                }
                return PacketOutcome::Dropped;
            }
            Err(_) => {
                self.out.stats.malformed += 1;
                return PacketOutcome::Dropped;
            }
        };
        let repr = match Repr::parse(&pkt) {
            Ok(r) => r,
            Err(_) => {
                self.out.stats.malformed += 1;
                return PacketOutcome::Dropped;
            }
        };
        let addr = match &repr {
            Repr::Req { addr, .. } => *addr,
            Repr::Handshake { addr, .. } => Some(*addr),
            _ => None,
        };
        let Some((peer, learned)) = self.resolve(src, addr) else {
            self.out.stats.unknown_src += 1;
            return PacketOutcome::Dropped;
        };
        self.mark_alive(peer);
        let out = match repr {
            Repr::Req { hdr, payload, .. } => {
                self.ensure_handshake(peer);
                self.on_req(peer, hdr, payload)
            }
            Repr::Handshake { hdr, .. } => {
                self.on_handshake(peer, hdr);
                PacketOutcome::Consumed
            }
            Repr::Cts(c) => {
                self.on_cts(peer, c);
                PacketOutcome::Consumed
            }
            Repr::Data { hdr, payload } => self.on_data(peer, hdr, payload),
            Repr::Receipt(r) => {
                self.on_receipt(peer, r);
                PacketOutcome::Consumed
            }
            Repr::Credit(c) => {
                self.on_credit(peer, c);
                PacketOutcome::Consumed
            }
            Repr::Rtw { hdr, payload } => self.on_rtw(peer, hdr, payload),
            Repr::Rtr { hdr, desc } => self.on_rtr(peer, hdr, desc),
            Repr::Rta { hdr, payload } => self.on_rta(peer, hdr, payload),
            Repr::ReadRsp { hdr, payload } => {
                self.on_read_rsp(peer, hdr, payload);
                PacketOutcome::Consumed
            }
            Repr::WriteRsp(r) => {
                self.on_write_rsp(peer, r);
                PacketOutcome::Consumed
            }
            Repr::AtomRsp { hdr, payload } => {
                self.on_atom_rsp(peer, hdr, payload);
                PacketOutcome::Consumed
            }
            Repr::Fin(f) => {
                self.on_fin(peer, f);
                PacketOutcome::Consumed
            }
            Repr::Unknown(_) => {
                self.out.stats.unknown_type += 1;
                PacketOutcome::Dropped
            }
        };
        match out {
            PacketOutcome::Consumed if learned => PacketOutcome::NewPeer(peer),
            PacketOutcome::Deferred(_) => {
                self.out.stats.deferred += 1;
                out
            }
            _ => out,
        }
    }

    /// The peer a packet is from: the transport's mapping, else the address
    /// the packet carries (creating an internal entry). `true`: the glue
    /// did not know it.
    fn resolve(&mut self, src: Option<PeerIdx>, addr: Option<&[u8]>) -> Option<(PeerIdx, bool)> {
        if let Some(p) = src
            && self.peers.get(p).is_some()
        {
            return Some((p, false));
        }
        let a = addr.filter(|a| !a.is_empty())?;
        Some((self.peers.insert(a, false)?, true))
    }

    fn on_req(&mut self, peer: PeerIdx, hdr: ReqRepr, payload: &[u8]) -> PacketOutcome {
        // Only medium messages have several REQs (one per packet).
        if hdr.proto == Proto::Medium
            && let Some(&m) = self.inflight.get(&msg_key(peer, hdr.msg_id))
        {
            return self.msg_data(m, hdr.offset, payload);
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
                self.out.stats.unsupported += 1;
                return PacketOutcome::Dropped;
            }
        };
        if !ok {
            self.out.stats.malformed += 1;
            return PacketOutcome::Dropped;
        }
        let payload = if hdr.proto == Proto::LongRead {
            &[][..]
        } else {
            payload
        };
        let window = self.cfg.reorder_window;
        if self.peers.get(peer).is_none() {
            return PacketOutcome::Dropped;
        }
        let next = self
            .rx_peer_mut(peer)
            .window
            .get_or_insert_with(|| Window::new(window))
            .next_id();
        let tagged = hdr.flags & REQ_TAGGED != 0;
        let tag = if tagged { hdr.tag } else { 0 };
        // Admission: everything this first packet needs must be available
        // before any state changes, so a refusal leaves nothing behind.
        let n = payload.len();
        let in_order = hdr.msg_id == next;
        let matcher = if tagged { &self.tagged } else { &self.untagged };
        // Out-of-order messages are always taken: the credit window bounds
        // them per peer, and refusing one could block the message it waits
        // for behind it in the glue's held buffers. In-order messages
        // without a receive wait for unexpected storage.
        let matched = if in_order {
            matcher.match_posted(tag, peer)
        } else {
            None
        };
        if in_order && matched.is_none() {
            let charge = if n > 0 { self.chunks.charge(n) } else { 0 };
            let room = self.unexp_bytes + charge <= self.cfg.unexp_max_bytes;
            if !room
                || self.stored_msgs >= self.cfg.unexp_max_count
                || self.unexp_chunks >= self.max_unexp_chunks
            {
                return PacketOutcome::Deferred(peer);
            }
        }
        let ahead = hdr.msg_id.wrapping_sub(next) as usize;
        if !in_order && ahead >= window + self.cfg.reorder_overflow {
            // Beyond any credit we grant: a misbehaving sender.
            self.out.stats.stale += 1;
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
            chunks: ChunkList::default(),
            stored: 0,
            nchunks: 0,
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
            .rx_peers
            .get_mut(peer as usize)
            .and_then(|p| p.window.as_mut())
        else {
            return PacketOutcome::Dropped;
        };
        match reorder::place(w, &mut self.overflow, peer, hdr.msg_id, m.idx()) {
            Place::Stale => {
                self.msgs.remove(m);
                self.out.stats.stale += 1;
                PacketOutcome::Dropped
            }
            Place::Full => {
                self.msgs.remove(m);
                PacketOutcome::Deferred(peer)
            }
            Place::Held => {
                self.pending_msgs += 1;
                if let Some(msg) = self.msgs.get_mut(m) {
                    msg.state = MsgState::Pending;
                }
                if hdr.proto == Proto::Medium {
                    self.inflight.insert(msg_key(peer, hdr.msg_id), m);
                }
                self.first_data(m, hdr.offset, payload)
            }
            Place::Now => {
                if hdr.proto == Proto::Medium {
                    self.inflight.insert(msg_key(peer, hdr.msg_id), m);
                }
                self.deliver_matched(m, matched);
                let out = self.first_data(m, hdr.offset, payload);
                self.advance_peer(peer);
                out
            }
        }
    }

    /// Delivers the held messages of `peer` that are now in order.
    fn advance_peer(&mut self, peer: PeerIdx) {
        self.advance_loop(peer);
        self.maybe_credit(peer);
    }

    fn advance_loop(&mut self, peer: PeerIdx) {
        loop {
            let Some(w) = self
                .rx_peers
                .get_mut(peer as usize)
                .and_then(|p| p.window.as_mut())
            else {
                return;
            };
            match reorder::advance(w, &mut self.overflow, peer) {
                Some(m) => {
                    if let Some(m) = self.msgs.handle_at(m) {
                        self.deliver(m);
                    }
                }
                None => break,
            }
        }
    }

    /// Message `m` is next in its peer's order: match it or keep it.
    fn deliver(&mut self, m: Handle) {
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let matcher = if msg.tagged {
            &self.tagged
        } else {
            &self.untagged
        };
        let matched = matcher.match_posted(msg.tag, msg.peer);
        self.deliver_matched(m, matched);
    }

    /// `deliver` with the match already looked up (posted handle, rx op).
    fn deliver_matched(&mut self, m: Handle, matched: Option<(Handle, u32)>) {
        let matched = matched.and_then(|(_, rx)| self.rx.handle_at(rx));
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let (tagged, tag, peer, was_pending) = (
            msg.tagged,
            msg.tag,
            msg.peer,
            msg.state == MsgState::Pending,
        );
        let matcher = if tagged {
            &mut self.tagged
        } else {
            &mut self.untagged
        };
        if let Some(rx) = matched {
            self.attach(m, rx);
            return;
        }
        // The unexpected table is as large as the message slab: no failure.
        let h = matcher
            .add_unexpected(tag, peer, m.idx())
            .unwrap_or(Handle::from_parts(NIL, 0));
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        msg.state = MsgState::Unexpected(h);
        if was_pending {
            self.reorder_bytes -= msg.stored;
            self.pending_msgs -= 1;
        }
        // May overshoot the unexpected budget by what was held: bounded by
        // the credit window, and refusing it is not an option.
        self.unexp_bytes += msg.stored;
        self.unexp_chunks += msg.nchunks;
        self.stored_msgs += 1;
    }

    /// Gives message `m` the buffer of receive `rx`, copying what was
    /// stored so far.
    fn attach(&mut self, m: Handle, rx: Handle) {
        let min_multi = self.cfg.min_multi_recv;
        let (Some(op), Some(msg)) = (self.rx.get_mut(rx), self.msgs.get_mut(m)) else {
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
        match msg.state {
            MsgState::Pending => {
                self.reorder_bytes -= msg.stored;
                self.pending_msgs -= 1;
            }
            MsgState::Unexpected(_) | MsgState::Claimed(_) => {
                self.unexp_bytes -= msg.stored;
                self.unexp_chunks -= msg.nchunks;
                self.stored_msgs -= 1;
            }
            _ => {}
        }
        msg.stored = 0;
        msg.nchunks = 0;
        msg.state = MsgState::Attached(rx);
        let (base, cap) = (msg.base, msg.cap);
        if let Some(iov) = op.iov.as_mut() {
            self.chunks.drain(&mut msg.chunks, |off, data| {
                place(iov, base, cap, off, data);
            });
        }
        if let Some(h) = unpost {
            if tagged {
                self.tagged.unpost(h);
            } else {
                self.untagged.unpost(h);
            }
        }
        self.msg_progress(m);
        // The rest of a message whose sender broke will not come.
        let broken = self.msgs.get(m).and_then(|msg| {
            let waiting = msg.state == MsgState::Attached(rx) && msg.received < msg.total;
            waiting.then_some(msg.peer)
        });
        if let Some(kind) = broken.and_then(|p| self.peers.broken(p)) {
            self.fail_msg(m, kind);
        }
    }

    /// The data of a message's first packet. An empty one may have let the
    /// message complete (and be freed) already.
    fn first_data(&mut self, m: Handle, off: u64, payload: &[u8]) -> PacketOutcome {
        if payload.is_empty() {
            return PacketOutcome::Consumed;
        }
        self.msg_data(m, off, payload)
    }

    /// Bytes of message `m` at `off`.
    fn msg_data(&mut self, m: Handle, off: u64, payload: &[u8]) -> PacketOutcome {
        let Some(msg) = self.msgs.get_mut(m) else {
            return PacketOutcome::Dropped;
        };
        let n = payload.len();
        match msg.state {
            MsgState::Pending => {
                // Out of order: always stored (see `on_req`).
                if n > 0 {
                    let c = self.chunks.charge(n);
                    self.chunks.push(&mut msg.chunks, off, payload);
                    msg.stored += c;
                    msg.nchunks += 1;
                    self.reorder_bytes += c;
                }
            }
            MsgState::Unexpected(_) | MsgState::Claimed(_) => {
                if n > 0 {
                    let c = self.chunks.charge(n);
                    if self.unexp_bytes + c > self.cfg.unexp_max_bytes
                        || self.unexp_chunks >= self.max_unexp_chunks
                    {
                        return PacketOutcome::Deferred(msg.peer);
                    }
                    self.chunks.push(&mut msg.chunks, off, payload);
                    msg.stored += c;
                    msg.nchunks += 1;
                    self.unexp_bytes += c;
                    self.unexp_chunks += 1;
                }
            }
            MsgState::Attached(rx) => {
                if let Some(iov) = self.rx.get_mut(rx).and_then(|op| op.iov.as_mut()) {
                    place(iov, msg.base, msg.cap, off, payload);
                }
            }
            MsgState::New | MsgState::Discard | MsgState::Done => {}
        }
        msg.received += n as u64;
        self.msg_progress(m);
        PacketOutcome::Consumed
    }

    /// Completes `m` when all its data is in; asks for more (CTS) if not.
    pub(super) fn msg_progress(&mut self, m: Handle) {
        let Some(msg) = self.msgs.get(m) else {
            return;
        };
        let placing = matches!(msg.state, MsgState::Attached(_) | MsgState::Discard);
        if placing && msg.proto == Proto::LongRead && msg.received < msg.total {
            self.long_read(m);
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
                self.out.ctrl.push_back(Ctrl::Fin {
                    peer: msg.peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                    status: Status::Ok,
                });
            } else if msg.want_receipt {
                self.out.ctrl.push_back(Ctrl::Receipt {
                    peer: msg.peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                });
            }
            if let MsgState::Attached(rx) = st {
                self.complete_recv(m, rx, None);
            }
        } else if placing && msg.proto == Proto::LongCts {
            let window = self.cfg.cts_window as u64;
            if let Some(g) = longcts::next_grant(msg.total, msg.received, msg.granted, window) {
                msg.granted = g;
                if !msg.cts_queued {
                    msg.cts_queued = true;
                    self.out.ctrl.push_back(Ctrl::Cts(m));
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
    fn long_read(&mut self, m: Handle) {
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
        let pid = self
            .peers
            .cma_pid_for(peer, msg.desc_pid, self.cma.is_some());
        let res = match pid {
            None => Err(CmaError::Denied),
            Some(_) if n == 0 => Ok(()),
            Some(pid) => {
                let segs = cma::clip(msg.desc.iter().copied(), n);
                match (
                    self.cma.as_mut(),
                    self.rx.get_mut(rx).and_then(|o| o.iov.as_mut()),
                ) {
                    (Some(c), Some(iov)) => c.read(pid, &segs, iov, base),
                    _ => Err(CmaError::Denied),
                }
            }
        };
        cma::count(&mut self.out.stats, res, n);
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        match res {
            Ok(()) => msg.received = msg.total,
            Err(CmaError::Denied) => {
                msg.proto = Proto::LongCts;
                self.cma_refused(peer);
            }
            Err(e) => {
                let kind = if e == CmaError::Gone {
                    ErrorKind::Unreachable
                } else {
                    ErrorKind::Io
                };
                self.out.ctrl.push_back(Ctrl::Fin {
                    peer,
                    msg_id: msg.msg_id,
                    tx_id: msg.tx_id,
                    status: kind.status(),
                });
                // Not a long-read any more as far as completion goes: the
                // FIN is out already.
                msg.proto = Proto::LongCts;
                self.fail_msg(m, kind);
            }
        }
    }

    /// The receive completion of message `m` in buffer `rx`; `fail`
    /// overrides (a failed CTS).
    fn complete_recv(&mut self, m: Handle, rx: Handle, fail: Option<ErrorKind>) {
        let (Some(msg), Some(op)) = (self.msgs.get(m), self.rx.get_mut(rx)) else {
            return;
        };
        let peer = self.peers.get(msg.peer);
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
        let c = Completion {
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
        };
        self.out.cq.push_back(c);
        if release
            && let Some(op) = self.rx.remove(rx)
            && let Some(c) = self.out.cq.back_mut()
        {
            c.iov = op.iov;
        }
    }

    /// A CTS for `m` could not be delivered: its receive fails.
    pub(super) fn fail_msg(&mut self, m: Handle, kind: ErrorKind) {
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
            self.complete_recv(m, rx, Some(kind));
        }
        self.msg_progress(m);
    }

    /// Fails the receives still being filled by `peer` (its data will not
    /// come: the transport gave up on it).
    pub(super) fn fail_peer_msgs(&mut self, peer: PeerIdx, kind: ErrorKind) {
        for i in 0..self.msgs.slots() {
            if let Some((h, m)) = self.msgs.entry_at(i)
                && m.peer == peer
                && matches!(m.state, MsgState::Attached(_))
                && m.received < m.total
            {
                self.fail_msg(h, kind);
            }
        }
    }

    /// Fails the posted receives directed at `peer` (it broke: nothing
    /// more will come from it). As `cancel`, with `kind`.
    pub(super) fn fail_directed_recvs(&mut self, peer: PeerIdx, kind: ErrorKind) {
        for tagged in [true, false] {
            let matcher = if tagged {
                &mut self.tagged
            } else {
                &mut self.untagged
            };
            for (h, rx) in matcher.posted_from(peer) {
                let matcher = if tagged {
                    &mut self.tagged
                } else {
                    &mut self.untagged
                };
                matcher.unpost(h);
                let Some(rx) = self.rx.handle_at(rx) else {
                    continue;
                };
                if let Some(op) = self.rx.get_mut(rx) {
                    op.posted = None;
                }
                self.fail_unposted(rx, kind);
            }
        }
    }

    fn free_msg(&mut self, m: Handle) {
        let Some(mut msg) = self.msgs.remove(m) else {
            return;
        };
        self.chunks.drain(&mut msg.chunks, |_, _| {});
    }

    fn on_data(&mut self, peer: PeerIdx, hdr: DataRepr, payload: &[u8]) -> PacketOutcome {
        let m = self.msgs.handle_at(hdr.rx_id);
        let ok = m.and_then(|m| self.msgs.get(m)).is_some_and(|m| {
            m.peer == peer
                && m.msg_id == hdr.msg_id
                && m.proto == Proto::LongCts
                && matches!(m.state, MsgState::Attached(_) | MsgState::Discard)
                && hdr
                    .offset
                    .checked_add(payload.len() as u64)
                    .is_some_and(|e| e <= m.granted)
        });
        let (true, Some(m)) = (ok, m) else {
            self.out.stats.stale += 1;
            return PacketOutcome::Dropped;
        };
        self.msg_data(m, hdr.offset, payload)
    }

    // ---- receive-side calls ---------------------------------------------

    /// fi_recv/fi_recvmsg (FI_MULTI_RECV allowed). `src`: FI_DIRECTED_RECV.
    pub fn recv(
        &mut self,
        _now: u64,
        iov: UserIov,
        src: Option<PeerIdx>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        self.post_recv(iov, src, false, 0, 0, context, flags)
    }

    /// fi_trecv/fi_trecvmsg (FI_PEEK, FI_CLAIM, FI_DISCARD allowed).
    #[allow(clippy::too_many_arguments)]
    pub fn trecv(
        &mut self,
        _now: u64,
        iov: UserIov,
        src: Option<PeerIdx>,
        tag: u64,
        ignore: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        if flags.contains(OpFlags::PEEK) {
            return self.peek(iov, src, tag, ignore, context, flags);
        }
        if flags.contains(OpFlags::CLAIM) {
            return self.claimed_recv(iov, context, flags);
        }
        self.post_recv(iov, src, true, tag, ignore, context, flags)
    }

    #[allow(clippy::too_many_arguments)]
    fn post_recv(
        &mut self,
        iov: UserIov,
        src: Option<PeerIdx>,
        tagged: bool,
        tag: u64,
        ignore: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let multi = !tagged && flags.contains(OpFlags::MULTI_RECV);
        if multi && iov.len() < self.cfg.min_multi_recv.max(1) {
            return Err(RdmError::InvalidArgument);
        }
        let op = RxOp {
            len: iov.len(),
            iov: Some(iov),
            context,
            tagged,
            multi,
            used: 0,
            refs: 0,
            posted: None,
            report: !self.cfg.rx_selective || flags.contains(OpFlags::COMPLETION),
        };
        let Ok(rx) = self.rx.insert(op) else {
            return Err(RdmError::Again);
        };
        let tag = tag & !ignore;
        // Unexpected messages first: they arrived before this receive.
        loop {
            let matcher = if tagged {
                &mut self.tagged
            } else {
                &mut self.untagged
            };
            let Some((h, m)) = matcher.find_unexpected(tag, ignore, src) else {
                break;
            };
            matcher.remove_unexpected(h);
            let Some(m) = self.msgs.handle_at(m) else {
                continue;
            };
            // A multi-receive buffer is "posted" while it has room.
            if let Some(op) = self.rx.get_mut(rx) {
                op.posted = if multi {
                    Some(Handle::from_parts(NIL, 0))
                } else {
                    None
                };
            }
            self.attach(m, rx);
            let open = self
                .rx
                .get_mut(rx)
                .is_some_and(|op| op.posted.take().is_some());
            if !open {
                return Ok(());
            }
        }
        if let Some(kind) = src.and_then(|p| self.peers.broken(p)) {
            // Directed at a broken peer, and nothing it sent before
            // matched: no message can come any more.
            let iov = self.rx.remove(rx).and_then(|op| op.iov);
            let mut flags = kind_flags(tagged);
            if multi {
                flags |= CompFlags::MULTI_RECV;
            }
            self.out.fail(context, flags, kind, 0, iov);
            return Ok(());
        }
        let matcher = if tagged {
            &mut self.tagged
        } else {
            &mut self.untagged
        };
        let h = matcher.post(tag, ignore, src, rx.idx());
        if let Some(op) = self.rx.get_mut(rx) {
            op.posted = h;
        }
        Ok(())
    }

    /// FI_PEEK (optionally with FI_CLAIM or FI_DISCARD).
    fn peek(
        &mut self,
        iov: UserIov,
        src: Option<PeerIdx>,
        tag: u64,
        ignore: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let found = self.tagged.find_unexpected(tag & !ignore, ignore, src);
        let Some((h, m)) = found.and_then(|(h, m)| Some((h, self.msgs.handle_at(m)?))) else {
            self.out.cq.push_back(Completion {
                context,
                flags: CompFlags::RECV | CompFlags::TAGGED,
                len: 0,
                buf: 0,
                data: 0,
                tag,
                src: None,
                report: true,
                err: Some(CompletionError {
                    kind: ErrorKind::NoMessage,
                    prov_errno: 0,
                    olen: 0,
                    err_data: Vec::new(),
                }),
                iov: Some(iov),
            });
            return Ok(());
        };
        let Some(msg) = self.msgs.get_mut(m) else {
            return Err(RdmError::Again);
        };
        let mut cflags = CompFlags::RECV | CompFlags::TAGGED;
        if msg.data.is_some() {
            cflags |= CompFlags::REMOTE_CQ_DATA;
        }
        let peer = self.peers.get(msg.peer);
        let err = peer.filter(|p| !p.in_av()).map(|p| CompletionError {
            kind: ErrorKind::AddrNotAvail,
            prov_errno: 0,
            olen: 0,
            err_data: p.addr().to_vec(),
        });
        self.out.cq.push_back(Completion {
            context,
            flags: cflags,
            len: msg.total as usize,
            buf: 0,
            data: msg.data.unwrap_or(0),
            tag: msg.tag,
            src: Some(msg.peer),
            report: true,
            err,
            iov: Some(iov),
        });
        if flags.contains(OpFlags::CLAIM) {
            msg.state = MsgState::Claimed(context);
            self.tagged.remove_unexpected(h);
        } else if flags.contains(OpFlags::DISCARD) {
            self.tagged.remove_unexpected(h);
            self.discard(m);
        }
        Ok(())
    }

    /// fi_trecv with FI_CLAIM: receive (or FI_DISCARD) the message an
    /// earlier FI_PEEK|FI_CLAIM with this context reserved.
    fn claimed_recv(&mut self, iov: UserIov, context: u64, flags: OpFlags) -> Result<(), RdmError> {
        let found = self.msgs_claimed_by(context).ok_or(RdmError::NoMessage)?;
        if flags.contains(OpFlags::DISCARD) {
            let (len, tag) = self
                .msgs
                .get(found)
                .map_or((0, 0), |m| (m.total as usize, m.tag));
            self.discard(found);
            self.out.cq.push_back(Completion {
                context,
                flags: CompFlags::RECV | CompFlags::TAGGED,
                len,
                buf: 0,
                data: 0,
                tag,
                src: None,
                report: !self.cfg.rx_selective || flags.contains(OpFlags::COMPLETION),
                err: None,
                iov: Some(iov),
            });
            return Ok(());
        }
        let op = RxOp {
            len: iov.len(),
            iov: Some(iov),
            context,
            tagged: true,
            multi: false,
            used: 0,
            refs: 0,
            posted: None,
            report: !self.cfg.rx_selective || flags.contains(OpFlags::COMPLETION),
        };
        let rx = self.rx.insert(op).map_err(|_| RdmError::Again)?;
        self.attach(found, rx);
        Ok(())
    }

    fn msgs_claimed_by(&self, context: u64) -> Option<Handle> {
        self.msgs
            .iter()
            .find(|(_, m)| m.state == MsgState::Claimed(context))
            .map(|(h, _)| h)
    }

    /// Drops message `m`'s data (stored and to come).
    fn discard(&mut self, m: Handle) {
        let Some(msg) = self.msgs.get_mut(m) else {
            return;
        };
        self.unexp_bytes -= msg.stored;
        self.unexp_chunks -= msg.nchunks;
        self.stored_msgs -= 1;
        msg.stored = 0;
        msg.nchunks = 0;
        msg.state = MsgState::Discard;
        self.chunks.drain(&mut msg.chunks, |_, _| {});
        self.msg_progress(m);
    }

    /// fi_cancel: a posted receive with this context completes with
    /// ErrorKind::Canceled. Returns whether one was found.
    pub fn cancel(&mut self, context: u64) -> bool {
        let found = self
            .rx
            .iter()
            .find(|(_, op)| op.context == context && op.posted.is_some());
        let Some((rx, _)) = found else {
            return false;
        };
        let Some(op) = self.rx.get_mut(rx) else {
            return false;
        };
        if let Some(h) = op.posted.take() {
            if op.tagged {
                self.tagged.unpost(h);
            } else {
                self.untagged.unpost(h);
            }
        }
        self.fail_unposted(rx, ErrorKind::Canceled);
        true
    }

    /// Ends the receive `rx`, already out of its matcher, with an error
    /// entry. A multi-receive buffer with messages still landing is
    /// released by the last of them (FI_MULTI_RECV on its completion).
    fn fail_unposted(&mut self, rx: Handle, kind: ErrorKind) {
        let Some(op) = self.rx.get(rx) else {
            return;
        };
        let (context, tagged, multi, refs) = (op.context, op.tagged, op.multi, op.refs);
        let mut flags = kind_flags(tagged);
        let iov = if refs == 0 {
            if multi {
                flags |= CompFlags::MULTI_RECV;
            }
            self.rx.remove(rx).and_then(|op| op.iov)
        } else {
            None
        };
        self.out.fail(context, flags, kind, 0, iov);
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
