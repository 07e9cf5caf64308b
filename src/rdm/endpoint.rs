//! The endpoint: a coordinator of owned parts, in the manner of
//! quinn-proto's `Connection`. Each part keeps its state private and its
//! invariants behind its methods:
//!
//! - `peer::Peers`: the peer table, handshakes, deadlines and probes, the
//!   link to each peer (packet size, CMA reach);
//! - `tx::Tx`: send operations, their inject copies, the send queue, and
//!   per peer the msg_id sequence, credit window and pause;
//! - `rx::Rx`: posted receives, incoming messages, ordering, matching,
//!   placement, and (`rx::store`) the budgets of data that came early;
//! - `rma::RmaInit` and `rma_target::RmaServe`: RMA and atomics as
//!   initiator and as target.
//!
//! The coordinator owns what they share — the `Outbox` (control and RMA
//! packets to send, completions, counters) and the glue's CMA, lent to a
//! part for one call as `outbox::Ctx` — and carries out the steps that
//! span parts: a packet's dispatch, a CTS advancing a send, a handshake
//! releasing sends and RMA, a peer's failure failing its sends, receives
//! and RMA. Those steps are in the submodules `send`, `recv`, `rma`,
//! `transmit` and `liveness`.

/// Lends a part what the parts share (`outbox::Ctx`), borrowed from the
/// coordinator's fields beside the part itself.
macro_rules! ctx {
    ($s:ident) => {
        crate::rdm::outbox::Ctx {
            out: &mut $s.out,
            peers: &mut $s.peers,
            cma: $s.cma.as_deref_mut(),
        }
    };
}

mod liveness;
mod recv;
mod rma;
mod send;
mod transmit;

use super::outbox::Outbox;
use super::peer::{INITIAL_WINDOW, PeerIdx, PeerLimits, Peers};
use super::proto::Cutoffs;
use super::rma::RmaInit;
use super::rma_target::{RmaServe, ServeLimits};
use super::rx::Rx;
use super::tx::Tx;
use super::{Cma, Completion, Config, ErrorKind, ExtSlice, MAX_MEDIUM, RdmError, Stats, TxError};
use crate::wire::rdm::{DATA_LEN, MAX_ADDR_LEN, REQ_LEN};

/// One RDM endpoint. `Send` (the glue may move it between threads; it
/// serialises calls itself), never shared: every call takes `&mut self`.
pub struct Endpoint {
    cfg: Config,
    cut: Cutoffs,
    // ---- the parts ----
    peers: Peers,
    tx: Tx,
    rx: Rx,
    rma: RmaInit,
    serve: RmaServe,
    // ---- what they share ----
    out: Outbox,
    /// The glue's single-copy access to same-host peers (module `cma`).
    cma: Option<Box<dyn Cma + Send>>,
    // ---- scheduling ----
    /// poll_transmit alternates between sends and RMA.
    rma_turn: bool,
    /// Reused by the liveness tick.
    scratch_peers: Vec<PeerIdx>,
}

impl Endpoint {
    pub fn new(mut cfg: Config) -> Self {
        cfg.local_addr.truncate(MAX_ADDR_LEN);
        // Room for a REQ with our address and at least some data.
        cfg.mtu = cfg.mtu.max(REQ_LEN + cfg.local_addr.len() + 64);
        cfg.tx_size = cfg.tx_size.max(1);
        // The window is advertised in a u16 and never below what senders
        // assume before the handshake.
        cfg.reorder_window = cfg
            .reorder_window
            .clamp(INITIAL_WINDOW as usize, u16::MAX as usize);
        cfg.rx_size = cfg.rx_size.max(1);
        cfg.rma_target_max = cfg.rma_target_max.max(1);
        let eager_fit = cfg.mtu - REQ_LEN - cfg.local_addr.len();
        let cut = Cutoffs {
            eager_max: cfg.eager_max.min(eager_fit),
            medium_max: cfg
                .medium_max
                .min(MAX_MEDIUM)
                .max(cfg.eager_max.min(eager_fit)),
        };
        cfg.cts_window = cfg.cts_window.max(cfg.mtu - DATA_LEN);
        let max_msgs = Rx::max_msgs(&cfg);
        Endpoint {
            cut,
            peers: Peers::new(PeerLimits {
                max_peers: cfg.max_peers,
                mtu: cfg.mtu,
                cma_min: cfg.cma_min,
                handshake_timeout_ns: cfg.handshake_timeout_ns,
                probe_interval_ns: cfg.probe_interval_ns,
            }),
            tx: Tx::new(cfg.tx_size, cfg.inject_size),
            rx: Rx::new(&cfg),
            rma: RmaInit::new(cfg.tx_size, cfg.cts_window, cfg.pid),
            serve: RmaServe::new(ServeLimits {
                max: cfg.rma_target_max,
                mtu: cfg.mtu,
                cts_window: cfg.cts_window,
            }),
            out: Outbox::new(
                2 * max_msgs + 64,
                cfg.tx_size + cfg.rma_target_max,
                cfg.tx_size + cfg.rx_size + 64,
            ),
            cma: None,
            rma_turn: false,
            scratch_peers: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn stats(&self) -> &Stats {
        &self.out.stats
    }

    /// Eager and medium cut-offs in force (eager clipped to one packet).
    pub fn eager_max(&self) -> usize {
        self.cut.eager_max
    }

    pub fn medium_max(&self) -> usize {
        self.cut.medium_max
    }

    // ---- peers ---------------------------------------------------------

    /// Adds an AV entry (or promotes the internal entry of that address).
    pub fn insert_peer(&mut self, addr: &[u8]) -> Result<PeerIdx, RdmError> {
        if addr.is_empty() || addr.len() > MAX_ADDR_LEN {
            return Err(RdmError::InvalidArgument);
        }
        self.peers.insert(addr, true).ok_or(RdmError::Again)
    }

    /// Removes an AV entry. The entry stays as an internal one so msg_id
    /// sequences survive a later re-insert (as EFA keeps its peer state);
    /// messages from it are then reported with `AddrNotAvail`.
    pub fn remove_peer(&mut self, peer: PeerIdx) -> Result<(), RdmError> {
        self.peers.leave_av(peer)
    }

    pub fn peer_addr(&self, peer: PeerIdx) -> Option<&[u8]> {
        self.peers.get(peer).map(|p| p.addr())
    }

    pub fn lookup_peer(&self, addr: &[u8]) -> Option<PeerIdx> {
        self.peers.lookup(addr)
    }

    /// What the endpoint knows of a peer (monitoring): one of "new",
    /// "hs_sent" (our handshake went, none came back), "hs_recv", "up"
    /// (both ways), "broken" (the transport gave up on it); and whether
    /// the application's AV holds it.
    pub fn peer_state(&self, peer: PeerIdx) -> Option<(&'static str, bool)> {
        self.peers.state(peer)
    }

    /// Whether operations with `peer` fail (and with which error).
    pub fn peer_broken(&self, peer: PeerIdx) -> Option<ErrorKind> {
        self.peers.broken(peer)
    }

    /// The glue found `peer` gone (its process died, its shared-memory
    /// ring closed): break it as if the transport had given up on it.
    pub fn peer_unreachable(&mut self, peer: PeerIdx) {
        self.peer_failed(peer, TxError::Unreachable);
    }

    /// Installs the glue's CMA. Without one, every long-read REQ and CMA
    /// RMA request from peers is answered with the packet fallback.
    pub fn set_cma(&mut self, c: Box<dyn Cma + Send>) {
        self.cma = Some(c);
    }

    /// What the glue knows of the link to `peer`: the largest packet it
    /// takes (≥ `Config::mtu` to matter; `poll_transmit`'s buffer limits
    /// it too), and, for a process on this host whose memory we may read
    /// and write with CMA, its pid.
    pub fn set_peer_link(
        &mut self,
        peer: PeerIdx,
        mtu: usize,
        cma_pid: Option<u32>,
    ) -> Result<(), RdmError> {
        self.peers.set_link(peer, mtu, cma_pid)
    }

    /// Whether send data to `peer` may go out of the caller's buffers by
    /// reference (`TxInfo::ext`): the glue turns it on for peers whose
    /// transport gathers it (UDP), never for links that need the packet
    /// whole (a ring).
    pub fn set_peer_zero_copy(&mut self, peer: PeerIdx, on: bool) -> Result<(), RdmError> {
        self.peers.set_zero_copy(peer, on)
    }

    /// The bytes a zero-copy packet (`TxInfo::ext`, with its `token`)
    /// leaves in the send's buffers, handed to `f` as borrowed slices (at
    /// most `EXT_PIECES`). `false` when the send is over (completed or
    /// failed: its buffers are the caller's again) or the range is not
    /// whole: then the slices given so far must be discarded and the
    /// datagram not sent.
    pub fn ext_slices<'a>(&'a self, token: u64, e: ExtSlice, mut f: impl FnMut(&'a [u8])) -> bool {
        let Some(iov) = self.ext_iov(token) else {
            return false;
        };
        let mut n = 0;
        iov.slices(e.off as usize, e.len as usize, |s| {
            n += s.len();
            f(s);
        });
        n == e.len as usize
    }

    /// As `ext_slices`, copying the bytes into `dst` (exactly `e.len`
    /// long): for links that need the packet whole, and the simulator.
    pub fn ext_copy(&self, token: u64, e: ExtSlice, dst: &mut [u8]) -> bool {
        self.ext_iov(token).is_some_and(|iov| {
            dst.len() == e.len as usize && iov.copy_out(e.off as usize, dst) == dst.len()
        })
    }

    fn ext_iov(&self, token: u64) -> Option<&crate::mem::UserIov> {
        match crate::rdm::outbox::untoken(token) {
            (crate::rdm::outbox::TOK_TX, h) => self.tx.iov_of(h),
            (crate::rdm::outbox::TOK_RMA, h) => self.rma.iov_of(h),
            _ => None,
        }
    }

    // ---- what spans the parts --------------------------------------------

    /// The transport gave up on a datagram to `peer`. Its message sequence
    /// is broken from then on (the receiver would wait forever for the lost
    /// msg_id, or the sender for a lost CTS or CREDIT), so — as when a
    /// device reports a peer unreachable — every operation with it fails
    /// now and later sends to it fail at once with the same error.
    fn peer_failed(&mut self, peer: PeerIdx, e: TxError) {
        self.out.stats.send_failures += 1;
        if !self.peers.break_peer(peer, e.kind()) {
            return;
        }
        self.tx.forget_peer(peer);
        self.fail_peer_ops(peer, e.kind(), 0);
        self.rx.fail_peer(&mut ctx!(self), peer, e.kind());
    }

    /// Fails every send and RMA operation toward `peer` (transport gave
    /// up, timeout, version) and stops serving its reads.
    fn fail_peer_ops(&mut self, peer: PeerIdx, kind: ErrorKind, prov_errno: i32) {
        self.fail_peer_rma(peer, kind, prov_errno);
        self.tx.fail_peer(peer, kind, prov_errno, &mut self.out);
    }

    // ---- completions and monitoring ---------------------------------------

    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.out.cq.pop_front()
    }

    /// Whether `poll_completion` has something.
    pub fn has_completion(&self) -> bool {
        !self.out.cq.is_empty()
    }

    /// False while unexpected storage is at its limit (in-order messages
    /// without a receive are then deferred; monitoring and tests).
    pub fn can_accept_packets(&self) -> bool {
        self.rx.can_accept()
    }

    /// Operations in flight (tests, shutdown).
    pub fn pending_ops(&self) -> (usize, usize) {
        (self.tx.len() + self.rma.len(), self.rx.len())
    }

    /// Bytes held for unexpected and out-of-order messages.
    pub fn stored_bytes(&self) -> (usize, usize) {
        self.rx.stored_bytes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_is_send() {
        fn send<T: Send>() {}
        send::<super::Endpoint>();
        send::<super::Completion>();
    }
}
