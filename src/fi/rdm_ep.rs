//! FI_EP_RDM: the RDM protocol (`rdm::Endpoint`) over one SRD QP of the
//! endpoint's device. This file is the glue: address resolution between
//! fi_addr, the protocol's peers and device address handles; receive-buffer
//! management with back-pressure (deferred packets, RNR); completions.

use super::addr::{ADDR_LEN, EpAddr, Kind};
use super::av::{ADDR_NOTAVAIL, Av};
use super::cq::{Entry, ErrEntry};
use super::errno::{Error, Result};
use super::fabric::Domain;
use super::ops::{AtomicReq, RecvOp, RmaOp, SendOp};
use super::params::Params;
use super::sink::{Dir, Sink};
use super::transport::Transport;
use crate::ffi::bindings as b;
use crate::rdm::{self, PacketOutcome, PeerIdx, RdmError, TxError};
use crate::srd::backend::shm::{ShmConfig, ShmEndpoint, ShmError, ShmPeer, ShmToken};
use crate::srd::{self, Ah, DeviceAddr, Opcode, Pd, QpType, RecvWr, SendWr, WcStatus};
use smallvec::SmallVec;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// The QKey of every srd RDM QP.
pub const RDM_QKEY: u32 = 0x5344_5201;
/// Receive buffers always kept posted so control packets flow while new
/// messages are being deferred (see `rdm` module docs).
const RESERVE: usize = 8;
/// Datagrams a UDP poll may take even with no receive buffer posted.
const RNR_FLOOR: usize = 32;
/// Receive buffers per endpoint.
const RX_DEPTH: usize = 128;
/// Receive buffers take the largest SRD payload any peer may send, whatever
/// our own interface's MTU: a peer on another interface (or host) may use
/// larger datagrams, and a packet the device has acked must never meet a
/// buffer it does not fit.
const RX_BUF: usize = crate::srd::backend::udp::MAX_UDP_PAYLOAD - crate::wire::srd::DATA_HEADER_LEN;

/// Where a protocol peer is on the device.
#[derive(Clone, Copy, Debug)]
struct Route {
    ah: Ah,
    qpn: u32,
    qkey: u32,
    dev: DeviceAddr,
}

pub struct RdmEp {
    t: Transport,
    /// Same-host peers: shared-memory rings (None when FI_SRD_SHM=0 or
    /// /dev/shm is unusable; then every peer goes over UDP).
    shm: Option<ShmEndpoint>,
    shm_routes: Vec<Option<ShmPeer>>,
    by_shm: HashMap<ShmToken, PeerIdx>,
    /// Packets a full ring could not take yet, in order, with their tokens.
    shm_pending: VecDeque<(ShmPeer, Vec<u8>, u64)>,
    shm_bufs: Vec<Vec<u8>>,
    /// UDP sockets were last polled at (ns); polling is rationed while
    /// shared memory carries the traffic.
    last_udp_poll: u64,
    /// Datagrams were posted to the device since the last pump.
    udp_dirty: bool,
    pd: Pd,
    cq: srd::Cq,
    qpn: u32,
    cfg: rdm::Config,
    rdm: Option<rdm::Endpoint>,
    /// fi_addr → protocol peer.
    by_fi: Vec<Option<PeerIdx>>,
    /// protocol peer → fi_addr (ADDR_NOTAVAIL for senders not in the AV).
    fi_of: Vec<u64>,
    routes: Vec<Option<Route>>,
    /// (device address, QPN) of a sender → protocol peer.
    by_dev: HashMap<(DeviceAddr, u32), PeerIdx>,
    buf_len: usize,
    free_bufs: Vec<Vec<u8>>,
    posted: usize,
    deferred: VecDeque<(Option<PeerIdx>, Vec<u8>, usize)>,
    out: Vec<u8>,
    stash: Option<rdm::Completion>,
    tx_size: usize,
    rx_size: usize,
    nonce: u64,
    host_id: u64,
    /// `Av::removals()` when `by_fi` was last checked.
    av_removals: u64,
}

impl RdmEp {
    pub fn open(
        domain: &Domain,
        udp_payload: usize,
        params: &Params,
        tx_size: usize,
        rx_size: usize,
    ) -> Result<RdmEp> {
        let mut t = Transport::open(domain.iface.addr, udp_payload, params, |c| {
            c.sq_depth = 4096;
            c.rq_depth = RX_DEPTH as u32;
            // A receiver that is alive but has no buffer posted (the RDM layer
            // holding back unexpected messages) is waited for, with the
            // device's bounded backoff, as an InfiniBand RNR retry count of 7
            // means "forever"; a receiver that is gone answers nothing and
            // fails the sends through the retry limit.
            c.rnr_retry_limit = u32::MAX;
            c.retry_limit = params.retry_limit;
        })?;
        let (pd, cq, qpn) = t.open_qp(QpType::Srd, RDM_QKEY, 4096, RX_DEPTH as u32)?;
        let dev = &t.dev;
        let mtu = dev.max_payload();
        let shm = if params.shm {
            let cfg = ShmConfig {
                slots: 512,
                slot_size: mtu,
                cma: if params.shm_cma {
                    crate::srd::backend::shm::CmaMode::Auto
                } else {
                    crate::srd::backend::shm::CmaMode::Off
                },
            };
            match ShmEndpoint::open(cfg) {
                Ok(e) => Some(e),
                Err(e) => {
                    crate::srd_log!(
                        Warn,
                        EpCtrl,
                        "no shared-memory ring ({e}); same-host peers use UDP"
                    );
                    None
                }
            }
        } else {
            None
        };
        let cfg = rdm::Config {
            mtu,
            tx_size,
            rx_size,
            eager_max: mtu,
            inject_size: super::offer::RDM_INJECT,
            ..rdm::Config::default()
        };
        let mut ep = RdmEp {
            t,
            shm,
            shm_routes: Vec::new(),
            by_shm: HashMap::new(),
            shm_pending: VecDeque::new(),
            shm_bufs: Vec::new(),
            last_udp_poll: 0,
            udp_dirty: false,
            pd,
            cq,
            qpn,
            cfg,
            rdm: None,
            by_fi: Vec::new(),
            fi_of: Vec::new(),
            routes: Vec::new(),
            by_dev: HashMap::new(),
            buf_len: RX_BUF.max(mtu),
            free_bufs: Vec::new(),
            posted: 0,
            deferred: VecDeque::new(),
            out: vec![0u8; mtu],
            stash: None,
            tx_size,
            rx_size,
            nonce: super::endpoint::random_u64(),
            host_id: super::endpoint::host_id(),
            av_removals: 0,
        };
        ep.repost();
        Ok(ep)
    }

    pub fn name(&self) -> EpAddr {
        EpAddr {
            kind: Kind::Rdm,
            sock: self.t.local(),
            qpn: self.qpn,
            qkey: RDM_QKEY,
            host_id: self.host_id,
            nonce: self.shm.as_ref().map_or(self.nonce, |s| s.token().nonce),
            pid: self.shm.as_ref().map_or(0, |s| s.token().pid),
        }
    }

    /// Creates the protocol engine (selective-completion settings are known
    /// once CQs are bound).
    pub fn enable(
        &mut self,
        sink: &Sink,
        min_multi_recv: usize,
        target: Box<dyn rdm::RmaTarget + Send>,
    ) {
        let mut cfg = self.cfg.clone();
        cfg.min_multi_recv = min_multi_recv;
        cfg.tx_selective = sink.tx_selective;
        cfg.rx_selective = sink.rx_selective;
        cfg.local_addr = self.name().to_bytes().to_vec();
        let mut r = rdm::Endpoint::new(cfg);
        r.set_rma_target(target);
        self.rdm = Some(r);
    }

    /// fi_read / fi_write and their forms.
    pub fn rma(&mut self, sink: &Sink, av: &Arc<Av>, op: RmaOp) -> Result<()> {
        let peer = self.peer_of(av, op.dest)?;
        let now = self.t.now();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let res = if op.read {
            rdm.read(
                now,
                peer,
                op.iov,
                op.addr,
                op.key,
                op.context as u64,
                op.flags,
            )
        } else if !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0 {
            let mut tmp = [0u8; super::offer::RDM_INJECT];
            rdm.inject_write(
                now,
                peer,
                stage_inject(&op.iov, &mut tmp)?,
                op.addr,
                op.key,
                data,
            )
        } else {
            rdm.write(
                now,
                peer,
                op.iov,
                op.addr,
                op.key,
                data,
                op.context as u64,
                op.flags,
            )
        };
        self.after_post(sink, av, res)
    }

    /// fi_atomic, fi_fetch_atomic, fi_compare_atomic and their forms.
    pub fn atomic(&mut self, sink: &Sink, av: &Arc<Av>, a: AtomicReq) -> Result<()> {
        let peer = self.peer_of(av, a.dest)?;
        let now = self.t.now();
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let flags = if a.report {
            a.flags
        } else {
            a.flags | b::FI_INJECT
        };
        let res = rdm.atomic(
            now,
            peer,
            a.op,
            a.datatype,
            &a.operand,
            a.compare.as_deref(),
            a.result,
            a.addr,
            a.key,
            a.count,
            a.context as u64,
            flags,
        );
        self.after_post(sink, av, res)
    }

    /// Largest element count of an atomic, or None when unsupported.
    pub fn atomic_valid(
        &self,
        op: rdm::AtomicOp,
        dt: rdm::Datatype,
        kind: rdm::AtomicKind,
    ) -> Option<usize> {
        match &self.rdm {
            Some(r) => r.atomic_valid(op, dt, kind),
            // Before fi_enable: the same rule with this endpoint's MTU and a
            // conservative header allowance.
            None => {
                if !rdm::atomic::supported(op, dt, kind) {
                    return None;
                }
                let per = dt.size()
                    * if kind == rdm::AtomicKind::Compare {
                        2
                    } else {
                        1
                    };
                let n = self.cfg.mtu.saturating_sub(128) / per.max(1);
                (n > 0).then_some(n)
            }
        }
    }

    fn after_post(
        &mut self,
        sink: &Sink,
        av: &Arc<Av>,
        res: std::result::Result<(), RdmError>,
    ) -> Result<()> {
        match res {
            Ok(()) => {
                self.progress(sink, Some(av));
                Ok(())
            }
            Err(RdmError::Again) => {
                self.progress(sink, Some(av));
                Err(Error::Again)
            }
            Err(e) => Err(map_rdm(e)),
        }
    }

    pub fn tx_room(&self) -> usize {
        self.rdm
            .as_ref()
            .map_or(0, |r| self.tx_size.saturating_sub(r.pending_ops().0))
    }

    pub fn rx_room(&self) -> usize {
        self.rdm
            .as_ref()
            .map_or(0, |r| self.rx_size.saturating_sub(r.pending_ops().1))
    }

    /// The protocol peer for an AV entry, created on first use.
    fn peer_of(&mut self, av: &Av, fi_addr: u64) -> Result<PeerIdx> {
        self.revalidate(av);
        let i = usize::try_from(fi_addr).map_err(|_| Error::Inval)?;
        if let Some(Some(p)) = self.by_fi.get(i) {
            return Ok(*p);
        }
        let a = av.lookup(fi_addr).ok_or(Error::Inval)?;
        if a.kind != Kind::Rdm {
            return Err(Error::Inval);
        }
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let bytes = a.to_bytes();
        // Also marks a peer first learned from the network as an AV peer.
        let p = rdm.insert_peer(&bytes).map_err(map_rdm)?;
        if self.by_fi.len() <= i {
            self.by_fi.resize(i + 1, None);
        }
        self.by_fi[i] = Some(p);
        self.note_peer(p, Some(fi_addr));
        Ok(p)
    }

    /// Records what we know of peer `p`: its fi_addr and device route.
    fn note_peer(&mut self, p: PeerIdx, fi_addr: Option<u64>) {
        let pi = p as usize;
        if self.fi_of.len() <= pi {
            self.fi_of.resize(pi + 1, ADDR_NOTAVAIL);
            self.routes.resize(pi + 1, None);
            self.shm_routes.resize(pi + 1, None);
        }
        if let Some(f) = fi_addr {
            self.fi_of[pi] = f;
        }
        if self.routes[pi].is_none() {
            let addr = self
                .rdm
                .as_ref()
                .and_then(|r| r.peer_addr(p))
                .and_then(|b| EpAddr::from_bytes(b).ok());
            if let Some(a) = addr {
                // Same host: the peer's ring, if it offers one we can open.
                if let Some(shm) = self.shm.as_mut()
                    && a.host_id == self.host_id
                    && a.pid != 0
                {
                    let token = ShmToken {
                        pid: a.pid,
                        nonce: a.nonce,
                    };
                    if let Ok(sp) = shm.connect(token) {
                        self.shm_routes[pi] = Some(sp);
                        self.by_shm.insert(token, p);
                    }
                }
                let dev = DeviceAddr::new(*a.sock.ip(), a.sock.port());
                if let Ok(ah) = self.t.dev.create_ah(self.pd, dev) {
                    self.routes[pi] = Some(Route {
                        ah,
                        qpn: a.qpn,
                        qkey: a.qkey,
                        dev,
                    });
                    self.by_dev.insert((dev, a.qpn), p);
                }
            }
        }
    }

    pub fn send(&mut self, sink: &Sink, av: &Arc<Av>, op: SendOp) -> Result<()> {
        let peer = self.peer_of(av, op.dest)?;
        let now = self.t.now();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let res = if !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0 {
            // fi_inject: copied now, never completes.
            let mut tmp = [0u8; super::offer::RDM_INJECT];
            let buf = stage_inject(&op.iov, &mut tmp)?;
            if op.tagged {
                rdm.tinject(now, peer, buf, op.tag, data)
            } else {
                rdm.inject(now, peer, buf, data)
            }
        } else if op.tagged {
            rdm.tsend(now, peer, op.iov, op.tag, data, op.context as u64, op.flags)
        } else {
            rdm.send(now, peer, op.iov, data, op.context as u64, op.flags)
        };
        self.after_post(sink, av, res)
    }

    pub fn recv(&mut self, sink: &Sink, av: &Arc<Av>, op: RecvOp) -> Result<()> {
        let src = if op.src == ADDR_NOTAVAIL {
            None
        } else {
            Some(self.peer_of(av, op.src)?)
        };
        let now = self.t.now();
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let res = if op.tagged {
            rdm.trecv(
                now,
                op.iov,
                src,
                op.tag,
                op.ignore,
                op.context as u64,
                op.flags,
            )
        } else {
            rdm.recv(now, op.iov, src, op.context as u64, op.flags)
        };
        self.after_post(sink, av, res)
    }

    pub fn cancel(&mut self, _sink: &Sink, context: usize) -> bool {
        self.rdm.as_mut().is_some_and(|r| r.cancel(context as u64))
    }

    fn repost(&mut self) {
        let max_held = RX_DEPTH + RESERVE;
        while self.posted < RX_DEPTH && self.posted + self.deferred.len() < max_held {
            let buf = self
                .free_bufs
                .pop()
                .unwrap_or_else(|| vec![0u8; self.buf_len]);
            match self.t.dev.post_recv(self.qpn, RecvWr { wr_id: 0, buf }) {
                Ok(()) => self.posted += 1,
                Err(_) => break,
            }
        }
    }

    /// One progress round: I/O, device completions, protocol, CQ.
    pub fn progress(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        if self.rdm.is_none() {
            self.t.pump();
            return;
        }
        for _ in 0..4 {
            self.poll_udp(false);
            let mut busy = self.device_completions(av);
            busy |= self.shm_receive(av);
            busy |= self.retry_deferred();
            self.repost();
            busy |= self.transmit();
            let now = self.t.now();
            if let Some(r) = self.rdm.as_mut()
                && r.poll_timeout().is_some_and(|t| t <= now)
            {
                r.handle_timeout(now);
            }
            if self.udp_dirty {
                self.poll_udp(true);
            }
            if !busy {
                break;
            }
        }
        self.completions(sink, av);
        if let Some(r) = self.rdm.as_mut() {
            let c = r.take_remote_counts();
            sink.remote(c.reads, c.writes);
        }
    }

    /// Moves UDP datagrams. Without shared memory every call polls; with it,
    /// the sockets are polled at most every 20 µs unless datagrams wait to
    /// go out, so same-host traffic does not pay a system call per poll.
    fn poll_udp(&mut self, force: bool) {
        let now = self.t.now();
        if force
            || self.shm.is_none()
            || self.udp_dirty
            || now.saturating_sub(self.last_udp_poll) >= 20_000
        {
            self.last_udp_poll = now;
            self.udp_dirty = false;
            // No more datagrams than receive buffers posted (some always,
            // for acks): a burst then waits in the kernel, not for RNR.
            self.t.pump_budget(self.posted.max(RNR_FLOOR));
        }
    }

    /// Drains our shared-memory ring into the protocol. A packet the
    /// protocol defers stays in the ring (senders then see it full). A
    /// sender not yet known by its ring token is looked up in the AV first,
    /// and a sender learned from the network is promoted once the AV has it.
    fn shm_receive(&mut self, av: Option<&Arc<Av>>) -> bool {
        let mut any = false;
        let mut not_in_av: SmallVec<[ShmToken; 4]> = SmallVec::new();
        for _ in 0..8 {
            if !self.deferred.is_empty() {
                // UDP packets wait for the application; keep rings behind them.
                return any;
            }
            let (Some(shm), Some(r)) = (self.shm.as_mut(), self.rdm.as_mut()) else {
                return any;
            };
            let now = self.t.now();
            let (by_shm, fi_of) = (&mut self.by_shm, &self.fi_of);
            let mut learned: SmallVec<[PeerIdx; 4]> = SmallVec::new();
            let mut resolve: Option<(ShmToken, u64)> = None;
            let n = shm.recv_while(|tok, bytes| {
                let src = by_shm.get(&tok).copied();
                let in_av =
                    src.is_some_and(|p| fi_of.get(p as usize).is_some_and(|&f| f != ADDR_NOTAVAIL));
                if !in_av
                    && !not_in_av.contains(&tok)
                    && let Some(fi) = av.and_then(|a| a.find_token(tok.pid, tok.nonce))
                {
                    resolve = Some((tok, fi));
                    return false;
                }
                match r.handle_packet(now, src, bytes) {
                    PacketOutcome::Deferred => false,
                    PacketOutcome::NewPeer(p) => {
                        by_shm.insert(tok, p);
                        learned.push(p);
                        true
                    }
                    PacketOutcome::Consumed | PacketOutcome::Dropped => true,
                }
            });
            any |= n > 0;
            for p in learned {
                self.note_peer(p, None);
            }
            match resolve {
                Some((tok, fi)) => match av.map(|a| self.peer_of(a, fi)) {
                    Some(Ok(p)) => {
                        self.by_shm.insert(tok, p);
                    }
                    _ => not_in_av.push(tok),
                },
                None => return any,
            }
        }
        any
    }

    /// Sends packets that waited for room in a peer's ring.
    fn flush_shm(&mut self) {
        let Some(shm) = self.shm.as_mut() else { return };
        while let Some((peer, buf, token)) = self.shm_pending.pop_front() {
            match shm.send(peer, &buf) {
                Err(ShmError::Full) => {
                    self.shm_pending.push_front((peer, buf, token));
                    return;
                }
                res => {
                    let res = res.map_err(|_| TxError::Unreachable);
                    if let Some(r) = self.rdm.as_mut() {
                        r.on_send_complete(token, res);
                    }
                    self.shm_bufs.push(buf);
                }
            }
        }
    }

    fn device_completions(&mut self, av: Option<&Arc<Av>>) -> bool {
        let mut any = false;
        let now = self.t.now();
        while let Some(c) = self.t.dev.poll_cq(self.cq) {
            any = true;
            match c.opcode {
                Opcode::Send => {
                    let res = match c.status {
                        WcStatus::Success => Ok(()),
                        WcStatus::RetryExceeded | WcStatus::RnrRetryExceeded => {
                            Err(TxError::Unreachable)
                        }
                        _ => Err(TxError::Io),
                    };
                    if let Some(r) = self.rdm.as_mut() {
                        r.on_send_complete(c.wr_id, res);
                    }
                }
                Opcode::Recv => {
                    self.posted = self.posted.saturating_sub(1);
                    let Some(buf) = c.buf else { continue };
                    if c.status != WcStatus::Success {
                        // Buffers are sized for any peer's datagrams, so this
                        // only happens for flushed receives at teardown.
                        crate::srd_log!(Warn, EpData, "receive completed with {:?}", c.status);
                        self.free_bufs.push(buf);
                        continue;
                    }
                    let src = c.src.and_then(|(dev, qpn)| self.sender(av, dev, qpn));
                    let len = c.len.min(buf.len());
                    self.deliver(now, src, buf, len);
                }
            }
        }
        any
    }

    /// The protocol peer of a datagram's sender, if known (or in the AV).
    fn sender(&mut self, av: Option<&Arc<Av>>, dev: DeviceAddr, qpn: u32) -> Option<PeerIdx> {
        if let Some(&p) = self.by_dev.get(&(dev, qpn)) {
            let in_av = self
                .fi_of
                .get(p as usize)
                .is_some_and(|&f| f != ADDR_NOTAVAIL);
            if in_av {
                return Some(p);
            }
            // A sender first learned from the network: once the application
            // inserts it into the AV, the protocol must know it as an AV peer.
            if let Some(fi) = av.and_then(|av| av.find(&(dev.socket(), qpn)))
                && let Some(av) = av
            {
                return self.peer_of(av, fi).ok().or(Some(p));
            }
            return Some(p);
        }
        let av = av?;
        let fi = av.find(&(dev.socket(), qpn))?;
        self.peer_of(av, fi).ok()
    }

    /// Forgets cached fi_addr → peer mappings whose AV entries were removed.
    fn revalidate(&mut self, av: &Av) {
        let seen = av.removals();
        if seen == self.av_removals {
            return;
        }
        self.av_removals = seen;
        for i in 0..self.by_fi.len() {
            let Some(p) = self.by_fi[i] else { continue };
            if av.lookup(i as u64).is_none() {
                self.by_fi[i] = None;
                if let Some(f) = self.fi_of.get_mut(p as usize) {
                    *f = ADDR_NOTAVAIL;
                }
                if let Some(r) = self.rdm.as_mut() {
                    let _ = r.remove_peer(p);
                }
            }
        }
    }

    fn deliver(&mut self, now: u64, src: Option<PeerIdx>, buf: Vec<u8>, len: usize) {
        if !self.deferred.is_empty() {
            // Keep arrival order behind what already waits.
            self.deferred.push_back((src, buf, len));
            return;
        }
        let Some(r) = self.rdm.as_mut() else { return };
        let out = r.handle_packet(now, src, &buf[..len]);
        match out {
            PacketOutcome::Deferred => self.deferred.push_back((src, buf, len)),
            PacketOutcome::NewPeer(p) => {
                self.note_peer(p, None);
                self.free_bufs.push(buf);
            }
            PacketOutcome::Consumed | PacketOutcome::Dropped => self.free_bufs.push(buf),
        }
    }

    fn retry_deferred(&mut self) -> bool {
        let mut any = false;
        let now = self.t.now();
        while let Some((src, buf, len)) = self.deferred.pop_front() {
            let Some(r) = self.rdm.as_mut() else {
                return any;
            };
            match r.handle_packet(now, src, &buf[..len]) {
                PacketOutcome::Deferred => {
                    self.deferred.push_front((src, buf, len));
                    break;
                }
                PacketOutcome::NewPeer(p) => {
                    any = true;
                    self.note_peer(p, None);
                    self.free_bufs.push(buf);
                }
                _ => {
                    any = true;
                    self.free_bufs.push(buf);
                }
            }
        }
        any
    }

    fn transmit(&mut self) -> bool {
        let mut any = false;
        let now = self.t.now();
        self.flush_shm();
        while self.t.dev.send_room(self.qpn) > 0 && self.shm_pending.len() < 64 {
            let Some(r) = self.rdm.as_mut() else { break };
            let Some(tx) = r.poll_transmit(now, &mut self.out) else {
                break;
            };
            any = true;
            if self
                .routes
                .get(tx.peer as usize)
                .is_none_or(|x| x.is_none())
            {
                self.note_peer(tx.peer, None);
            }
            if let Some(sp) = self.shm_routes.get(tx.peer as usize).copied().flatten()
                && let Some(shm) = self.shm.as_mut()
            {
                let data = &self.out[..tx.len];
                let res = if self.shm_pending.is_empty() {
                    shm.send(sp, data)
                } else {
                    Err(ShmError::Full)
                };
                match res {
                    Err(ShmError::Full) => {
                        let mut buf = self.shm_bufs.pop().unwrap_or_default();
                        buf.clear();
                        buf.extend_from_slice(data);
                        self.shm_pending.push_back((sp, buf, tx.token));
                    }
                    res => {
                        let res = res.map_err(|_| TxError::Unreachable);
                        if let Some(r) = self.rdm.as_mut() {
                            r.on_send_complete(tx.token, res);
                        }
                    }
                }
                continue;
            }
            let route = self.routes.get(tx.peer as usize).copied().flatten();
            let Some(route) = route else {
                if let Some(r) = self.rdm.as_mut() {
                    r.on_send_complete(tx.token, Err(TxError::Unreachable));
                }
                continue;
            };
            let wr = SendWr {
                wr_id: tx.token,
                ah: route.ah,
                remote_qpn: route.qpn,
                remote_qkey: route.qkey,
                data: &self.out[..tx.len],
            };
            if self.t.dev.post_send(self.qpn, wr).is_err() {
                if let Some(r) = self.rdm.as_mut() {
                    r.on_send_complete(tx.token, Err(TxError::Io));
                }
            } else {
                self.udp_dirty = true;
            }
        }
        any
    }

    fn completions(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        loop {
            let c = match self.stash.take() {
                Some(c) => c,
                None => {
                    if !(sink.room(Dir::Tx) && sink.room(Dir::Rx)) {
                        return;
                    }
                    match self.rdm.as_mut().and_then(|r| r.poll_completion()) {
                        Some(c) => c,
                        None => return,
                    }
                }
            };
            // Receives and remote-write completions (CQ data at the target)
            // go to the receive side; sends, RMA and atomics we initiated to
            // the transmit side.
            let dir = if c.flags & (b::FI_RECV | b::FI_REMOTE_WRITE | b::FI_REMOTE_READ) != 0 {
                Dir::Rx
            } else {
                Dir::Tx
            };
            let src = c.src.map_or(ADDR_NOTAVAIL, |p| self.fi_addr_of(av, p));
            let entry = Entry {
                context: c.context as usize,
                flags: c.flags,
                len: c.len,
                buf: c.buf,
                data: c.data,
                tag: c.tag,
                src,
            };
            let res = match &c.err {
                None => sink.ok(dir, entry, c.report),
                Some(e) => sink.err(
                    dir,
                    ErrEntry {
                        entry,
                        olen: e.olen,
                        err: e.errno,
                        prov_errno: e.prov_errno,
                        err_data: e.err_data.iter().copied().take(ADDR_LEN.max(48)).collect(),
                    },
                ),
            };
            if res.is_err() {
                self.stash = Some(c);
                return;
            }
        }
    }

    fn fi_addr_of(&mut self, av: Option<&Arc<Av>>, p: PeerIdx) -> u64 {
        let known = self.fi_of.get(p as usize).copied().unwrap_or(ADDR_NOTAVAIL);
        if known != ADDR_NOTAVAIL {
            return known;
        }
        // A sender first seen on the network may have been inserted since.
        let found = self
            .routes
            .get(p as usize)
            .copied()
            .flatten()
            .and_then(|r| av.and_then(|av| av.find(&(r.dev.socket(), r.qpn))));
        if let Some(f) = found {
            if self.fi_of.len() > p as usize {
                self.fi_of[p as usize] = f;
            }
            return f;
        }
        ADDR_NOTAVAIL
    }

    /// Before the endpoint goes away: keeps answering for a short while so
    /// acknowledgements we owe reach their senders and our own last packets
    /// get theirs (a peer would otherwise see its final sends fail).
    pub fn linger(&mut self, sink: &Sink, av: Option<&Arc<Av>>, max: Duration) {
        let start = std::time::Instant::now();
        let mut quiet_rounds = 0;
        while start.elapsed() < max {
            self.progress(sink, av);
            let u = self.t.dev.usage();
            let idle = u.in_flight == 0 && u.queued == 0 && u.ctrl_queued == 0;
            quiet_rounds = if idle { quiet_rounds + 1 } else { 0 };
            // Idle for a couple of delayed-ack periods: nothing is owed.
            if quiet_rounds >= 3 {
                break;
            }
            self.t.wait(Duration::from_micros(200));
        }
    }

    /// One line of counters for FI_SRD_STATS=1.
    pub fn stats_line(&self) -> String {
        let d = self.t.dev.stats();
        let u = self.t.udp.stats();
        let mut line = format!(
            "srd rdm {}: udp tx {} rx {} dgrams, drops injected {}; srd data tx {} rx {}, acks tx {} rx {}, retransmits {} (rto {}), rnr naks tx {} rx {}, dups {}, bad packets {}",
            self.name(),
            u.tx_datagrams,
            u.rx_datagrams,
            u.rx_dropped_injected + u.tx_dropped_injected,
            d.tx_data,
            d.rx_data,
            d.tx_acks,
            d.rx_acks,
            d.retransmits,
            d.rto_events,
            d.rnr_naks_sent,
            d.rnr_naks_received,
            d.duplicates,
            d.drops(),
        );
        if let Some(r) = &self.rdm {
            let s = r.stats();
            line += &format!(
                "; rdm malformed {} stale {} deferred {} send failures {} timeouts {}",
                s.malformed, s.stale, s.deferred, s.send_failures, s.timeouts
            );
        }
        if let Some(shm) = &self.shm {
            let s = shm.stats();
            line += &format!(
                "; shm sent {} received {} full {} abandoned {}",
                s.sent, s.received, s.full, s.abandoned
            );
        }
        line
    }

    pub fn wait(&self, d: Duration) {
        self.t.wait(d);
    }

    pub fn fds(&self, out: &mut Vec<i32>) {
        self.t.fds(out);
    }
}

/// Copies an inject payload out of the caller's buffers (which are free
/// again once the call returns); -FI_EMSGSIZE above the inject size.
fn stage_inject<'a>(
    iov: &crate::ffi::iov::UserIov,
    tmp: &'a mut [u8; super::offer::RDM_INJECT],
) -> Result<&'a [u8]> {
    let n = iov.len();
    if n > tmp.len() {
        return Err(Error::MsgSize);
    }
    iov.copy_out(0, &mut tmp[..n]);
    Ok(&tmp[..n])
}

fn map_rdm(e: RdmError) -> Error {
    match e {
        RdmError::Again => Error::Again,
        RdmError::UnknownPeer | RdmError::InvalidArgument => Error::Inval,
        RdmError::TooLong => Error::MsgSize,
        RdmError::NoMessage => Error::Os(b::FI_ENOMSG),
    }
}
