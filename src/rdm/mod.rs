//! The RDM protocol as a sans-IO state machine (DESIGN §4).
//!
//! One [`Endpoint`] per libfabric RDM endpoint. Below it: any reliable,
//! unordered, exactly-once datagram service with a maximum payload
//! (`Config::mtu`) — an SRD QP between hosts, the shared-memory rings inside
//! one. The glue (`fi`) feeds it received datagrams (`handle_packet`), asks
//! it for datagrams to send (`poll_transmit`), reports each datagram's fate
//! (`on_send_complete`) and drives timers (`poll_timeout`/`handle_timeout`).
//!
//! # Back-pressure (receive side) and the glue's receive buffers
//! A datagram the transport delivered is never retransmitted, so the
//! endpoint never drops a valid one. Three kinds of arrivals:
//!
//! 1. Control packets (HANDSHAKE, CTS, CREDIT, RECEIPT, FIN, responses) and
//!    packets of a message that already has a receive buffer: need no
//!    storage, always consumed.
//! 2. Out-of-order messages (msg_id ahead of the next one expected from
//!    that peer): always consumed and stored. Their number is bounded per
//!    peer by a msg credit window: a sender starts message `m` only when
//!    `m < next + window`, where `next` is what the receiver last reported
//!    in a CREDIT packet (sent every half window) and `window` is the
//!    receiver's reorder window from its HANDSHAKE (16 until then).
//! 3. The next in-order message from a peer with no matching receive:
//!    stored as unexpected if the limits allow (`unexp_max_bytes`,
//!    `unexp_max_count`), otherwise `handle_packet` returns
//!    [`PacketOutcome::Deferred`] with the sender: NOT consumed. Nothing
//!    else from that peer reaches matching before it (its later messages
//!    are held out of order, bounded by the window, as above), and the
//!    sender stops at the window's end.
//!    RMA requests beyond `rma_target_max` are deferred the same way.
//!
//! The glue's contract: keep a deferred packet's bytes and present them
//! again later. Deferral is per sender: one sender's deferred packet must
//! never keep another sender's packets from the endpoint (a shared receive
//! queue stalled at a deferred head turns a resource limit into a deadlock:
//! the packet the application waits for may sit behind it). [`Inbox`] does
//! this: it copies each deferred packet into a queue of its sender and
//! presents the queues again, round robin, on every progress round. What
//! one sender can have deferred is bounded by the protocol (the packets of
//! at most two of its messages, and its RMA requests, which its `tx_size`
//! bounds); `Inbox` refuses a sender that exceeds a generous multiple of
//! that (a protocol violation) by breaking it.

//! # Failures
//! `on_send_complete(token, Err(_))` means the transport gave up on a
//! datagram (SRD: retry or RNR limit exhausted). The peer's message
//! sequence is then broken — a lost msg_id would stall its receiver — so
//! the peer is marked broken: every operation with it completes with the
//! error (`Unreachable` / `Io`), receives it was filling fail, and
//! later sends to it complete with the same error at once. A peer that
//! never answers anything (no packet, no datagram acknowledged) fails the
//! sends toward it with `TimedOut` after `handshake_timeout_ns`.
//!
//! A peer that dies while we only wait for it (a long-CTS send waiting for
//! its CTS, a read or atomic waiting for the answer, a receive being filled
//! or directed at it) has no datagram of ours in flight for the transport
//! to give up on. So every `probe_interval_ns` the endpoint looks at the
//! peers operations wait on (`waited_peers`), and one that sent nothing
//! during the whole tick gets a probe (its HANDSHAKE again, harmless to a
//! live peer); the transport fails the probe of a dead one and the peer
//! breaks as above. The glue can also declare a peer gone itself
//! (`peer_unreachable`, e.g. from a shared-memory liveness check). A broken
//! peer's posted directed receives fail too, and so do later ones that no
//! stored message of it satisfies.

//! # RMA and atomics (emulated)
//! Initiator: `write`, `inject_write`, `read`, `atomic` (module `rma`).
//! Target: the glue installs its memory registry with `set_rma_target`
//! (trait [`RmaTarget`]); requests are checked against it for their whole
//! range before any byte moves. Every operation completes at the
//! initiator on the target's answer (WRITERSP / last READRSP / ATOMRSP),
//! so transmit and delivery complete hold for all of them and refused
//! accesses come back as error completions (`AccessDenied`,
//! `InvalidArgument`; `NotSupported` when the target has no registry or the peer
//! predates RMA). The target reports only writes with remote CQ data as
//! completions (`REMOTE_WRITE | RMA | REMOTE_CQ_DATA`); counter events
//! for remote reads and writes come from `take_remote_counts`.
//! Large writes and reads keep at most `cts_window` bytes in the
//! transport and take turns with sends in `poll_transmit`.

//! # Same-host peers: packet size and single copy (module `cma`)
//! The glue tells the endpoint what it knows of a peer's link with
//! `set_peer_link(peer, mtu, cma_pid)`: packets to it may be `mtu` bytes
//! (a shared-memory ring slot rather than a UDP datagram; eager then
//! carries up to one such packet), and with `cma_pid` the peer is a process
//! of this host whose memory CMA may reach. Then, once the peer's
//! handshake shows FEATURE_CMA, messages of at least `Config::cma_min`
//! bytes use the long-read protocol (the REQ carries a description of the
//! sender's buffer; the receiver, after matching, reads it straight into
//! the receive buffer through the glue's [`Cma`] and answers FIN), and
//! RMA writes/reads that large are done by the target with one CMA copy.
//! When the copy is refused (EPERM, ENOSYS, CMA off) the receiver falls
//! back to long-CTS for that message (a CTS for a long-read REQ turns it
//! into a long-CTS send) and the target to packets, and the sender stops
//! trying CMA with that peer.

#![forbid(unsafe_code)]

pub mod atomic;
mod cma;
mod endpoint;
pub mod inbox;
pub mod matcher;
mod outbox;
pub mod peer;
pub mod pool;
mod proto;
pub mod reorder;
mod rma;
mod rma_target;
mod rx;
mod tx;
pub mod types;

pub use atomic::{AtomicKind, AtomicOp, Datatype};
pub use cma::{Cma, CmaError};
pub use endpoint::Endpoint;
pub use inbox::Inbox;
pub use peer::PeerIdx;
pub use rma::{RemoteCounts, RmaTarget};
pub use types::{Access, CompFlags, ErrorKind, OpFlags};

use crate::mem::UserIov;

/// Endpoint configuration; every pool is sized from it at creation.
#[derive(Clone, Debug)]
pub struct Config {
    /// Largest datagram the transport carries (bytes of RDM packet).
    pub mtu: usize,
    /// Concurrent send operations (fi tx_attr->size).
    pub tx_size: usize,
    /// Concurrent posted receives (fi rx_attr->size).
    pub rx_size: usize,
    /// Largest message sent in one packet (clipped to what fits in `mtu`).
    pub eager_max: usize,
    /// Largest message sent as unsolicited packets; above: long-CTS.
    pub medium_max: usize,
    /// Largest inject payload (copied at post time).
    pub inject_size: usize,
    /// Bytes of in-order messages kept before a receive is posted, counted
    /// as the buffers holding them (256 B for small packets, `mtu` else).
    pub unexp_max_bytes: usize,
    /// Messages kept before a receive is posted (in order or not).
    pub unexp_max_count: usize,
    /// msg_ids a peer may run ahead of the next one we deliver (the ring,
    /// advertised in our handshake as the peer's credit window; ≥ 16).
    pub reorder_window: usize,
    /// Messages beyond the ring, all peers together (only senders that
    /// ignore the window get there).
    pub reorder_overflow: usize,
    /// Sizing hint for out-of-order storage (what is preallocated);
    /// out-of-order messages are bounded by the credit window, not refused.
    pub reorder_max_bytes: usize,
    /// Bytes a long-CTS receiver grants ahead of what it received.
    pub cts_window: usize,
    /// Multi-receive buffers are released when less than this is left.
    pub min_multi_recv: usize,
    /// A peer that neither answers nor acknowledges anything for this long
    /// fails the operations toward it (`TimedOut`).
    pub handshake_timeout_ns: u64,
    /// Liveness tick: a peer that operations wait on and that sent nothing
    /// (and had nothing confirmed) for a whole tick gets a probe (a repeated
    /// HANDSHAKE); the transport's verdict on it decides. 0: no probes.
    pub probe_interval_ns: u64,
    /// Selective completion on the transmit / receive side: only
    /// operations with `OpFlags::COMPLETION` are reported (errors always are).
    pub tx_selective: bool,
    pub rx_selective: bool,
    /// Peers, AV entries and senders learned from the network together.
    pub max_peers: usize,
    /// Our own raw address, sent in handshakes and early REQs.
    pub local_addr: Vec<u8>,
    /// RMA target side: reads being served and atomic responses waiting,
    /// each at most this many (a request beyond is deferred:
    /// `PacketOutcome::Deferred`). Writes in progress are bounded by the
    /// initiators' `tx_size` instead (never deferred).
    pub rma_target_max: usize,
    /// Messages and RMA transfers of at least this many bytes to a peer
    /// with CMA (`set_peer_link`) are moved with one CMA copy; 0 never.
    pub cma_min: usize,
    /// Our process id, stated in CMA descriptors (0: not stated).
    pub pid: u32,
    /// Place the next eager message of a peer straight into its matched
    /// receive, without per-message state (`rx::Rx::place_eager`).
    pub fast_eager: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mtu: 8192,
            tx_size: 1024,
            rx_size: 1024,
            eager_max: 8192,
            medium_max: 64 * 1024,
            inject_size: 256,
            unexp_max_bytes: 16 << 20,
            unexp_max_count: 4096,
            reorder_window: 256,
            reorder_overflow: 1024,
            reorder_max_bytes: 8 << 20,
            cts_window: 1 << 20,
            min_multi_recv: 64,
            handshake_timeout_ns: 10_000_000_000,
            probe_interval_ns: 1_000_000_000,
            tx_selective: false,
            rx_selective: false,
            max_peers: 65536,
            local_addr: Vec::new(),
            rma_target_max: 1024,
            cma_min: 16 * 1024,
            pid: 0,
            fast_eager: true,
        }
    }
}

/// Errors returned by the posting calls; `fi::errno` maps them to -FI_E*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdmError {
    /// A pool is exhausted; retry after progress (-FI_EAGAIN).
    Again,
    /// Bad peer index (-FI_EINVAL).
    UnknownPeer,
    /// Inconsistent flags or arguments (-FI_EINVAL).
    InvalidArgument,
    /// FI_INJECT payload larger than `inject_size` (-FI_EMSGSIZE).
    TooLong,
    /// FI_CLAIM for a context that claimed nothing (-FI_ENOMSG).
    NoMessage,
}

/// The transport's verdict on one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Retry or RNR limit exhausted, peer gone (`ErrorKind::Unreachable`).
    Unreachable,
    /// Anything else (`ErrorKind::Io`).
    Io,
}

/// One datagram to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxInfo {
    pub peer: PeerIdx,
    /// Bytes written into `poll_transmit`'s buffer.
    pub len: usize,
    /// Hand back to `on_send_complete` exactly once.
    pub token: u64,
    /// Zero copy (peers set with `set_peer_zero_copy`): the packet goes on
    /// with these bytes of the send's buffers, which the caller gathers
    /// with `Endpoint::ext_slices(token, ..)` each time it transmits it.
    pub ext: Option<ExtSlice>,
}

/// Bytes `off..off + len` of a send's buffers, the tail of a packet left
/// in the caller's memory (`TxInfo::ext`). They stay valid while the send
/// lives: `Endpoint::ext_slices` says when it no longer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtSlice {
    pub off: u64,
    pub len: u32,
}

/// Most segments of the caller's iov one zero-copy packet may span (more:
/// the packet is a copy).
pub const EXT_PIECES: usize = 3;

/// What `handle_packet` did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketOutcome {
    Consumed,
    /// Consumed, from a sender we did not know: `PeerIdx` is the internal
    /// entry created for it; pass it as `src` for that sender's later
    /// datagrams (they no longer carry its address).
    NewPeer(PeerIdx),
    /// Not consumed (no storage): present the same bytes again later.
    /// The sender (resolved from the packet's address when `src` was
    /// `None`: the glue learns it here as with `NewPeer`).
    Deferred(PeerIdx),
    /// Malformed, stale or from an unidentifiable sender; counted in stats.
    Dropped,
}

/// Error details of a completion (fi_cq_err_entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletionError {
    pub kind: ErrorKind,
    /// Provider-specific detail (`PROV_ERR_*`), 0 if none.
    pub prov_errno: i32,
    /// Bytes not delivered (`ErrorKind::Truncated`).
    pub olen: usize,
    /// The sender's raw address for `ErrorKind::AddrNotAvail`.
    pub err_data: Vec<u8>,
}

/// A receive that `Endpoint::fast_recv` completed: what its completion
/// says (a success, `RECV` with `TAGGED` / `REMOTE_CQ_DATA` as they
/// apply, from `peer`), handed to the caller instead of queued. The
/// receive's buffers are not handed back (the glue's are the
/// application's memory).
#[derive(Debug)]
pub struct FastRecv {
    pub context: u64,
    pub flags: CompFlags,
    pub len: usize,
    pub buf: usize,
    pub data: u64,
    pub tag: u64,
    pub peer: PeerIdx,
    /// False when selective completion keeps it out of the CQ (counters
    /// still count it).
    pub report: bool,
}

impl FastRecv {
    /// The same completion in the engine's form (for a caller that must
    /// keep it, e.g. when its CQ is full).
    pub fn into_completion(self) -> Completion {
        Completion {
            context: self.context,
            flags: self.flags,
            len: self.len,
            buf: self.buf,
            data: self.data,
            tag: self.tag,
            src: Some(self.peer),
            report: self.report,
            err: None,
            iov: None,
        }
    }
}

/// One completion-queue entry.
#[derive(Debug)]
pub struct Completion {
    pub context: u64,
    pub flags: CompFlags,
    pub len: usize,
    /// Address of the data: iov base (+ offset in a multi-receive buffer);
    /// for owned test iovs the base is 0, so this is the offset.
    pub buf: usize,
    pub data: u64,
    pub tag: u64,
    /// Sender of a received message. For `AddrNotAvail` it is the
    /// endpoint's internal entry, which is not in the AV.
    pub src: Option<PeerIdx>,
    /// False when selective completion suppressed the entry (counters
    /// still count it).
    pub report: bool,
    pub err: Option<CompletionError>,
    /// The operation's buffers, handed back when it ends.
    pub iov: Option<UserIov>,
}

impl Completion {
    /// A send's success: `len` bytes, no data, tag or source (fi_cq(3)
    /// leaves them out of send entries).
    pub fn sent(
        context: u64,
        tagged: bool,
        len: usize,
        report: bool,
        iov: Option<UserIov>,
    ) -> Self {
        Completion {
            context,
            flags: CompFlags::msg(CompFlags::SEND, tagged),
            len,
            buf: 0,
            data: 0,
            tag: 0,
            src: None,
            report,
            err: None,
            iov,
        }
    }
}

/// Counters of what the endpoint dropped or refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub malformed: u64,
    pub bad_version: u64,
    pub unknown_type: u64,
    pub unknown_src: u64,
    pub stale: u64,
    pub deferred: u64,
    pub send_failures: u64,
    pub timeouts: u64,
    pub unsupported: u64,
    pub errors_after_inject: u64,
    /// RMA/atomic requests refused at the target (key, range, access).
    pub rma_refused: u64,
    /// Messages received and RMA transfers served with one CMA copy.
    pub cma_copies: u64,
    /// Bytes moved by those copies.
    pub cma_bytes: u64,
    /// CMA copies refused (EPERM, ENOSYS, no CMA here): moved in packets.
    pub cma_fallbacks: u64,
    /// CMA copies that failed otherwise (peer gone, bad address).
    pub cma_errors: u64,
    /// Liveness probes sent to silent peers that operations wait on.
    pub probes: u64,
    /// Messages sent as one REQ the glue wrote straight into the link
    /// (`fast_req`), and eager messages placed without per-message state
    /// (`rx::Rx::place_eager`).
    pub fast_sends: u64,
    pub fast_placed: u64,
    /// Of those placed, packets received straight from the link into a
    /// posted receive, their completion written by the glue
    /// (`Endpoint::fast_recv`).
    pub fast_recvs: u64,
    /// Packets whose payload went out of the caller's buffers by
    /// reference (zero copy), and their payload bytes.
    pub zc_packets: u64,
    pub zc_bytes: u64,
}

/// Largest medium message any peer may send (Config::medium_max is clamped
/// to it): receivers refuse larger ones, which bounds what one unsolicited
/// message can make them store.
pub const MAX_MEDIUM: usize = 4 << 20;

/// Provider errno for completions failed by an incompatible peer version.
pub const PROV_ERR_VERSION: i32 = 1;
/// Provider errno for handshake timeouts.
pub const PROV_ERR_TIMEOUT: i32 = 2;
