//! The same-host link: our shared-memory ring and the rings of the peers
//! on this host, with the per-peer outbox for full rings and the liveness
//! of same-host peers (they do not acknowledge what we push, so the
//! protocol's probes cannot tell a dead one).

use super::link::{Link, Sender, learned_peer, took};
use super::log_packet;
use crate::fi::addr::EpAddr;
use crate::fi::av::{ADDR_NOTAVAIL, Av};
use crate::fi::convert;
use crate::fi::cq::Entry;
use crate::fi::outbox::{self, Outbox, Push};
use crate::fi::params::Params;
use crate::fi::sink::{Dir, Sink};
use crate::fi::stats::Observer;
use crate::io::shm::{ShmConfig, ShmEndpoint, ShmError, ShmPeer, ShmStats, ShmToken};
use crate::rdm::matcher::TagHasher;
use crate::rdm::{self, PeerIdx, TxError};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Ring geometry: packets to same-host peers may be this large whatever
/// the interface MTU (`rdm::Endpoint::set_peer_link`).
const SLOTS: usize = 256;
const SLOT: usize = 64 << 10;

pub(super) struct ShmLink {
    ep: ShmEndpoint,
    /// Largest packet we build (a slot, at least the device MTU).
    out_len: usize,
    /// protocol peer → its ring.
    rings: Vec<Option<ShmPeer>>,
    /// ring token of a sender → protocol peer (looked up per packet
    /// received: the cheap hasher, not SipHash).
    by_token: HashMap<ShmToken, PeerIdx, BuildHasherDefault<TagHasher>>,
    /// Packets a full ring could not take yet, per peer.
    outbox: Outbox,
    /// Liveness checks of the peers operations wait on: next one (ns) and
    /// interval (0: off).
    check_at: u64,
    check_ns: u64,
    /// Dead peers, with our ring's claim counter when seen dead: reported
    /// to the protocol once we consumed that far.
    gone: Vec<(PeerIdx, u64)>,
    waited: Vec<PeerIdx>,
}

impl ShmLink {
    /// Our ring, or None (logged) when /dev/shm cannot hold one.
    pub fn open(mtu: usize, params: &Params) -> Option<ShmLink> {
        let cfg = ShmConfig {
            slots: SLOTS,
            slot_size: SLOT.max(mtu),
            cma: if params.shm_cma {
                crate::io::shm::CmaMode::Auto
            } else {
                crate::io::shm::CmaMode::Off
            },
        };
        match ShmEndpoint::open(cfg) {
            Ok(ep) => Some(ShmLink {
                out_len: ep.slot_size().max(mtu),
                ep,
                rings: Vec::new(),
                by_token: HashMap::default(),
                outbox: Outbox::default(),
                check_at: 0,
                check_ns: check_interval(params.peer_timeout_ms),
                gone: Vec::new(),
                waited: Vec::new(),
            }),
            Err(e) => {
                crate::srd_log!(
                    Warn,
                    EpCtrl,
                    "no shared-memory ring ({e}); same-host peers use UDP"
                );
                None
            }
        }
    }

    pub fn token(&self) -> ShmToken {
        self.ep.token()
    }

    pub fn slot_size(&self) -> usize {
        self.ep.slot_size()
    }

    pub fn cma_enabled(&self) -> bool {
        self.ep.cma_enabled()
    }

    /// The ring's doorbell, for a reader that sleeps.
    pub fn doorbell_fd(&self) -> Option<i32> {
        self.ep.doorbell_fd()
    }

    /// See `RdmEp::arm`.
    pub fn arm(&mut self) -> bool {
        self.ep.arm()
    }

    pub fn disarm(&mut self) {
        self.ep.disarm();
    }

    pub fn stats(&self) -> &ShmStats {
        self.ep.stats()
    }

    /// Whether packets to `p` go through its ring.
    pub fn routes(&self, p: PeerIdx) -> bool {
        self.ring(p).is_some()
    }

    fn ring(&self, p: PeerIdx) -> Option<ShmPeer> {
        self.rings.get(p as usize).copied().flatten()
    }

    /// Packets waiting for room in peers' rings.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// Opens the ring of same-host peer `p` (address `a`), and tells the
    /// protocol what that link allows: ring-slot packets, and single
    /// copies when CMA works both ways.
    pub fn connect(&mut self, r: &mut rdm::Endpoint, p: PeerIdx, a: &EpAddr) {
        let token = ShmToken {
            pid: a.pid,
            nonce: a.nonce,
        };
        let Ok(sp) = self.ep.connect(token) else {
            return;
        };
        let pi = p as usize;
        if self.rings.len() <= pi {
            self.rings.resize(pi + 1, None);
        }
        self.rings[pi] = Some(sp);
        self.by_token.insert(token, p);
        let mtu = self.ep.peer_slot_size(sp).min(self.out_len);
        let cma = self.ep.peer_cma(sp).then_some(a.pid);
        let _ = r.set_peer_link(p, mtu, cma);
    }

    /// One packet of the protocol to same-host peer `p`: into its ring, or
    /// behind what already waits for it. A peer whose queue grows long is
    /// paused in the protocol until the queue drains.
    pub fn send(&mut self, r: &mut rdm::Endpoint, p: PeerIdx, data: &[u8], token: u64) {
        let Some(sp) = self.ring(p) else {
            r.on_send_complete(token, Err(TxError::Unreachable));
            return;
        };
        let res = if self.outbox.queued(p) == 0 {
            self.ep.send(sp, data)
        } else {
            Err(ShmError::Full)
        };
        match res {
            Err(ShmError::Full) => {
                if self.outbox.push(p, data, token) >= outbox::PAUSE_AT {
                    r.set_peer_paused(p, true);
                }
            }
            res => r.on_send_complete(token, res.map_err(|_| TxError::Unreachable)),
        }
    }

    /// A packet of `len` bytes that `write` builds in same-host peer
    /// `p`'s ring, if it can go now (a ring, nothing waiting for it in
    /// the outbox, room); `write` runs only then.
    pub fn send_fast(&mut self, p: PeerIdx, len: usize, write: impl FnOnce(&mut [u8])) -> bool {
        let Some(sp) = self.ring(p) else {
            return false;
        };
        if self.outbox.queued(p) != 0 {
            return false;
        }
        let debug = crate::log::debug_data();
        self.ep
            .send_with(sp, len, |slot| {
                write(slot);
                if debug {
                    log_packet("tx", Some(p), slot, "shm fast");
                }
            })
            .is_ok()
    }

    /// Sends packets that waited for room in their peer's ring; a peer
    /// whose queue drained may produce send data again.
    pub fn flush(&mut self, r: &mut rdm::Endpoint) {
        if self.outbox.is_empty() {
            return;
        }
        let (ep, rings) = (&mut self.ep, &self.rings);
        let r = std::cell::RefCell::new(r);
        self.outbox.flush(
            |p, bytes| match rings.get(p as usize).copied().flatten() {
                Some(sp) => match ep.send(sp, bytes) {
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

    /// Every `check_ns` the peers that operations wait on get a liveness
    /// check (one flock each). A dead one is reported to the protocol once
    /// our ring has been consumed past everything it could have pushed, so
    /// its last messages still arrive first.
    pub fn check_peers(&mut self, r: &mut rdm::Endpoint, now: u64) {
        if self.check_ns == 0 || (now < self.check_at && self.gone.is_empty()) {
            return;
        }
        if now >= self.check_at {
            self.check_at = now.saturating_add(self.check_ns);
            r.waited_peers(&mut self.waited);
            for &p in &self.waited {
                if r.peer_broken(p).is_some() || self.gone.iter().any(|g| g.0 == p) {
                    continue;
                }
                if let Some(sp) = self.rings.get(p as usize).copied().flatten()
                    && !self.ep.peer_alive(sp)
                {
                    crate::srd_log!(Info, EpCtrl, "same-host peer {p} is gone");
                    self.gone.push((p, self.ep.enqueued()));
                }
            }
        }
        let consumed = self.ep.consumed();
        self.gone.retain(|&(p, mark)| {
            if consumed >= mark {
                r.peer_unreachable(p);
                false
            } else {
                true
            }
        });
    }
}

impl Link {
    /// Drains our shared-memory ring into the protocol. Every packet leaves
    /// the ring: one the protocol defers waits in the inbox, in its
    /// sender's queue, so one sender's overrun never stalls the ring for
    /// the others. A sender not yet known by its ring token is looked up
    /// in the AV first, and a sender learned from the network is promoted
    /// once the AV has it.
    ///
    /// With `fast`, a frame the engine can receive straight into a posted
    /// receive (`rdm::Endpoint::fast_recv`) skips the inbox, the general
    /// dispatch and the engine's completion queue: its completion is
    /// written to the CQ here (or kept in `fast.stash` when the CQ is
    /// full, which turns this off until the stash is delivered, so
    /// completions keep their order).
    pub fn shm_receive(
        &mut self,
        r: &mut rdm::Endpoint,
        av: Option<&Av>,
        now: u64,
        mut fast: Option<FastSink<'_>>,
    ) -> bool {
        let mut any = false;
        let mut not_in_av: SmallVec<[ShmToken; 4]> = SmallVec::new();
        for _ in 0..8 {
            let Some(shm) = self.shm.as_mut() else {
                return any;
            };
            let (routes, inbox, obs) = (&self.routes, &mut self.inbox, &mut self.obs);
            let by_token = &mut shm.by_token;
            let mut learned: SmallVec<[PeerIdx; 4]> = SmallVec::new();
            let mut resolve: Option<(ShmToken, u64)> = None;
            let n = shm.ep.recv_while(|tok, bytes| {
                let src = by_token.get(&tok).copied();
                if let (Some(fs), Some(p)) = (fast.as_mut(), src)
                    && fs.stash.is_none()
                    && let fi = routes.fi_addr(p)
                    && fi != ADDR_NOTAVAIL
                    && let Some(done) = r.fast_recv(p, bytes)
                {
                    fs.deliver(obs, fi, done);
                    obs.rx_pkt(src, bytes.len());
                    if crate::log::debug_data() {
                        log_packet("rx", src, bytes, "shm fast");
                    }
                    return true;
                }
                if !src.is_some_and(|p| routes.in_av(p))
                    && !not_in_av.contains(&tok)
                    && let Some(fi) = av.and_then(|a| a.find_token(tok.pid, tok.nonce))
                {
                    resolve = Some((tok, fi));
                    return false;
                }
                let out = inbox.offer(r, now, src, bytes);
                if let Some(p) = learned_peer(src, out) {
                    by_token.insert(tok, p);
                    learned.push(p);
                }
                if crate::log::debug_data() {
                    log_packet("rx", src, bytes, "shm");
                }
                took(obs, r, src, bytes.len(), out, || Sender::Shm(tok.pid));
                true
            });
            self.note_stored(r);
            any |= n > 0;
            for p in learned {
                self.note_peer(r, p, None);
            }
            match resolve {
                Some((tok, fi)) => match av.map(|a| self.peer_of(r, a, fi)) {
                    Some(Ok(p)) => {
                        if let Some(shm) = self.shm.as_mut() {
                            shm.by_token.insert(tok, p);
                        }
                    }
                    _ => not_in_av.push(tok),
                },
                None => return any,
            }
        }
        any
    }
}

/// Where `Link::shm_receive` writes the completions of frames received
/// straight into posted receives: the endpoint's CQs and counters, and its
/// one-completion stash for a CQ without room.
pub(super) struct FastSink<'a> {
    pub sink: &'a Sink,
    pub stash: &'a mut Option<rdm::Completion>,
}

impl FastSink<'_> {
    /// Delivers `done` (from the sender at `fi`) to the receive CQ and
    /// counter, or keeps it in the stash when the CQ is full.
    fn deliver(&mut self, obs: &mut Observer, fi: u64, done: rdm::FastRecv) {
        let entry = Entry {
            context: done.context as usize,
            flags: convert::comp_flags_to_fi(done.flags),
            len: done.len,
            buf: done.buf,
            data: done.data,
            tag: done.tag,
            src: fi,
        };
        if self.sink.ok(Dir::Rx, entry, done.report).is_ok() {
            obs.rx_msg(Some(done.peer), done.len);
        } else {
            *self.stash = Some(done.into_completion());
        }
    }
}

/// Same-host liveness checks: as often as the protocol's probes, at least
/// every 100 ms.
fn check_interval(peer_timeout_ms: u64) -> u64 {
    if peer_timeout_ms == 0 {
        return 0;
    }
    super::probe_interval(peer_timeout_ms).min(100_000_000)
}
