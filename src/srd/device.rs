//! The device: verbs objects plus the packet engine (docs/srd-spec.md).

use super::fanin::FanIn;
use super::multipath::PathEvent;
use super::objects::{AhEntry, CqEntry, MrEntry, QpEntry, RKEY_BIT, Table};
use super::peer::{EpochCheck, Peer, RtoEpisode};
use super::pool::Pool;
use super::reliability::{LostBy, Ring};
use super::{
    Access, Ah, Arrival, Completion, Cq, DeviceAddr, DeviceConfig, DropEvent, ExtRef, MAX_PATHS,
    Mr, Opcode, OutSrc, Outgoing, Pd, PeerInfo, QpAttr, QpState, QpType, Qpn, RX_WINDOW, RecvWr,
    SendWr, SrdError, Stats, Transmit, UD_PREFIX, Usage, WcStatus,
};
use crate::wire::WireError;
use crate::wire::srd::{self as w, Body, NakReason, Packet, PacketType, Repr, flags};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::net::SocketAddrV4;

mod verbs;

/// Drop events kept for the glue between two `take_drop_events` calls;
/// beyond, drops are only counted.
const DROP_EVENTS: usize = 32;

/// A send buffer lent by `Device::lend`: the caller writes a packet into it
/// and posts it or gives it back (not `Copy`: it is used once).
#[derive(Debug)]
#[must_use = "a lent buffer is posted or given back"]
pub struct Lent(u32);

/// One software SRD device. See the module docs of `srd` for the I/O face.
#[derive(Debug)]
pub struct Device {
    cfg: DeviceConfig,
    stats: Stats,
    pds: Table<()>,
    mrs: Table<MrEntry>,
    ahs: Table<AhEntry>,
    cqs: Table<CqEntry>,
    qps: Table<QpEntry>,
    peers: Vec<Peer>,
    /// Looked up once per received datagram: a cheap hasher, not SipHash
    /// (the keys are peers' addresses, bounded by `max_peers`).
    peer_map: HashMap<DeviceAddr, u32, BuildHasherDefault<AddrHasher>>,
    pool: Pool,
    /// UD sends awaiting transmission (send buffer ids).
    ud_queue: VecDeque<u32>,
    ud_next_path: u8,
    /// Peers owing an ack.
    ack_queue: VecDeque<u32>,
    /// NAKs awaiting transmission: (peer, psn, reason).
    nak_queue: VecDeque<(u32, u32, NakReason)>,
    /// Peers with data to send, served round-robin.
    ready: VecDeque<u32>,
    /// Peer timers: (time, peer), earliest first. An entry is live when it
    /// matches the peer's `timer_at`; others are stale and skipped. Each
    /// peer's live entry is a lower bound of its next deadline, so
    /// `poll_timeout` is O(1) and `handle_timeout` visits only due peers,
    /// whatever the number of peers.
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// Scratch for `handle_timeout`: peers due now.
    due: Vec<u32>,
    /// Send-window rings of peers that went idle, for the next busy peer
    /// (at most `SPARE_RINGS`): idle peers hold no ring, and a few busy
    /// peers at a time allocate nothing.
    spare_rings: Vec<Ring>,
    /// PSNs the path-order rule found lost in one ack (reused).
    scratch_psns: Vec<u32>,
    /// The second copy of a lone small packet (`DeviceConfig::dup_small`),
    /// sent right after the first on another path.
    dup_next: Option<Outgoing>,
    /// Recent drops with their senders (bounded, for logging).
    drop_events: Vec<DropEvent>,
    /// Most send buffers in use at once.
    tx_high_water: u32,
    /// Control packets handed out by `poll_outgoing` (ACK, NAK), and the
    /// slots free for more.
    ctrl: Vec<Vec<u8>>,
    ctrl_free: Vec<u32>,
    /// Senders heard from: in the period `fan_period` (now / period) so
    /// far, and in the one before it.
    fan: FanIn,
}

/// Control packets the I/O layer may hold at once (beyond, acks wait in
/// the device until slots come back).
const CTRL_SLOTS: usize = 512;
/// Bytes of one control slot: the largest ACK.
const CTRL_LEN: usize = crate::wire::srd::ACK_BASE_LEN + 8 * crate::wire::srd::MAX_SACK_WORDS;

/// The drop counter name (without `drop_`) of a parse error.
fn wire_reason(e: WireError) -> &'static str {
    match e {
        WireError::Truncated => "truncated",
        WireError::BadVersion(_) => "bad_version",
        WireError::UnknownType(_) => "unknown_type",
        WireError::Malformed => "malformed",
        WireError::Checksum => "checksum",
    }
}

/// Spare send-window rings a device keeps (each `window` slots).
const SPARE_RINGS: usize = 16;
/// Most in-flight packets the path-order rule looks at per ack.
const OVERTAKEN_SCAN: usize = 256;

fn count_wire_error(stats: &mut Stats, e: WireError) {
    match e {
        WireError::Truncated => stats.drop_truncated += 1,
        WireError::BadVersion(_) => stats.drop_bad_version += 1,
        WireError::UnknownType(_) => stats.drop_unknown_type += 1,
        WireError::Malformed => stats.drop_malformed += 1,
        WireError::Checksum => stats.drop_checksum += 1,
    }
}

impl Device {
    /// Creates a device. Fails with `InvalidArg` on an unusable config
    /// (no paths, payload too large for a datagram, window not a power of two
    /// or beyond RX_WINDOW, min_rto > max_rto).
    pub fn new(cfg: DeviceConfig) -> Result<Device, SrdError> {
        let paths_ok = cfg.paths >= 1 && usize::from(cfg.paths) <= MAX_PATHS;
        let payload_ok = cfg.max_payload + w::DATA_HEADER_LEN <= w::MAX_TOTAL_LEN;
        let window_ok = cfg.window.is_power_of_two() && cfg.window <= RX_WINDOW;
        if !paths_ok || !payload_ok || !window_ok || cfg.min_rto > cfg.max_rto {
            return Err(SrdError::InvalidArg);
        }
        Ok(Device {
            stats: Stats::default(),
            pds: Table::new(cfg.max_qps),
            mrs: Table::new(cfg.max_mrs),
            ahs: Table::new(cfg.max_ahs),
            cqs: Table::new(cfg.max_cqs),
            qps: Table::new(cfg.max_qps),
            peers: Vec::new(),
            peer_map: HashMap::default(),
            pool: Pool::new(cfg.tx_buffers, cfg.max_payload),
            ud_queue: VecDeque::new(),
            ud_next_path: 0,
            ack_queue: VecDeque::new(),
            nak_queue: VecDeque::new(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            due: Vec::new(),
            spare_rings: Vec::new(),
            scratch_psns: Vec::new(),
            dup_next: None,
            drop_events: Vec::new(),
            ctrl: Vec::new(),
            ctrl_free: Vec::new(),
            tx_high_water: 0,
            fan: FanIn::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }
    pub fn addr(&self) -> DeviceAddr {
        self.cfg.addr
    }
    /// Largest payload of one send.
    pub fn max_payload(&self) -> usize {
        self.cfg.max_payload
    }
    /// Size `poll_transmit`'s buffer must have.
    pub fn max_datagram(&self) -> usize {
        self.cfg.max_payload + w::DATA_HEADER_LEN
    }
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn usage(&self) -> Usage {
        let mut u = Usage {
            tx_buffers_in_use: self.pool.in_use(),
            tx_buffers_allocated: self.pool.allocated(),
            ctrl_queued: u32::try_from(self.nak_queue.len() + self.ack_queue.len())
                .unwrap_or(u32::MAX),
            peers: u32::try_from(self.peers.len()).unwrap_or(u32::MAX),
            tx_buffers_high_water: self.tx_high_water,
            qps: self.qps.len(),
            ahs: self.ahs.len(),
            mrs: self.mrs.len(),
            cqs: self.cqs.len(),
            ext_refs: self.pool.ext_live(),
            ..Usage::default()
        };
        for p in &self.peers {
            u.in_flight += p.tx.in_flight;
            let q = p.tx.pending.len() + p.tx.retx_len();
            u.queued += u32::try_from(q).unwrap_or(u32::MAX);
        }
        u.queued += u32::try_from(self.ud_queue.len()).unwrap_or(u32::MAX);
        for c in self.cqs.iter() {
            u.cq_entries += u32::try_from(c.entries.len()).unwrap_or(u32::MAX);
        }
        for q in self.qps.iter() {
            u.recv_posted += u32::try_from(q.rq.len()).unwrap_or(u32::MAX);
        }
        u
    }

    /// What the device holds for `addr`, if it knows it.
    pub fn peer_info(&self, addr: DeviceAddr) -> Option<PeerInfo> {
        let p = self.peers.get(ix(*self.peer_map.get(&addr)?))?;
        let dead_paths = (0..self.cfg.paths)
            .filter(|&i| p.paths.is_dead(i))
            .fold(0u16, |m, i| m | (1 << i));
        Some(PeerInfo {
            paths_alive: p.paths.alive(),
            dead_paths,
            srtt: p.rtt.srtt(),
            rto: p.rto(),
            cwnd: p.cwnd.get(),
            in_flight: p.tx.in_flight,
            outstanding: p.tx.outstanding(),
            counters: p.counters,
        })
    }

    /// Drops since the last call, with their senders (at most 32 kept in
    /// between; the counters in `stats()` have them all).
    pub fn take_drop_events(&mut self) -> std::vec::Drain<'_, DropEvent> {
        self.drop_events.drain(..)
    }

    fn note_drop(&mut self, from: SocketAddrV4, reason: &'static str) {
        if self.drop_events.len() < DROP_EVENTS {
            self.drop_events.push(DropEvent { from, reason });
        }
    }

    /// Counts a drop of a parsed packet against its sender's peer entry too.
    fn peer_drop(&mut self, pi: u32, reason: &'static str) {
        if let Some(p) = self.peer_mut(pi) {
            p.counters.drops += 1;
            let from = p.addr.socket();
            self.note_drop(from, reason);
        }
    }

    // ----------------------------------------------------------- internals

    fn peer_index(&mut self, addr: DeviceAddr, create: bool) -> Option<u32> {
        if let Some(&i) = self.peer_map.get(&addr) {
            return Some(i);
        }
        if !create || self.peers.len() >= usize::try_from(self.cfg.max_peers).ok()? {
            return None;
        }
        let i = u32::try_from(self.peers.len()).ok()?;
        self.peers.push(Peer::new(addr, &self.cfg));
        self.peer_map.insert(addr, i);
        Some(i)
    }

    fn peer_mut(&mut self, i: u32) -> Option<&mut Peer> {
        self.peers.get_mut(usize::try_from(i).ok()?)
    }

    fn mark_ready(&mut self, pi: u32) {
        let Some(p) = self.peer_mut(pi) else { return };
        if !p.in_ready && p.can_send() {
            p.in_ready = true;
            self.ready.push_back(pi);
        }
    }

    fn queue_ack(&mut self, pi: u32) {
        let Some(p) = self.peer_mut(pi) else { return };
        p.ack_deadline = None;
        if !p.ack_queued {
            p.ack_queued = true;
            self.ack_queue.push_back(pi);
        }
    }

    fn queue_nak(&mut self, pi: u32, psn: u32, reason: NakReason) {
        if self.nak_queue.len() >= usize::try_from(self.cfg.ctrl_queue).unwrap_or(0) {
            // The sender's timer covers a lost NAK.
            self.stats.drop_ctrl_queue_full += 1;
            return;
        }
        self.nak_queue.push_back((pi, psn, reason));
    }

    fn push_cq(&mut self, cq: u32, c: Completion) {
        match c.opcode {
            Opcode::Send => self.stats.send_completions += 1,
            Opcode::Recv => self.stats.recv_completions += 1,
        }
        if let Some(cq) = self.cqs.get_mut(cq) {
            cq.entries.push_back(c);
        }
    }

    /// Completes the send WR held in buffer `id` and returns the buffer.
    fn complete_send(&mut self, id: u32, status: WcStatus) {
        Completer {
            pool: &mut self.pool,
            qps: &mut self.qps,
            cqs: &mut self.cqs,
            stats: &mut self.stats,
        }
        .send(id, status);
    }

    /// The peer stopped answering (or kept answering RNR): every WR still
    /// waiting for it completes with `status` and its send state restarts, so
    /// later posts try again from a clean slate.
    fn fail_peer(&mut self, pi: u32, status: WcStatus) {
        let Some(p) = self.peer_mut(pi) else { return };
        let mut bufs: Vec<u32> =
            p.tx.live_psns()
                .filter_map(|psn| p.tx.buf_of(psn))
                .collect();
        bufs.extend(p.tx.pending.drain(..));
        p.tx.abandon_all();
        p.rtt.progress();
        p.cwnd.reset();
        p.paths.reset();
        p.rto_episode = RtoEpisode::default();
        p.consecutive_timeouts = 0;
        p.rnr_next = None;
        p.pace_until = None;
        self.stats.peer_resets += 1;
        match status {
            WcStatus::RnrRetryExceeded => self.stats.rnr_retry_exceeded += 1,
            _ => self.stats.retry_exceeded += 1,
        }
        for b in bufs {
            self.complete_send(b, status);
        }
    }

    // ------------------------------------------------------------ I/O face

    /// SRD data for `qpn` is handed to the caller of `handle_datagram` in
    /// place (`Arrival`): no receive buffer is posted or consumed, no copy
    /// made, and the QP never answers RNR (its owner stores what it cannot
    /// take yet).
    pub fn set_in_place(&mut self, qpn: Qpn) -> Result<(), SrdError> {
        let q = self.qps.get_mut(qpn).ok_or(SrdError::InvalidQp)?;
        if q.qp_type != QpType::Srd {
            return Err(SrdError::InvalidArg);
        }
        q.in_place = true;
        Ok(())
    }

    /// Feeds one received datagram. `path` is the local socket it arrived on
    /// and `src` its source address; both are informational only: the
    /// sender is identified by the SRD header. Never panics; every rejected
    /// datagram increments exactly one drop counter. Returns the payload's
    /// place in `bytes` when it is SRD data for an in-place QP.
    pub fn handle_datagram(
        &mut self,
        now: u64,
        path: u8,
        src: SocketAddrV4,
        bytes: &[u8],
    ) -> Option<Arrival> {
        let _ = path;
        self.stats.rx_packets += 1;
        self.stats.rx_bytes += u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let parsed = Packet::new_checked(bytes).and_then(|p| Repr::parse(&p).map(|r| (p, r)));
        let (pkt, repr) = match parsed {
            Ok(x) => x,
            Err(e) => {
                count_wire_error(&mut self.stats, e);
                self.note_drop(src, wire_reason(e));
                return None;
            }
        };
        let from = DeviceAddr::new(repr.src_ip, repr.src_port);
        match (repr.packet_type, repr.body) {
            (PacketType::SrdData, Body::Data { .. }) => {
                return self.on_srd_data(now, from, &repr, pkt.payload());
            }
            (PacketType::UdData, Body::Data { .. }) => self.on_ud_data(from, &repr, pkt.payload()),
            (
                _,
                Body::Ack {
                    cum_psn,
                    sack_words,
                    sack,
                    grant,
                },
            ) => {
                self.on_grant(from, grant);
                self.on_ack(now, from, repr.epoch, cum_psn, sack_words, &sack)
            }
            (_, Body::Nak { psn, reason }) => self.on_nak(now, from, repr.epoch, psn, reason),
            _ => {
                self.stats.drop_malformed += 1;
                self.note_drop(src, "malformed");
            }
        }
        None
    }

    /// Looks up the sender and checks its epoch; `None` means dropped.
    fn known_peer(&mut self, from: DeviceAddr, epoch: u32, create: bool) -> Option<u32> {
        let Some(pi) = self.peer_index(from, create) else {
            self.stats.drop_unknown_peer += 1;
            self.note_drop(from.socket(), "unknown_peer");
            return None;
        };
        let p = self.peer_mut(pi)?;
        if p.check_epoch(epoch) == EpochCheck::Stale {
            self.stats.drop_stale_epoch += 1;
            self.peer_drop(pi, "stale_epoch");
            return None;
        }
        Some(pi)
    }

    fn on_srd_data(
        &mut self,
        now: u64,
        from: DeviceAddr,
        r: &Repr,
        payload: &[u8],
    ) -> Option<Arrival> {
        let Body::Data {
            dst_qpn,
            src_qpn,
            qkey,
            psn,
            una,
            ack,
        } = r.body
        else {
            return None;
        };
        let pi = self.known_peer(from, r.epoch, true)?;
        if let Some(cum) = ack {
            // An ack of our data riding on the peer's. One that acks nothing
            // new (a one-way stream's every packet repeats the same) is no
            // news: no pass over the window, the timers or the losses.
            let news = self
                .peer_mut(pi)
                .is_some_and(|p| super::psn_lt(p.tx.una, cum));
            if news {
                self.on_ack(now, from, r.epoch, cum, 0, &[0; w::MAX_SACK_WORDS]);
            }
        }
        let p = self.peer_mut(pi)?;
        if !p.rx.init {
            p.rx.start(una);
        }
        p.rx.advance_to(una);
        match p.rx.check(psn) {
            super::reliability::RxCheck::New => {}
            super::reliability::RxCheck::Duplicate => {
                // Our ack was probably lost: ack again now.
                p.counters.duplicates += 1;
                self.stats.duplicates += 1;
                self.queue_ack(pi);
                return None;
            }
            super::reliability::RxCheck::OutOfWindow => {
                self.stats.drop_out_of_window += 1;
                self.peer_drop(pi, "out_of_window");
                return None;
            }
        }
        // Checks of the destination QP: errors are NAKed, and the PSN is not
        // marked received, so the sender learns the outcome reliably.
        let verdict = match self.qps.get(dst_qpn) {
            Some(q) if q.qp_type == QpType::Srd => {
                if !q.state.can_receive() {
                    Err(NakReason::BadState)
                } else if q.qkey != qkey {
                    Err(NakReason::BadQkey)
                } else if q.rq.is_empty() && !q.in_place {
                    Err(NakReason::Rnr)
                } else {
                    Ok(())
                }
            }
            _ => Err(NakReason::BadQpn),
        };
        if let Err(reason) = verdict {
            match reason {
                NakReason::BadState => {
                    self.stats.drop_bad_state += 1;
                    self.peer_drop(pi, "bad_state");
                }
                NakReason::BadQkey => {
                    self.stats.drop_bad_qkey += 1;
                    self.peer_drop(pi, "bad_qkey");
                }
                NakReason::BadQpn => {
                    self.stats.drop_unknown_qp += 1;
                    self.peer_drop(pi, "unknown_qp");
                }
                _ => {
                    self.stats.rnr_naks_sent += 1;
                    if let Some(p) = self.peer_mut(pi) {
                        p.counters.rnr_naks_sent += 1;
                    }
                }
            }
            self.queue_nak(pi, psn, reason);
            return None;
        }
        let in_place = self.qps.get(dst_qpn).is_some_and(|q| q.in_place);
        if !in_place {
            self.deliver(dst_qpn, from, src_qpn, payload, 0);
        } else {
            self.stats.rx_data += 1;
        }
        let ack_every = self.cfg.ack_every;
        let ack_delay = self.cfg.ack_delay;
        let req_delay = self.cfg.ack_req_delay;
        let fan_len = self.cfg.fan_in_period;
        let p = self.peers.get_mut(ix(pi))?;
        self.fan
            .note(&mut p.fan_seen, &mut p.fan_pkts, now, fan_len);
        p.rx.mark(psn);
        p.counters.rx_data += 1;
        p.rx_unacked += 1;
        let req = r.flags & flags::ACK_REQ != 0;
        let now_ack = (req && req_delay == 0) || p.rx_unacked >= ack_every || p.rx.has_holes();
        if now_ack {
            self.queue_ack(pi);
        } else {
            let due = now.saturating_add(if req { req_delay } else { ack_delay });
            if p.ack_deadline.is_none_or(|d| d > due) {
                p.ack_deadline = Some(due);
                self.arm(pi);
            }
        }
        in_place.then_some(Arrival {
            qpn: dst_qpn,
            src: from,
            src_qpn,
            offset: w::DATA_HEADER_LEN,
            len: payload.len(),
        })
    }

    fn on_ud_data(&mut self, from: DeviceAddr, r: &Repr, payload: &[u8]) {
        let Body::Data {
            dst_qpn,
            src_qpn,
            qkey,
            ..
        } = r.body
        else {
            return;
        };
        let Some(q) = self.qps.get(dst_qpn).filter(|q| q.qp_type == QpType::Ud) else {
            self.stats.drop_unknown_qp += 1;
            return self.note_drop(from.socket(), "unknown_qp");
        };
        if !q.state.can_receive() {
            self.stats.drop_bad_state += 1;
            self.note_drop(from.socket(), "bad_state");
        } else if q.qkey != qkey {
            self.stats.drop_bad_qkey += 1;
            self.note_drop(from.socket(), "bad_qkey");
        } else if q.rq.is_empty() {
            self.stats.drop_no_recv += 1;
        } else {
            self.deliver(dst_qpn, from, src_qpn, payload, UD_PREFIX);
        }
    }

    /// Copies a payload into the QP's next receive buffer (after `prefix`
    /// zeroed bytes) and completes it. The caller checked a WR is posted.
    fn deliver(&mut self, qpn: Qpn, from: DeviceAddr, src_qpn: Qpn, payload: &[u8], prefix: usize) {
        let Some(q) = self.qps.get_mut(qpn) else {
            return;
        };
        let Some(mut wr) = q.rq.pop_front() else {
            return;
        };
        let cq = q.recv_cq;
        let end = prefix + payload.len();
        let status = match wr.buf.get_mut(..end) {
            Some(dst) => {
                let (pre, body) = dst.split_at_mut(prefix);
                pre.fill(0);
                body.copy_from_slice(payload);
                WcStatus::Success
            }
            None => WcStatus::LocalLength,
        };
        self.stats.rx_data += 1;
        let c = completion(
            wr.wr_id,
            qpn,
            status,
            Opcode::Recv,
            payload.len(),
            Some((from, src_qpn)),
            None,
        );
        let c = Completion {
            buf: Some(std::mem::take(&mut wr.buf)),
            ..c
        };
        self.push_cq(cq, c);
    }

    /// The share of `fan_in_budget` each sender gets while more than one
    /// sends to this device, in `GRANT_UNIT`s (0: no limit, one sender or
    /// the budget off); docs/srd-spec.md §11.1.
    fn grant(&self, now: u64) -> u16 {
        let budget = self.cfg.fan_in_budget;
        let n = self.fan.count(now, self.cfg.fan_in_period);
        if budget == 0 || n < 2 {
            return 0;
        }
        let share = budget / u64::from(n) / w::GRANT_UNIT as u64;
        u16::try_from(share.max(1)).unwrap_or(u16::MAX)
    }

    /// A grant from `from` (its latest; 0: none) caps our window to it.
    fn on_grant(&mut self, from: DeviceAddr, grant: u16) {
        let Some(&pi) = self.peer_map.get(&from) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(ix(pi)) {
            let bytes = (grant > 0).then(|| u64::from(grant) * w::GRANT_UNIT as u64);
            p.cwnd.set_grant(bytes, p.max_payload);
        }
    }

    fn on_ack(
        &mut self,
        now: u64,
        from: DeviceAddr,
        epoch: u32,
        cum: u32,
        words: u8,
        sack: &[u64; w::MAX_SACK_WORDS],
    ) {
        let Some(pi) = self.known_peer(from, epoch, false) else {
            return;
        };
        // Split borrows: the peer's window and the completion side are
        // disjoint, so acked sends complete inline with no buffering.
        let Device {
            peers,
            pool,
            qps,
            cqs,
            stats,
            ..
        } = self;
        let Some(p) = peers.get_mut(ix(pi)) else {
            return;
        };
        // cum may lag behind una (reordered ack) but never pass next_psn.
        let (una, next) = (p.tx.una, p.tx.next_psn);
        if cum.wrapping_sub(una) > next.wrapping_sub(una) && !super::psn_lt(cum, una) {
            stats.drop_bad_ack += 1;
            return self.peer_drop(pi, "bad_ack");
        }
        stats.rx_acks += 1;
        let mut done = Completer {
            pool,
            qps,
            cqs,
            stats,
        };
        // The newest transmission this ack covers most likely triggered it:
        // sample the RTT from it alone, and not at all if it was a resend
        // (Karn). Older packets it newly covers may have had their own ack
        // lost and would inflate the estimate.
        let mut newest: Option<(u64, u64, bool)> = None; // (tx_seq, sent_at, resent)
        let mut acked: u32 = 0;
        // One past the newest transmission delivered per path (path order).
        let mut by_path = [0u64; MAX_PATHS];
        let mut ack_one = |p: &mut Peer, psn: u32| {
            let Some(r) = p.tx.remove(psn) else { return };
            acked += 1;
            if newest.is_none_or(|(s, _, _)| r.tx_seq > s) {
                newest = Some((r.tx_seq, r.sent_at, r.retransmitted));
            }
            // An ack of a resend sooner than the path's RTT answers the
            // original: it dates nothing sent since (RFC 8985, step 2).
            let age = now.saturating_sub(r.sent_at);
            let early = r.retransmitted && p.rtt.min_rtt().is_some_and(|m| age < m);
            if early || r.was_lost {
                // Declared lost, yet the first transmission arrived.
                p.spurious_loss();
                if r.lost_by == LostBy::Overtaken {
                    // Its path reordered: no more path-order rule.
                    p.path_order = false;
                }
            }
            if !early {
                p.tx.on_delivered(r.tx_seq, r.sent_at, now);
            }
            if !r.retransmitted
                && let Some(h) = by_path.get_mut(usize::from(r.path))
            {
                // Only a packet sent once says which transmission arrived.
                *h = (*h).max(r.tx_seq + 1);
            }
            p.rto_check(r.sent_at, early || r.was_lost);
            p.cwnd.on_ack();
            if p.paths.on_ack(r.path) == PathEvent::Recovered {
                done.stats.path_recoveries += 1;
            }
            done.send(r.buf, WcStatus::Success);
        };
        // Cumulative part.
        let mut psn = una;
        while super::psn_lt(psn, cum) {
            ack_one(p, psn);
            psn = psn.wrapping_add(1);
        }
        // Selective part: bit j of word k is PSN cum+1+64k+j. Only the
        // PSNs still live are looked at: while a hole stays open every ack
        // repeats the bits of the ones acked before.
        for (k, &word) in (0u32..).zip(sack.iter().take(usize::from(words))) {
            let mut bits = word & p.tx.live_word(cum.wrapping_add(1 + 64 * k));
            while bits != 0 {
                let j = bits.trailing_zeros();
                bits &= bits - 1;
                ack_one(p, cum.wrapping_add(1 + 64 * k + j));
            }
        }
        if let Some((_, sent_at, _)) = newest {
            p.cwnd.note_rtt(now.saturating_sub(sent_at));
        }
        let sample = match newest {
            Some((_, sent_at, false)) => Some(now.saturating_sub(sent_at)),
            _ => None,
        };
        if let Some(r) = sample {
            p.rtt.sample(r);
        }
        p.rto_settle(acked > 0);
        let (min_rtt, srtt) = (p.rtt.min_rtt().unwrap_or(0), p.rtt.srtt().unwrap_or(0));
        p.cwnd.on_ack_delay(acked, sample, now, min_rtt, srtt);
        if acked > 0 {
            p.rtt.progress();
            p.consecutive_timeouts = 0;
            p.tlp_sent = false;
            p.last_progress = now;
        }
        p.tx.advance_una();
        if p.tx.pending.is_empty()
            && let Some(ring) = p.tx.take_ring()
            && self.spare_rings.len() < SPARE_RINGS
        {
            self.spare_rings.push(ring);
        }
        self.detect_losses(pi, now, &by_path);
        self.mark_ready(pi);
        // The RTT sample and the backoff reset can bring the RTO earlier.
        self.arm(pi);
    }

    /// Time-based loss detection (RACK, docs/srd-spec.md §7.3): declares
    /// lost every in-flight packet sent before an acked one that has been
    /// out for that one's RTT plus a quarter SRTT, and arms the reorder
    /// timer for the first that is not yet.
    ///
    /// With the path-order rule, first every packet a later one on its
    /// path overtook (`by_path`: what this ack delivered per path; see
    /// `TxWindow::overtaken`).
    fn detect_losses(&mut self, pi: u32, now: u64, by_path: &[u64; MAX_PATHS]) {
        let Some(p) = self.peers.get_mut(ix(pi)) else {
            return;
        };
        p.reo_at = None;
        if p.path_order && by_path.iter().any(|&h| h > 0) {
            let mut lost = std::mem::take(&mut self.scratch_psns);
            lost.clear();
            p.tx.overtaken(by_path, OVERTAKEN_SCAN, &mut lost);
            for &psn in &lost {
                if let Some(out) = p.tx.mark_lost(psn, LostBy::Overtaken) {
                    Self::fast_loss(&mut self.stats, p, out, now);
                }
            }
            self.scratch_psns = lost;
        }
        let reo_wnd = p.reo_wnd();
        loop {
            match p.tx.rack(now, reo_wnd) {
                super::reliability::Rack::Lost(psn) => {
                    let Some(out) = p.tx.mark_lost(psn, LostBy::Rack) else {
                        break;
                    };
                    Self::fast_loss(&mut self.stats, p, out, now);
                }
                super::reliability::Rack::At(t) => {
                    p.reo_at = Some(t);
                    break;
                }
                super::reliability::Rack::Unknown => break,
            }
        }
    }

    /// The bookkeeping of a loss found by an ack (not a timeout):
    /// `(path, tx_seq)` of the lost transmission.
    fn fast_loss(stats: &mut Stats, p: &mut Peer, (path, tx_seq): (u8, u64), now: u64) {
        stats.fast_retransmits += 1;
        p.rack_loss();
        let next_tx = p.tx.tx_count;
        let srtt = p.rtt.srtt().unwrap_or(0);
        p.cwnd.on_loss(tx_seq, next_tx, now, srtt);
        if p.paths.on_loss(path, now) == PathEvent::Failed {
            stats.path_failures += 1;
        }
    }

    fn on_nak(&mut self, now: u64, from: DeviceAddr, epoch: u32, psn: u32, reason: NakReason) {
        let Some(pi) = self.known_peer(from, epoch, false) else {
            return;
        };
        let (backoff_min, backoff_max, rnr_limit) = (
            self.cfg.rnr_backoff_min,
            self.cfg.rnr_backoff_max,
            self.cfg.rnr_retry_limit,
        );
        let Some(p) = self.peers.get_mut(ix(pi)) else {
            return;
        };
        let Some(slot) = p.tx.get(psn).copied() else {
            // Stale (already acked or abandoned) or forged.
            self.stats.drop_bad_ack += 1;
            return self.peer_drop(pi, "bad_ack");
        };
        self.stats.rx_naks += 1;
        // Any answer proves the peer and this path alive.
        p.consecutive_timeouts = 0;
        p.last_progress = now;
        p.rtt.progress();
        if p.paths.on_ack(slot.path) == PathEvent::Recovered {
            self.stats.path_recoveries += 1;
        }
        let status = match reason {
            NakReason::Rnr => {
                self.stats.rnr_naks_received += 1;
                p.counters.rnr_naks_received += 1;
                let n = p.tx.bump_rnr(psn).unwrap_or(u32::MAX);
                if n > rnr_limit {
                    return self.fail_peer(pi, WcStatus::RnrRetryExceeded);
                }
                let shift = (n - 1).min(30);
                let wait = backoff_min.saturating_mul(1 << shift).min(backoff_max);
                let at = now.saturating_add(wait);
                if p.tx.mark_rnr(psn, at).is_some() {
                    p.rnr_next = Some(p.rnr_next.map_or(at, |x| x.min(at)));
                }
                return self.arm(pi);
            }
            NakReason::BadQpn => WcStatus::RemoteInvalidQpn,
            NakReason::BadQkey => WcStatus::RemoteQkey,
            NakReason::BadState => WcStatus::RemoteState,
            NakReason::Unknown(_) => WcStatus::RemoteError,
        };
        if let Some(r) = p.tx.remove(psn) {
            p.tx.advance_una();
            self.complete_send(r.buf, status);
        }
        self.mark_ready(pi);
        self.arm(pi);
    }

    /// The earliest time `handle_timeout` may have work (acks to flush,
    /// RTOs, RNR waits); it can be early (a deadline moved later), never
    /// late. `None`: no timer armed. O(1).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Puts peer `pi`'s next deadline on the timer heap unless its live
    /// entry is already at or before it. Called wherever a deadline can
    /// appear or move earlier.
    fn arm(&mut self, pi: u32) {
        let Some(p) = self.peers.get_mut(ix(pi)) else {
            return;
        };
        let Some(d) = p.next_deadline() else { return };
        if p.timer_at.is_some_and(|t| t <= d) {
            return;
        }
        p.timer_at = Some(d);
        self.timers.push(Reverse((d, pi)));
        // Stale entries leave as their time comes; should deadlines keep
        // moving earlier, rebuild so the heap stays O(peers).
        if self.timers.len() > 4 * self.peers.len() + 64 {
            self.timers.clear();
            for (i, p) in (0u32..).zip(self.peers.iter()) {
                if let Some(t) = p.timer_at {
                    self.timers.push(Reverse((t, i)));
                }
            }
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let mut due = std::mem::take(&mut self.due);
        due.clear();
        while let Some(&Reverse((t, pi))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            if let Some(p) = self.peers.get_mut(ix(pi))
                && p.timer_at == Some(t)
            {
                p.timer_at = None;
                due.push(pi);
            }
        }
        for &pi in &due {
            self.peer_timeout(pi, now);
            self.arm(pi);
        }
        self.due = due;
    }

    /// Runs peer `pi`'s timers due at `now`.
    fn peer_timeout(&mut self, pi: u32, now: u64) {
        let retry_limit = self.cfg.retry_limit;
        let peer_timeout = self.cfg.peer_timeout;
        let Some(p) = self.peer_mut(pi) else { return };
        if p.ack_deadline.is_some_and(|d| d <= now) {
            self.queue_ack(pi);
        }
        let Some(p) = self.peer_mut(pi) else { return };
        if p.rnr_next.is_some_and(|d| d <= now) {
            p.rnr_next = p.tx.rnr_due(now);
            self.mark_ready(pi);
        }
        let Some(p) = self.peer_mut(pi) else { return };
        if p.pace_until.is_some_and(|d| d <= now) {
            p.pace_until = None;
            self.mark_ready(pi);
        }
        let Some(p) = self.peer_mut(pi) else { return };
        if p.reo_at.is_some_and(|d| d <= now) {
            self.detect_losses(pi, now, &[0; MAX_PATHS]);
            self.mark_ready(pi);
        }
        let Some(p) = self.peers.get_mut(ix(pi)) else {
            return;
        };
        let (rto, base) = (p.rto(), p.rtt.base_rto());
        // Out long enough to be lost once the oldest is: an SRTT and the
        // reorder window (RACK's rule, the expiry standing for the later
        // ack), at most the plain RTO.
        let stale = p
            .rtt
            .srtt()
            .map_or(base, |s| s.saturating_add(p.reo_wnd()).min(base));
        let rto_due = p.rto_deadline().is_some_and(|d| d <= now);
        if !rto_due && p.tlp_deadline().is_some_and(|d| d <= now) {
            // Tail-loss probe: nothing after the flight's last packets will
            // reveal their loss, so resend the newest one; its ack (or the
            // SACK it brings) settles the rest through RACK. Not a loss
            // signal: no window cut, no path blame.
            p.tlp_sent = true;
            if let Some(psn) = p.tx.newest_in_flight()
                && p.tx.mark_lost(psn, LostBy::Probe).is_some()
            {
                self.stats.tlp_probes += 1;
                self.mark_ready(pi);
            }
            return;
        }
        if !rto_due {
            return;
        }
        let mut lost = 0u32;
        // The timer fired for the oldest packet; every packet out for
        // longer than an SRTT and the reorder window is lost too.
        // Otherwise each packet behind the head would wait for a timeout
        // doubled once more, and a window lost in one congestion burst
        // would take exponentially long to recover (or, with a window
        // a receiver's grant shrank below what is counted in flight,
        // never be resent at all).
        while let Some(psn) = p.tx.oldest_in_flight() {
            if lost > 0 && p.tx.deadline(stale).is_none_or(|d| d > now) {
                break;
            }
            let Some((path, _)) = p.tx.mark_lost(psn, LostBy::Timeout) else {
                break;
            };
            lost += 1;
            if p.paths.on_loss(path, now) == PathEvent::Failed {
                self.stats.path_failures += 1;
            }
        }
        if lost == 0 {
            return;
        }
        // Spurious unless proven real: if a packet it declared lost is
        // acked for its original transmission (a descheduled receiver's
        // late acks), the window cut is undone (after F-RTO, RFC 5682).
        p.rto_episode = RtoEpisode {
            at: now,
            rto,
            open: true,
            resent: false,
            spurious: false,
        };
        self.stats.rto_events += 1;
        p.rtt.back_off();
        let next = p.tx.tx_count;
        let congestion =
            p.consecutive_timeouts > 0 || p.cwnd.queue_building(p.rtt.min_rtt().unwrap_or(0));
        p.cwnd.on_timeout(next, congestion);
        if p.consecutive_timeouts == 0 {
            p.stall_since = now.saturating_sub(rto);
        }
        p.consecutive_timeouts += 1;
        let stalled = now.saturating_sub(p.stall_since);
        let give_up =
            p.consecutive_timeouts > retry_limit || (peer_timeout > 0 && stalled >= peer_timeout);
        if give_up {
            self.fail_peer(pi, WcStatus::RetryExceeded);
        } else {
            self.mark_ready(pi);
        }
    }

    /// Writes the next datagram into `out` (which must hold
    /// `max_datagram()` bytes). Order: NAKs, acks, SRD data (peers served
    /// round-robin, retransmissions first), UD data.
    pub fn poll_transmit(&mut self, now: u64, out: &mut [u8]) -> Option<Transmit> {
        self.poll_transmit_with(now, out, |_, _| false)
    }

    /// `poll_transmit` for a device with zero-copy sends: `resolve` copies
    /// an `ExtRef`'s bytes into the slice it is given (exactly its
    /// length) or says they are gone (then the datagram is lost, as on the
    /// wire).
    pub fn poll_transmit_with(
        &mut self,
        now: u64,
        out: &mut [u8],
        resolve: impl FnOnce(ExtRef, &mut [u8]) -> bool,
    ) -> Option<Transmit> {
        let o = self.poll_outgoing(now)?;
        let bytes = self.datagram(&o);
        let mut fits = out.len() >= o.len;
        if fits {
            out[..bytes.len()].copy_from_slice(bytes);
            if let Some(e) = o.ext {
                fits = resolve(e, &mut out[bytes.len()..o.len]);
            }
        }
        self.sent(o);
        // Every datagram is built to fit the device's MTU, which `out` must
        // hold; one that did not fit is lost (SRD retransmits it).
        fits.then_some(Transmit {
            path: o.path,
            dst: o.dst,
            len: o.len,
        })
    }

    /// The next datagram to send, left in the device's memory (see
    /// [`Outgoing`]). Read it with `datagram`, return it with `sent`.
    pub fn poll_outgoing(&mut self, now: u64) -> Option<Outgoing> {
        let o = match self.dup_next.take() {
            Some(o) => o,
            None => self.next_outgoing(now)?,
        };
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += u64::try_from(o.len).unwrap_or(u64::MAX);
        Some(o)
    }

    /// The bytes of an outgoing datagram in the device's memory: all of
    /// it, or the part in front of its `ext` tail.
    pub fn datagram(&self, o: &Outgoing) -> &[u8] {
        let whole = match o.src {
            OutSrc::Pool(id) => self.pool.get(id).map(|b| b.frame()),
            OutSrc::Ctrl(i) => self.ctrl.get(ix(i)).map(|b| b.as_slice()),
        };
        let head = o.len - o.ext.map_or(0, |e| e.len as usize);
        whole.and_then(|b| b.get(..head)).unwrap_or(&[])
    }

    /// The I/O layer is done with `o` (the kernel took it, or it is dropped).
    pub fn sent(&mut self, o: Outgoing) {
        match o.src {
            OutSrc::Pool(id) => self.pool.unpin(id),
            OutSrc::Ctrl(i) => self.ctrl_free.push(i),
        }
    }

    /// A control slot for an ACK or NAK, if the I/O layer has not got them
    /// all.
    fn ctrl_slot(&mut self) -> Option<u32> {
        if let Some(i) = self.ctrl_free.pop() {
            return Some(i);
        }
        if self.ctrl.len() >= CTRL_SLOTS {
            return None;
        }
        self.ctrl.push(vec![0u8; CTRL_LEN]);
        Some(u32::try_from(self.ctrl.len() - 1).unwrap_or(0))
    }

    fn header(
        &self,
        packet_type: PacketType,
        fl: u8,
        path: u8,
        body: Body,
        payload_len: usize,
    ) -> Repr {
        let fl = if self.cfg.payload_checksum {
            fl
        } else {
            fl | flags::HDR_CSUM
        };
        Repr {
            packet_type,
            flags: fl,
            path,
            src_ip: self.cfg.addr.ip,
            src_port: self.cfg.addr.port,
            epoch: self.cfg.epoch,
            body,
            payload_len,
        }
    }

    fn next_outgoing(&mut self, now: u64) -> Option<Outgoing> {
        while !self.nak_queue.is_empty() {
            let slot = self.ctrl_slot()?;
            let Some((pi, psn, reason)) = self.nak_queue.pop_front() else {
                self.ctrl_free.push(slot);
                break;
            };
            let Some(p) = self.peer_mut(pi) else {
                self.ctrl_free.push(slot);
                continue;
            };
            let (dst, path) = (p.addr.socket(), p.paths.choose_live());
            let r = self.header(PacketType::Nak, 0, path, Body::Nak { psn, reason }, 0);
            let len = r.emit(&mut self.ctrl[ix(slot)], &[])?;
            self.stats.tx_naks += 1;
            return Some(Outgoing {
                path,
                dst,
                len,
                ext: None,
                src: OutSrc::Ctrl(slot),
            });
        }
        while !self.ack_queue.is_empty() {
            let slot = self.ctrl_slot()?;
            let Some(pi) = self.ack_queue.pop_front() else {
                self.ctrl_free.push(slot);
                break;
            };
            let Some(p) = self.peer_mut(pi) else {
                self.ctrl_free.push(slot);
                continue;
            };
            p.ack_queued = false;
            p.ack_deadline = None;
            p.rx_unacked = 0;
            let (words, sack) = p.rx.sack();
            let cum = p.rx.cum;
            let (dst, path) = (p.addr.socket(), p.paths.choose_live());
            let body = Body::Ack {
                cum_psn: cum,
                sack_words: words,
                sack,
                grant: self.grant(now),
            };
            let r = self.header(PacketType::Ack, 0, path, body, 0);
            let len = r.emit(&mut self.ctrl[ix(slot)], &[])?;
            self.stats.tx_acks += 1;
            return Some(Outgoing {
                path,
                dst,
                len,
                ext: None,
                src: OutSrc::Ctrl(slot),
            });
        }
        while let Some(pi) = self.ready.pop_front() {
            if let Some(t) = self.transmit_data(now, pi) {
                return Some(t);
            }
        }
        while let Some(id) = self.ud_queue.pop_front() {
            let path = self.ud_next_path;
            self.ud_next_path = if path + 1 >= self.cfg.paths {
                0
            } else {
                path + 1
            };
            let Some(b) = self.pool.get(id) else { continue };
            // AHs always name a peer entry, and peers are never removed.
            let Some(dst) = self.peers.get(ix(b.peer)).map(|p| p.addr.socket()) else {
                self.complete_send(id, WcStatus::RemoteError);
                continue;
            };
            let body = Body::Data {
                dst_qpn: b.dst_qpn,
                src_qpn: b.src_qpn,
                qkey: b.qkey,
                psn: 0,
                una: 0,
                ack: None,
            };
            let r = self.header(PacketType::UdData, 0, path, body, b.payload_len());
            let emitted = self
                .pool
                .get_mut(id)
                .and_then(|b| r.emit_in_place(b.frame_mut()));
            // A UD send completes when handed over; its buffer stays pinned
            // until the I/O layer is done with it.
            self.pool.pin(id);
            self.complete_send(id, WcStatus::Success);
            let Some(len) = emitted else {
                self.pool.unpin(id);
                continue;
            };
            self.stats.tx_data += 1;
            return Some(Outgoing {
                path,
                dst,
                len,
                ext: None,
                src: OutSrc::Pool(id),
            });
        }
        None
    }

    /// Sends one data packet for peer `pi` (popped from the ready queue).
    fn transmit_data(&mut self, now: u64, pi: u32) -> Option<Outgoing> {
        let retry_limit = self.cfg.retry_limit;
        let max_rto = self.cfg.max_rto;
        let p = self.peers.get_mut(usize::try_from(pi).ok()?)?;
        p.in_ready = false;
        if !p.can_send() {
            return None;
        }
        let retx = if p.retx_allowed() {
            p.tx.pop_retx()
        } else {
            None
        };
        let (psn, avoid) = if let Some(psn) = retx {
            p.rto_episode.resent = true;
            let s = p.tx.note_retry(psn)?;
            // A peer that acked something within the last two RTO periods
            // is reachable: losses then are congestion (an incast drops the
            // same packet again and again), so the packet gets a larger
            // budget before the peer is declared failed.
            let alive = p.consecutive_timeouts < 2;
            let budget = if alive {
                retry_limit.saturating_mul(4)
            } else {
                retry_limit
            };
            // With round-trip timers a packet's retries come fast: a peer
            // that acked anything within max_rto is alive and congested (a
            // 1000:1 incast), not gone; the timeout rule below covers a
            // silent one.
            let silent = now.saturating_sub(p.last_progress) >= max_rto;
            if s.retries > budget && silent {
                self.fail_peer(pi, WcStatus::RetryExceeded);
                return None;
            }
            self.stats.retransmits += 1;
            p.counters.retransmits += 1;
            (psn, Some(s.path))
        } else {
            let buf = p.tx.pending.pop_front()?;
            if p.tx.ringless()
                && let Some(ring) = self.spare_rings.pop()
                && let Some(back) = p.tx.give_ring(ring)
            {
                self.spare_rings.push(back);
            }
            match p.tx.assign(buf) {
                Some(psn) => (psn, None),
                None => {
                    p.tx.pending.push_front(buf);
                    return None;
                }
            }
        };
        // What we received from this peer rides along as a cumulative ack.
        // That settles an ack we owe unless there are holes (those need the
        // SACK of a separate ack); such an ack goes out right behind the
        // last packet of a burst, in the same batch, rather than on its own
        // timer (not behind every packet: a stream both ways would ack
        // each one).
        let piggy = p.rx.init.then_some(p.rx.cum);
        let owes_ack = p.ack_deadline.is_some() && !p.ack_queued && p.rx.has_holes();
        if piggy.is_some() && !p.rx.has_holes() {
            p.ack_deadline = None;
            p.rx_unacked = 0;
        }
        let path = p.paths.choose(now, avoid);
        // With packets already in flight and the timer armed, a further
        // transmission moves no deadline earlier (the RTO runs from the
        // oldest, the probe from the newest); only a pacing gap can.
        let mut rearm = p.tx.in_flight == 0 || p.timer_at.is_none();
        p.tx.on_transmit(psn, now, path);
        if let Some(gap) = p.cwnd.pacing_gap(p.rtt.srtt()) {
            p.pace_until = Some(now.saturating_add(gap));
            rearm = true;
        }
        p.counters.tx_data += 1;
        let una = p.tx.una;
        let dst = p.addr.socket();
        let more = p.can_send();
        if more {
            p.in_ready = true;
            self.ready.push_back(pi);
        }
        if rearm {
            self.arm(pi);
        }
        if owes_ack && !more {
            self.queue_ack(pi);
        }
        let buf = self.peers.get(usize::try_from(pi).ok()?)?.tx.buf_of(psn)?;
        let b = self.pool.get_mut(buf)?;
        // Ask for an immediate ack when nothing follows (so the tail of a
        // burst completes without waiting for the ack delay) or on a resend.
        let mut fl = if more { 0 } else { flags::ACK_REQ };
        if avoid.is_some() {
            fl |= flags::RETX | flags::ACK_REQ;
        }
        let body = Body::Data {
            dst_qpn: b.dst_qpn,
            src_qpn: b.src_qpn,
            qkey: b.qkey,
            psn,
            una,
            ack: piggy,
        };
        let plen = b.payload_len();
        let r = self.header(PacketType::SrdData, fl, path, body, plen);
        let b = self.pool.get_mut(buf)?;
        let ext = b.ext;
        let len = match ext {
            // The payload's tail goes out from its owner's memory.
            Some(_) => r.emit_head_in_place(b.frame_mut())?,
            None => r.emit_in_place(b.frame_mut())?,
        };
        self.pool.pin(buf);
        self.stats.tx_data += 1;
        let o = Outgoing {
            path,
            dst,
            len,
            ext,
            src: OutSrc::Pool(buf),
        };
        // A lone small packet (nothing else in flight, nothing behind it)
        // would need a probe at 2 SRTT if lost; a copy on another path
        // makes one loss cost nothing. The receiver keeps one (PSN).
        if avoid.is_none() && !more && plen <= self.cfg.dup_small {
            let p = self.peers.get_mut(usize::try_from(pi).ok()?)?;
            if p.tx.in_flight == 1 && p.paths.alive() > 1 {
                let other = p.paths.choose(now, Some(path));
                self.pool.pin(buf);
                self.dup_next = Some(Outgoing { path: other, ..o });
            }
        }
        Some(o)
    }
}

/// The parts of a device that completing a send touches, borrowed apart
/// from the peers so acks can complete sends while walking a peer's window.
struct Completer<'a> {
    pool: &'a mut Pool,
    qps: &'a mut Table<QpEntry>,
    cqs: &'a mut Table<CqEntry>,
    stats: &'a mut Stats,
}

impl Completer<'_> {
    fn send(&mut self, id: u32, status: WcStatus) {
        let Some(b) = self.pool.get(id) else { return };
        let (wr_id, qpn, len) = (b.wr_id, b.src_qpn, b.payload_len());
        self.pool.release(id);
        let Some(q) = self.qps.get_mut(qpn) else {
            return;
        };
        q.sq_outstanding = q.sq_outstanding.saturating_sub(1);
        self.stats.send_completions += 1;
        if let Some(cq) = self.cqs.get_mut(q.send_cq) {
            cq.entries.push_back(completion(
                wr_id,
                qpn,
                status,
                Opcode::Send,
                len,
                None,
                None,
            ));
        }
    }
}

fn completion(
    wr_id: u64,
    qpn: Qpn,
    status: WcStatus,
    opcode: Opcode,
    len: usize,
    src: Option<(DeviceAddr, Qpn)>,
    buf: Option<Vec<u8>>,
) -> Completion {
    Completion {
        wr_id,
        qpn,
        status,
        opcode,
        len,
        src,
        buf,
    }
}

/// A peer or table index as a `usize` (u32 always fits on supported targets;
/// an impossible miss simply finds nothing).
fn ix(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// A multiplicative hasher for the small fixed-size keys of the device's
/// maps (addresses), much cheaper per lookup than the default SipHash.
#[derive(Default, Clone, Copy)]
pub(crate) struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(23) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v) | 1 << 32);
    }
}
