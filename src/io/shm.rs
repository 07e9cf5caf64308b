//! Shared-memory backend: RDM packets between endpoints of one host over
//! lock-free rings in /dev/shm, plus CMA (process_vm_readv/writev) for
//! single-copy bulk transfers (DESIGN §2, §9).
//!
//! Each [`ShmEndpoint`] owns one receive ring (a segment file, see
//! `segment`); every local endpoint that sends to it maps it and pushes
//! packets into it (many producers, one consumer; layout and algorithm in
//! `layout`). The service is reliable (nothing is dropped: a full ring is
//! [`ShmError::Full`] and the caller retries after progress), ordered per
//! sender, and bounded by `slot_size` per packet.
//!
//! Hot path: `send` is a CAS on the ring's enqueue counter plus one memcpy,
//! `recv` polls the next slot's sequence number; neither allocates nor makes
//! a system call. Liveness costs a system call (flock) only when a peer's
//! ring is full, and once every [`LIVENESS_EVERY`] sends to a peer.
//!
//! Addressing: a [`ShmToken`] (pid + 64-bit random nonce, 12 bytes) names
//! an endpoint among the processes of one user on one host; the uid is
//! implied (a peer of another user is not found, and the caller falls back
//! to the network path).
//!
//! NUMA: the owner reserves (posix_fallocate) and initializes its ring when
//! it opens, so tmpfs places the pages on the receiver's node by first touch;
//! no explicit binding. The owner and each process that connects then map
//! every page at once (`segment::prefault`): no page faults on first use.
//!
//! Lifetime: the owner holds an flock on its segment while alive and unlinks
//! it on drop; `open` sweeps segments of this uid whose owner died (SIGKILL
//! included). [`ShmEndpoint::unlink`] removes the name early once every peer
//! has connected.
//!
//! A sender killed in the middle of a push (between claiming a slot and
//! publishing it) leaves the slot unpublished; the receiver notices after
//! [`STUCK_CHECK_EVERY`] empty polls, checks the writer's pid (written into
//! the slot right after the claim) and skips the slot if that process is
//! gone, so one dead sender cannot stall the others. (If it died in the few
//! instructions between the claim and writing its pid, the slot stays stuck:
//! the receiver then sees no progress and the RDM layer's timeouts apply.)

mod cma;
mod layout;
mod numa;
pub(crate) mod segment;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use layout::{FLAG_CMA, Geometry, HEADER, Pop, Push, Ring, STATE_CLOSED, STATE_OPEN};
use segment::Mapping;

/// Default number of slots per receive ring.
pub const DEFAULT_SLOTS: usize = 128;
/// Default largest packet (payload bytes per slot).
pub const DEFAULT_SLOT_SIZE: usize = 64 << 10;
/// A send checks the receiver's liveness once per this many packets to it.
pub const LIVENESS_EVERY: u32 = 1 << 16;
/// Consecutive empty polls of `recv` between checks for a slot claimed by
/// a dead sender (one shared-counter load; a kill(pid, 0) if one is found).
pub const STUCK_CHECK_EVERY: u32 = 1024;
/// While a peer's ring stays full, one `Full` in this many checks liveness.
const FULL_CHECK_EVERY: u32 = 64;

/// Whether to use cross-memory attach for bulk transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CmaMode {
    /// Probe at open; use CMA when the kernel allows it.
    #[default]
    Auto,
    /// Never use CMA (bulk data goes through the ring); for tests and for
    /// systems where the probe passes but transfers are unwanted.
    Off,
}

impl CmaMode {
    /// `FI_SRD_SHM_CMA`: "0", "off", "no" or "false" → `Off`, else `Auto`.
    pub fn from_env() -> CmaMode {
        match std::env::var("FI_SRD_SHM_CMA") {
            Ok(v)
                if matches!(
                    v.to_ascii_lowercase().as_str(),
                    "0" | "off" | "no" | "false"
                ) =>
            {
                CmaMode::Off
            }
            _ => CmaMode::Auto,
        }
    }
}

/// How to open a [`ShmEndpoint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmConfig {
    /// Slots in the receive ring; rounded up to a power of two (≥ 2).
    pub slots: usize,
    /// Largest packet, in bytes (≤ 16 MiB).
    pub slot_size: usize,
    pub cma: CmaMode,
}

impl Default for ShmConfig {
    fn default() -> Self {
        ShmConfig {
            slots: DEFAULT_SLOTS,
            slot_size: DEFAULT_SLOT_SIZE,
            cma: CmaMode::Auto,
        }
    }
}

/// What identifies an endpoint on this host (with the uid, implied: only
/// endpoints of one user talk). 12 bytes on the wire: pid (4) then nonce (8),
/// little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShmToken {
    pub pid: u32,
    /// 64 random bits naming the segment; never 0.
    pub nonce: u64,
}

impl ShmToken {
    pub const LEN: usize = 12;

    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; 12]) -> ShmToken {
        ShmToken {
            pid: u32::from_le_bytes(b[..4].try_into().expect("4 bytes")),
            nonce: u64::from_le_bytes(b[4..].try_into().expect("8 bytes")),
        }
    }
}

impl fmt::Display for ShmToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:016x}", self.pid, self.nonce)
    }
}

/// A connected peer (index into this endpoint's peer table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShmPeer(u32);

impl ShmPeer {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Why a send did not happen. None of them loses data already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShmError {
    /// The peer's ring is full: retry after progress (-FI_EAGAIN).
    Full,
    /// The peer closed its endpoint or its process died (-FI_EHOSTUNREACH).
    PeerGone,
    /// The packet is larger than the peer's slots (-FI_EMSGSIZE).
    TooLong,
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShmError::Full => "peer's ring is full",
            ShmError::PeerGone => "peer is gone",
            ShmError::TooLong => "packet larger than a slot",
        })
    }
}

impl std::error::Error for ShmError {}

/// Counters of one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShmStats {
    pub sent: u64,
    pub sent_bytes: u64,
    /// Sends refused with `Full`.
    pub full: u64,
    pub received: u64,
    pub received_bytes: u64,
    /// Received slots with an impossible length (skipped).
    pub bad: u64,
    /// Liveness checks made (system calls).
    pub liveness_checks: u64,
    /// Segments of dead owners removed by `open`.
    pub swept: u64,
    /// Slots skipped because their writer died before publishing them.
    pub abandoned: u64,
    /// Doorbells rung (packets pushed while the receiver slept).
    pub doorbells: u64,
}

#[derive(Debug)]
struct PeerMap {
    token: ShmToken,
    ring: Ring,
    cma: bool,
    gone: bool,
    sends: u32,
    full_streak: u32,
    // Declared last: unmapped after `ring` stops being used.
    map: Mapping,
}

/// One endpoint of the shared-memory service: a receive ring and the rings
/// of the peers it sends to. `Send`, not `Sync` (one thread drives it).
#[derive(Debug)]
pub struct ShmEndpoint {
    token: ShmToken,
    ring: Ring,
    head: u64,
    empty_polls: u32,
    path: CString,
    linked: bool,
    cma: bool,
    peers: Vec<PeerMap>,
    stats: ShmStats,
    /// Doorbell: an abstract-namespace datagram socket named after our
    /// token. While we sleep (`arm`), senders that publish into our ring
    /// send it a byte, so a blocked reader polls it beside its UDP sockets.
    /// None when the socket could not be made (then `arm` never lets the
    /// caller sleep on the ring).
    doorbell: Option<UnixDatagram>,
    /// Unbound socket we ring peers' doorbells with.
    bell: Option<UnixDatagram>,
    /// Our waiter word is set (between `arm` and `disarm`).
    armed: bool,
    /// Keeps the ring mapped and the owner's flock held (liveness signal).
    own: Mapping,
}

/// The doorbell address of the endpoint `token` (of this user, in this
/// network namespace: the same reach as the rings).
fn doorbell_addr(token: ShmToken) -> io::Result<SocketAddr> {
    let name = format!(
        "srd-db-{}-{}-{:016x}",
        segment::uid(),
        token.pid,
        token.nonce
    );
    SocketAddr::from_abstract_name(name.as_bytes())
}

impl ShmEndpoint {
    /// Creates this endpoint's receive ring segment (sweeping leftovers of
    /// dead processes first) and probes CMA unless `cfg.cma` is `Off`.
    pub fn open(cfg: ShmConfig) -> io::Result<ShmEndpoint> {
        let slots = cfg
            .slots
            .max(2)
            .checked_next_power_of_two()
            .unwrap_or(usize::MAX);
        if slots > layout::MAX_SLOTS as usize
            || cfg.slot_size == 0
            || cfg.slot_size > layout::MAX_SLOT_SIZE as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "bad ring geometry",
            ));
        }
        let uid = segment::uid();
        let pid = segment::pid();
        let swept = segment::sweep(uid, pid) as u64;
        let cma = cfg.cma == CmaMode::Auto && cma::probe();
        let len = layout::segment_len(slots, cfg.slot_size);
        let (nonce, path, own) = loop {
            let nonce = segment::random_nonce()?;
            let path = segment::path(uid, pid, nonce);
            match segment::create(&path, len) {
                Ok(m) => break (nonce, path, m),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let g = Geometry {
            slots: slots as u32,
            slot_size: cfg.slot_size as u32,
            owner_pid: pid,
            flags: if cma { FLAG_CMA } else { 0 },
            nonce,
        };
        // SAFETY: `own` is a fresh private-so-far mapping of `len` bytes
        // (page aligned), and `len` is what `init` expects for `g`.
        let ring = unsafe { Ring::init(own.base, g) };
        ring.set_owner_base();
        ring.set_state(STATE_OPEN);
        segment::track_own(&own.fd);
        let token = ShmToken { pid, nonce };
        let doorbell = doorbell_addr(token)
            .and_then(|a| UnixDatagram::bind_addr(&a))
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .ok();
        let bell = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .ok();
        Ok(ShmEndpoint {
            token: ShmToken { pid, nonce },
            ring,
            head: 0,
            empty_polls: 0,
            path,
            linked: true,
            cma,
            peers: Vec::new(),
            stats: ShmStats {
                swept,
                ..ShmStats::default()
            },
            doorbell,
            bell,
            armed: false,
            own,
        })
    }

    /// Prepares to sleep until a packet arrives: asks senders to ring our
    /// doorbell from now on. Returns false when the caller must not sleep
    /// on the ring: a packet is already there (or we have no doorbell).
    pub fn arm(&mut self) -> bool {
        if self.doorbell.is_none() {
            return false;
        }
        self.ring.set_waiter(true);
        self.armed = true;
        !self.ring.published(self.head)
    }

    /// Ends a sleep: senders stop ringing, and rings already received are
    /// drained so the doorbell reads as quiet again.
    /// Cheap when not armed (a flag test), so progress may call it always.
    pub fn disarm(&mut self) {
        if !self.armed {
            return;
        }
        self.armed = false;
        self.ring.set_waiter(false);
        if let Some(d) = &self.doorbell {
            let mut b = [0u8; 64];
            while d.recv(&mut b).is_ok() {}
        }
    }

    /// The doorbell's descriptor (readable after a sender rang it).
    pub fn doorbell_fd(&self) -> Option<RawFd> {
        self.doorbell.as_ref().map(|d| d.as_raw_fd())
    }

    /// What peers pass to [`connect`](Self::connect) to reach this endpoint.
    pub fn token(&self) -> ShmToken {
        self.token
    }

    /// File name of the segment under /dev/shm (for logs and tests).
    pub fn name(&self) -> String {
        segment::name(segment::uid(), self.token.pid, self.token.nonce)
    }

    /// Largest packet this endpoint receives.
    pub fn slot_size(&self) -> usize {
        self.ring.slot_size()
    }

    pub fn slots(&self) -> usize {
        self.ring.slots()
    }

    /// Whether this endpoint may use CMA (probe passed and not forced off).
    pub fn cma_enabled(&self) -> bool {
        self.cma
    }

    pub fn stats(&self) -> &ShmStats {
        &self.stats
    }

    /// Maps `peer`'s receive ring for sending. Idempotent: the same token
    /// gives the same `ShmPeer`. A peer whose segment is gone, closed or
    /// not ours fails at once (NotFound / ConnectionRefused / PermissionDenied).
    pub fn connect(&mut self, peer: ShmToken) -> io::Result<ShmPeer> {
        if let Some(i) = self.peers.iter().position(|p| p.token == peer) {
            if self.peers[i].gone {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "peer is gone",
                ));
            }
            return Ok(ShmPeer(i as u32));
        }
        let path = segment::path(segment::uid(), peer.pid, peer.nonce);
        let map = segment::open(&path, HEADER)?;
        // SAFETY: `map` is a read-write shared mapping of `map.len ≥ HEADER` bytes.
        let (ring, g) = unsafe { Ring::attach(map.base, map.len) }
            .map_err(|why| io::Error::new(io::ErrorKind::InvalidData, why))?;
        if g.owner_pid != peer.pid || g.nonce != peer.nonce {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "segment does not match token",
            ));
        }
        if ring.state() != STATE_OPEN || !segment::owner_alive(&map.fd) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "peer is gone",
            ));
        }
        // CMA only if it reaches that very process: its ring's nonce, read
        // from its address space, matches (a pid from another pid
        // namespace, or a refusal, turns it off for this peer).
        let cma = g.flags & FLAG_CMA != 0 && self.cma && {
            let mut b = [0u8; 8];
            let at = ring.owner_base() as usize + layout::OFF_NONCE;
            cma::read(peer.pid, at, &mut b).is_ok() && u64::from_ne_bytes(b) == peer.nonce
        };
        self.peers.push(PeerMap {
            token: peer,
            ring,
            cma,
            gone: false,
            sends: 0,
            full_streak: 0,
            map,
        });
        Ok(ShmPeer(self.peers.len() as u32 - 1))
    }

    /// Largest packet `peer` accepts.
    pub fn peer_slot_size(&self, peer: ShmPeer) -> usize {
        self.peers[peer.index()].ring.slot_size()
    }

    /// Whether both ends may use CMA: the peer's probe passed, ours did,
    /// and a CMA read of the peer's ring header at connect found it.
    pub fn peer_cma(&self, peer: ShmPeer) -> bool {
        self.cma && self.peers[peer.index()].cma
    }

    /// Copies one packet into `peer`'s ring. Never blocks.
    ///
    /// Panics if `peer` did not come from this endpoint's `connect`.
    pub fn send(&mut self, peer: ShmPeer, data: &[u8]) -> Result<(), ShmError> {
        self.send_with(peer, data.len(), |d| d.copy_from_slice(data))
    }

    /// `send` of a `len`-byte packet that `write` builds in the peer's
    /// ring slot (no staging copy); `write` runs only if the packet goes.
    pub fn send_with(
        &mut self,
        peer: ShmPeer,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), ShmError> {
        let me = self.token;
        let p = &mut self.peers[peer.index()];
        if p.gone {
            return Err(ShmError::PeerGone);
        }
        if len > p.ring.slot_size() {
            return Err(ShmError::TooLong);
        }
        if p.ring.state() != STATE_OPEN {
            p.gone = true;
            return Err(ShmError::PeerGone);
        }
        p.sends = p.sends.wrapping_add(1);
        if p.sends.is_multiple_of(LIVENESS_EVERY) {
            self.stats.liveness_checks += 1;
            if !segment::owner_alive(&p.map.fd) {
                p.gone = true;
                return Err(ShmError::PeerGone);
            }
        }
        match p.ring.push_with(me.pid, me.nonce, len, write) {
            Push::Done => {
                p.full_streak = 0;
                self.stats.sent += 1;
                self.stats.sent_bytes += len as u64;
                if p.ring.waiter()
                    && let (Some(bell), Ok(addr)) = (&self.bell, doorbell_addr(p.token))
                {
                    // A full doorbell already wakes the owner: errors ignored.
                    let _ = bell.send_to_addr(&[1], &addr);
                    self.stats.doorbells += 1;
                }
                Ok(())
            }
            Push::Full => {
                self.stats.full += 1;
                let streak = p.full_streak;
                p.full_streak = p.full_streak.wrapping_add(1);
                if streak.is_multiple_of(FULL_CHECK_EVERY) {
                    self.stats.liveness_checks += 1;
                    if !segment::owner_alive(&p.map.fd) {
                        p.gone = true;
                        return Err(ShmError::PeerGone);
                    }
                }
                Err(ShmError::Full)
            }
        }
    }

    /// Checks now (one system call) whether `peer` still runs and has its
    /// endpoint open; for the glue's timers, so that operations waiting on a
    /// silent peer fail instead of hanging.
    pub fn peer_alive(&mut self, peer: ShmPeer) -> bool {
        let p = &mut self.peers[peer.index()];
        if !p.gone {
            self.stats.liveness_checks += 1;
            if p.ring.state() != STATE_OPEN || !segment::owner_alive(&p.map.fd) {
                p.gone = true;
            }
        }
        !p.gone
    }

    /// Position up to which senders have claimed slots of our ring. Once
    /// a sender is known dead, everything it ever pushed lies below the
    /// value read after that: [`consumed`](Self::consumed) reaching it
    /// means its last packets were handed to the receiver.
    pub fn enqueued(&self) -> u64 {
        self.ring.enqueued()
    }

    /// Position of our consumer (slots handed over or skipped).
    pub fn consumed(&self) -> u64 {
        self.head
    }

    /// Drains the packets available now (at most one ring's worth), calling
    /// `f(sender, bytes)` for each, in order per sender. `bytes` points into
    /// the ring and is only valid during the call. Returns how many.
    pub fn recv(&mut self, mut f: impl FnMut(ShmToken, &[u8])) -> usize {
        self.recv_while(|src, d| {
            f(src, d);
            true
        })
    }

    /// As [`recv`](Self::recv), but `f` may decline a packet by returning
    /// false: it stays at the head of the ring (its slot is not freed),
    /// draining stops, and the next call offers it again. Declining stalls
    /// every sender of the ring, so the glue only does it for a moment (to
    /// look a new sender up first); a packet the protocol defers is copied
    /// out instead (`rdm::Inbox`). Returns how many were consumed.
    pub fn recv_while(&mut self, mut f: impl FnMut(ShmToken, &[u8]) -> bool) -> usize {
        let mut n = 0;
        let max = self.ring.slots();
        let mut bytes = 0u64;
        let mut deliver = |pid: u32, nonce: u64, data: &[u8]| {
            let taken = f(ShmToken { pid, nonce }, data);
            if taken {
                bytes += data.len() as u64;
            }
            taken
        };
        let mut steps = 0;
        while steps < max {
            steps += 1;
            // SAFETY: this endpoint is the ring's only consumer and `head`
            // is its private position.
            match unsafe { self.ring.pop(self.head, &mut deliver) } {
                Pop::Empty => {
                    if steps == 1 {
                        self.empty_polls = self.empty_polls.wrapping_add(1);
                        if self.empty_polls.is_multiple_of(STUCK_CHECK_EVERY)
                            && self.skip_abandoned()
                        {
                            continue;
                        }
                    }
                    break;
                }
                Pop::Kept => break,
                Pop::Bad => {
                    self.stats.bad += 1;
                    self.head += 1;
                }
                Pop::Consumed => {
                    self.head += 1;
                    n += 1;
                }
            }
        }
        self.stats.received += n as u64;
        self.stats.received_bytes += bytes;
        n
    }

    /// Skips the head slot if a dead sender claimed it and never published.
    fn skip_abandoned(&mut self) -> bool {
        match self.ring.writer(self.head) {
            Some(pid) if pid != 0 && pid != self.token.pid && segment::process_gone(pid) => {
                // SAFETY: we are the only consumer; the writer is dead.
                unsafe { self.ring.skip(self.head) };
                self.head += 1;
                self.stats.abandoned += 1;
                true
            }
            _ => false,
        }
    }

    /// Removes the segment's name now (peers already connected keep
    /// working; later `connect`s fail). Drop does it otherwise.
    pub fn unlink(&mut self) -> io::Result<()> {
        if self.linked {
            self.linked = false;
            segment::unlink(&self.path)?;
        }
        Ok(())
    }

    /// Reads `dst.len()` bytes at `remote_addr` in `peer`'s address space
    /// (one copy, by the kernel). `Unsupported` when CMA is off here or at
    /// the peer; EPERM/ESRCH from the kernel come back as they are. The
    /// caller then moves the data through the ring instead.
    pub fn read_remote(&self, peer: ShmPeer, remote_addr: usize, dst: &mut [u8]) -> io::Result<()> {
        if !self.peer_cma(peer) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "CMA disabled"));
        }
        cma::read(self.peers[peer.index()].token.pid, remote_addr, dst)
    }

    /// Writes `src` to `remote_addr` in `peer`'s address space; as `read_remote`.
    pub fn write_remote(&self, peer: ShmPeer, remote_addr: usize, src: &[u8]) -> io::Result<()> {
        if !self.peer_cma(peer) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, "CMA disabled"));
        }
        cma::write(self.peers[peer.index()].token.pid, remote_addr, src)
    }
}

/// Vectored cross-memory transfer with process `pid`: `read` copies its
/// `remote` segments into the `local` ones (process_vm_readv), otherwise
/// the other way (process_vm_writev), in order, as many bytes as the
/// shorter list holds. Errors are the kernel's (EPERM when ptrace rules
/// refuse, ESRCH when the process is gone, EFAULT for unmapped ranges).
///
/// # Safety
/// Every local `(address, length)` must be valid for writes (`read`) or
/// reads (otherwise) of `length` bytes during the call, and not be
/// accessed concurrently.
pub unsafe fn cma_transfer(
    read: bool,
    pid: u32,
    local: &[(usize, usize)],
    remote: &[(usize, usize)],
) -> io::Result<()> {
    let dir = if read {
        cma::Dir::Read
    } else {
        cma::Dir::Write
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { cma::transfer(dir, pid, local, remote) }
}

impl Drop for ShmEndpoint {
    fn drop(&mut self) {
        segment::untrack_own(&self.own.fd);
        self.ring.set_state(STATE_CLOSED);
        if self.linked {
            let _ = segment::unlink(&self.path);
        }
        // `own` unmaps and closes (dropping the flock) after this.
    }
}

/// Whether process `pid` is gone (kill(pid, 0) says ESRCH). Pid-reuse blind;
/// for tests and diagnostics.
pub fn process_gone(pid: u32) -> bool {
    segment::process_gone(pid)
}
