//! The endpoint's side of the wire: its transport (device, sockets, clock),
//! the SRD QP, the receive buffers posted to it, the inbox of deferred
//! packets and the same-host link. It exists before the protocol engine
//! (fi_getname works on an endpoint that is not enabled); what needs the
//! engine takes it as an argument.

use super::routes::Routes;
use super::shm::ShmLink;
use super::{RDM_QKEY, log_packet};
use crate::fi::addr::{EpAddr, Kind};
use crate::fi::errno::Result;
use crate::fi::params::Params;
use crate::fi::stats::Observer;
use crate::fi::transport::ExtSource;
use crate::fi::transport::Transport;
use crate::io::udp::MAX_TAIL;
use crate::rdm::{self, PacketOutcome, PeerIdx, TxError};
use crate::srd::{self, ExtRef, Lent, Opcode, Pd, QpType, SendWr, WcStatus};
use std::time::Duration;

/// Datagrams one UDP poll hands to the protocol at most (the rest wait in
/// the kernel for the next round, so sends are not starved).
const RX_BUDGET: usize = 256;
/// Receive queue of the QP (unused: the QP takes data in place).
pub(super) const RX_DEPTH: usize = 16;
/// Sends the device holds for one peer, not yet on the wire, at which the
/// protocol stops producing send data for that peer (the send queue is
/// shared: one slow peer must not fill it for the others) ...
const UDP_PAUSE_AT: usize = 512;
/// ... and below which it resumes.
const UDP_RESUME_BELOW: usize = 256;

/// Rationed UDP polling while shared memory carries the traffic (ns).
const UDP_GAP: u64 = 20_000;
/// The same when no known peer is reached over UDP: only a stranger's
/// first datagram (or a peer whose ring went away) waits this long.
const UDP_GAP_NO_PEERS: u64 = 1_000_000;

pub(super) struct Link {
    pub t: Transport,
    pub pd: Pd,
    pub cq: srd::Cq,
    pub qpn: u32,
    /// Same-host peers (None when FI_SRD_SHM=0 or /dev/shm is unusable;
    /// then every peer goes over UDP).
    pub shm: Option<ShmLink>,
    /// Where each protocol peer is (fi_addr, device route).
    pub routes: Routes,
    /// UDP sockets were last polled at (ns); polling is rationed while
    /// shared memory carries the traffic.
    last_udp_poll: u64,
    /// Datagrams were posted to the device since the last pump.
    pub udp_dirty: bool,
    /// UDP moved something recently: poll it on every round until then (ns).
    udp_hot_until: u64,
    /// Some known peer is reached over UDP (no ring). Until then only
    /// strangers can send to the sockets, and they are polled rarely.
    pub udp_peers: bool,
    /// Peers paused because the device holds too many of their sends.
    udp_paused: Vec<PeerIdx>,
    /// Packets the protocol deferred, per sender.
    pub inbox: rdm::Inbox,
    /// Room for one outgoing packet of the largest link (the payload room
    /// asked of each lent send buffer).
    out_len: usize,
    nonce: u64,
    host_id: u64,
    /// Counters, the live stats page and drop warnings (fi::stats).
    pub obs: Observer,
    /// Data to UDP peers goes out of the caller's buffers (FI_SRD_ZCOPY
    /// and header-only checksums).
    pub zcopy: bool,
}

impl Link {
    pub fn open(t: Transport, params: &Params) -> Result<Link> {
        let mut t = t;
        let t_payload_checksum = t.dev.config().payload_checksum;
        let (pd, cq, qpn) = t.open_qp(QpType::Srd, RDM_QKEY, 4096, RX_DEPTH as u32)?;
        // Data is read in place from the socket buffers: no receive buffer
        // is posted, copied into or held (a deferred packet is copied into
        // the inbox).
        t.dev
            .set_in_place(qpn)
            .map_err(|_| crate::fi::errno::Error::Inval)?;
        let mtu = t.dev.max_payload();
        let shm = if params.shm {
            ShmLink::open(mtu, params)
        } else {
            None
        };
        // Room for the largest packet of any link: a ring slot, a datagram
        // to a peer on this host over loopback, the device's MTU.
        let out_len = shm
            .as_ref()
            .map_or(mtu, |s| s.slot_size().max(mtu))
            .max(super::routes::LOCAL_PAYLOAD);
        let link = Link {
            t,
            pd,
            cq,
            qpn,
            shm,
            routes: Routes::default(),
            last_udp_poll: 0,
            udp_dirty: false,
            udp_hot_until: 0,
            udp_peers: false,
            udp_paused: Vec::new(),
            inbox: rdm::Inbox::new(),
            out_len,
            nonce: crate::fi::endpoint::random_u64(),
            host_id: crate::fi::endpoint::host_id(),
            obs: Observer::default(),
            zcopy: params.zcopy && !t_payload_checksum,
        };
        Ok(link)
    }

    pub fn name(&self) -> EpAddr {
        let token = self.shm.as_ref().map(|s| s.token());
        EpAddr {
            kind: Kind::Rdm,
            sock: self.t.local(),
            qpn: self.qpn,
            qkey: RDM_QKEY,
            host_id: self.host_id,
            nonce: token.map_or(self.nonce, |t| t.nonce),
            pid: token.map_or(0, |t| t.pid),
        }
    }

    pub fn host_id(&self) -> u64 {
        self.host_id
    }

    pub fn wait(&self, d: Duration) {
        self.t.wait(d);
    }

    pub fn fds(&self, out: &mut Vec<i32>) {
        self.t.fds(out);
        if let Some(fd) = self.shm.as_ref().and_then(|s| s.doorbell_fd()) {
            out.push(fd);
        }
    }

    /// Moves UDP datagrams. Without shared memory, or while UDP traffic
    /// flowed within the last millisecond, every call polls; otherwise the
    /// sockets are polled at most every [`UDP_GAP`] unless datagrams wait
    /// to go out, so same-host traffic does not pay a system call per poll
    /// (and at most every [`UDP_GAP_NO_PEERS`] while every known peer has a
    /// ring: ranks sharing a core would otherwise pay one on every turn).
    /// `read: false` runs the device's timers and sends without reading
    /// (the round's last read emptied the sockets). Returns whether the
    /// sockets were polled.
    pub fn poll_udp(
        &mut self,
        r: &mut rdm::Endpoint,
        av: Option<&crate::fi::av::Av>,
        now: u64,
        force: bool,
        read: bool,
    ) -> bool {
        let gap = if self.udp_peers {
            UDP_GAP
        } else {
            UDP_GAP_NO_PEERS
        };
        if force
            || self.shm.is_none()
            || self.udp_dirty
            || now < self.udp_hot_until
            || now.saturating_sub(self.last_udp_poll) >= gap
        {
            self.last_udp_poll = now;
            self.udp_dirty = false;
            let read = read && !self.t.rx_quiet(now);
            let mut got = 0;
            while read && got < RX_BUDGET {
                let Some(a) = self.t.next_arrival(now) else {
                    break;
                };
                got += 1;
                self.take_arrival(r, av, now, a);
            }
            let moved = self.t.service(now, &Ext(r));
            self.log_device_drops();
            if got > 0 || moved {
                self.udp_hot_until = now.saturating_add(1_000_000);
            }
            return true;
        }
        false
    }

    /// One datagram of RDM data, read in place: to the protocol (or, if it
    /// defers it, into the inbox).
    fn take_arrival(
        &mut self,
        r: &mut rdm::Endpoint,
        av: Option<&crate::fi::av::Av>,
        now: u64,
        a: srd::Arrival,
    ) {
        let src = self.sender(r, av, a.src, a.src_qpn);
        let bytes = self.t.arrival_bytes(&a);
        let out = self.inbox.offer(r, now, src, bytes);
        if crate::log::debug_data() {
            log_packet("rx", src, bytes, "udp");
        }
        self.note_stored(r);
        if let Some(p) = learned_peer(src, out) {
            self.note_peer(r, p, None);
        }
        let from = Some(a.src.socket());
        took(&mut self.obs, r, src, a.len, out, || Sender::Udp(from));
    }

    /// Hands what the device has to send to the kernel now, reading
    /// nothing (after a post: its datagrams go first).
    pub fn push_udp(&mut self, r: &rdm::Endpoint) {
        self.udp_dirty = false;
        self.t.push(&Ext(r));
    }

    /// Send verdicts from the device (data arrives in place: `poll_udp`).
    pub fn device_completions(&mut self, r: &mut rdm::Endpoint) -> bool {
        let mut any = false;
        while let Some(c) = self.t.dev.poll_cq(self.cq) {
            any = true;
            if c.opcode != Opcode::Send {
                continue;
            }
            let res = match c.status {
                WcStatus::Success => Ok(()),
                WcStatus::RetryExceeded | WcStatus::RnrRetryExceeded => Err(TxError::Unreachable),
                _ => Err(TxError::Io),
            };
            r.on_send_complete(c.wr_id, res);
        }
        any
    }

    /// Offers the deferred packets again (every sender's, round robin).
    pub fn retry_deferred(&mut self, r: &mut rdm::Endpoint, now: u64) -> bool {
        if self.inbox.is_empty() {
            return false;
        }
        let obs = &mut self.obs;
        let mut dropped = false;
        let any = self.inbox.retry(r, now, |p, len, out| {
            obs.rx_pkt(Some(p), len);
            dropped |= out == PacketOutcome::Dropped;
        });
        if dropped {
            let why = self.obs.rdm_drop_reason(r.stats());
            let from = Sender::Udp(None);
            self.obs
                .once
                .warn_drop(from.key(), &from, why, "RDM packet");
        }
        any
    }

    /// High-water marks of what the protocol and the inbox store.
    pub fn note_stored(&mut self, r: &rdm::Endpoint) {
        let (u, ro) = r.stored_bytes();
        Observer::high_water(&mut self.obs.hw_unexp_bytes, u);
        Observer::high_water(&mut self.obs.hw_reorder_bytes, ro);
        Observer::high_water(&mut self.obs.hw_rx_held, self.inbox.len().0);
    }

    /// Moves the protocol's packets to their links: same-host peers'
    /// rings first (packets that waited for room), then new packets, to a
    /// ring or to the device.
    pub fn transmit(&mut self, r: &mut rdm::Endpoint, now: u64) -> bool {
        let mut any = false;
        if let Some(shm) = self.shm.as_mut() {
            shm.flush(r);
        }
        self.resume_udp(r);
        if !r.wants_transmit() {
            return false;
        }
        // Packets are built in a send buffer lent by the device: one sent
        // over UDP is posted from where it was written (and retransmitted
        // from there); one that goes over shared memory is copied into the
        // ring and the buffer is used for the next packet.
        let mut lent: Option<Lent> = None;
        // Until the engine has nothing more (not lending a buffer to find
        // that out: a small message's send paid a second lend and poll).
        while self.t.dev.send_room(self.qpn) > 0 && r.wants_transmit() {
            let buf = match lent.take() {
                Some(b) => b,
                None => match self.t.dev.lend(self.out_len) {
                    Some(b) => b,
                    None => break,
                },
            };
            let Some(mut tx) = r.poll_transmit(now, self.t.dev.lent_mut(&buf)) else {
                lent = Some(buf);
                break;
            };
            any = true;
            if let Some(e) = tx.ext
                && !self.gathers(tx.peer)
            {
                // A link that needs the packet whole: copy the tail in.
                let dst = &mut self.t.dev.lent_mut(&buf)[tx.len..];
                let end = tx.len + e.len as usize;
                if dst.len() < e.len as usize
                    || !r.ext_copy(tx.token, e, &mut dst[..e.len as usize])
                {
                    r.on_send_complete(tx.token, Err(TxError::Io));
                    lent = Some(buf);
                    continue;
                }
                tx.len = end;
                tx.ext = None;
            }
            let whole = tx.len + tx.ext.map_or(0, |e| e.len as usize);
            self.obs.tx_pkt(tx.peer, whole);
            if !self.routes.has_route(tx.peer) {
                self.note_peer(r, tx.peer, None);
            }
            if let Some(shm) = self.shm.as_mut()
                && shm.routes(tx.peer)
            {
                let data = self.t.dev.lent(&buf, tx.len);
                if crate::log::debug_data() {
                    log_packet("tx", Some(tx.peer), data, "shm");
                }
                shm.send(r, tx.peer, data, tx.token);
                Observer::high_water(&mut self.obs.hw_shm_pending, shm.queued());
                lent = Some(buf);
                continue;
            }
            if self.routes.is_own(tx.peer) {
                // To ourselves without a ring: delivered here, complete at
                // once (no datagram, no wait for an acknowledgement).
                let data = self.t.dev.lent(&buf, tx.len);
                if crate::log::debug_data() {
                    log_packet("tx", Some(tx.peer), data, "self");
                }
                let out = self.inbox.offer(r, now, Some(tx.peer), data);
                took(&mut self.obs, r, Some(tx.peer), tx.len, out, || {
                    Sender::Udp(None)
                });
                r.on_send_complete(tx.token, Ok(()));
                lent = Some(buf);
                continue;
            }
            if crate::log::debug_data() {
                log_packet("tx", Some(tx.peer), self.t.dev.lent(&buf, tx.len), "udp");
            }
            let Some(route) = self.routes.route(tx.peer) else {
                r.on_send_complete(tx.token, Err(TxError::Unreachable));
                lent = Some(buf);
                continue;
            };
            let wr = SendWr {
                wr_id: tx.token,
                ah: route.ah,
                remote_qpn: route.qpn,
                remote_qkey: route.qkey,
                data: &[],
            };
            let posted = match tx.ext {
                Some(e) => {
                    let ext = ExtRef {
                        key: tx.token,
                        off: e.off,
                        len: e.len,
                    };
                    self.t.dev.post_lent_ext(self.qpn, buf, tx.len, ext, wr)
                }
                None => self.t.dev.post_lent(self.qpn, buf, tx.len, wr),
            };
            if let Err((_, b)) = posted {
                r.on_send_complete(tx.token, Err(TxError::Io));
                lent = Some(b);
                continue;
            }
            self.udp_dirty = true;
            if self.t.dev.peer_backlog(route.ah) >= UDP_PAUSE_AT && !r.peer_paused(tx.peer) {
                r.set_peer_paused(tx.peer, true);
                self.udp_paused.push(tx.peer);
            }
        }
        if let Some(b) = lent {
            self.t.dev.give_back(b);
        }
        any
    }

    /// Whether packets to `p` go to the device, which gathers a zero-copy
    /// tail by iovec (not to a ring or to ourselves).
    fn gathers(&self, p: PeerIdx) -> bool {
        !self.routes.is_own(p) && !self.shm.as_ref().is_some_and(|s| s.routes(p))
    }

    /// Resumes the UDP peers whose device backlog went down.
    fn resume_udp(&mut self, r: &mut rdm::Endpoint) {
        if self.udp_paused.is_empty() {
            return;
        }
        let (dev, routes) = (&self.t.dev, &self.routes);
        self.udp_paused.retain(|&p| {
            let backlog = routes.route(p).map_or(0, |rt| dev.peer_backlog(rt.ah));
            if backlog < UDP_RESUME_BELOW {
                r.set_peer_paused(p, false);
                false
            } else {
                true
            }
        });
    }

    /// Before the endpoint goes away: keeps answering for a short while so
    /// acknowledgements we owe reach their senders and our own last packets
    /// get theirs.
    pub fn idle(&self) -> bool {
        let u = self.t.dev.usage();
        u.in_flight == 0 && u.queued == 0 && u.ctrl_queued == 0
    }

    /// Warns once per sender and reason about datagrams the device dropped.
    fn log_device_drops(&mut self) {
        let obs = &mut self.obs;
        for e in self.t.dev.take_drop_events() {
            let key = crate::log::Once::key(e.from);
            obs.once.warn_drop(key, &e.from, e.reason, "SRD datagram");
        }
    }
}

/// The protocol engine as the place zero-copy tails live: a datagram's
/// `ExtRef` key is the token of the send it belongs to.
pub(super) struct Ext<'a>(pub &'a rdm::Endpoint);

const _: () = assert!(rdm::EXT_PIECES <= MAX_TAIL);

impl ExtSource for Ext<'_> {
    fn ext_slices<'b>(&'b self, e: ExtRef, out: &mut Vec<&'b [u8]>) -> bool {
        let s = rdm::ExtSlice {
            off: e.off,
            len: e.len,
        };
        self.0.ext_slices(e.key, s, |b| out.push(b))
    }
}

/// Counts a datagram the protocol took (not one it deferred: the inbox
/// counts those when it hands them over) and explains a drop, once per
/// sender and reason.
pub(super) fn took(
    obs: &mut Observer,
    r: &rdm::Endpoint,
    src: Option<PeerIdx>,
    len: usize,
    out: PacketOutcome,
    from: impl FnOnce() -> Sender,
) {
    match out {
        PacketOutcome::Deferred(_) => {}
        PacketOutcome::NewPeer(p) => obs.rx_pkt(Some(p), len),
        PacketOutcome::Consumed => obs.rx_pkt(src, len),
        PacketOutcome::Dropped => {
            obs.rx_pkt(src, len);
            let why = obs.rdm_drop_reason(r.stats());
            let from = from();
            obs.once.warn_drop(from.key(), &from, why, "RDM packet");
        }
    }
}

/// Who sent a packet, for drop warnings.
pub(super) enum Sender {
    Udp(Option<std::net::SocketAddrV4>),
    Shm(u32),
}

impl Sender {
    fn key(&self) -> u64 {
        match self {
            Sender::Udp(a) => a.map_or(0, crate::log::Once::key),
            Sender::Shm(pid) => 1 << 63 | u64::from(*pid),
        }
    }
}

impl std::fmt::Display for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sender::Udp(Some(a)) => write!(f, "{a}"),
            Sender::Udp(None) => write!(f, "0.0.0.0:0"),
            Sender::Shm(pid) => write!(f, "shared-memory sender pid {pid}"),
        }
    }
}

/// The sender a packet taught the protocol, which the glue must now map
/// to it: a new peer, or one whose first packet was deferred.
pub(super) fn learned_peer(src: Option<PeerIdx>, out: PacketOutcome) -> Option<PeerIdx> {
    match out {
        PacketOutcome::NewPeer(p) => Some(p),
        PacketOutcome::Deferred(p) if src.is_none() => Some(p),
        _ => None,
    }
}
