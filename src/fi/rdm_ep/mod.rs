//! FI_EP_RDM: the RDM protocol (`rdm::Endpoint`) over one SRD QP of the
//! endpoint's device and the same-host rings.
//!
//! Two types, one per state of the endpoint: [`RdmOpen`] before fi_enable
//! (sockets bound and ring open, so fi_getname works; no protocol engine)
//! and [`RdmEp`] after it, which owns the engine outright — code that needs
//! the engine cannot run without one. Both hold the [`link::Link`]: the
//! transport, receive buffers and inbox (`link`), address translation
//! (`routes`), the same-host rings (`shm`) and counters (`observe`). This
//! file is the data path the application drives: posting, the progress
//! round and completions.

mod link;
mod observe;
mod routes;
mod shm;

use super::addr::{ADDR_LEN, EpAddr};
use super::av::{ADDR_NOTAVAIL, Av};
use super::convert;
use super::cq::{Entry, ErrEntry};
use super::errno::{Error, Result};
use super::fabric::Domain;
use super::ops::{AtomicReq, RecvOp, RmaOp, SendOp};
use super::params::Params;
use super::sink::{Dir, Sink};
use super::stats::Observer;
use super::transport::Transport;
use crate::bindings as b;
use crate::io::udp::{GSO_MAX_SEGMENTS, MAX_UDP_PAYLOAD};
use crate::rdm::{self, CompFlags, PeerIdx, RdmError};
use crate::wire::rdm::REQ_LEN;
use crate::wire::srd::DATA_HEADER_LEN;
use link::{Link, RX_DEPTH};
use std::sync::Arc;
use std::time::Duration;

/// The QKey of every srd RDM QP.
pub const RDM_QKEY: u32 = 0x5344_5201;

/// An RDM endpoint before fi_enable.
pub struct RdmOpen {
    link: Link,
    cfg: rdm::Config,
}

/// Largest message `send_fast` takes: beyond, the copy dominates and the
/// general path costs little more (a ring slot holds far more).
const FAST_MAX: usize = 4096;

/// An enabled RDM endpoint: the link and the protocol engine.
pub struct RdmEp {
    link: Link,
    rdm: rdm::Endpoint,
    /// A completion the application's CQ had no room for.
    stash: Option<rdm::Completion>,
    /// fi_close is under way: operations that end now report nothing.
    closing: bool,
    tx_size: usize,
    rx_size: usize,
    /// Staging for inject payloads (a fresh zeroed array per call cost a
    /// 4 KiB memset per send).
    inject_tmp: Box<[u8; super::offer::RDM_INJECT]>,
    /// The clock as the last progress round last read it.
    last_now: u64,
}

/// Bytes a peer's window should hold: the bandwidth-delay product of
/// 10 GB/s at 100 µs.
const WINDOW_BYTES: usize = 1 << 20;

/// The send window in packets for datagrams of `payload` bytes: enough
/// for `WINDOW_BYTES`, a power of two from the device's default up to the
/// receive window.
fn window_for(payload: usize) -> u32 {
    let want = WINDOW_BYTES.div_ceil(payload.max(1)).next_power_of_two();
    let lo = crate::srd::DeviceConfig::default().window;
    u32::try_from(want).map_or(crate::srd::RX_WINDOW, |w| {
        w.clamp(lo, crate::srd::RX_WINDOW)
    })
}

impl RdmOpen {
    /// `port`: of the first socket (0: any; an FI_SOURCE address names one).
    pub fn open(
        domain: &Domain,
        port: u16,
        udp_payload: usize,
        params: &Params,
        tx_size: usize,
        rx_size: usize,
    ) -> Result<RdmOpen> {
        let local = std::net::SocketAddrV4::new(domain.iface.addr, port);
        let t = Transport::open(local, udp_payload, params, |c| {
            c.sq_depth = 4096;
            c.rq_depth = RX_DEPTH as u32;
            // A receiver that is alive but has no buffer posted is waited
            // for, with the device's bounded backoff, as an InfiniBand RNR
            // retry count of 7 means "forever"; a receiver that is gone
            // answers nothing and fails the sends through the retry limit.
            c.rnr_retry_limit = u32::MAX;
            c.retry_limit = params.retry_limit;
            // As many peers as the RDM engine addresses: a job's size, not
            // the device's default, bounds them.
            c.max_peers = rdm::Config::default().max_peers as u32;
            // A request is usually answered within a few µs (the reply
            // then carries the ack along in its batch).
            c.ack_req_delay = 10_000;
            // The checksum covers the SRD header; the UDP checksum covers
            // the payload (docs/srd-spec.md §3.4): no pass over the data.
            c.payload_checksum = false;
            c.peer_timeout = params.peer_timeout_ms.saturating_mul(1_000_000);
            // The window holds a bandwidth-delay product (10 GB/s at 100
            // µs, 1 MB) however small the datagrams: 256 of 64 KiB on
            // loopback, 1024 (the receive window, which one ack's SACK
            // covers) at an Ethernet MTU.
            c.window = window_for(c.max_payload);
            c.cwnd_max = c.window;
            // Two senders to one receiver keep a whole window each; more
            // share two (the receive sockets hold 8 MiB each).
            c.fan_in_budget = 2 * WINDOW_BYTES as u64;
            // A path takes as many packets as one GSO send carries (64 KiB,
            // at most 64 segments): they arrive in order, not interleaved
            // with the other paths' (the receiver then sees no holes to
            // acknowledge and the sender no reordering to take for loss).
            let per_send =
                (MAX_UDP_PAYLOAD / (c.max_payload + DATA_HEADER_LEN)).clamp(1, GSO_MAX_SEGMENTS);
            c.path_burst = u32::try_from(per_send).unwrap_or(1);
            // A path is one UDP flow: routes and the kernel keep its order.
            c.path_order = true;
        })?;
        let mut link = Link::open(t, params)?;
        let mtu = link.t.dev.max_payload();
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
            fast_eager: params.shm_fast,
            probe_interval_ns: probe_interval(params.peer_timeout_ms),
            ..rdm::Config::default()
        };
        link.open_page(params);
        Ok(RdmOpen { link, cfg })
    }

    pub fn name(&self) -> EpAddr {
        self.link.name()
    }

    /// Gives the endpoint its domain (for the MR count) and returns the
    /// counters the MR lookup fills with refused accesses.
    pub fn observe(&mut self, domain: Arc<Domain>) -> Arc<super::stats::TargetCounters> {
        self.link.observe(domain)
    }

    pub fn wait(&self, d: Duration) {
        self.link.wait(d);
    }

    pub fn fds(&self, out: &mut Vec<i32>) {
        self.link.fds(out);
    }

    pub fn stats_page(&self) -> Option<std::path::PathBuf> {
        self.link.stats_page()
    }

    /// Largest element count of an atomic, or None when unsupported: the
    /// engine's rule with this endpoint's MTU and a conservative header
    /// allowance.
    pub fn atomic_valid(
        &self,
        op: rdm::AtomicOp,
        dt: rdm::Datatype,
        kind: rdm::AtomicKind,
    ) -> Option<usize> {
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

    /// Creates the protocol engine (selective-completion settings are known
    /// once CQs are bound).
    pub fn enable(
        self,
        sink: &Sink,
        min_multi_recv: usize,
        target: Box<dyn rdm::RmaTarget + Send>,
    ) -> RdmEp {
        let RdmOpen { link, mut cfg } = self;
        cfg.min_multi_recv = min_multi_recv;
        cfg.tx_selective = sink.tx_selective;
        cfg.rx_selective = sink.rx_selective;
        cfg.local_addr = link.name().to_bytes().to_vec();
        let (tx_size, rx_size) = (cfg.tx_size, cfg.rx_size);
        let mut r = rdm::Endpoint::new(cfg);
        r.set_rma_target(target);
        if link.shm.as_ref().is_some_and(|s| s.cma_enabled()) {
            r.set_cma(Box::new(crate::fi::mr_target::CmaCopier));
        }
        RdmEp {
            link,
            rdm: r,
            stash: None,
            closing: false,
            tx_size,
            rx_size,
            inject_tmp: Box::new([0u8; super::offer::RDM_INJECT]),
            last_now: 0,
        }
    }
}

impl RdmEp {
    pub fn name(&self) -> EpAddr {
        self.link.name()
    }

    pub fn stats_page(&self) -> Option<std::path::PathBuf> {
        self.link.stats_page()
    }

    fn peer_of(&mut self, av: &Av, fi_addr: u64) -> Result<PeerIdx> {
        self.link.peer_of(&mut self.rdm, av, fi_addr)
    }

    /// fi_read / fi_write and their forms.
    pub fn rma(&mut self, sink: &Sink, av: &Arc<Av>, op: RmaOp) -> Result<()> {
        let peer = self.peer_of(av, op.dest)?;
        let now = self.link.t.now();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let flags = convert::op_flags(op.flags);
        let rdm = &mut self.rdm;
        let res = if op.read {
            rdm.read(now, peer, op.iov, op.addr, op.key, op.context as u64, flags)
        } else if !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0 {
            let buf = stage_inject(&op.iov, &mut self.inject_tmp)?;
            rdm.inject_write(now, peer, buf, op.addr, op.key, data)
        } else {
            rdm.write(
                now,
                peer,
                op.iov,
                op.addr,
                op.key,
                data,
                op.context as u64,
                flags,
            )
        };
        self.after_post(sink, av, Some(now), res)
    }

    /// fi_atomic, fi_fetch_atomic, fi_compare_atomic and their forms.
    pub fn atomic(&mut self, sink: &Sink, av: &Arc<Av>, a: AtomicReq) -> Result<()> {
        let peer = self.peer_of(av, a.dest)?;
        let now = self.link.t.now();
        let mut flags = convert::op_flags(a.flags);
        if !a.report {
            flags |= rdm::OpFlags::INJECT;
        }
        let res = self.rdm.atomic(
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
        self.after_post(sink, av, Some(now), res)
    }

    /// Largest element count of an atomic, or None when unsupported.
    pub fn atomic_valid(
        &self,
        op: rdm::AtomicOp,
        dt: rdm::Datatype,
        kind: rdm::AtomicKind,
    ) -> Option<usize> {
        self.rdm.atomic_valid(op, dt, kind)
    }

    /// `now`: the clock as the post read it (a few hundred ns old: a
    /// second read per post cost ~80 ns, 7 % of a small message).
    /// `now: None`: the post read no clock; one is read only if it left
    /// packets to send (they carry send times).
    fn after_post(
        &mut self,
        sink: &Sink,
        av: &Arc<Av>,
        now: Option<u64>,
        res: std::result::Result<(), RdmError>,
    ) -> Result<()> {
        match res {
            Ok(()) => {
                let (t, rx) = self.rdm.pending_ops();
                Observer::high_water(&mut self.link.obs.hw_tx_ops, t);
                Observer::high_water(&mut self.link.obs.hw_rx_ops, rx);
                let sending = self.rdm.wants_transmit() || self.link.udp_dirty;
                match now.or_else(|| sending.then(|| self.link.t.now())) {
                    // Put the new packets on their way; receiving is left
                    // to the CQ reads (a full progress round per post
                    // doubled the cost of a small send).
                    Some(now) => self.post_progress(sink, av, now),
                    None => self.completions(sink, Some(av)),
                }
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
        self.tx_size.saturating_sub(self.rdm.pending_ops().0)
    }

    pub fn rx_room(&self) -> usize {
        self.rx_size.saturating_sub(self.rdm.pending_ops().1)
    }

    pub fn send(&mut self, sink: &Sink, av: &Arc<Av>, op: SendOp) -> Result<()> {
        let peer = self.peer_of(av, op.dest)?;
        let n = op.iov.len();
        if self.send_fast(sink, av, peer, &op) {
            self.link.obs.tx_msg(peer, n);
            return Ok(());
        }
        let now = self.link.t.now();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let flags = convert::op_flags(op.flags);
        let rdm = &mut self.rdm;
        let res = if !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0 {
            // fi_inject: copied now, never completes.
            let buf = stage_inject(&op.iov, &mut self.inject_tmp)?;
            if op.tagged {
                rdm.tinject(now, peer, buf, op.tag, data)
            } else {
                rdm.inject(now, peer, buf, data)
            }
        } else if op.tagged {
            let ctx = op.context as u64;
            rdm.tsend(now, peer, op.iov, op.tag, data, ctx, flags)
        } else {
            rdm.send(now, peer, op.iov, data, op.context as u64, flags)
        };
        if res.is_ok() {
            self.link.obs.tx_msg(peer, n);
        }
        self.after_post(sink, av, Some(now), res)
    }

    /// The same-host fast path of a send: a small message to a settled
    /// peer on this host, with nothing of ours queued ahead of it, is one
    /// eager REQ written straight from the caller's buffer into the
    /// peer's ring (no send operation, no staging copy, no clock read);
    /// the wire format and the msg_id sequence are the protocol's, so the
    /// receiver keeps it in order with the engine's packets. `false`:
    /// nothing was done, the general path takes it.
    fn send_fast(&mut self, sink: &Sink, av: &Arc<Av>, peer: PeerIdx, op: &SendOp) -> bool {
        let n = op.iov.len();
        // FI_SRD_SHM_FAST turns the receiver's side off too.
        if !self.rdm.config().fast_eager
            || n > FAST_MAX
            || op.flags & (b::FI_DELIVERY_COMPLETE | b::FI_MATCH_COMPLETE) != 0
        {
            return false;
        }
        let (Some(shm), r) = (self.link.shm.as_mut(), &mut self.rdm) else {
            return false;
        };
        if !shm.routes(peer) || !r.fast_ready(peer, n) {
            return false;
        }
        // fi_inject proper: no completion event; a send counter still
        // counts it.
        let silent = !op.report && op.flags & b::FI_INJECT != 0 && op.context == 0;
        let counted = sink.send_cntr.is_some();
        let data = (op.flags & b::FI_REMOTE_CQ_DATA != 0).then_some(op.data);
        let flags = convert::op_flags(op.flags);
        let sent = shm.send_fast(peer, REQ_LEN + n, |slot| {
            let (ctx, tagged, tag) = (op.context as u64, op.tagged, op.tag);
            let h = r.fast_req(
                peer, n, tagged, tag, data, ctx, flags, silent, counted, slot,
            );
            op.iov.copy_out(0, &mut slot[h..]);
        });
        if !sent {
            return false;
        }
        self.link.obs.tx_pkt(peer, REQ_LEN + n);
        if !silent || counted {
            self.completions(sink, Some(av));
        }
        true
    }

    pub fn recv(&mut self, sink: &Sink, av: &Arc<Av>, op: RecvOp) -> Result<()> {
        let src = if op.src == ADDR_NOTAVAIL {
            None
        } else {
            Some(self.peer_of(av, op.src)?)
        };
        // Posting a receive reads no clock (the engine does not use it
        // there); `after_post` reads one if the post left packets to send
        // (a CTS, a long-read's FIN).
        let posted_at = self.last_now;
        let flags = convert::op_flags(op.flags);
        let ctx = op.context as u64;
        let res = if op.tagged {
            let rdm = &mut self.rdm;
            rdm.trecv(posted_at, op.iov, src, op.tag, op.ignore, ctx, flags)
        } else {
            self.rdm.recv(posted_at, op.iov, src, ctx, flags)
        };
        self.after_post(sink, av, None, res)
    }

    pub fn cancel(&mut self, _sink: &Sink, context: usize) -> bool {
        self.rdm.cancel(context as u64)
    }

    /// One progress round: I/O, device completions, protocol, CQ. The clock
    /// is read once per round (a read costs ~30 ns here, and a round that
    /// finds nothing must stay cheap: it is what a polling reader spins on).
    pub fn progress(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        // Frames received straight into posted receives complete in the
        // CQ at once (not after a closing endpoint stopped reporting).
        let fast = !self.closing && self.rdm.config().fast_eager;
        let (link, r, stash) = (&mut self.link, &mut self.rdm, &mut self.stash);
        let av_ref = av.map(|a| &**a);
        let mut now = link.t.now();
        for round in 0..4 {
            // A later round reads the sockets again only if the last read
            // may have left datagrams there: after one that emptied them,
            // what arrives meanwhile waits for the next call (here it cost
            // an EAGAIN read or two between an arrival and its completion).
            let read = round == 0 || link.t.rx_more();
            let polled = read && link.poll_udp(r, av_ref, now, false, true);
            let mut busy = link.retry_deferred(r, now);
            busy |= link.device_completions(r);
            // The ring is drained in one go: what it holds next arrived
            // after this round began and waits for the next call, rather
            // than costing every message a second round.
            let fs = fast.then_some(shm::FastSink {
                sink,
                stash: &mut *stash,
            });
            link.shm_receive(r, av_ref, now, fs);
            busy |= link.transmit(r, now);
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
            if link.udp_dirty {
                let read = !polled || link.t.rx_more();
                link.poll_udp(r, av_ref, now, true, read);
            }
            if !busy {
                break;
            }
            if polled || link.udp_dirty {
                // System calls were made: time moved.
                now = link.t.now();
            }
        }
        self.last_now = now;
        if let Some(shm) = link.shm.as_mut() {
            shm.check_peers(r, now);
        }
        self.completions(sink, av);
        let c = self.rdm.take_remote_counts();
        sink.remote(c.reads, c.writes);
        self.link.obs.remote_reads += c.reads;
        self.link.obs.remote_writes += c.writes;
        // `now` is from the last round: fresh enough for a few-ms cadence.
        if now.saturating_sub(self.link.obs.last_publish) >= super::stats::PUBLISH_EVERY_NS {
            self.link.publish(Some(&self.rdm), now);
        }
    }

    /// The part of a progress round a new operation needs: its packets
    /// out (shared memory, or the device and the sockets) and any
    /// completion that produced (e.g. an inject into a ring).
    fn post_progress(&mut self, sink: &Sink, av: &Arc<Av>, now: u64) {
        self.link.transmit(&mut self.rdm, now);
        if self.link.udp_dirty {
            self.link.push_udp(&self.rdm);
        }
        self.completions(sink, Some(av));
    }

    /// Hands the engine's completions to the CQs and counters; a cheap
    /// test when there are none (most posts, many rounds).
    #[inline]
    fn completions(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        if self.stash.is_some() || self.rdm.has_completion() {
            self.deliver_completions(sink, av);
        }
    }

    fn deliver_completions(&mut self, sink: &Sink, av: Option<&Arc<Av>>) {
        loop {
            let c = match self.stash.take() {
                Some(c) => c,
                // No room check up front (two CQ locks per idle round): a
                // completion the CQ cannot take waits in `stash`.
                None => match self.rdm.poll_completion() {
                    Some(c) => c,
                    None => return,
                },
            };
            if self.closing {
                // The application closed the endpoint: it hears nothing
                // more of it (the buffers are its own again on return).
                continue;
            }
            // Receives and remote-write completions (CQ data at the target)
            // go to the receive side; sends, RMA and atomics we initiated to
            // the transmit side.
            let rx = CompFlags::RECV | CompFlags::REMOTE_WRITE | CompFlags::REMOTE_READ;
            let dir = if c.flags.intersects(rx) {
                Dir::Rx
            } else {
                Dir::Tx
            };
            let src = c
                .src
                .map_or(ADDR_NOTAVAIL, |p| self.link.fi_addr_of(av.map(|a| &**a), p));
            let received =
                (c.err.is_none() && c.flags.contains(CompFlags::RECV)).then_some((c.src, c.len));
            let entry = Entry {
                context: c.context as usize,
                flags: convert::comp_flags_to_fi(c.flags),
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
                        err: convert::errno(e.kind),
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
                self.link.obs.rx_msg(p, len);
            }
        }
    }

    /// Before the endpoint goes away: keeps answering for a short while so
    /// acknowledgements we owe reach their senders and our own last packets
    /// get theirs (a peer would otherwise see its final sends fail).
    pub fn linger(&mut self, sink: &Sink, av: Option<&Arc<Av>>, max: Duration) {
        self.closing = true;
        self.stash = None;
        let start = std::time::Instant::now();
        let mut quiet_rounds = 0;
        while start.elapsed() < max {
            self.progress(sink, av);
            quiet_rounds = if self.link.idle() {
                quiet_rounds + 1
            } else {
                0
            };
            // Idle for a couple of delayed-ack periods: nothing is owed.
            if quiet_rounds >= 3 {
                break;
            }
            self.link.wait(Duration::from_micros(200));
        }
    }

    /// One line of counters for FI_SRD_STATS=1.
    pub fn stats_line(&self) -> String {
        self.link.stats_line(&self.rdm)
    }

    /// The counters, peer table and resources as text (FI_SRD_DUMP=1).
    pub fn dump(&mut self) -> String {
        self.link.dump(&self.rdm)
    }

    pub fn wait(&self, d: Duration) {
        self.link.wait(d);
    }

    /// What a blocked reader polls: the UDP sockets and the shared-memory
    /// ring's doorbell.
    pub fn fds(&self, out: &mut Vec<i32>) {
        self.link.fds(out);
    }

    /// Before a reader sleeps on `fds`: same-host senders ring the doorbell
    /// from now on. False when input already waits in the ring (or it has
    /// no doorbell): then the reader must progress instead of sleeping.
    pub fn arm(&mut self) -> bool {
        self.link.shm.as_mut().is_none_or(|s| s.arm())
    }

    pub fn disarm(&mut self) {
        if let Some(s) = self.link.shm.as_mut() {
            s.disarm();
        }
    }

    /// Time until the device's or the protocol's next timer (a sleeping
    /// reader wakes for it); packets waiting for room in a peer's ring are
    /// retried after a millisecond (the peer's reads do not wake us).
    pub fn next_timer(&self) -> Option<Duration> {
        let now = self.link.t.now();
        let at = [self.link.t.dev.poll_timeout(), self.rdm.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let mut d = at.map(|t| Duration::from_nanos(t.saturating_sub(now)));
        if self.link.shm.as_ref().is_some_and(|s| s.queued() > 0) {
            let ms = Duration::from_millis(1);
            d = Some(d.map_or(ms, |x| x.min(ms)));
        }
        d
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
    iov: &crate::mem::UserIov,
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

fn map_rdm(e: RdmError) -> Error {
    match e {
        RdmError::Again => Error::Again,
        RdmError::UnknownPeer | RdmError::InvalidArgument => Error::Inval,
        RdmError::TooLong => Error::MsgSize,
        RdmError::NoMessage => Error::Os(b::FI_ENOMSG),
    }
}
