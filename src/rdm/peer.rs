//! Peers: AV entries inserted by the application and senders learned from
//! the network (internal entries, reported with FI_EADDRNOTAVAIL until the
//! application inserts their address), with what the endpoint knows of
//! each: its handshake (version, features), its liveness, its link (packet
//! size, CMA reach) and whether it broke.
//!
//! Each side sends one HANDSHAKE to a peer on first contact (first send to
//! it, or first packet from it). Receiving the peer's handshake tells us it
//! has an entry for us, so our REQs stop carrying our address. A peer that
//! neither sends anything nor has any datagram acknowledged by the
//! transport within `handshake_timeout_ns` of our first send fails the
//! sends toward it with FI_ETIMEDOUT — an acknowledged datagram proves the
//! peer's device (in its process) is alive, so a peer that is merely slow
//! to post receives is never timed out. The liveness tick (probes of
//! silent peers that operations wait on) keeps its clock here too.
//!
//! Invariants kept here: an address maps to one entry; a peer with a
//! deadline is in `pending`; a broken peer has no deadline and stays
//! broken.

use super::outbox::{Ctrl, Outbox};
use super::pool::Slab;
use super::{ErrorKind, RdmError};
use crate::wire::rdm::{
    FEATURE_CMA, FEATURE_DELIVERY_COMPLETE, FEATURE_LONG_CTS, FEATURE_RMA, HS_REPLY, HandshakeRepr,
    VERSION, emit_handshake,
};
use std::collections::HashMap;

/// Credit window assumed until the peer's handshake says more; receivers
/// never use a smaller reorder window (Config is clamped).
pub const INITIAL_WINDOW: u32 = 16;

/// What this build supports.
pub const FEATURES: u64 = FEATURE_DELIVERY_COMPLETE | FEATURE_LONG_CTS | FEATURE_RMA | FEATURE_CMA;

/// Index of a peer in the endpoint's table (the glue maps fi_addr_t to it).
pub type PeerIdx = u32;

#[derive(Debug)]
pub(super) struct Peer {
    addr: Vec<u8>,
    /// Inserted by the application (AV); false for internal entries.
    in_av: bool,
    /// Our handshake went (or is queued) to it.
    hs_sent: bool,
    /// Its handshake reached us: it knows our address, REQs stop carrying it.
    hs_recv: bool,
    features: u64,
    /// We heard from it, or the transport delivered something to it.
    alive: bool,
    /// Operations toward it fail after this time unless it turns alive.
    deadline: Option<u64>,
    /// The transport gave up on a datagram to it: the error of every
    /// operation with it from then on.
    broken: Option<ErrorKind>,
    /// Largest packet to it (0: the endpoint's MTU), set by the glue.
    mtu: usize,
    /// Its pid when CMA may reach its memory (same host), set by the glue.
    cma_pid: Option<u32>,
    /// Send data to it may leave its payload in the caller's buffers
    /// (`TxInfo::ext`), set by the glue.
    zero_copy: bool,
    /// Something came from it (or a datagram to it was confirmed) since
    /// the last liveness tick.
    heard: bool,
}

impl Peer {
    pub fn addr(&self) -> &[u8] {
        &self.addr
    }

    pub fn in_av(&self) -> bool {
        self.in_av
    }

    pub fn hs_recv(&self) -> bool {
        self.hs_recv
    }

    /// Feature bits of its handshake that we share (0 before it).
    pub fn features(&self) -> u64 {
        self.features
    }

    pub fn broken(&self) -> Option<ErrorKind> {
        self.broken
    }
}

/// Settings of the table, from the endpoint's configuration.
#[derive(Clone, Copy, Debug)]
pub(super) struct PeerLimits {
    pub max_peers: usize,
    /// The endpoint's MTU: no link is smaller.
    pub mtu: usize,
    pub cma_min: usize,
    pub handshake_timeout_ns: u64,
    pub probe_interval_ns: u64,
}

#[derive(Debug)]
pub(super) struct Peers {
    table: Slab<Peer>,
    by_addr: HashMap<Vec<u8>, PeerIdx>,
    /// Peers with a handshake deadline running.
    pending: Vec<PeerIdx>,
    /// Next liveness tick (0: not started).
    probe_at: u64,
    lim: PeerLimits,
}

impl Peers {
    pub fn new(lim: PeerLimits) -> Self {
        Peers {
            // Not preallocated: max_peers (65 536 by default) entries would
            // cost ~10 MB per endpoint before it knows a single peer.
            table: Slab::lazy(lim.max_peers),
            by_addr: HashMap::new(),
            pending: Vec::new(),
            probe_at: 0,
            lim,
        }
    }

    pub fn lookup(&self, addr: &[u8]) -> Option<PeerIdx> {
        self.by_addr.get(addr).copied()
    }

    /// Finds or creates the entry for `addr`; `in_av` promotes an internal
    /// entry to an AV one (it keeps its msg_id state).
    pub fn insert(&mut self, addr: &[u8], in_av: bool) -> Option<PeerIdx> {
        if let Some(i) = self.lookup(addr) {
            if in_av && let Some(p) = self.table.at_mut(i) {
                p.in_av = true;
            }
            return Some(i);
        }
        let i = self
            .table
            .insert(Peer {
                addr: addr.to_vec(),
                in_av,
                hs_sent: false,
                hs_recv: false,
                features: 0,
                alive: false,
                deadline: None,
                broken: None,
                mtu: 0,
                cma_pid: None,
                zero_copy: false,
                heard: false,
            })
            .ok()?
            .idx();
        self.by_addr.insert(addr.to_vec(), i);
        Some(i)
    }

    pub fn get(&self, i: PeerIdx) -> Option<&Peer> {
        self.table.at(i)
    }

    /// The application removed it from its AV. The entry stays as an
    /// internal one so msg_id sequences survive a later re-insert.
    pub fn leave_av(&mut self, i: PeerIdx) -> Result<(), RdmError> {
        let p = self.table.at_mut(i).ok_or(RdmError::UnknownPeer)?;
        p.in_av = false;
        Ok(())
    }

    /// One of "new", "hs_sent", "hs_recv", "up", "broken"; and whether the
    /// application's AV holds it.
    pub fn state(&self, i: PeerIdx) -> Option<(&'static str, bool)> {
        let p = self.get(i)?;
        let s = match (p.broken.is_some(), p.hs_sent, p.hs_recv) {
            (true, _, _) => "broken",
            (false, true, true) => "up",
            (false, false, true) => "hs_recv",
            (false, true, false) => "hs_sent",
            (false, false, false) => "new",
        };
        Some((s, p.in_av))
    }

    // ---- handshake and liveness ------------------------------------------

    /// We are about to send to `peer`: our handshake goes first, and a
    /// peer not known alive gets a deadline.
    /// Both handshakes done and the peer whole: it knows our address
    /// (REQs need not carry it) and sends to it need no deadline.
    pub fn settled(&self, i: PeerIdx) -> bool {
        self.get(i)
            .is_some_and(|p| p.hs_recv && p.hs_sent && p.alive && p.broken.is_none())
    }

    pub fn contact(&mut self, now: u64, i: PeerIdx, out: &mut Outbox) {
        self.ensure_handshake(i, out);
        let timeout = self.lim.handshake_timeout_ns;
        let Some(p) = self.table.at_mut(i) else {
            return;
        };
        if !p.alive && p.deadline.is_none() && timeout > 0 {
            p.deadline = Some(now.saturating_add(timeout));
            self.pending.push(i);
        }
    }

    pub fn ensure_handshake(&mut self, i: PeerIdx, out: &mut Outbox) {
        if let Some(p) = self.table.at_mut(i)
            && !p.hs_sent
        {
            p.hs_sent = true;
            out.ctrl.push_back(Ctrl::Handshake(i));
        }
    }

    /// Our HANDSHAKE to `peer`, advertising `window`.
    pub fn emit_handshake(
        &self,
        i: PeerIdx,
        window: u16,
        local_addr: &[u8],
        out: &mut [u8],
    ) -> Option<usize> {
        let p = self.get(i)?;
        let hdr = HandshakeRepr {
            flags: if p.hs_recv { HS_REPLY } else { 0 },
            max_version: VERSION,
            window,
            features: FEATURES,
        };
        Some(emit_handshake(out, &hdr, local_addr))
    }

    /// Its handshake arrived: it knows us, and these are its features.
    pub fn on_handshake(&mut self, i: PeerIdx, features: u64) -> bool {
        let Some(p) = self.table.at_mut(i) else {
            return false;
        };
        p.hs_recv = true;
        p.features = features & FEATURES;
        true
    }

    pub fn mark_alive(&mut self, i: PeerIdx) {
        if let Some(p) = self.table.at_mut(i) {
            p.alive = true;
            p.heard = true;
            p.deadline = None;
        }
    }

    /// Marks `peer` broken with `kind`; `false` if it was already (or is
    /// unknown): its operations failed then.
    pub fn break_peer(&mut self, i: PeerIdx, kind: ErrorKind) -> bool {
        let Some(p) = self.table.at_mut(i) else {
            return false;
        };
        if p.broken.is_some() {
            return false;
        }
        p.broken = Some(kind);
        p.deadline = None;
        true
    }

    pub fn broken(&self, i: PeerIdx) -> Option<ErrorKind> {
        self.get(i).and_then(|p| p.broken)
    }

    /// Earliest handshake deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter_map(|&p| self.get(p)?.deadline)
            .min()
    }

    /// The peers whose deadline passed at `now`, appended to `due` (their
    /// deadlines end here; their operations are to fail).
    pub fn expire(&mut self, now: u64, due: &mut Vec<PeerIdx>) {
        let mut i = 0;
        while i < self.pending.len() {
            let peer = self.pending[i];
            let Some(p) = self.table.at_mut(peer) else {
                self.pending.swap_remove(i);
                continue;
            };
            match p.deadline {
                None => {
                    self.pending.swap_remove(i);
                }
                Some(d) if d <= now => {
                    self.pending.swap_remove(i);
                    p.deadline = None;
                    due.push(peer);
                }
                Some(_) => i += 1,
            }
        }
    }

    /// The next liveness tick while operations are outstanding (`busy`).
    pub fn next_probe(&self, busy: bool) -> Option<u64> {
        (self.lim.probe_interval_ns > 0 && busy).then_some(self.probe_at)
    }

    /// Whether a liveness tick is due at `now` (the first call starts the
    /// clock).
    pub fn tick_due(&mut self, now: u64) -> bool {
        let every = self.lim.probe_interval_ns;
        if every == 0 {
            return false;
        }
        if self.probe_at == 0 {
            self.probe_at = now.saturating_add(every);
            return false;
        }
        if now < self.probe_at {
            return false;
        }
        self.probe_at = now.saturating_add(every);
        true
    }

    /// Liveness tick: probes (HANDSHAKE again) the `waited` peers that
    /// were silent for the whole tick, and starts the next one.
    pub fn probe(&mut self, waited: &[PeerIdx], out: &mut Outbox) {
        for &peer in waited {
            let Some(p) = self.table.at_mut(peer) else {
                continue;
            };
            let engaged = p.alive || p.hs_sent;
            if p.broken.is_none() && engaged && !p.heard {
                out.stats.probes += 1;
                out.ctrl.push_back(Ctrl::Handshake(peer));
            }
            p.heard = false;
        }
    }

    // ---- link --------------------------------------------------------------

    /// The glue's knowledge of the link: packet size (never below the
    /// endpoint's) and, for a process of this host, its pid for CMA.
    pub fn set_link(
        &mut self,
        i: PeerIdx,
        mtu: usize,
        cma_pid: Option<u32>,
    ) -> Result<(), RdmError> {
        let min = self.lim.mtu;
        let p = self.table.at_mut(i).ok_or(RdmError::UnknownPeer)?;
        p.mtu = mtu.max(min);
        p.cma_pid = cma_pid.filter(|&pid| pid != 0);
        Ok(())
    }

    /// Whether packets to `peer` may leave payload in the caller's buffers.
    pub fn set_zero_copy(&mut self, i: PeerIdx, on: bool) -> Result<(), RdmError> {
        self.table.at_mut(i).ok_or(RdmError::UnknownPeer)?.zero_copy = on;
        Ok(())
    }

    pub fn zero_copy(&self, i: PeerIdx) -> bool {
        self.get(i).is_some_and(|p| p.zero_copy)
    }

    /// Largest packet to `peer`.
    pub fn mtu(&self, i: PeerIdx) -> usize {
        self.get(i)
            .map_or(self.lim.mtu, |p| p.mtu.max(self.lim.mtu))
    }

    /// Whether a transfer of `len` bytes to `peer` should try CMA (the
    /// sender's side of the decision; the copier may still refuse).
    pub fn cma_candidate(&self, i: PeerIdx, len: usize) -> bool {
        self.lim.cma_min > 0
            && len >= self.lim.cma_min
            && self
                .get(i)
                .is_some_and(|p| p.cma_pid.is_some() && p.hs_recv && p.features & FEATURE_CMA != 0)
    }

    /// The copier's side: the pid to use for a descriptor from `peer`
    /// stating `desc_pid`, or `None` when we cannot copy (no CMA here,
    /// none to that peer, or the descriptor names another process).
    pub fn cma_pid_for(&self, i: PeerIdx, desc_pid: u32, have_cma: bool) -> Option<u32> {
        if !have_cma {
            return None;
        }
        let pid = self.get(i)?.cma_pid?;
        (desc_pid == 0 || desc_pid == pid).then_some(pid)
    }

    /// A copy was refused: stop offering CMA to that peer.
    pub fn cma_refused(&mut self, i: PeerIdx) {
        if let Some(p) = self.table.at_mut(i) {
            p.cma_pid = None;
        }
    }
}
