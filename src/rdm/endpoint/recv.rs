//! Arriving datagrams: parsed, their sender identified, and routed to the
//! part they concern; and the application's receive calls.

use super::Endpoint;
use crate::mem::UserIov;
use crate::rdm::peer::PeerIdx;
use crate::rdm::rx::Want;
use crate::rdm::{ErrorKind, FastRecv, OpFlags, PROV_ERR_VERSION, PacketOutcome, RdmError};
use crate::wire::rdm::{Packet, PacketType, Repr, WireError};

impl Endpoint {
    /// A datagram from the transport. `src`: the sender if the transport
    /// could map it to one of our peers.
    pub fn handle_packet(
        &mut self,
        _now: u64,
        src: Option<PeerIdx>,
        bytes: &[u8],
    ) -> PacketOutcome {
        let pkt = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(WireError::BadVersion(_)) => {
                self.out.stats.bad_version += 1;
                // A handshake in another version: fail what we send there
                // rather than let it hang.
                if bytes.get(1).copied() == Some(u8::from(PacketType::Handshake))
                    && let Some(peer) = src
                {
                    self.fail_peer_ops(peer, ErrorKind::Io, PROV_ERR_VERSION);
                }
                return PacketOutcome::Dropped;
            }
            Err(_) => {
                self.out.stats.malformed += 1;
                return PacketOutcome::Dropped;
            }
        };
        let repr = match Repr::parse(&pkt) {
            Ok(r) => r,
            Err(_) => {
                self.out.stats.malformed += 1;
                return PacketOutcome::Dropped;
            }
        };
        let addr = match &repr {
            Repr::Req { addr, .. } => *addr,
            Repr::Handshake { addr, .. } => Some(*addr),
            _ => None,
        };
        let Some((peer, learned)) = self.resolve(src, addr) else {
            self.out.stats.unknown_src += 1;
            return PacketOutcome::Dropped;
        };
        self.peers.mark_alive(peer);
        let out = match repr {
            Repr::Req { hdr, payload, .. } => {
                self.ensure_handshake(peer);
                self.rx.on_req(&mut ctx!(self), peer, hdr, payload)
            }
            Repr::Handshake { hdr, .. } => {
                self.on_handshake(peer, hdr);
                PacketOutcome::Consumed
            }
            Repr::Cts(c) => {
                self.on_cts(peer, c);
                PacketOutcome::Consumed
            }
            Repr::Data { hdr, payload } => self.rx.on_data(&mut ctx!(self), peer, hdr, payload),
            Repr::Receipt(r) => {
                self.on_receipt(peer, r);
                PacketOutcome::Consumed
            }
            Repr::Credit(c) => {
                self.on_credit(peer, c);
                PacketOutcome::Consumed
            }
            Repr::Rtw { hdr, payload } => self.on_rtw(peer, hdr, payload),
            Repr::Rtr { hdr, desc } => self.on_rtr(peer, hdr, desc),
            Repr::Rta { hdr, payload } => self.on_rta(peer, hdr, payload),
            Repr::ReadRsp { hdr, payload } => {
                self.on_read_rsp(peer, hdr, payload);
                PacketOutcome::Consumed
            }
            Repr::WriteRsp(r) => {
                self.on_write_rsp(peer, r);
                PacketOutcome::Consumed
            }
            Repr::AtomRsp { hdr, payload } => {
                self.on_atom_rsp(peer, hdr, payload);
                PacketOutcome::Consumed
            }
            Repr::Fin(f) => {
                self.on_fin(peer, f);
                PacketOutcome::Consumed
            }
            Repr::Unknown(_) => {
                self.out.stats.unknown_type += 1;
                PacketOutcome::Dropped
            }
        };
        match out {
            PacketOutcome::Consumed if learned => PacketOutcome::NewPeer(peer),
            PacketOutcome::Deferred(_) => {
                self.out.stats.deferred += 1;
                out
            }
            _ => out,
        }
    }

    /// A packet from `peer` received straight into a posted receive,
    /// around the general dispatch: a plain eager REQ
    /// (`wire::rdm::parse_plain_eager`) from a settled peer in the AV,
    /// next in its order, with a plain receive posted that holds it. Its
    /// completion is returned, not queued, so the caller writes it to the
    /// CQ at once; for that order to hold, it is taken only while no
    /// completion is queued. `None`: nothing changed; hand the packet to
    /// `handle_packet`. Off with `Config::fast_eager`.
    pub fn fast_recv(&mut self, peer: PeerIdx, bytes: &[u8]) -> Option<FastRecv> {
        if !self.cfg.fast_eager || !self.out.cq.is_empty() || !self.peers.settled(peer) {
            return None;
        }
        let (hdr, payload) = crate::wire::rdm::parse_plain_eager(bytes)?;
        let done = self.rx.fast_recv(&mut ctx!(self), peer, &hdr, payload)?;
        self.peers.mark_alive(peer);
        self.out.stats.fast_recvs += 1;
        Some(done)
    }

    /// The peer a packet is from: the transport's mapping, else the address
    /// the packet carries (creating an internal entry). `true`: the glue
    /// did not know it.
    fn resolve(&mut self, src: Option<PeerIdx>, addr: Option<&[u8]>) -> Option<(PeerIdx, bool)> {
        if let Some(p) = src
            && self.peers.get(p).is_some()
        {
            return Some((p, false));
        }
        let a = addr.filter(|a| !a.is_empty())?;
        Some((self.peers.insert(a, false)?, true))
    }

    /// fi_recv/fi_recvmsg (FI_MULTI_RECV allowed). `src`: FI_DIRECTED_RECV.
    pub fn recv(
        &mut self,
        _now: u64,
        iov: UserIov,
        src: Option<PeerIdx>,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let want = Want {
            tag: 0,
            ignore: 0,
            src,
        };
        self.rx
            .post(&mut ctx!(self), iov, false, want, context, flags)
    }

    /// fi_trecv/fi_trecvmsg (FI_PEEK, FI_CLAIM, FI_DISCARD allowed).
    #[allow(clippy::too_many_arguments)]
    pub fn trecv(
        &mut self,
        _now: u64,
        iov: UserIov,
        src: Option<PeerIdx>,
        tag: u64,
        ignore: u64,
        context: u64,
        flags: OpFlags,
    ) -> Result<(), RdmError> {
        let want = Want { tag, ignore, src };
        self.rx
            .post(&mut ctx!(self), iov, true, want, context, flags)
    }

    /// fi_cancel: a posted receive with this context completes with
    /// ErrorKind::Canceled. Returns whether one was found.
    pub fn cancel(&mut self, context: u64) -> bool {
        self.rx.cancel(&mut self.out, context)
    }
}
