//! Address translation: fi_addr ↔ protocol peer ↔ device route (address
//! handle, QPN, QKey) and same-host ring. A peer is noted once, when the
//! application names it or when it first speaks; the AV can change under
//! us (fi_av_remove, a sender inserted after it spoke), which `revalidate`
//! and `sender` follow.

use super::link::Link;
use crate::fi::addr::{EpAddr, Kind};
use crate::fi::av::{ADDR_NOTAVAIL, Av};
use crate::fi::errno::{Error, Result};
use crate::rdm::matcher::TagHasher;
use crate::rdm::{self, PeerIdx};
use crate::srd::{Ah, DeviceAddr};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

/// Largest SRD payload to a peer on this host over UDP (loopback): one
/// whole datagram.
pub(super) const LOCAL_PAYLOAD: usize =
    crate::io::udp::MAX_UDP_PAYLOAD - crate::wire::srd::DATA_HEADER_LEN;

/// Where a protocol peer is on the device.
#[derive(Clone, Copy, Debug)]
pub(super) struct Route {
    pub ah: Ah,
    pub qpn: u32,
    pub qkey: u32,
    pub dev: DeviceAddr,
}

#[derive(Default)]
pub(super) struct Routes {
    /// fi_addr → protocol peer.
    by_fi: Vec<Option<PeerIdx>>,
    /// protocol peer → fi_addr (ADDR_NOTAVAIL for senders not in the AV).
    fi_of: Vec<u64>,
    routes: Vec<Option<Route>>,
    /// (device address, QPN) of a sender → protocol peer.
    by_dev: HashMap<(DeviceAddr, u32), PeerIdx, BuildHasherDefault<TagHasher>>,
    /// `Av::removals()` when `by_fi` was last checked.
    av_removals: u64,
    /// This endpoint itself, once the application names it (its packets
    /// to itself are delivered in process, as a ring delivers them).
    own: Option<PeerIdx>,
}

impl Routes {
    pub fn route(&self, p: PeerIdx) -> Option<Route> {
        self.routes.get(p as usize).copied().flatten()
    }

    /// Whether `p` is this endpoint itself.
    pub fn is_own(&self, p: PeerIdx) -> bool {
        self.own == Some(p)
    }

    pub fn has_route(&self, p: PeerIdx) -> bool {
        self.routes.get(p as usize).is_some_and(|r| r.is_some())
    }

    /// The peer's fi_addr, ADDR_NOTAVAIL if it is not in the AV.
    pub fn fi_addr(&self, p: PeerIdx) -> u64 {
        self.fi_of.get(p as usize).copied().unwrap_or(ADDR_NOTAVAIL)
    }

    pub fn in_av(&self, p: PeerIdx) -> bool {
        self.fi_addr(p) != ADDR_NOTAVAIL
    }

    /// Peers noted so far (indices `0..len`).
    pub fn len(&self) -> usize {
        self.fi_of.len()
    }

    fn grow(&mut self, p: PeerIdx) {
        let pi = p as usize;
        if self.fi_of.len() <= pi {
            self.fi_of.resize(pi + 1, ADDR_NOTAVAIL);
            self.routes.resize(pi + 1, None);
        }
    }
}

impl Link {
    /// The protocol peer for an AV entry, created on first use.
    pub fn peer_of(&mut self, r: &mut rdm::Endpoint, av: &Av, fi_addr: u64) -> Result<PeerIdx> {
        self.revalidate(r, av);
        let i = usize::try_from(fi_addr).map_err(|_| Error::Inval)?;
        if let Some(Some(p)) = self.routes.by_fi.get(i) {
            return Ok(*p);
        }
        let a = av.lookup(fi_addr).ok_or(Error::Inval)?;
        if a.kind != Kind::Rdm {
            return Err(Error::Inval);
        }
        // Also marks a peer first learned from the network as an AV peer.
        let p = r.insert_peer(&a.to_bytes()).map_err(super::map_rdm)?;
        let by_fi = &mut self.routes.by_fi;
        if by_fi.len() <= i {
            by_fi.resize(i + 1, None);
        }
        by_fi[i] = Some(p);
        self.note_peer(r, p, Some(fi_addr));
        Ok(p)
    }

    /// Records what we know of peer `p`: its fi_addr, its device route and,
    /// on this host, its ring.
    pub fn note_peer(&mut self, r: &mut rdm::Endpoint, p: PeerIdx, fi_addr: Option<u64>) {
        self.routes.grow(p);
        let pi = p as usize;
        if let Some(f) = fi_addr {
            self.routes.fi_of[pi] = f;
        }
        if self.routes.routes[pi].is_some() {
            return;
        }
        let Some(a) = r.peer_addr(p).and_then(|b| EpAddr::from_bytes(b).ok()) else {
            return;
        };
        if a == self.name() {
            self.routes.own = Some(p);
        }
        // Same host: the peer's ring, if it offers one we can open.
        let same_host = a.host_id == self.host_id();
        if same_host
            && a.pid != 0
            && let Some(shm) = self.shm.as_mut()
        {
            shm.connect(r, p, &a);
        }
        self.note_addr(p, &a);
        let dev = DeviceAddr::new(*a.sock.ip(), a.sock.port());
        if let Ok(ah) = self.t.dev.create_ah(self.pd, dev) {
            self.routes.routes[pi] = Some(Route {
                ah,
                qpn: a.qpn,
                qkey: a.qkey,
                dev,
            });
            self.routes.by_dev.insert((dev, a.qpn), p);
            // A peer on this host that we reach over UDP (no ring): its
            // datagrams travel over loopback, whatever the interface's MTU,
            // so they may be as large as one datagram holds.
            let by_ring = self.shm.as_ref().is_some_and(|s| s.routes(p));
            self.udp_peers |= !by_ring;
            if same_host && !by_ring && self.t.dev.set_peer_max_payload(ah, LOCAL_PAYLOAD).is_ok() {
                let _ = r.set_peer_link(p, LOCAL_PAYLOAD, None);
            }
            // Over UDP, send data leaves the caller's buffers by iovec.
            if self.zcopy && !by_ring && self.routes.own != Some(p) {
                let _ = r.set_peer_zero_copy(p, true);
            }
        }
    }

    /// The protocol peer of a datagram's sender, if known (or in the AV).
    pub fn sender(
        &mut self,
        r: &mut rdm::Endpoint,
        av: Option<&Av>,
        dev: DeviceAddr,
        qpn: u32,
    ) -> Option<PeerIdx> {
        if let Some(&p) = self.routes.by_dev.get(&(dev, qpn)) {
            if self.routes.in_av(p) {
                return Some(p);
            }
            // A sender first learned from the network: once the application
            // inserts it into the AV, the protocol must know it as an AV peer.
            if let Some(av) = av
                && let Some(fi) = av.find(&(dev.socket(), qpn))
            {
                return self.peer_of(r, av, fi).ok().or(Some(p));
            }
            return Some(p);
        }
        let av = av?;
        let fi = av.find(&(dev.socket(), qpn))?;
        self.peer_of(r, av, fi).ok()
    }

    /// Forgets cached fi_addr → peer mappings whose AV entries were removed.
    fn revalidate(&mut self, r: &mut rdm::Endpoint, av: &Av) {
        let seen = av.removals();
        let rt = &mut self.routes;
        if seen == rt.av_removals {
            return;
        }
        rt.av_removals = seen;
        for i in 0..rt.by_fi.len() {
            let Some(p) = rt.by_fi[i] else { continue };
            if av.lookup(i as u64).is_none() {
                rt.by_fi[i] = None;
                if let Some(f) = rt.fi_of.get_mut(p as usize) {
                    *f = ADDR_NOTAVAIL;
                }
                let _ = r.remove_peer(p);
            }
        }
    }

    /// The fi_addr of a completion's peer (a sender first seen on the
    /// network may have been inserted since).
    pub fn fi_addr_of(&mut self, av: Option<&Av>, p: PeerIdx) -> u64 {
        let known = self.routes.fi_addr(p);
        if known != ADDR_NOTAVAIL {
            return known;
        }
        let found = self
            .routes
            .route(p)
            .and_then(|r| av.and_then(|av| av.find(&(r.dev.socket(), r.qpn))));
        if let Some(f) = found {
            if let Some(slot) = self.routes.fi_of.get_mut(p as usize) {
                *slot = f;
            }
            return f;
        }
        ADDR_NOTAVAIL
    }
}
