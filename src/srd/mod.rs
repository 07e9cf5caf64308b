//! The software SRD device: a sans-IO state machine (docs/srd-spec.md).
//!
//! `Device` owns PDs, MRs, AHs, QPs (UD and SRD), CQs and the reliability
//! state per remote device. Backends feed it datagrams with
//! `handle_datagram`, drain it with `poll_transmit`, and drive its timers with
//! `poll_timeout` / `handle_timeout`. Time is `now: u64` nanoseconds, always
//! passed in. `sim` is a deterministic lossy network to test it with.

#![forbid(unsafe_code)]

mod congestion;
mod device;
mod fanin;
mod multipath;
mod objects;
mod peer;
mod pool;
mod reliability;
pub mod sim;

pub use device::{Device, Lent};
pub use objects::{Access, Mr, QpState, QpType};

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Most paths (local UDP source ports) a device sprays over.
pub const MAX_PATHS: usize = 16;
/// Receive window in PSNs, fixed by wire version 1: a receiver tracks this
/// many PSNs beyond its cumulative point, so a sender's window may not exceed it.
pub const RX_WINDOW: u32 = 1024;
/// Bytes before the payload in a UD receive buffer (the size of a verbs GRH).
pub const UD_PREFIX: usize = 40;

/// The network identity of a device: the IPv4 address and UDP port of its
/// path 0 socket (the one peers send to). Carried in every header, so a
/// receiver keys per-peer state on it, whatever source port a packet used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceAddr {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl DeviceAddr {
    pub const fn new(ip: Ipv4Addr, port: u16) -> Self {
        DeviceAddr { ip, port }
    }
    pub fn socket(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, self.port)
    }
}

impl fmt::Display for DeviceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// Device configuration. Times are nanoseconds. `Default` gives values for a
/// LAN / loopback; see docs/srd-spec.md §9 for the meaning of each limit.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// Our identity (path 0's address).
    pub addr: DeviceAddr,
    /// Incarnation number; a restarted device must use a newer one (e.g. a
    /// timestamp) so peers reset the state they hold for it.
    pub epoch: u32,
    /// Local UDP sockets to spray over, 1..=MAX_PATHS.
    pub paths: u8,
    /// Largest payload of one message (datagram = payload + 40-byte header).
    pub max_payload: usize,
    /// Clamp of the retransmission timeout computed from the RTT estimate
    /// (which is at least 3·SRTT: the floor only guards tiny RTTs).
    pub min_rto: u64,
    pub max_rto: u64,
    /// RTO before the first RTT sample.
    pub initial_rto: u64,
    /// Floor of the tail-loss probe timeout (2·SRTT after the last
    /// transmission of a flight that is not acknowledged).
    pub min_pto: u64,
    /// Retransmissions of one packet, and consecutive timeouts without any
    /// ack progress, after which the peer is declared failed.
    pub retry_limit: u32,
    /// Time without ack progress (while packets are outstanding) after
    /// which the peer is declared failed, whatever the retry count; 0: only
    /// the retry limit applies. Checked when a retransmission timer fires
    /// (at most `max_rto` apart).
    pub peer_timeout: u64,
    /// RNR NAKs for one packet after which the peer is declared failed.
    pub rnr_retry_limit: u32,
    /// RNR backoff: first wait, doubling per NAK, capped.
    pub rnr_backoff_min: u64,
    pub rnr_backoff_max: u64,
    /// Most outstanding send WRs per QP (posted, not yet completed).
    pub sq_depth: u32,
    /// Most posted receive WRs per QP.
    pub rq_depth: u32,
    /// Send buffers in the device-wide pool (bounds all queued send data).
    pub tx_buffers: u32,
    /// Per-peer send window in packets, power of two, <= RX_WINDOW.
    pub window: u32,
    /// Congestion window: initial, floor and ceiling in packets.
    pub cwnd_init: u32,
    pub cwnd_min: u32,
    pub cwnd_max: u32,
    /// Delay-based congestion control: queueing delay allowed on top of the
    /// path's smallest RTT, in ns; 0 = off (loss-based AIMD only). With a
    /// target the window follows the filtered RTT, may drop below one
    /// packet (then paced), and incast stays near link rate
    /// (docs/srd-spec.md §11).
    pub cc_target_delay: u64,
    /// Bytes in flight this device lets all its senders have together
    /// while more than one sends to it, shared equally: acks carry each
    /// sender's share (a grant) and the sender's window never exceeds it,
    /// paced below one packet. An incast then queues at most this much
    /// (docs/srd-spec.md §11.1). 0: off.
    pub fan_in_budget: u64,
    /// A peer counts toward the fan-in for this long after its last new
    /// data packet (one to two periods), ns.
    pub fan_in_period: u64,
    /// Ack after this many newly received packets...
    pub ack_every: u32,
    /// ...or after this delay, whichever comes first.
    pub ack_delay: u64,
    /// A packet asking for an immediate ack (ACK_REQ) is acked within this
    /// delay rather than at once; data sent to that peer meanwhile takes the
    /// owed ack along in the same batch (a request answered quickly costs
    /// one datagram each way instead of two). 0: at once.
    pub ack_req_delay: u64,
    /// Consecutive losses on a path after which it is excluded.
    pub path_fail_threshold: u32,
    /// An excluded path is probed with one packet after this long.
    pub path_probe_interval: u64,
    /// Consecutive data packets to a peer on one path before the next path
    /// takes over (1: each packet on the next path). A burst on one path
    /// leaves in one GSO send and arrives in order.
    pub path_burst: u32,
    /// Each path delivers in the order sent (one UDP flow over one route):
    /// a packet that a later one on its path overtook is lost at once,
    /// without RACK's reorder window (docs/srd-spec.md §7.3). A peer whose
    /// path turns out to reorder loses the rule. Off in the simulator,
    /// whose jitter reorders within a path.
    pub path_order: bool,
    /// Remote devices we keep state for.
    pub max_peers: u32,
    /// QPs, CQs, AHs, MRs, PDs the device can hold.
    pub max_qps: u32,
    pub max_cqs: u32,
    pub max_ahs: u32,
    pub max_mrs: u32,
    /// Pending NAKs (control packets awaiting transmission).
    pub ctrl_queue: u32,
    /// Checksum the payload too (else the header only).
    pub payload_checksum: bool,
    /// SRD payloads up to this many bytes that go out alone (nothing else
    /// in flight to the peer, nothing queued behind) are sent twice, on two
    /// paths: one loss then costs no probe (docs/srd-spec.md §7.2). 0: off.
    pub dup_small: usize,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            addr: DeviceAddr::new(Ipv4Addr::LOCALHOST, 0),
            epoch: 1,
            paths: 4,
            max_payload: 8192,
            min_rto: 50_000,
            max_rto: 100_000_000,
            initial_rto: 1_000_000,
            min_pto: 10_000,
            retry_limit: 16,
            peer_timeout: 0,
            rnr_retry_limit: 7,
            rnr_backoff_min: 100_000,
            rnr_backoff_max: 10_000_000,
            sq_depth: 1024,
            rq_depth: 1024,
            tx_buffers: 4096,
            window: 256,
            cwnd_init: 32,
            cwnd_min: 16,
            cwnd_max: 256,
            cc_target_delay: 0,
            fan_in_budget: 512 * 1024,
            fan_in_period: 1_000_000,
            ack_every: 16,
            ack_delay: 20_000,
            ack_req_delay: 0,
            path_fail_threshold: 6,
            path_probe_interval: 50_000_000,
            path_burst: 1,
            path_order: false,
            max_peers: 1024,
            max_qps: 256,
            max_cqs: 256,
            max_ahs: 4096,
            max_mrs: 4096,
            ctrl_queue: 1024,
            payload_checksum: true,
            dup_small: 0,
        }
    }
}

/// splitmix64's finalizer: a 64-bit mix of one word. Drives the
/// simulator's and the fault injector's generators and spreads timers
/// without a random source in the sans-IO core.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Errors of the verbs API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrdError {
    /// A bounded queue or pool is full; retry after polling completions.
    QueueFull,
    /// A table (QPs, CQs, AHs, MRs, PDs, peers) is full.
    TableFull,
    InvalidQp,
    InvalidCq,
    InvalidAh,
    InvalidPd,
    InvalidMr,
    /// The operation is not allowed in the QP's current state.
    InvalidState,
    /// modify_qp to a state not reachable from the current one.
    InvalidTransition,
    /// Payload larger than `max_payload()`.
    TooLong,
    /// A bad argument (e.g. CQ too small for the QP's queues, bad config).
    InvalidArg,
    /// The object is still referenced (e.g. a CQ used by a QP).
    Busy,
    /// MR access check failed (key, range or access flags).
    AccessDenied,
}

impl fmt::Display for SrdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
impl std::error::Error for SrdError {}

/// Handles. Plain numbers; stale handles are caught by generation checks.
pub type Qpn = u32;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pd(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cq(pub u32);
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ah(pub u32);

/// QP creation attributes.
#[derive(Debug, Clone, Copy)]
pub struct QpAttr {
    pub pd: Pd,
    pub qp_type: QpType,
    pub qkey: u32,
    pub send_cq: Cq,
    pub recv_cq: Cq,
    /// 0 means the device default (`DeviceConfig::sq_depth` / `rq_depth`).
    pub sq_depth: u32,
    pub rq_depth: u32,
}

/// A send work request. `data` is copied at post time.
#[derive(Debug, Clone, Copy)]
pub struct SendWr<'a> {
    pub wr_id: u64,
    pub ah: Ah,
    pub remote_qpn: Qpn,
    pub remote_qkey: u32,
    pub data: &'a [u8],
}

/// A receive work request; the device owns `buf` until its completion hands
/// it back. UD QPs write the payload at offset `UD_PREFIX`.
#[derive(Debug)]
pub struct RecvWr {
    pub wr_id: u64,
    pub buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Send,
    Recv,
}

/// Completion status (docs/srd-spec.md §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WcStatus {
    Success,
    /// Receive buffer too small for the payload (plus prefix on UD).
    LocalLength,
    /// The peer did not ack within the retry limit.
    RetryExceeded,
    /// The peer kept answering RNR beyond the RNR retry limit.
    RnrRetryExceeded,
    /// The remote device has no SRD QP with that number.
    RemoteInvalidQpn,
    /// The remote QP's QKey differs.
    RemoteQkey,
    /// The remote QP is not ready (not RTR/RTS).
    RemoteState,
    /// The remote device NAKed with a reason this build does not know.
    RemoteError,
    /// The WR was flushed because the QP moved to ERR or RESET.
    Flushed,
}

#[derive(Debug)]
pub struct Completion {
    pub wr_id: u64,
    pub qpn: Qpn,
    pub status: WcStatus,
    pub opcode: Opcode,
    /// Payload bytes received (excluding the UD prefix), or sent.
    pub len: usize,
    /// Receives: sending device and QPN.
    pub src: Option<(DeviceAddr, Qpn)>,
    /// Receives: the posted buffer, handed back.
    pub buf: Option<Vec<u8>>,
}

/// Payload bytes a send leaves in its owner's memory (zero copy,
/// `Device::post_lent_ext`): an opaque descriptor the device carries with
/// the packet and never reads through. The I/O layer resolves it through
/// the owner each time the datagram goes out (retransmissions included)
/// and sends `[header, those bytes]` by iovec. `key` names the owner's
/// operation, `off` and `len` the bytes within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtRef {
    pub key: u64,
    pub off: u64,
    pub len: u32,
}

/// A datagram ready to go, still in the device's memory (`poll_outgoing`):
/// the I/O layer reads it with `Device::datagram` and hands it back with
/// `Device::sent` once the kernel has it (or it is dropped). Until then its
/// buffer is pinned: a send that completes meanwhile does not free it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    /// Local path (socket index) to send from.
    pub path: u8,
    pub dst: SocketAddrV4,
    /// The whole datagram: the bytes `Device::datagram` gives, then the
    /// `ext` bytes, if any.
    pub len: usize,
    /// The tail of the payload, left in its owner's memory.
    pub ext: Option<ExtRef>,
    pub(crate) src: OutSrc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutSrc {
    /// A send buffer (data, with its header written in front).
    Pool(u32),
    /// A control packet (ACK, NAK) in a control slot.
    Ctrl(u32),
}

/// SRD data for a QP that takes it in place (`Device::set_in_place`): the
/// payload is `bytes[offset..offset + len]` of the datagram just handed to
/// `handle_datagram`. The device has accepted it (it will be acked): the
/// caller must take it before it reads the next datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub qpn: Qpn,
    /// The sender: its device and QP.
    pub src: DeviceAddr,
    pub src_qpn: Qpn,
    pub offset: usize,
    pub len: usize,
}

/// A datagram `poll_transmit` wrote into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Local path (socket index) to send from.
    pub path: u8,
    pub dst: SocketAddrV4,
    pub len: usize,
}

/// Counters (monotonic) as EFA exposes them, plus one per drop reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_data: u64,
    pub rx_data: u64,
    pub tx_acks: u64,
    pub rx_acks: u64,
    pub tx_naks: u64,
    pub rx_naks: u64,
    pub send_completions: u64,
    pub recv_completions: u64,
    pub retransmits: u64,
    /// Packets declared lost by time-based detection (RACK: a later
    /// transmission was acked and the reorder window has passed).
    pub fast_retransmits: u64,
    /// Tail-loss probes sent (the newest packet resent at the probe
    /// timeout, before any RTO).
    pub tlp_probes: u64,
    pub rto_events: u64,
    pub rnr_naks_sent: u64,
    pub rnr_naks_received: u64,
    pub rnr_retry_exceeded: u64,
    pub retry_exceeded: u64,
    pub peer_resets: u64,
    pub duplicates: u64,
    pub path_failures: u64,
    pub path_recoveries: u64,
    // drops, by reason
    pub drop_truncated: u64,
    pub drop_bad_version: u64,
    pub drop_unknown_type: u64,
    pub drop_malformed: u64,
    pub drop_checksum: u64,
    pub drop_unknown_qp: u64,
    pub drop_bad_qkey: u64,
    pub drop_bad_state: u64,
    pub drop_no_recv: u64,
    pub drop_unknown_peer: u64,
    pub drop_stale_epoch: u64,
    pub drop_out_of_window: u64,
    pub drop_bad_ack: u64,
    pub drop_ctrl_queue_full: u64,
}

impl Stats {
    /// Sum of all drop counters.
    pub fn drops(&self) -> u64 {
        self.drop_truncated
            + self.drop_bad_version
            + self.drop_unknown_type
            + self.drop_malformed
            + self.drop_checksum
            + self.drop_unknown_qp
            + self.drop_bad_qkey
            + self.drop_bad_state
            + self.drop_no_recv
            + self.drop_unknown_peer
            + self.drop_stale_epoch
            + self.drop_out_of_window
            + self.drop_bad_ack
            + self.drop_ctrl_queue_full
    }
}

/// Gauges of bounded resources, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Send buffers taken from the pool (queued, in flight or awaiting ack).
    pub tx_buffers_in_use: u32,
    /// Send buffers ever allocated (the pool grows lazily up to its size).
    pub tx_buffers_allocated: u32,
    /// Packets in flight (sent, not acked, not declared lost) over all peers.
    pub in_flight: u32,
    /// Packets awaiting (re)transmission over all peers.
    pub queued: u32,
    /// Pending control packets.
    pub ctrl_queued: u32,
    pub peers: u32,
    /// Completions waiting in CQs.
    pub cq_entries: u32,
    /// Receive WRs posted.
    pub recv_posted: u32,
    /// Most send buffers ever in use at once.
    pub tx_buffers_high_water: u32,
    /// Live objects: QPs, AHs, MRs, CQs.
    pub qps: u32,
    pub ahs: u32,
    pub mrs: u32,
    pub cqs: u32,
    /// Send buffers holding a reference to their owner's memory
    /// (`ExtRef`) instead of a copy of the payload: each one is released
    /// when its send completes, succeeds or fails.
    pub ext_refs: u32,
}

/// A snapshot of the state a device holds for one remote device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Paths currently not excluded.
    pub paths_alive: u8,
    /// Bit p set: path p is excluded (dead, awaiting a probe).
    pub dead_paths: u16,
    pub srtt: Option<u64>,
    pub rto: u64,
    pub cwnd: u32,
    pub in_flight: u32,
    /// PSNs assigned and not acked.
    pub outstanding: u32,
    pub counters: PeerCounters,
}

/// Per-peer counters of a device, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// SRD data packets sent to / accepted from the peer.
    pub tx_data: u64,
    pub rx_data: u64,
    pub retransmits: u64,
    pub rnr_naks_sent: u64,
    pub rnr_naks_received: u64,
    pub duplicates: u64,
    /// Its packets refused after parsing (QP, QKey, state, window, epoch).
    pub drops: u64,
}

/// One dropped datagram, as `Device::take_drop_events` reports it: the
/// sender (from the SRD header when it parsed, else the UDP source) and
/// the reason (the name of the drop counter it went to, without `drop_`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropEvent {
    pub from: SocketAddrV4,
    pub reason: &'static str,
}

/// `a < b` in 32-bit serial-number arithmetic (RFC 1982).
pub(crate) fn psn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}
