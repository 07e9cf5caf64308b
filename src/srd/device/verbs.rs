//! The verbs face of the device: protection domains, memory regions,
//! address handles, completion queues, queue pairs and their state machine,
//! posting sends (copied or built in a lent buffer) and receives
//! (docs/srd-spec.md §2, §5).

use super::*;

impl Device {
    pub fn alloc_pd(&mut self) -> Result<Pd, SrdError> {
        self.pds.insert(()).map(Pd).ok_or(SrdError::TableFull)
    }

    /// Fails with `Busy` while a QP, AH or MR uses the PD.
    pub fn dealloc_pd(&mut self, pd: Pd) -> Result<(), SrdError> {
        self.pds.get(pd.0).ok_or(SrdError::InvalidPd)?;
        let used = self.qps.iter().any(|q| q.pd == pd.0)
            || self.ahs.iter().any(|a| a.pd == pd.0)
            || self.mrs.iter().any(|m| m.pd == pd.0);
        if used {
            return Err(SrdError::Busy);
        }
        self.pds.remove(pd.0);
        Ok(())
    }

    /// Registers `[addr, addr+len)` with `access`. The device never
    /// dereferences `addr`: the layer above uses `check_mr` before touching
    /// memory on behalf of a key (emulated RMA).
    pub fn reg_mr(&mut self, pd: Pd, addr: u64, len: u64, access: Access) -> Result<Mr, SrdError> {
        self.pds.get(pd.0).ok_or(SrdError::InvalidPd)?;
        addr.checked_add(len).ok_or(SrdError::InvalidArg)?;
        let key = self
            .mrs
            .insert(MrEntry {
                pd: pd.0,
                addr,
                len,
                access,
            })
            .ok_or(SrdError::TableFull)?;
        // Handles use 16 + 16 bits; the generation is kept below RKEY_BIT.
        let lkey = key & !RKEY_BIT;
        Ok(Mr {
            lkey,
            rkey: lkey | RKEY_BIT,
        })
    }

    pub fn dereg_mr(&mut self, lkey: u32) -> Result<(), SrdError> {
        self.mrs.remove(lkey).map(|_| ()).ok_or(SrdError::InvalidMr)
    }

    /// Checks that `key` (an lkey, or an rkey when `remote`) covers
    /// `[addr, addr+len)` in `pd` with `needed` access.
    pub fn check_mr(
        &self,
        pd: Pd,
        key: u32,
        remote: bool,
        addr: u64,
        len: u64,
        needed: Access,
    ) -> Result<(), SrdError> {
        if remote != (key & RKEY_BIT != 0) {
            return Err(SrdError::AccessDenied);
        }
        let m = self
            .mrs
            .get(key & !RKEY_BIT)
            .ok_or(SrdError::AccessDenied)?;
        let end = addr.checked_add(len).ok_or(SrdError::AccessDenied)?;
        let inside = addr >= m.addr && end <= m.addr + m.len;
        if m.pd != pd.0 || !inside || !m.access.contains(needed) {
            return Err(SrdError::AccessDenied);
        }
        Ok(())
    }

    /// Creates an address handle for a remote device. Allocates the per-peer
    /// state if this is the first handle or packet for it.
    pub fn create_ah(&mut self, pd: Pd, addr: DeviceAddr) -> Result<Ah, SrdError> {
        self.pds.get(pd.0).ok_or(SrdError::InvalidPd)?;
        let peer = self.peer_index(addr, true).ok_or(SrdError::TableFull)?;
        self.ahs
            .insert(AhEntry { pd: pd.0, peer })
            .map(Ah)
            .ok_or(SrdError::TableFull)
    }

    /// Destroys a handle. Sends already posted with it still complete.
    pub fn destroy_ah(&mut self, ah: Ah) -> Result<(), SrdError> {
        self.ahs.remove(ah.0).map(|_| ()).ok_or(SrdError::InvalidAh)
    }

    /// Lets packets to the peer of `ah` carry up to `n` payload bytes (at
    /// least the device's `max_payload`, at most what one datagram holds):
    /// for a peer on this host, reached over loopback, whose path is not the
    /// interface's MTU.
    pub fn set_peer_max_payload(&mut self, ah: Ah, n: usize) -> Result<(), SrdError> {
        let a = self.ahs.get(ah.0).ok_or(SrdError::InvalidAh)?;
        let max = w::MAX_TOTAL_LEN - w::DATA_HEADER_LEN;
        let n = n.clamp(self.cfg.max_payload, max);
        let p = self.peers.get_mut(ix(a.peer)).ok_or(SrdError::InvalidAh)?;
        p.max_payload = n;
        Ok(())
    }

    /// Sends posted toward the peer of `ah` and not yet on the wire (beyond
    /// its congestion window, or waiting out an RNR backoff): what the
    /// layer above uses to slow that one peer down before it fills the
    /// send queue every peer shares.
    pub fn peer_backlog(&self, ah: Ah) -> usize {
        let Some(a) = self.ahs.get(ah.0) else {
            return 0;
        };
        self.peers
            .get(ix(a.peer))
            .map_or(0, |p| p.tx.pending.len() + p.tx.retx_len())
    }

    pub fn create_cq(&mut self, depth: u32) -> Result<Cq, SrdError> {
        if depth == 0 {
            return Err(SrdError::InvalidArg);
        }
        self.cqs
            .insert(CqEntry {
                depth,
                reserved: 0,
                entries: VecDeque::new(),
            })
            .map(Cq)
            .ok_or(SrdError::TableFull)
    }

    pub fn destroy_cq(&mut self, cq: Cq) -> Result<(), SrdError> {
        let c = self.cqs.get(cq.0).ok_or(SrdError::InvalidCq)?;
        if c.reserved > 0 {
            return Err(SrdError::Busy);
        }
        self.cqs.remove(cq.0);
        Ok(())
    }

    /// Creates a QP in RESET. Its queue depths are reserved on its CQs, which
    /// must have room (`InvalidArg` otherwise), so a CQ can never overflow.
    pub fn create_qp(&mut self, attr: QpAttr) -> Result<Qpn, SrdError> {
        self.pds.get(attr.pd.0).ok_or(SrdError::InvalidPd)?;
        let sq = if attr.sq_depth == 0 {
            self.cfg.sq_depth
        } else {
            attr.sq_depth
        };
        let rq = if attr.rq_depth == 0 {
            self.cfg.rq_depth
        } else {
            attr.rq_depth
        };
        let room = |c: &CqEntry| c.depth - c.reserved;
        let scq = self.cqs.get(attr.send_cq.0).ok_or(SrdError::InvalidCq)?;
        let rcq = self.cqs.get(attr.recv_cq.0).ok_or(SrdError::InvalidCq)?;
        let fits = if attr.send_cq == attr.recv_cq {
            u64::from(room(scq)) >= u64::from(sq) + u64::from(rq)
        } else {
            room(scq) >= sq && room(rcq) >= rq
        };
        if !fits {
            return Err(SrdError::InvalidArg);
        }
        let qpn = self
            .qps
            .insert(QpEntry {
                pd: attr.pd.0,
                qp_type: attr.qp_type,
                qkey: attr.qkey,
                state: QpState::Reset,
                send_cq: attr.send_cq.0,
                recv_cq: attr.recv_cq.0,
                sq_depth: sq,
                rq_depth: rq,
                sq_outstanding: 0,
                rq: VecDeque::new(),
                in_place: false,
            })
            .ok_or(SrdError::TableFull)?;
        if let Some(c) = self.cqs.get_mut(attr.send_cq.0) {
            c.reserved += sq;
        }
        if let Some(c) = self.cqs.get_mut(attr.recv_cq.0) {
            c.reserved += rq;
        }
        Ok(qpn)
    }

    /// Moves a QP along RESET → INIT → RTR → RTS, or to ERR / RESET from
    /// anywhere. Entering ERR or RESET flushes every posted WR with a
    /// `Flushed` completion (receive buffers come back in them).
    pub fn modify_qp(&mut self, qpn: Qpn, to: QpState) -> Result<(), SrdError> {
        let q = self.qps.get_mut(qpn).ok_or(SrdError::InvalidQp)?;
        if !q.state.can_move_to(to) {
            return Err(SrdError::InvalidTransition);
        }
        q.state = to;
        if matches!(to, QpState::Err | QpState::Reset) {
            self.flush_qp(qpn);
        }
        Ok(())
    }

    pub fn qp_state(&self, qpn: Qpn) -> Option<QpState> {
        self.qps.get(qpn).map(|q| q.state)
    }

    /// Destroys a QP: flushes its WRs (completions still go to its CQs) and
    /// releases its CQ reservations.
    pub fn destroy_qp(&mut self, qpn: Qpn) -> Result<(), SrdError> {
        self.qps.get(qpn).ok_or(SrdError::InvalidQp)?;
        self.flush_qp(qpn);
        let Some(q) = self.qps.remove(qpn) else {
            return Err(SrdError::InvalidQp);
        };
        if let Some(c) = self.cqs.get_mut(q.send_cq) {
            c.reserved -= q.sq_depth;
        }
        if let Some(c) = self.cqs.get_mut(q.recv_cq) {
            c.reserved -= q.rq_depth;
        }
        Ok(())
    }

    fn flush_qp(&mut self, qpn: Qpn) {
        // Receives.
        let Some(q) = self.qps.get_mut(qpn) else {
            return;
        };
        let rq = std::mem::take(&mut q.rq);
        let rcq = q.recv_cq;
        for wr in rq {
            self.push_cq(
                rcq,
                completion(
                    wr.wr_id,
                    qpn,
                    WcStatus::Flushed,
                    Opcode::Recv,
                    0,
                    None,
                    Some(wr.buf),
                ),
            );
        }
        // Sends, wherever they wait. Abandoned PSNs are skipped by the
        // receiver through `una`.
        for pi in 0..self.peers.len() {
            let Some(p) = self.peers.get(pi) else {
                continue;
            };
            let psns: Vec<u32> =
                p.tx.live_psns()
                    .filter(|&psn| {
                        p.tx.buf_of(psn)
                            .and_then(|b| self.pool.get(b))
                            .is_some_and(|b| b.src_qpn == qpn)
                    })
                    .collect();
            let mut bufs = Vec::new();
            if let Some(p) = self.peers.get_mut(pi) {
                for psn in psns {
                    if let Some(r) = p.tx.remove(psn) {
                        bufs.push(r.buf);
                    }
                }
                p.tx.advance_una();
                let pending = std::mem::take(&mut p.tx.pending);
                for b in pending {
                    if self.pool.get(b).is_some_and(|t| t.src_qpn == qpn) {
                        bufs.push(b);
                    } else {
                        p.tx.pending.push_back(b);
                    }
                }
            }
            for b in bufs {
                self.complete_send(b, WcStatus::Flushed);
            }
        }
        let ud = std::mem::take(&mut self.ud_queue);
        for b in ud {
            if self.pool.get(b).is_some_and(|t| t.src_qpn == qpn) {
                self.complete_send(b, WcStatus::Flushed);
            } else {
                self.ud_queue.push_back(b);
            }
        }
    }

    /// Posts a send: copies `wr.data` into a pooled buffer. SRD sends complete
    /// when acked (or with an error status after the retry / RNR limit); UD
    /// sends when handed to the network.
    pub fn post_send(&mut self, qpn: Qpn, wr: SendWr<'_>) -> Result<(), SrdError> {
        let (peer, qp_type) = self.check_send(qpn, wr.ah, wr.data.len())?;
        let id = self.pool.take(wr.data).ok_or(SrdError::QueueFull)?;
        self.enqueue_send(id, qpn, peer, qp_type, &wr);
        Ok(())
    }

    /// Lends a send buffer with room for a payload of `room` bytes, for the
    /// caller to build a packet in (`lent_mut`) and post (`post_lent`) with
    /// no copy, or give back (`give_back`); `None` when the pool is empty.
    pub fn lend(&mut self, room: usize) -> Option<Lent> {
        let id = self.pool.lend(room)?;
        self.tx_high_water = self.tx_high_water.max(self.pool.in_use());
        Some(Lent(id))
    }

    /// The payload room of a lent buffer.
    pub fn lent_mut(&mut self, b: &Lent) -> &mut [u8] {
        self.pool.spare_mut(b.0).unwrap_or_default()
    }

    /// The first `len` payload bytes of a lent buffer.
    pub fn lent(&self, b: &Lent, len: usize) -> &[u8] {
        self.pool
            .get(b.0)
            .and_then(|t| t.spare().get(..len))
            .unwrap_or_default()
    }

    /// Posts the first `len` bytes of a lent buffer as `wr` would be posted
    /// (its `data` is ignored). On error the buffer stays lent to the caller.
    pub fn post_lent(
        &mut self,
        qpn: Qpn,
        b: Lent,
        len: usize,
        wr: SendWr<'_>,
    ) -> Result<(), (SrdError, Lent)> {
        let (peer, qp_type) = match self.check_send(qpn, wr.ah, len) {
            Ok(v) => v,
            Err(e) => return Err((e, b)),
        };
        if !self.pool.set_len(b.0, len) {
            return Err((SrdError::TooLong, b));
        }
        self.enqueue_send(b.0, qpn, peer, qp_type, &wr);
        Ok(())
    }

    /// As `post_lent`, with the payload's tail left in the sender's memory
    /// (zero copy): the packet is the first `len` bytes of `b` followed by
    /// the `ext.len` bytes `ext` names, which the I/O layer gathers from
    /// their owner at each transmission. The owner keeps them valid until
    /// the send completes (success or error). Needs header-only checksums
    /// (`payload_checksum` off): the device never sees those bytes.
    pub fn post_lent_ext(
        &mut self,
        qpn: Qpn,
        b: Lent,
        len: usize,
        ext: ExtRef,
        wr: SendWr<'_>,
    ) -> Result<(), (SrdError, Lent)> {
        if self.cfg.payload_checksum || ext.len == 0 {
            return Err((SrdError::InvalidArg, b));
        }
        let whole = len.saturating_add(ext.len as usize);
        let (peer, qp_type) = match self.check_send(qpn, wr.ah, whole) {
            Ok(v) if v.1 == QpType::Srd => v,
            Ok(_) => return Err((SrdError::InvalidArg, b)),
            Err(e) => return Err((e, b)),
        };
        if !self.pool.set_len(b.0, len) {
            return Err((SrdError::TooLong, b));
        }
        self.pool.set_ext(b.0, ext);
        self.enqueue_send(b.0, qpn, peer, qp_type, &wr);
        Ok(())
    }

    /// Returns a lent buffer unposted.
    pub fn give_back(&mut self, b: Lent) {
        self.pool.release(b.0);
    }

    /// Whether a send of `len` bytes to `ah` may be posted on `qpn`: the
    /// peer and the QP type it goes to.
    fn check_send(&self, qpn: Qpn, ah: Ah, len: usize) -> Result<(u32, QpType), SrdError> {
        let q = self.qps.get(qpn).ok_or(SrdError::InvalidQp)?;
        if q.state != QpState::Rts {
            return Err(SrdError::InvalidState);
        }
        let ah = self.ahs.get(ah.0).ok_or(SrdError::InvalidAh)?;
        let limit = self
            .peers
            .get(ix(ah.peer))
            .map_or(self.cfg.max_payload, |p| p.max_payload);
        if len > limit {
            return Err(SrdError::TooLong);
        }
        if ah.pd != q.pd {
            return Err(SrdError::InvalidAh);
        }
        if q.sq_outstanding >= q.sq_depth {
            return Err(SrdError::QueueFull);
        }
        Ok((ah.peer, q.qp_type))
    }

    /// Queues the filled buffer `id` for sending.
    fn enqueue_send(&mut self, id: u32, qpn: Qpn, peer: u32, qp_type: QpType, wr: &SendWr<'_>) {
        if let Some(b) = self.pool.get_mut(id) {
            b.wr_id = wr.wr_id;
            b.src_qpn = qpn;
            b.dst_qpn = wr.remote_qpn;
            b.qkey = wr.remote_qkey;
            b.peer = peer;
        }
        if let Some(q) = self.qps.get_mut(qpn) {
            q.sq_outstanding += 1;
        }
        self.tx_high_water = self.tx_high_water.max(self.pool.in_use());
        match qp_type {
            QpType::Ud => self.ud_queue.push_back(id),
            QpType::Srd => {
                if let Some(p) = self
                    .peers
                    .get_mut(usize::try_from(peer).unwrap_or(usize::MAX))
                {
                    p.tx.pending.push_back(id);
                }
                self.mark_ready(peer);
            }
        }
    }

    /// Posts a receive buffer (QP in INIT, RTR or RTS).
    pub fn post_recv(&mut self, qpn: Qpn, wr: RecvWr) -> Result<(), SrdError> {
        let q = self.qps.get_mut(qpn).ok_or(SrdError::InvalidQp)?;
        if !q.state.can_post_recv() {
            return Err(SrdError::InvalidState);
        }
        if q.rq.len() >= usize::try_from(q.rq_depth).unwrap_or(usize::MAX) {
            return Err(SrdError::QueueFull);
        }
        q.rq.push_back(wr);
        Ok(())
    }

    pub fn poll_cq(&mut self, cq: Cq) -> Option<Completion> {
        self.cqs.get_mut(cq.0)?.entries.pop_front()
    }

    /// How many more sends the QP accepts now.
    pub fn send_room(&self, qpn: Qpn) -> usize {
        let Some(q) = self.qps.get(qpn) else { return 0 };
        let room = q
            .sq_depth
            .saturating_sub(q.sq_outstanding)
            .min(self.pool.available());
        usize::try_from(room).unwrap_or(0)
    }

    /// Receive WRs posted and not consumed.
    pub fn recv_posted(&self, qpn: Qpn) -> usize {
        self.qps.get(qpn).map_or(0, |q| q.rq.len())
    }
}
