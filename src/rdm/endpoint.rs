//! The endpoint: its state, its construction and the application-facing
//! calls (post send/receive, cancel, completions). The packet paths live in
//! `tx`, `rx` and `handshake`.

use super::matcher::{Matcher, TagHasher};
use super::peer::{INITIAL_WINDOW, PeerIdx, PeerTable};
use super::pool::{ChunkStore, Handle, Slab};
use super::proto::{self, Cutoffs};
use super::reorder::Overflow;
use super::rma::{RemoteCounts, RmaOp, RmaQ, RmaTarget};
use super::rma_target::{ReadOut, WriteIn};
use super::rx::{RxMsg, RxOp};
use super::tx::TxOp;
use super::{
    CompFlags, Completion, CompletionError, Config, ErrorKind, MAX_MEDIUM, OpFlags, RdmError, Stats,
};
use crate::mem::UserIov;
use crate::wire::rdm::{DATA_LEN, MAX_ADDR_LEN, OpRef, Proto, REQ_LEN, Status};
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

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
    /// RMA target: an atomic's status; `buf` (index in `rsp_bufs`, or
    /// NIL) holds the fetched values.
    AtomRsp {
        peer: PeerIdx,
        op: OpRef,
        status: Status,
        buf: u32,
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

/// Key of a message in `inflight`.
pub(super) fn msg_key(peer: PeerIdx, msg_id: u32) -> u64 {
    (u64::from(peer) << 32) | u64::from(msg_id)
}

pub(super) fn untoken(t: u64) -> (u64, Handle) {
    (t >> 56, Handle::from_parts(t as u32, (t >> 32) as u32))
}

/// One RDM endpoint. `Send` (the glue may move it between threads; it
/// serialises calls itself), never shared: every call takes `&mut self`.
pub struct Endpoint {
    pub(super) cfg: Config,
    pub(super) cut: Cutoffs,
    pub(super) peers: PeerTable,
    pub(super) tx: Slab<TxOp>,
    /// Inject copies, one buffer per tx slot, allocated once.
    pub(super) inject_bufs: Vec<Vec<u8>>,
    pub(super) rx: Slab<RxOp>,
    pub(super) msgs: Slab<RxMsg>,
    /// Medium messages that still expect packets, by `msg_key`.
    pub(super) inflight: HashMap<u64, Handle, BuildHasherDefault<TagHasher>>,
    pub(super) tagged: Matcher,
    pub(super) untagged: Matcher,
    pub(super) overflow: Overflow,
    pub(super) chunks: ChunkStore,
    /// Messages stored without a receive (held out of order or unexpected).
    /// In-order messages without a receive (unexpected, claimed): their
    /// count, bytes and chunks are what the `unexp_*` limits bound.
    pub(super) stored_msgs: usize,
    pub(super) unexp_chunks: usize,
    pub(super) max_unexp_chunks: usize,
    /// Out-of-order messages and their bytes (bounded per peer by the
    /// credit window, not refused).
    pub(super) pending_msgs: usize,
    pub(super) unexp_bytes: usize,
    pub(super) reorder_bytes: usize,
    pub(super) ctrl: VecDeque<Ctrl>,
    pub(super) txq: VecDeque<Handle>,
    /// Peers paused by the glue (`set_peer_paused`).
    pub(super) paused: usize,
    pub(super) cq: VecDeque<Completion>,
    /// Peers with a handshake deadline running.
    pub(super) hs_pending: Vec<PeerIdx>,
    /// Next liveness tick (0: not started).
    pub(super) probe_at: u64,
    pub(super) scratch_peers: Vec<PeerIdx>,
    pub(super) stats: Stats,
    // ---- RMA and atomics (rma.rs, rma_target.rs) ----
    /// The glue's memory registry (target side).
    pub(super) rma_target: Option<Box<dyn RmaTarget + Send>>,
    /// Initiator operations and their copied payloads (inject data, atomic
    /// operands; one reusable buffer per slot).
    pub(super) rma: Slab<RmaOp>,
    pub(super) rma_bufs: Vec<Vec<u8>>,
    /// RMA packets to send (initiator ops and reads being served).
    pub(super) rmaq: VecDeque<RmaQ>,
    /// Ops waiting for their peer's handshake (RMA packets carry no
    /// address: the target must know us first).
    pub(super) rma_wait: Vec<Handle>,
    /// poll_transmit alternates between sends and RMA.
    pub(super) rma_turn: bool,
    /// Target: multi-packet writes being placed, by (peer, tx_id, gen).
    pub(super) wr_in: HashMap<(PeerIdx, u32, u32), WriteIn>,
    /// Target: reads being served.
    pub(super) rd_out: Slab<ReadOut>,
    /// Target: fetched values waiting in ATOMRSPs.
    pub(super) rsp_bufs: Vec<Vec<u8>>,
    pub(super) rsp_free: Vec<u32>,
    pub(super) scratch: Vec<u8>,
    pub(super) remote: RemoteCounts,
    /// The glue's single-copy access to same-host peers (module `cma`).
    pub(super) cma: Option<Box<dyn super::Cma + Send>>,
}

impl Endpoint {
    pub fn new(mut cfg: Config) -> Self {
        cfg.local_addr.truncate(MAX_ADDR_LEN);
        // Room for a REQ with our address and at least some data.
        cfg.mtu = cfg.mtu.max(REQ_LEN + cfg.local_addr.len() + 64);
        cfg.tx_size = cfg.tx_size.max(1);
        // The window is advertised in a u16 and never below what senders
        // assume before the handshake.
        cfg.reorder_window = cfg
            .reorder_window
            .clamp(INITIAL_WINDOW as usize, u16::MAX as usize);
        cfg.rx_size = cfg.rx_size.max(1);
        cfg.rma_target_max = cfg.rma_target_max.max(1);
        let eager_fit = cfg.mtu - REQ_LEN - cfg.local_addr.len();
        let cut = Cutoffs {
            eager_max: cfg.eager_max.min(eager_fit),
            medium_max: cfg
                .medium_max
                .min(MAX_MEDIUM)
                .max(cfg.eager_max.min(eager_fit)),
        };
        cfg.cts_window = cfg.cts_window.max(cfg.mtu - DATA_LEN);
        let max_msgs = cfg.rx_size + cfg.unexp_max_count;
        // One chunk per stored packet; packets carry at least one byte.
        let chunk_payload = (cfg.mtu - REQ_LEN).max(1);
        // Each stored packet is a chunk of up to `mtu` bytes: limiting
        // their number bounds the memory, not just the payload bytes.
        let max_unexp_chunks = cfg.unexp_max_bytes / chunk_payload + cfg.unexp_max_count + 16;
        let max_chunks = max_unexp_chunks + cfg.reorder_max_bytes / chunk_payload;
        Endpoint {
            cut,
            peers: PeerTable::new(cfg.max_peers),
            tx: Slab::with_capacity(cfg.tx_size),
            inject_bufs: (0..cfg.tx_size)
                .map(|_| Vec::with_capacity(cfg.inject_size))
                .collect(),
            rx: Slab::with_capacity(cfg.rx_size),
            msgs: Slab::with_capacity(max_msgs),
            inflight: HashMap::with_capacity_and_hasher(max_msgs, Default::default()),
            tagged: Matcher::new(cfg.rx_size, max_msgs),
            untagged: Matcher::new(cfg.rx_size, max_msgs),
            overflow: Overflow::new(cfg.reorder_overflow),
            chunks: ChunkStore::new(max_chunks, cfg.mtu),
            stored_msgs: 0,
            unexp_chunks: 0,
            max_unexp_chunks,
            pending_msgs: 0,
            unexp_bytes: 0,
            reorder_bytes: 0,
            ctrl: VecDeque::with_capacity(2 * max_msgs + 64),
            txq: VecDeque::with_capacity(cfg.tx_size),
            paused: 0,
            cq: VecDeque::with_capacity(cfg.tx_size + cfg.rx_size + 64),
            hs_pending: Vec::new(),
            probe_at: 0,
            scratch_peers: Vec::new(),
            stats: Stats::default(),
            rma_target: None,
            rma: Slab::with_capacity(cfg.tx_size),
            rma_bufs: (0..cfg.tx_size).map(|_| Vec::new()).collect(),
            rmaq: VecDeque::with_capacity(cfg.tx_size + cfg.rma_target_max),
            rma_wait: Vec::new(),
            rma_turn: false,
            wr_in: HashMap::with_capacity(cfg.rma_target_max.min(4096)),
            rd_out: Slab::with_capacity(cfg.rma_target_max),
            rsp_bufs: Vec::new(),
            rsp_free: Vec::new(),
            scratch: Vec::new(),
            remote: RemoteCounts::default(),
            cma: None,
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Eager and medium cut-offs in force (eager clipped to one packet).
    pub fn eager_max(&self) -> usize {
        self.cut.eager_max
    }

    pub fn medium_max(&self) -> usize {
        self.cut.medium_max
    }

    // ---- peers ---------------------------------------------------------

    /// Adds an AV entry (or promotes the internal entry of that address).
    pub fn insert_peer(&mut self, addr: &[u8]) -> Result<PeerIdx, RdmError> {
        if addr.is_empty() || addr.len() > MAX_ADDR_LEN {
            return Err(RdmError::InvalidArgument);
        }
        self.peers.insert(addr, true).ok_or(RdmError::Again)
    }

    /// Removes an AV entry. The entry stays as an internal one so msg_id
    /// sequences survive a later re-insert (as EFA keeps its peer state);
    /// messages from it are then reported with `AddrNotAvail`.
    pub fn remove_peer(&mut self, peer: PeerIdx) -> Result<(), RdmError> {
        let p = self.peers.get_mut(peer).ok_or(RdmError::UnknownPeer)?;
        p.in_av = false;
        Ok(())
    }

    pub fn peer_addr(&self, peer: PeerIdx) -> Option<&[u8]> {
        self.peers.get(peer).map(|p| p.addr.as_slice())
    }

    pub fn lookup_peer(&self, addr: &[u8]) -> Option<PeerIdx> {
        self.peers.lookup(addr)
    }

    // ---- sends ---------------------------------------------------------

    /// fi_send/fi_sendmsg. `data`: remote CQ data.
    pub fn send(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, Some(iov), &[], false, 0, data, context, flags)
    }

    /// fi_tsend/fi_tsendmsg.
    #[allow(clippy::too_many_arguments)]
    pub fn tsend(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: UserIov,
        tag: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, Some(iov), &[], true, tag, data, context, flags)
    }

    /// fi_inject/fi_injectdata: copied now, no completion event (a
    /// completion with `report == false` is still produced for counters).
    pub fn inject(
        &mut self,
        now: u64,
        peer: PeerIdx,
        buf: &[u8],
        data: Option<u64>,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, None, buf, false, 0, data, 0, OpFlags::INJECT)
    }

    /// fi_tinject/fi_tinjectdata.
    pub fn tinject(
        &mut self,
        now: u64,
        peer: PeerIdx,
        buf: &[u8],
        tag: u64,
        data: Option<u64>,
    ) -> Result<(), RdmError> {
        self.post_send(now, peer, None, buf, true, tag, data, 0, OpFlags::INJECT)
    }

    #[allow(clippy::too_many_arguments)]
    fn post_send(
        &mut self,
        now: u64,
        peer: PeerIdx,
        iov: Option<UserIov>,
        inject_src: &[u8],
        tagged: bool,
        tag: u64,
        data: Option<u64>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        if self.peers.get(peer).is_none() {
            return Err(RdmError::UnknownPeer);
        }
        // `iov == None` is fi_inject: no event at all.
        let silent = iov.is_none();
        let inject = flags.contains(OpFlags::INJECT);
        let len = iov.as_ref().map_or(inject_src.len(), UserIov::len);
        if inject && len > self.cfg.inject_size {
            return Err(RdmError::TooLong);
        }
        if self.tx.is_full() {
            return Err(RdmError::Again);
        }
        if let Some(kind) = self.peers.get(peer).and_then(|p| p.broken) {
            // Accepted, and failed like the operations before it.
            let flags = CompFlags::msg(CompFlags::SEND, tagged);
            self.push_error(context, flags, kind, 0, iov);
            return Ok(());
        }
        let proto = self.choose_proto(peer, len, iov.as_ref(), inject);
        let report = !silent && (!self.cfg.tx_selective || flags.contains(OpFlags::COMPLETION));
        let early = inject
            && (flags.contains(OpFlags::INJECT_COMPLETE)
                || !flags.intersects(OpFlags::TRANSMIT_COMPLETE | OpFlags::DELIVERY_COMPLETE));
        let p = self.peers.get_mut(peer).ok_or(RdmError::UnknownPeer)?;
        let msg_id = p.next_tx_msg;
        let op = TxOp {
            peer,
            context,
            tagged,
            tag,
            data,
            len: len as u64,
            msg_id,
            proto,
            iov: None,
            next_off: 0,
            req_sent: false,
            granted: 0,
            rx_id: 0,
            want_receipt: flags.contains(OpFlags::DELIVERY_COMPLETE),
            receipt_got: false,
            reported: false,
            report,
            queued: true,
            sent_pkts: 0,
            acked_pkts: 0,
        };
        let Ok(idx) = self.tx.insert(op) else {
            return Err(RdmError::Again);
        };
        p.next_tx_msg = msg_id.wrapping_add(1);
        if inject {
            // Copy now so the caller may reuse its buffer at once.
            let buf = &mut self.inject_bufs[idx.idx() as usize];
            buf.clear();
            match &iov {
                Some(v) => {
                    buf.resize(len, 0);
                    v.copy_out(0, buf);
                }
                None => buf.extend_from_slice(inject_src),
            }
        }
        let op = self.tx.get_mut(idx).ok_or(RdmError::Again)?;
        // An injected send never reads the caller's iov again.
        let mut iov = iov;
        if !inject {
            op.iov = iov.take();
        }
        if early {
            // Inject: the buffer is free now; the completion says so.
            op.reported = true;
            let c = Completion {
                context,
                flags: CompFlags::msg(CompFlags::SEND, tagged),
                len,
                buf: 0,
                data: 0,
                tag: 0,
                src: None,
                report,
                err: None,
                iov: iov.take(),
            };
            self.cq.push_back(c);
        }
        self.txq.push_back(idx);
        self.contact(now, peer);
        Ok(())
    }

    /// The protocol of a `len`-byte send to `peer`: long-read when CMA
    /// reaches it and the buffer can be described, else by size, with
    /// eager up to one packet of that peer's link.
    fn choose_proto(
        &self,
        peer: PeerIdx,
        len: usize,
        iov: Option<&UserIov>,
        inject: bool,
    ) -> Proto {
        let mtu = self.peer_mtu(peer);
        let addr = self.cfg.local_addr.len();
        if !inject
            && self.cma_candidate(peer, len)
            && let Some(segs) = iov.and_then(super::cma::describe)
            && REQ_LEN + addr + super::cma::desc_len(&segs) <= mtu
        {
            return Proto::LongRead;
        }
        let mut cut = self.cut;
        if mtu > self.cfg.mtu {
            // Eager as "one packet" follows the link; a smaller configured
            // eager limit stays.
            let fit = |m: usize| m - REQ_LEN - addr;
            if cut.eager_max >= fit(self.cfg.mtu) {
                cut.eager_max = fit(mtu);
                cut.medium_max = cut.medium_max.max(cut.eager_max);
            }
        }
        proto::choose(cut, len)
    }

    // ---- completions ---------------------------------------------------

    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.cq.pop_front()
    }

    pub(super) fn push_error(
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

    /// False while unexpected storage is at its limit (in-order messages
    /// without a receive are then deferred; monitoring and tests).
    pub fn can_accept_packets(&self) -> bool {
        self.unexp_bytes < self.cfg.unexp_max_bytes
            && self.stored_msgs < self.cfg.unexp_max_count
            && self.unexp_chunks < self.max_unexp_chunks
    }

    /// Operations in flight (tests, shutdown).
    pub fn pending_ops(&self) -> (usize, usize) {
        (self.tx.len() + self.rma.len(), self.rx.len())
    }

    /// Bytes held for unexpected and out-of-order messages.
    pub fn stored_bytes(&self) -> (usize, usize) {
        (self.unexp_bytes, self.reorder_bytes)
    }

    /// What the endpoint knows of a peer (monitoring): one of "new",
    /// "hs_sent" (our handshake went, none came back), "hs_recv", "up"
    /// (both ways), "broken" (the transport gave up on it); and whether
    /// the application's AV holds it.
    pub fn peer_state(&self, peer: PeerIdx) -> Option<(&'static str, bool)> {
        let p = self.peers.get(peer)?;
        let s = match (p.broken.is_some(), p.hs_sent, p.hs_recv) {
            (true, _, _) => "broken",
            (false, true, true) => "up",
            (false, false, true) => "hs_recv",
            (false, true, false) => "hs_sent",
            (false, false, false) => "new",
        };
        Some((s, p.in_av))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_is_send() {
        fn send<T: Send>() {}
        send::<super::Endpoint>();
        send::<super::Completion>();
    }
}
