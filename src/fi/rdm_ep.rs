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
use super::outbox::{self, Outbox, Push};
use super::params::Params;
use super::sink::{Dir, Sink};
use super::stats::Observer;
use super::transport::Transport;
use crate::ffi::bindings as b;
use crate::rdm::matcher::TagHasher;
use crate::rdm::{self, PacketOutcome, PeerIdx, RdmError, TxError};
use crate::srd::backend::shm::{ShmConfig, ShmEndpoint, ShmError, ShmPeer, ShmToken};
use crate::srd::{self, Ah, DeviceAddr, Opcode, Pd, QpType, RecvWr, SendWr, WcStatus};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

/// The QKey of every srd RDM QP.
pub const RDM_QKEY: u32 = 0x5344_5201;
/// Datagrams a UDP poll may take even with no receive buffer posted.
const RNR_FLOOR: usize = 32;
/// Receive buffers per endpoint.
const RX_DEPTH: usize = 128;
/// Sends the device holds for one peer, not yet on the wire, at which the
/// protocol stops producing send data for that peer (the send queue is
/// shared: one slow peer must not fill it for the others) ...
const UDP_PAUSE_AT: usize = 512;
/// ... and below which it resumes.
const UDP_RESUME_BELOW: usize = 256;
/// Receive buffers take the largest SRD payload any peer may send, whatever
/// our own interface's MTU: a peer on another interface (or host) may use
/// larger datagrams, and a packet the device has acked must never meet a
/// buffer it does not fit.
const RX_BUF: usize = crate::srd::backend::udp::MAX_UDP_PAYLOAD - crate::wire::srd::DATA_HEADER_LEN;
/// Shared-memory ring geometry: packets to same-host peers may be this
/// large whatever the interface MTU (`rdm::Endpoint::set_peer_link`).
const SHM_SLOTS: usize = 256;
const SHM_SLOT: usize = 64 << 10;

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
    /// Packets a full ring could not take yet, per peer.
    outbox: Outbox,
    /// Peers paused because the device holds too many of their sends.
    udp_paused: Vec<PeerIdx>,
    /// UDP sockets were last polled at (ns); polling is rationed while
    /// shared memory carries the traffic.
    last_udp_poll: u64,
    /// Datagrams were posted to the device since the last pump.
    udp_dirty: bool,
    /// UDP moved something recently: poll it on every round until then (ns).
    udp_hot_until: u64,
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
    by_dev: HashMap<(DeviceAddr, u32), PeerIdx, BuildHasherDefault<TagHasher>>,
    buf_len: usize,
    free_bufs: Vec<Vec<u8>>,
    posted: usize,
    /// Packets the protocol deferred, per sender (`rdm::Inbox`).
    inbox: rdm::Inbox,
    out: Vec<u8>,
    /// Staging for inject payloads (a fresh zeroed array per call cost a
    /// 4 KiB memset per send).
    inject_tmp: Box<[u8; super::offer::RDM_INJECT]>,
    stash: Option<rdm::Completion>,
    tx_size: usize,
    rx_size: usize,
    nonce: u64,
    host_id: u64,
    /// `Av::removals()` when `by_fi` was last checked.
    av_removals: u64,
    /// Counters, the live stats page and drop warnings (stats.rs).
    obs: Observer,
    /// Liveness of same-host peers (see `check_shm_peers`).
    shm_check_at: u64,
    shm_check_ns: u64,
    /// Dead same-host peers, with our ring's claim counter when seen dead:
    /// reported to the protocol once we consumed that far.
    shm_gone: Vec<(PeerIdx, u64)>,
    waited: Vec<PeerIdx>,
}

impl RdmEp {
    pub fn open(
        domain: &Domain,
        port: u16,
        udp_payload: usize,
        params: &Params,
        tx_size: usize,
        rx_size: usize,
    ) -> Result<RdmEp> {
        let mut t = Transport::open(
            std::net::SocketAddrV4::new(domain.iface.addr, port),
            udp_payload,
            params,
            |c| {
                c.sq_depth = 4096;
                c.rq_depth = RX_DEPTH as u32;
                // A receiver that is alive but has no buffer posted (the RDM layer
                // holding back unexpected messages) is waited for, with the
                // device's bounded backoff, as an InfiniBand RNR retry count of 7
                // means "forever"; a receiver that is gone answers nothing and
                // fails the sends through the retry limit.
                c.rnr_retry_limit = u32::MAX;
                c.retry_limit = params.retry_limit;
                // As many peers as the RDM engine addresses: a job's size, not
                // the device's default, bounds them.
                c.max_peers = rdm::Config::default().max_peers as u32;
                // A request is usually answered within a few µs (the reply
                // then carries the ack along in its batch).
                c.ack_req_delay = 10_000;
                c.peer_timeout = params.peer_timeout_ms.saturating_mul(1_000_000);
            },
        )?;
        let (pd, cq, qpn) = t.open_qp(QpType::Srd, RDM_QKEY, 4096, RX_DEPTH as u32)?;
        let dev = &t.dev;
        let mtu = dev.max_payload();
        let shm = if params.shm {
            let cfg = ShmConfig {
                slots: SHM_SLOTS,
                slot_size: SHM_SLOT.max(mtu),
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
            cma_min: params.shm_cma_min,
            unexp_max_count: params.unexp_max,
            unexp_max_bytes: params.unexp_max_bytes,
            pid: std::process::id(),
            probe_interval_ns: probe_interval(params.peer_timeout_ms),
            ..rdm::Config::default()
        };
        let out_len = shm.as_ref().map_or(mtu, |s| s.slot_size().max(mtu));
        let mut ep = RdmEp {
            t,
            shm,
            shm_routes: Vec::new(),
            by_shm: HashMap::new(),
            outbox: Outbox::default(),
            udp_paused: Vec::new(),
            last_udp_poll: 0,
            udp_dirty: false,
            udp_hot_until: 0,
            pd,
            cq,
            qpn,
            cfg,
            rdm: None,
            by_fi: Vec::new(),
            fi_of: Vec::new(),
            routes: Vec::new(),
            by_dev: HashMap::default(),
            buf_len: RX_BUF.max(mtu),
            free_bufs: Vec::new(),
            posted: 0,
            inbox: rdm::Inbox::new(),
            out: vec![0u8; out_len],
            inject_tmp: Box::new([0u8; super::offer::RDM_INJECT]),
            stash: None,
            tx_size,
            rx_size,
            nonce: super::endpoint::random_u64(),
            host_id: super::endpoint::host_id(),
            av_removals: 0,
            obs: Observer::default(),
            shm_check_at: 0,
            shm_check_ns: shm_check_interval(params.peer_timeout_ms),
            shm_gone: Vec::new(),
            waited: Vec::new(),
        };
        ep.open_page(params);
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
        if self.shm.as_ref().is_some_and(ShmEndpoint::cma_enabled) {
            r.set_cma(Box::new(crate::ffi::mr_target::CmaCopier));
        }
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
            rdm.inject_write(
                now,
                peer,
                stage_inject(&op.iov, &mut self.inject_tmp)?,
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
                if let Some(r) = &self.rdm {
                    let (t, rx) = r.pending_ops();
                    Observer::high_water(&mut self.obs.hw_tx_ops, t);
                    Observer::high_water(&mut self.obs.hw_rx_ops, rx);
                }
                // Put the new packets on their way; receiving is left to
                // the CQ reads (a full progress round per post doubled the
                // cost of a small send).
                self.post_progress(sink, av);
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
                        // Ring-slot packets; single copies if CMA works both ways.
                        let mtu = shm.peer_slot_size(sp).min(self.out.len());
                        let cma = shm.peer_cma(sp).then_some(a.pid);
                        if let Some(r) = self.rdm.as_mut() {
                            let _ = r.set_peer_link(p, mtu, cma);
                        }
                    }
                }
                self.note_addr(p, &a);
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
        let n = op.iov.len();
        let now = self.t.now();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let rdm = self.rdm.as_mut().ok_or(Error::OpBadState)?;
        let res = if !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0 {
            // fi_inject: copied now, never completes.
            let buf = stage_inject(&op.iov, &mut self.inject_tmp)?;
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
        if res.is_ok() {
            self.obs.tx_msg(peer, n);
        }
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

    /// Keeps every receive buffer posted: a deferred packet is copied into
    /// the inbox, so no buffer is ever held and no sender is refused for
    /// another's overrun.
    fn repost(&mut self) {
        while self.posted < RX_DEPTH {
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

    /// One progress round: I/O, device completions, protocol, CQ. The clock
    /// is read once per round (a read costs ~30 ns here, and a round that
    /// finds nothing must stay cheap: it is what a polling reader spins on).
    pub fn progress(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        if self.rdm.is_none() {
            self.t.pump();
            return;
        }
        let mut now = self.t.now();
        for _ in 0..4 {
            let polled = self.poll_udp(now, false);
            let mut busy = self.retry_deferred(now);
            busy |= self.device_completions(av, now);
            busy |= self.shm_receive(av, now);
            self.repost();
            busy |= self.transmit(now);
            if let Some(r) = self.rdm.as_mut()
                && r.poll_timeout().is_some_and(|t| t <= now)
            {
                r.handle_timeout(now);
            }
            if self.udp_dirty {
                self.poll_udp(now, true);
            }
            if !busy {
                break;
            }
            if polled || self.udp_dirty {
                // System calls were made: time moved.
                now = self.t.now();
            }
        }
        self.check_shm_peers(now);
        self.completions(sink, av);
        if let Some(r) = self.rdm.as_mut() {
            let c = r.take_remote_counts();
            sink.remote(c.reads, c.writes);
            self.obs.remote_reads += c.reads;
            self.obs.remote_writes += c.writes;
        }
        // `now` is from the last round: fresh enough for a few-ms cadence.
        if now.saturating_sub(self.obs.last_publish) >= super::stats::PUBLISH_EVERY_NS {
            self.publish(now);
        }
    }

    /// Same-host peers do not acknowledge what we push into their rings,
    /// so the protocol's probes cannot tell a dead one: every
    /// `shm_check_ns` the peers that operations wait on get a liveness
    /// check (one flock each). A dead one is reported to the protocol once
    /// our ring has been consumed past everything it could have pushed, so
    /// its last messages still arrive first.
    fn check_shm_peers(&mut self, now: u64) {
        if self.shm.is_none() || self.shm_check_ns == 0 {
            return;
        }
        if now < self.shm_check_at && self.shm_gone.is_empty() {
            return;
        }
        let (Some(shm), Some(r)) = (self.shm.as_mut(), self.rdm.as_mut()) else {
            return;
        };
        if now >= self.shm_check_at {
            self.shm_check_at = now.saturating_add(self.shm_check_ns);
            r.waited_peers(&mut self.waited);
            for &p in &self.waited {
                if r.peer_broken(p).is_some() || self.shm_gone.iter().any(|g| g.0 == p) {
                    continue;
                }
                if let Some(sp) = self.shm_routes.get(p as usize).copied().flatten()
                    && !shm.peer_alive(sp)
                {
                    crate::srd_log!(Info, EpCtrl, "same-host peer {p} is gone");
                    self.shm_gone.push((p, shm.enqueued()));
                }
            }
        }
        let consumed = shm.consumed();
        self.shm_gone.retain(|&(p, mark)| {
            if consumed >= mark {
                r.peer_unreachable(p);
                false
            } else {
                true
            }
        });
    }

    /// The part of a progress round a new operation needs: its packets
    /// out (shared memory, or the device and the sockets) and any
    /// completion that produced (e.g. an inject into a ring).
    fn post_progress(&mut self, sink: &Sink, av: &Arc<Av>) {
        let now = self.t.now();
        self.transmit(now);
        if self.udp_dirty {
            self.poll_udp(now, true);
        }
        self.completions(sink, Some(av));
    }

    /// Moves UDP datagrams. Without shared memory, or while UDP traffic
    /// flowed within the last millisecond, every call polls; otherwise the
    /// sockets are polled at most every 20 µs unless datagrams wait to go
    /// out, so same-host traffic does not pay a system call per poll.
    /// Returns whether the sockets were polled.
    fn poll_udp(&mut self, now: u64, force: bool) -> bool {
        if force
            || self.shm.is_none()
            || self.udp_dirty
            || now < self.udp_hot_until
            || now.saturating_sub(self.last_udp_poll) >= 20_000
        {
            self.last_udp_poll = now;
            self.udp_dirty = false;
            // No more datagrams than receive buffers posted (some always,
            // for acks): a burst then waits in the kernel, not for RNR.
            let got = self.t.pump_budget(self.posted.max(RNR_FLOOR));
            self.log_device_drops();
            if got {
                self.udp_hot_until = now.saturating_add(1_000_000);
            }
            return true;
        }
        false
    }

    /// Drains our shared-memory ring into the protocol. Every packet leaves
    /// the ring: one the protocol defers waits in the inbox, in its
    /// sender's queue, so one sender's overrun never stalls the ring for
    /// the others. A sender not yet known by its ring token is looked up
    /// in the AV first, and a sender learned from the network is promoted
    /// once the AV has it.
    fn shm_receive(&mut self, av: Option<&Arc<Av>>, now: u64) -> bool {
        let mut any = false;
        let mut not_in_av: SmallVec<[ShmToken; 4]> = SmallVec::new();
        for _ in 0..8 {
            let (Some(shm), Some(r)) = (self.shm.as_mut(), self.rdm.as_mut()) else {
                return any;
            };
            let (by_shm, fi_of, obs, inbox) = (
                &mut self.by_shm,
                &self.fi_of,
                &mut self.obs,
                &mut self.inbox,
            );
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
                let out = inbox.offer(r, now, src, bytes);
                if let Some(p) = learned_peer(src, out) {
                    by_shm.insert(tok, p);
                    learned.push(p);
                }
                match out {
                    // Counted when the inbox hands it over.
                    PacketOutcome::Deferred(_) => {}
                    PacketOutcome::NewPeer(p) => obs.rx_pkt(Some(p), bytes.len()),
                    PacketOutcome::Consumed => obs.rx_pkt(src, bytes.len()),
                    PacketOutcome::Dropped => {
                        obs.rx_pkt(src, bytes.len());
                        let why = obs.rdm_drop_reason(r.stats());
                        let key = 1 << 63 | u64::from(tok.pid);
                        obs.once
                            .warn_drop(key, &ShmSender(tok.pid), why, "RDM packet");
                    }
                }
                if crate::ffi::log::debug_data() {
                    log_packet("rx", src, bytes, "shm");
                }
                true
            });
            self.note_stored();
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

    /// High-water marks of what the protocol and the inbox store.
    fn note_stored(&mut self) {
        if let Some(r) = self.rdm.as_ref() {
            let (u, ro) = r.stored_bytes();
            Observer::high_water(&mut self.obs.hw_unexp_bytes, u);
            Observer::high_water(&mut self.obs.hw_reorder_bytes, ro);
        }
        Observer::high_water(&mut self.obs.hw_rx_held, self.inbox.len().0);
    }

    /// Sends packets that waited for room in their peer's ring; a peer
    /// whose queue drained may produce send data again.
    fn flush_shm(&mut self) {
        let (Some(shm), Some(r)) = (self.shm.as_mut(), self.rdm.as_mut()) else {
            return;
        };
        let routes = &self.shm_routes;
        let r = std::cell::RefCell::new(r);
        self.outbox.flush(
            |p, bytes| match routes.get(p as usize).copied().flatten() {
                Some(sp) => match shm.send(sp, bytes) {
                    Ok(()) => Push::Sent,
                    Err(ShmError::Full) => Push::Full,
                    Err(_) => Push::Gone,
                },
                None => Push::Gone,
            },
            |_, token, gone| {
                let res = if gone {
                    Err(TxError::Unreachable)
                } else {
                    Ok(())
                };
                r.borrow_mut().on_send_complete(token, res);
            },
            |p| r.borrow_mut().set_peer_paused(p, false),
        );
    }

    /// Resumes the UDP peers whose device backlog went down.
    fn resume_udp(&mut self) {
        if self.udp_paused.is_empty() {
            return;
        }
        let Some(r) = self.rdm.as_mut() else { return };
        let (dev, routes) = (&self.t.dev, &self.routes);
        self.udp_paused.retain(|&p| {
            let backlog = routes
                .get(p as usize)
                .copied()
                .flatten()
                .map_or(0, |rt| dev.peer_backlog(rt.ah));
            if backlog < UDP_RESUME_BELOW {
                r.set_peer_paused(p, false);
                false
            } else {
                true
            }
        });
    }

    fn device_completions(&mut self, av: Option<&Arc<Av>>, now: u64) -> bool {
        let mut any = false;
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
                    self.deliver(now, src, c.src.map(|s| s.0), buf, len);
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

    fn deliver(
        &mut self,
        now: u64,
        src: Option<PeerIdx>,
        from: Option<DeviceAddr>,
        buf: Vec<u8>,
        len: usize,
    ) {
        let Some(r) = self.rdm.as_mut() else { return };
        let out = self.inbox.offer(r, now, src, &buf[..len]);
        if crate::ffi::log::debug_data() {
            log_packet("rx", src, &buf[..len], "udp");
        }
        // Free again: a deferred packet was copied into the inbox.
        self.free_bufs.push(buf);
        self.note_stored();
        if let Some(p) = learned_peer(src, out) {
            self.note_peer(p, None);
        }
        match out {
            PacketOutcome::Deferred(_) => {}
            PacketOutcome::NewPeer(p) => self.obs.rx_pkt(Some(p), len),
            PacketOutcome::Consumed => self.obs.rx_pkt(src, len),
            PacketOutcome::Dropped => {
                self.obs.rx_pkt(src, len);
                self.warn_rdm_drop(from);
            }
        }
    }

    /// Offers the deferred packets again (every sender's, round robin).
    fn retry_deferred(&mut self, now: u64) -> bool {
        if self.inbox.is_empty() {
            return false;
        }
        let Some(r) = self.rdm.as_mut() else {
            return false;
        };
        let obs = &mut self.obs;
        let mut dropped = false;
        let any = self.inbox.retry(r, now, |p, len, out| {
            obs.rx_pkt(Some(p), len);
            dropped |= out == PacketOutcome::Dropped;
        });
        if dropped {
            self.warn_rdm_drop(None);
        }
        any
    }

    fn transmit(&mut self, now: u64) -> bool {
        let mut any = false;
        if !self.outbox.is_empty() {
            self.flush_shm();
        }
        self.resume_udp();
        while self.t.dev.send_room(self.qpn) > 0 {
            let Some(r) = self.rdm.as_mut() else { break };
            let Some(tx) = r.poll_transmit(now, &mut self.out) else {
                break;
            };
            any = true;
            self.obs.tx_pkt(tx.peer, tx.len);
            if crate::ffi::log::debug_data() {
                let via = if self
                    .shm_routes
                    .get(tx.peer as usize)
                    .is_some_and(|x| x.is_some())
                {
                    "shm"
                } else {
                    "udp"
                };
                log_packet("tx", Some(tx.peer), &self.out[..tx.len], via);
            }
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
                // Behind what already waits for this ring, in order.
                let res = if self.outbox.queued(tx.peer) == 0 {
                    shm.send(sp, data)
                } else {
                    Err(ShmError::Full)
                };
                let r = self.rdm.as_mut().expect("polled above");
                match res {
                    Err(ShmError::Full) => {
                        if self.outbox.push(tx.peer, data, tx.token) >= outbox::PAUSE_AT {
                            r.set_peer_paused(tx.peer, true);
                        }
                    }
                    res => r.on_send_complete(tx.token, res.map_err(|_| TxError::Unreachable)),
                }
                Observer::high_water(&mut self.obs.hw_shm_pending, self.outbox.len());
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
                continue;
            }
            self.udp_dirty = true;
            if self.t.dev.peer_backlog(route.ah) >= UDP_PAUSE_AT
                && let Some(r) = self.rdm.as_mut()
                && !r.peer_paused(tx.peer)
            {
                r.set_peer_paused(tx.peer, true);
                self.udp_paused.push(tx.peer);
            }
        }
        any
    }

    fn completions(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        loop {
            let c = match self.stash.take() {
                Some(c) => c,
                None => {
                    // No room check up front (two CQ locks per idle round):
                    // a completion the CQ cannot take waits in `stash`.
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
            let received = (c.err.is_none() && c.flags & b::FI_RECV != 0).then_some((c.src, c.len));
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
            if let Some((p, len)) = received {
                self.obs.rx_msg(p, len);
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
                "; rdm malformed {} stale {} deferred {} send failures {} timeouts {}; cma copies {} fallbacks {} errors {}",
                s.malformed,
                s.stale,
                s.deferred,
                s.send_failures,
                s.timeouts,
                s.cma_copies,
                s.cma_fallbacks,
                s.cma_errors
            );
        }
        if let Some(shm) = &self.shm {
            let s = shm.stats();
            line += &format!(
                "; shm sent {} received {} full {} abandoned {}",
                s.sent, s.received, s.full, s.abandoned
            );
        }
        line += "; counters: ";
        line += &super::stats::counters_line(&self.counters());
        line
    }

    pub fn wait(&self, d: Duration) {
        self.t.wait(d);
    }

    /// What a blocked reader polls: the UDP sockets and the shared-memory
    /// ring's doorbell.
    pub fn fds(&self, out: &mut Vec<i32>) {
        self.t.fds(out);
        if let Some(fd) = self.shm.as_ref().and_then(ShmEndpoint::doorbell_fd) {
            out.push(fd);
        }
    }

    /// Before a reader sleeps on `fds`: same-host senders ring the doorbell
    /// from now on. False when input already waits in the ring (or it has
    /// no doorbell): then the reader must progress instead of sleeping.
    pub fn arm(&mut self) -> bool {
        self.shm.as_mut().is_none_or(ShmEndpoint::arm)
    }

    pub fn disarm(&mut self) {
        if let Some(s) = self.shm.as_mut() {
            s.disarm();
        }
    }

    /// Time until the device's or the protocol's next timer (a sleeping
    /// reader wakes for it); packets waiting for room in a peer's ring are
    /// retried after a millisecond (the peer's reads do not wake us).
    pub fn next_timer(&self) -> Option<Duration> {
        let now = self.t.now();
        let at = [
            self.t.dev.poll_timeout(),
            self.rdm.as_ref().and_then(|r| r.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut d = at.map(|t| Duration::from_nanos(t.saturating_sub(now)));
        if !self.outbox.is_empty() {
            d = Some(d.map_or(Duration::from_millis(1), |x| {
                x.min(Duration::from_millis(1))
            }));
        }
        d
    }
}

// ---- observability: counters, the live stats page, logging (fi::stats) ----

impl RdmEp {
    /// Creates the live stats page (FI_SRD_STATS_PAGE); without one the
    /// endpoint still counts (FI_SRD_STATS, FI_SRD_DUMP).
    fn open_page(&mut self, params: &Params) {
        if !params.stats_page {
            return;
        }
        let names: Vec<&str> = self.counters().iter().map(|c| c.0).collect();
        let local = self.name().to_string();
        match super::stats::StatsPage::create("rdm", &local, &names, super::stats::PEER_FIELDS) {
            Ok(p) => {
                self.obs.page = Some(p);
                self.publish(self.t.now());
            }
            Err(e) => crate::srd_log!(
                Warn,
                EpCtrl,
                "no stats page ({e}); srd-stat cannot see {local}"
            ),
        }
    }

    /// Gives the endpoint its domain (for the MR count) and returns the
    /// counters the MR lookup fills with refused accesses.
    pub fn observe(&mut self, domain: Arc<Domain>) -> Arc<super::stats::TargetCounters> {
        self.obs.domain = Some(domain);
        self.obs.target.clone()
    }

    /// The live page's file, if any.
    pub fn stats_page(&self) -> Option<std::path::PathBuf> {
        self.obs.page.as_ref().map(|p| p.path())
    }

    /// A peer got a route: remember its address text and say so.
    fn note_addr(&mut self, p: PeerIdx, a: &EpAddr) {
        let i = p as usize;
        if i < 1 << 16 {
            if self.obs.addr_text.len() <= i {
                self.obs.addr_text.resize(i + 1, String::new());
            }
            self.obs.addr_text[i] = a.to_string();
        }
        let via = if self.shm_routes.get(i).is_some_and(|x| x.is_some()) {
            "shared memory"
        } else {
            "UDP"
        };
        let known = if self.fi_of.get(i).is_some_and(|&f| f != ADDR_NOTAVAIL) {
            "AV peer"
        } else {
            "sender not in the AV"
        };
        crate::srd_log!(
            Info,
            EpCtrl,
            "{}: peer {p} ({known}) {a} over {via}",
            self.name()
        );
    }

    /// Every endpoint counter (names and values, page order).
    fn counters(&self) -> [(&'static str, u64); super::stats::RDM_COUNTER_COUNT] {
        let src = super::stats::Sources {
            obs: Some(&self.obs),
            dev: self.t.dev.stats().clone(),
            usage: self.t.dev.usage(),
            udp: *self.t.udp.stats(),
            rdm: self
                .rdm
                .as_ref()
                .map(|r| r.stats().clone())
                .unwrap_or_default(),
            shm: self.shm.as_ref().map(|s| *s.stats()).unwrap_or_default(),
            mrs: self.obs.domain.as_ref().map_or(0, |d| d.mrs.len() as u64),
            rx_posted: self.posted as u64,
            rx_held: self.inbox.len().0 as u64,
            tx_queued: self.outbox.len() as u64,
            paused_peers: self.rdm.as_ref().map_or(0, |r| r.paused_peers() as u64),
            inbox: self.inbox.stats(),
        };
        super::stats::rdm_counters(&src)
    }

    /// The per-peer table, into `self.obs.rows`.
    fn peer_rows(&mut self) -> usize {
        let n = self.fi_of.len();
        let keep = n.min(super::stats::MAX_PEERS);
        self.obs.rows.resize_with(keep, Default::default);
        for i in 0..keep {
            let p = i as PeerIdx;
            let route = self.routes.get(i).copied().flatten();
            let info = route.and_then(|r| self.t.dev.peer_info(r.dev));
            let c = self.obs.peers.get(i).copied().unwrap_or_default();
            let state = self.rdm.as_ref().and_then(|r| r.peer_state(p));
            let row = &mut self.obs.rows[i];
            row.addr.clear();
            row.addr
                .push_str(self.obs.addr_text.get(i).map_or("", |s| s.as_str()));
            row.fi_addr = self.fi_of[i];
            row.path = if self.shm_routes.get(i).is_some_and(|x| x.is_some()) {
                "shm"
            } else if route.is_some() {
                "udp"
            } else {
                "-"
            };
            row.state = state.map_or("-", |s| s.0);
            if self.obs.last_state.len() <= i {
                self.obs.last_state.resize(i + 1, "-");
            }
            if self.obs.last_state[i] != row.state {
                self.obs.last_state[i] = row.state;
                if matches!(row.state, "up" | "broken") {
                    crate::srd_log!(Info, EpCtrl, "peer {p} is {}: {}", row.state, row.addr);
                }
            }
            let d = info.map(|x| x.counters).unwrap_or_default();
            let v = [
                c.tx_pkts,
                c.tx_bytes,
                c.rx_pkts,
                c.rx_bytes,
                c.tx_msgs,
                c.tx_msg_bytes,
                c.rx_msgs,
                c.rx_msg_bytes,
                d.tx_data,
                d.rx_data,
                d.retransmits,
                d.rnr_naks_sent,
                d.rnr_naks_received,
                d.duplicates,
                d.drops,
                info.and_then(|x| x.srtt).map_or(0, |t| t / 1000),
                info.map_or(0, |x| x.rto / 1000),
                info.map_or(0, |x| u64::from(x.cwnd)),
                info.map_or(0, |x| u64::from(x.in_flight)),
            ];
            row.values[..v.len()].copy_from_slice(&v);
        }
        n
    }

    /// Writes the counters to the live page.
    fn publish(&mut self, now: u64) {
        self.obs.last_publish = now;
        let total = self.peer_rows();
        if self.obs.page.is_none() {
            return;
        }
        let values = self.counters().map(|c| c.1);
        if let Some(page) = self.obs.page.as_mut() {
            page.publish(&values, &self.obs.rows, total);
        }
    }

    /// The counters, peer table and resources as text (FI_SRD_DUMP=1 at close).
    pub fn dump(&mut self) -> String {
        let now = self.t.now();
        self.publish(now);
        let total = self.peer_rows();
        let snap = super::stats::Snapshot {
            pid: std::process::id(),
            ep: 0,
            kind: "rdm".into(),
            local: self.name().to_string(),
            updated_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            publishes: 0,
            alive: true,
            counters: self
                .counters()
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect(),
            peer_fields: super::stats::PEER_FIELDS
                .iter()
                .map(|f| f.to_string())
                .collect(),
            peers: self
                .obs
                .rows
                .iter()
                .map(|r| super::stats::PeerSnap {
                    addr: r.addr.clone(),
                    fi_addr: r.fi_addr,
                    path: r.path.into(),
                    state: r.state.into(),
                    values: r.values[..super::stats::PEER_FIELDS.len()].to_vec(),
                })
                .collect(),
            peers_total: total as u64,
        };
        super::stats::render(&snap, false, true)
    }

    /// Warns once per sender and reason about datagrams the device dropped.
    fn log_device_drops(&mut self) {
        let obs = &mut self.obs;
        for e in self.t.dev.take_drop_events() {
            let key = crate::ffi::log::Once::key(e.from);
            obs.once.warn_drop(key, &e.from, e.reason, "SRD datagram");
        }
    }

    /// Warns once per sender and reason about a packet the protocol dropped.
    fn warn_rdm_drop(&mut self, from: Option<DeviceAddr>) {
        let Some(r) = self.rdm.as_ref() else { return };
        let why = self.obs.rdm_drop_reason(r.stats());
        let sock = from.map_or(std::net::SocketAddrV4::new(0.into(), 0), |d| d.socket());
        let key = crate::ffi::log::Once::key(sock);
        self.obs.once.warn_drop(key, &sock, why, "RDM packet");
    }
}

/// A shared-memory sender, for messages.
struct ShmSender(u32);

impl std::fmt::Display for ShmSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shared-memory sender pid {}", self.0)
    }
}

/// Debug line for one RDM packet (callers check `debug_data()` first).
fn log_packet(dir: &str, peer: Option<PeerIdx>, bytes: &[u8], via: &str) {
    use crate::wire::rdm::PacketType;
    let kind = PacketType::from(bytes.get(1).copied().unwrap_or(0));
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    crate::srd_log!(
        Debug,
        EpData,
        "{dir} {kind:?} peer {peer} {} B via {via}",
        bytes.len()
    );
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

/// The protocol's liveness tick: a quarter of the peer timeout, so a dead
/// peer is probed within half of it and the probe fails within the rest.
fn probe_interval(peer_timeout_ms: u64) -> u64 {
    (peer_timeout_ms.saturating_mul(1_000_000) / 4).max(1_000_000) * u64::from(peer_timeout_ms > 0)
}

/// Same-host liveness checks: as often as the probes, at least every 100 ms.
fn shm_check_interval(peer_timeout_ms: u64) -> u64 {
    if peer_timeout_ms == 0 {
        return 0;
    }
    probe_interval(peer_timeout_ms).min(100_000_000)
}

/// The sender a packet taught the protocol, which the glue must now map
/// to it: a new peer, or one whose first packet was deferred.
fn learned_peer(src: Option<PeerIdx>, out: PacketOutcome) -> Option<PeerIdx> {
    match out {
        PacketOutcome::NewPeer(p) => Some(p),
        PacketOutcome::Deferred(p) if src.is_none() => Some(p),
        _ => None,
    }
}

fn map_rdm(e: RdmError) -> Error {
    match e {
        RdmError::Again => Error::Again,
        RdmError::UnknownPeer | RdmError::InvalidArgument => Error::Inval,
        RdmError::TooLong => Error::MsgSize,
        RdmError::NoMessage => Error::Os(b::FI_ENOMSG),
    }
}
