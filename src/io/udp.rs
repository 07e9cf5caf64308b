//! UDP backend of the software SRD device: `paths` nonblocking UDP/IPv4
//! sockets bound to one interface address on ephemeral ports.
//!
//! Path 0 is the port peers send to (its address goes into the endpoint
//! name); the other paths are extra source ports for multipath spraying, and
//! they receive too (a peer may answer to the port a packet came from).
//! Datagrams move in batches: recvmmsg into a preallocated [`RecvBatch`],
//! sendmmsg per path from caller buffers, optionally with UDP GSO for runs of
//! equal-size datagrams. Nothing is allocated per call in steady state.
//!
//! Errors: EINTR is retried; EAGAIN/ENOBUFS ends the batch early (the caller
//! retries later, nothing is lost); a pending ICMP error (ECONNREFUSED …) is
//! counted and the call goes on; a datagram the kernel refuses outright
//! (EPERM from a netfilter drop, no route, oversize) is counted as lost, as
//! the network would lose it, and SRD's retransmission deals with it.

mod batch;
mod fault;
mod iface;
mod send;
mod sys;

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

pub use batch::{DEFAULT_SLOT_SIZE, DEFAULT_SLOTS, RecvBatch, RecvItem};
pub use fault::DropInjector;
pub use iface::{IPV4_UDP_OVERHEAD, Iface, MAX_UDP_PAYLOAD, interfaces};
pub use send::GSO_MAX_SEGMENTS;

use send::SendScratch;
use sys::ErrKind;

/// Most paths (local sockets) one backend opens.
pub const MAX_PATHS: usize = 16;
/// Datagrams asked for by the first recvmmsg on a path in `recv_batch`.
const FIRST_READ: usize = 4;
/// Most datagrams handed to one sendmmsg call.
pub const SEND_CHUNK: usize = 64;
/// Default requested SO_RCVBUF / SO_SNDBUF.
pub const DEFAULT_SOCKET_BUFFER: usize = 8 << 20;
/// Consecutive ICMP errors tolerated on one socket within one call.
const MAX_ERR_RETRIES: u32 = 8;

/// Where fault injection drops datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DropSide {
    /// On receive: a dropped datagram is read from the socket and discarded
    /// (what FI_SRD_DROP_RATE uses: loss as seen by this endpoint).
    #[default]
    Recv,
    /// On send: a dropped datagram is reported as sent but never handed to
    /// the kernel.
    Send,
    /// Both, each side drawing independently at `drop_rate`.
    Both,
}

/// How to open a [`UdpBackend`].
#[derive(Debug, Clone, PartialEq)]
pub struct UdpConfig {
    /// Local interface address to bind (0.0.0.0 binds all interfaces).
    pub addr: Ipv4Addr,
    /// Number of sockets, 1..=16.
    pub paths: usize,
    /// UDP port of path 0 (the address peers send to); 0 = kernel-chosen.
    /// The other paths always take kernel-chosen ports.
    pub port: u16,
    /// Fault injection: probability in 0..=1 that a datagram is dropped.
    pub drop_rate: f64,
    /// Seed of the drop PRNG; the same seed gives the same drop pattern.
    pub drop_seed: u64,
    /// Side(s) where drops are injected.
    pub drop_side: DropSide,
    /// Requested SO_RCVBUF and SO_SNDBUF in bytes (failure is tolerated).
    pub socket_buffer: usize,
    /// Coalesce runs of equal-size datagrams to one destination into UDP GSO
    /// sends (UDP_SEGMENT). Ignored when the kernel lacks it; a destination
    /// for which the kernel refuses a GSO send gets plain datagrams from then
    /// on (counted in `gso_fallbacks`), the others keep GSO.
    /// Receivers see ordinary datagrams either way.
    pub gso: bool,
    /// Let the kernel coalesce received datagrams of one flow (UDP_GRO);
    /// `recv_batch` splits them again. Needs 64 KiB batch slots (smaller ones
    /// lose coalesced reads as truncated) and rules out `recv_from`. Ignored
    /// when the kernel lacks it.
    pub gro: bool,
}

impl UdpConfig {
    /// `paths` sockets on `addr`, no fault injection, 8 MiB socket buffers.
    pub fn new(addr: Ipv4Addr, paths: usize) -> Self {
        Self {
            addr,
            paths,
            port: 0,
            drop_rate: 0.0,
            drop_seed: 0,
            drop_side: DropSide::Recv,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
            gso: false,
            gro: false,
        }
    }

    /// Same config with fault injection on `side`.
    pub fn with_drops(mut self, rate: f64, seed: u64, side: DropSide) -> Self {
        self.drop_rate = rate;
        self.drop_seed = seed;
        self.drop_side = side;
        self
    }
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self::new(Ipv4Addr::LOCALHOST, 1)
    }
}

/// Counters, monotonically increasing from open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpStats {
    /// Datagrams handed to the kernel.
    pub tx_datagrams: u64,
    pub tx_bytes: u64,
    /// Datagrams delivered to the caller (after injected drops).
    pub rx_datagrams: u64,
    pub rx_bytes: u64,
    pub send_syscalls: u64,
    pub recv_syscalls: u64,
    /// Datagrams dropped by fault injection on send / on receive.
    pub tx_dropped_injected: u64,
    pub rx_dropped_injected: u64,
    /// Datagrams the kernel refused (EPERM from netfilter, unreachable,
    /// EMSGSIZE); reported as sent, i.e. lost on the way.
    pub tx_rejected: u64,
    /// Sends that hit EAGAIN/ENOBUFS (each ends a batch early).
    pub eagain: u64,
    /// Pending ICMP errors reported by a socket (ECONNREFUSED …), ignored.
    pub icmp_errors: u64,
    /// Received datagrams longer than a batch slot, discarded.
    pub rx_truncated: u64,
    /// Unexpected errors (EBADF …): the path was skipped for that call.
    pub io_errors: u64,
    /// GSO messages sent (each carries several datagrams).
    pub gso_sends: u64,
    /// GSO sends refused by the kernel, after which GSO is off.
    pub gso_fallbacks: u64,
    /// Reads that returned several GRO-coalesced datagrams.
    pub gro_receives: u64,
}

/// One datagram to send: from local socket `path` to `dst`, the bytes of
/// `data` followed by those of `tail` (at most [`MAX_TAIL`] slices,
/// gathered by iovec: a payload sent from where its owner keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendItem<'a> {
    pub path: u8,
    pub dst: SocketAddrV4,
    pub data: &'a [u8],
    pub tail: &'a [&'a [u8]],
}

impl SendItem<'_> {
    /// The datagram's length.
    pub fn len(&self) -> usize {
        self.data.len() + self.tail.iter().map(|t| t.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most slices in a `SendItem`'s tail.
pub const MAX_TAIL: usize = 3;

#[derive(Debug)]
struct Path {
    fd: OwnedFd,
    local: SocketAddrV4,
}

/// The UDP backend: see the module documentation.
pub struct UdpBackend {
    paths: Vec<Path>,
    rx_drop: DropInjector,
    tx_drop: DropInjector,
    stats: UdpStats,
    next_rx_path: usize,
    gso: send::Gso,
    gro: bool,
    tx: SendScratch,
}

// SAFETY: the raw pointers in `tx` point only into `tx`'s own boxed arrays and
// into caller slices during a `&mut self` call; they are rebuilt before each
// use and never dereferenced outside such a call.
unsafe impl Send for UdpBackend {}

impl std::fmt::Debug for UdpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpBackend")
            .field("paths", &self.paths)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl UdpBackend {
    /// Opens `cfg.paths` sockets bound to `cfg.addr`: path 0 on `cfg.port`,
    /// the others on kernel-chosen ports.
    pub fn open(cfg: UdpConfig) -> io::Result<Self> {
        if !(1..=MAX_PATHS).contains(&cfg.paths) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("paths must be 1..={MAX_PATHS}, got {}", cfg.paths),
            ));
        }
        let want = i32::try_from(cfg.socket_buffer).unwrap_or(i32::MAX);
        let mut paths = Vec::with_capacity(cfg.paths);
        let mut gso = cfg.gso;
        let mut gro = cfg.gro;
        let (mut rcvbuf, mut sndbuf) = (usize::MAX, usize::MAX);
        for i in 0..cfg.paths {
            let port = if i == 0 { cfg.port } else { 0 };
            let fd = sys::udp_socket(SocketAddrV4::new(cfg.addr, port))?;
            if want > 0 {
                let r = sys::raise_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, want);
                let s = sys::raise_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, want);
                rcvbuf = rcvbuf.min(r.max(0) as usize);
                sndbuf = sndbuf.min(s.max(0) as usize);
            }
            // Never fragment: a datagram larger than the path takes is an
            // error at send, not IP fragments (whose loss costs the whole).
            let _ = sys::set_int_opt(
                &fd,
                libc::IPPROTO_IP,
                libc::IP_MTU_DISCOVER,
                libc::IP_PMTUDISC_PROBE,
            );
            // Kernels with UDP GSO (4.18+) know the option.
            gso &= sys::get_int_opt(&fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_ok();
            gro = gro && sys::set_int_opt(&fd, libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
            let local = sys::local_addr(&fd)?;
            paths.push(Path { fd, local });
        }
        if cfg.gro && !gro {
            // Not on every socket: then on none, so reads stay one datagram.
            for p in &paths {
                let _ = sys::set_int_opt(&p.fd, libc::SOL_UDP, libc::UDP_GRO, 0);
            }
        }
        if want > 0 {
            crate::srd_log!(
                Info,
                Domain,
                "UDP socket buffers: asked {want} B, granted receive {rcvbuf} B, send {sndbuf} B"
            );
        }
        let (rx_rate, tx_rate) = match cfg.drop_side {
            DropSide::Recv => (cfg.drop_rate, 0.0),
            DropSide::Send => (0.0, cfg.drop_rate),
            DropSide::Both => (cfg.drop_rate, cfg.drop_rate),
        };
        Ok(Self {
            paths,
            rx_drop: DropInjector::new(rx_rate, cfg.drop_seed),
            // A different stream for the send side, still fixed by the seed.
            tx_drop: DropInjector::new(tx_rate, cfg.drop_seed ^ 0x5EED_0F5E_4D00_0001),
            stats: UdpStats::default(),
            next_rx_path: 0,
            gso: send::Gso::new(gso),
            gro,
            tx: SendScratch::new(),
        })
    }

    /// Number of paths (sockets).
    pub fn paths(&self) -> usize {
        self.paths.len()
    }

    /// Bound address of `path`. With 0.0.0.0 as the interface address the
    /// IP here is 0.0.0.0 too; put a reachable IP in the endpoint name.
    ///
    /// Panics if `path >= self.paths()`.
    pub fn local_addr(&self, path: usize) -> SocketAddrV4 {
        self.paths[path].local
    }

    /// Descriptors of all paths, in path order.
    pub fn raw_fds(&self) -> impl ExactSizeIterator<Item = RawFd> + '_ {
        self.paths.iter().map(|p| p.fd.as_raw_fd())
    }

    /// Whether sends coalesce datagrams with UDP GSO (toward destinations
    /// that did not refuse it).
    pub fn gso_enabled(&self) -> bool {
        self.gso.on()
    }

    /// Destinations sent plain datagrams since the kernel refused a GSO
    /// send to them.
    pub fn gso_refused_peers(&self) -> usize {
        self.gso.refused()
    }

    /// Whether receives let the kernel coalesce datagrams (UDP GRO).
    pub fn gro_enabled(&self) -> bool {
        self.gro
    }

    pub fn stats(&self) -> &UdpStats {
        &self.stats
    }

    /// Waits until some path is readable or `timeout` passes (None: forever).
    /// Returns whether a path is readable. EINTR returns `Ok(false)`.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        Ok(self.readable_paths(timeout)? != 0)
    }

    /// Like `wait_readable`, but says which paths are readable: bit `p` of
    /// the result is set when path `p` has something to receive.
    pub fn readable_paths(&self, timeout: Option<Duration>) -> io::Result<u32> {
        let mut fds = [libc::pollfd {
            fd: -1,
            events: 0,
            revents: 0,
        }; MAX_PATHS];
        for (pfd, p) in fds.iter_mut().zip(&self.paths) {
            pfd.fd = p.fd.as_raw_fd();
            pfd.events = libc::POLLIN;
        }
        let ms = match timeout {
            None => -1,
            // Round up so a sub-millisecond timeout still waits.
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        // SAFETY: `fds` holds `self.paths.len()` (≤ MAX_PATHS) initialised pollfds.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), self.paths.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match sys::classify(&e) {
                ErrKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let mut mask = 0u32;
        for (i, pfd) in fds.iter().take(self.paths.len()).enumerate() {
            if pfd.revents != 0 {
                mask |= 1 << i;
            }
        }
        Ok(mask)
    }

    /// Bit mask of all paths (for `recv_batch_paths`).
    pub fn all_paths(&self) -> u32 {
        if self.paths.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.paths.len()) - 1
        }
    }

    /// Receives whatever is waiting on all paths (nonblocking), up to the
    /// batch's capacity, replacing its previous contents. Returns the number
    /// of datagrams now in `batch` (0: nothing waiting). Paths are visited
    /// round-robin from a rotating start so none starves.
    ///
    /// With GRO on, the batch's slots must hold 65507 bytes (a coalesced
    /// read), else `InvalidInput`.
    pub fn recv_batch(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        let all = self.all_paths();
        self.recv_batch_paths(batch, all)
    }

    /// `recv_batch` restricted to the paths whose bit is set in `mask`
    /// (e.g. from `readable_paths`): a path known to be empty costs no
    /// system call. Peers send to path 0, so a caller that knows nothing
    /// else may read path 0 alone and look at the others now and then.
    pub fn recv_batch_paths(&mut self, batch: &mut RecvBatch, mask: u32) -> io::Result<usize> {
        batch.clear();
        if self.gro && batch.slot_size() < MAX_UDP_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP GRO needs RecvBatch slots of at least 65507 bytes",
            ));
        }
        let cap = batch.capacity();
        let np = self.paths.len();
        let start = self.next_rx_path;
        self.next_rx_path = (start + 1) % np;
        let mut used = 0;
        let mut fatal = None;
        for step in 0..np {
            if used == cap {
                break;
            }
            let p = (start + step) % np;
            if mask & (1 << p) == 0 {
                continue;
            }
            let fd = self.paths[p].fd.as_raw_fd();
            let mut retries = 0;
            // The first read of a path asks for a few datagrams (preparing
            // all slots costs more than an empty read's system call); once
            // one comes back full, the rest of the batch.
            let mut chunk = FIRST_READ;
            while used < cap {
                let want = (cap - used).min(chunk);
                chunk = cap;
                let hdrs = batch.headers(used, want);
                // SAFETY: `hdrs` holds `want` headers whose name/iov pointers
                // were just set to slots of `batch` this `&mut` borrow owns;
                // a null timeout is allowed.
                let r = unsafe {
                    libc::recvmmsg(
                        fd,
                        hdrs.as_mut_ptr(),
                        want as libc::c_uint,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                    )
                };
                self.stats.recv_syscalls += 1;
                if r < 0 {
                    let e = io::Error::last_os_error();
                    match sys::classify(&e) {
                        ErrKind::Interrupted => continue,
                        ErrKind::WouldBlock => break,
                        ErrKind::Icmp | ErrKind::Rejected => {
                            self.stats.icmp_errors += 1;
                            retries += 1;
                            if retries > MAX_ERR_RETRIES {
                                break;
                            }
                            continue;
                        }
                        ErrKind::Fatal => {
                            self.stats.io_errors += 1;
                            fatal = Some(e);
                            break;
                        }
                    }
                }
                let got = r as usize;
                for slot in used..used + got {
                    let (len, truncated, src, seg) = batch.slot_result(slot);
                    if truncated {
                        self.stats.rx_truncated += 1;
                        continue;
                    }
                    // A GRO slot holds datagrams of `seg` bytes back to back,
                    // the last one possibly shorter.
                    let seg = if seg == 0 || seg >= len {
                        len.max(1)
                    } else {
                        self.stats.gro_receives += 1;
                        seg
                    };
                    let mut off = 0;
                    loop {
                        let n = seg.min(len - off);
                        if self.rx_drop.should_drop() {
                            self.stats.rx_dropped_injected += 1;
                        } else {
                            self.stats.rx_datagrams += 1;
                            self.stats.rx_bytes += n as u64;
                            batch.push(slot, off, n, p as u8, src);
                        }
                        off += n;
                        if off >= len {
                            break;
                        }
                    }
                }
                used += got;
                if got < want {
                    // recvmmsg with MSG_DONTWAIT stops short only when the
                    // queue ran dry: skip the syscall that would say EAGAIN.
                    break;
                }
            }
        }
        batch.set_full(used == cap);
        match fatal {
            Some(e) if batch.is_empty() => Err(e),
            _ => Ok(batch.len()),
        }
    }

    /// Receives one datagram from `path` into `buf` with recvfrom (the
    /// unbatched path; fault injection applies). `Ok(None)`: nothing waiting.
    /// A datagram longer than `buf` is discarded and counted as truncated.
    /// Not available with GRO on (a read may hold several datagrams):
    /// `Unsupported` then; use `recv_batch`.
    pub fn recv_from(
        &mut self,
        path: usize,
        buf: &mut [u8],
    ) -> io::Result<Option<(usize, SocketAddrV4)>> {
        let fd = self.path_fd(path)?;
        if self.gro {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "recv_from with UDP GRO on; use recv_batch",
            ));
        }
        let mut retries = 0;
        loop {
            // SAFETY: sockaddr_in is plain old data; all-zero is valid.
            let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
            let mut salen = sys::SOCKADDR_IN_LEN;
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes, `sa` and
            // `salen` describe a sockaddr_in valid for writes.
            let r = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut sa as *mut libc::sockaddr_in).cast(),
                    &mut salen,
                )
            };
            self.stats.recv_syscalls += 1;
            if r < 0 {
                let e = io::Error::last_os_error();
                match sys::classify(&e) {
                    ErrKind::Interrupted => continue,
                    ErrKind::WouldBlock => return Ok(None),
                    ErrKind::Icmp | ErrKind::Rejected => {
                        self.stats.icmp_errors += 1;
                        retries += 1;
                        if retries > MAX_ERR_RETRIES {
                            return Ok(None);
                        }
                        continue;
                    }
                    ErrKind::Fatal => {
                        self.stats.io_errors += 1;
                        return Err(e);
                    }
                }
            }
            let len = r as usize;
            if len > buf.len() {
                self.stats.rx_truncated += 1;
                continue;
            }
            if self.rx_drop.should_drop() {
                self.stats.rx_dropped_injected += 1;
                continue;
            }
            self.stats.rx_datagrams += 1;
            self.stats.rx_bytes += len as u64;
            return Ok(Some((len, sys::sockaddr_to(&sa))));
        }
    }

    /// Sends one datagram with sendto. `Ok(true)`: handed to the kernel (or
    /// lost on the way: injected drop, kernel refusal); `Ok(false)`: the
    /// socket buffer is full, retry later.
    pub fn send_to(&mut self, path: usize, dst: SocketAddrV4, data: &[u8]) -> io::Result<bool> {
        let fd = self.path_fd(path)?;
        if self.tx_drop.should_drop() {
            self.stats.tx_dropped_injected += 1;
            return Ok(true);
        }
        let sa = sys::sockaddr_from(dst);
        let mut retries = 0;
        loop {
            // SAFETY: `data` is valid for reads of its length; `sa` is a
            // valid sockaddr_in of the given length.
            let r = unsafe {
                libc::sendto(
                    fd,
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_DONTWAIT,
                    (&sa as *const libc::sockaddr_in).cast(),
                    sys::SOCKADDR_IN_LEN,
                )
            };
            self.stats.send_syscalls += 1;
            if r >= 0 {
                self.stats.tx_datagrams += 1;
                self.stats.tx_bytes += data.len() as u64;
                return Ok(true);
            }
            let e = io::Error::last_os_error();
            match sys::classify(&e) {
                ErrKind::Interrupted => continue,
                ErrKind::WouldBlock => {
                    self.stats.eagain += 1;
                    return Ok(false);
                }
                ErrKind::Icmp => {
                    self.stats.icmp_errors += 1;
                    retries += 1;
                    if retries > MAX_ERR_RETRIES {
                        return Ok(false);
                    }
                }
                ErrKind::Rejected => {
                    self.stats.tx_rejected += 1;
                    return Ok(true);
                }
                ErrKind::Fatal => {
                    self.stats.io_errors += 1;
                    return Err(e);
                }
            }
        }
    }

    /// Sends `items` with one sendmmsg per path and chunk of up to
    /// [`SEND_CHUNK`] datagrams; returns `n`, the number handed over. With
    /// GSO on, consecutive (within a path) equal-size datagrams to one
    /// destination travel as one GSO message.
    ///
    /// On return `items` is reordered (stably within each part) so that
    /// `items[..n]` are the datagrams handed over — or lost on the way, as
    /// an injected drop or a kernel refusal — and `items[n..]` the ones not
    /// sent because their path's socket buffer was full (EAGAIN/ENOBUFS).
    /// Retry those later; the call never spins waiting for room.
    ///
    /// An item with `path >= self.paths()` fails the whole call with
    /// `InvalidInput` before anything is sent. An unexpected error is
    /// returned only when nothing could be sent; otherwise it is counted in
    /// `io_errors` and that path's items stay unsent.
    pub fn send_batch(&mut self, items: &mut [SendItem<'_>]) -> io::Result<usize> {
        let np = self.paths.len();
        // Each path's items as a list in item order (one pass, not one
        // scan of the batch per path), checked before anything is sent.
        let mut head = [u32::MAX; MAX_PATHS];
        let mut last = [u32::MAX; MAX_PATHS];
        let mut next = mem::take(&mut self.tx.next);
        next.clear();
        next.resize(items.len(), u32::MAX);
        for (i, it) in items.iter().enumerate() {
            let p = usize::from(it.path);
            if p >= np {
                self.tx.next = next;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("send path {p} but only {np} paths"),
                ));
            }
            if it.tail.len() > MAX_TAIL {
                self.tx.next = next;
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("more than {MAX_TAIL} tail slices"),
                ));
            }
            match last[p] {
                u32::MAX => head[p] = i as u32,
                l => next[l as usize] = i as u32,
            }
            last[p] = i as u32;
        }
        let mut done = mem::take(&mut self.tx.done);
        done.clear();
        done.resize(items.len(), false);
        let mut fatal = None;
        for (p, &first) in head.iter().enumerate().take(np) {
            let mut cur = first;
            'path: while cur != u32::MAX {
                // Gather the next chunk of this path's items, applying drops.
                let mut k = 0;
                while cur != u32::MAX && k < SEND_CHUNK {
                    let i = cur as usize;
                    cur = next[i];
                    if self.tx_drop.should_drop() {
                        self.stats.tx_dropped_injected += 1;
                        done[i] = true;
                    } else {
                        self.tx.idx[k] = i as u32;
                        k += 1;
                    }
                }
                if k == 0 {
                    break;
                }
                let fd = self.paths[p].fd.as_raw_fd();
                let r =
                    send::send_chunk(fd, &mut self.tx, items, k, &mut self.gso, &mut self.stats);
                match r {
                    Ok(sent) => {
                        for &j in &self.tx.idx[..sent] {
                            done[j as usize] = true;
                        }
                        if sent < k {
                            break 'path;
                        }
                    }
                    Err((sent, e)) => {
                        for &j in &self.tx.idx[..sent] {
                            done[j as usize] = true;
                        }
                        fatal = Some(e);
                        break 'path;
                    }
                }
            }
        }
        self.tx.next = next;
        let n = stable_partition(items, &done);
        self.tx.done = done;
        match fatal {
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    fn path_fd(&self, path: usize) -> io::Result<RawFd> {
        self.paths
            .get(path)
            .map(|p| p.fd.as_raw_fd())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("path {path} but only {} paths", self.paths.len()),
                )
            })
    }
}

/// Moves the items whose flag is set to the front, keeping the relative order
/// within both parts; returns how many were flagged. No allocation: O(n) when
/// all or none are flagged, O(n × unflagged) at worst, with n ≤ a batch.
fn stable_partition<T>(items: &mut [T], flags: &[bool]) -> usize {
    if flags.iter().take(items.len()).all(|&f| f) {
        return items.len().min(flags.len());
    }
    let mut w = 0;
    for (i, &f) in flags.iter().enumerate().take(items.len()) {
        if f {
            // Elements w..i are all unflagged; rotate item i in front of them.
            items[w..=i].rotate_right(1);
            w += 1;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_stable() {
        let mut v = [0, 1, 2, 3, 4, 5, 6];
        let f = [false, true, false, true, true, false, true];
        let n = stable_partition(&mut v, &f);
        assert_eq!(n, 4);
        assert_eq!(v, [1, 3, 4, 6, 0, 2, 5]);
        let mut w = [7, 8];
        assert_eq!(stable_partition(&mut w, &[true, true]), 2);
        assert_eq!(w, [7, 8]);
        assert_eq!(stable_partition(&mut w, &[false, false]), 0);
    }

    #[test]
    fn rejects_bad_path_counts() {
        for paths in [0, MAX_PATHS + 1] {
            let err = UdpBackend::open(UdpConfig::new(Ipv4Addr::LOCALHOST, paths)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn path_zero_binds_the_port_asked_for() {
        let probe = UdpBackend::open(UdpConfig::new(Ipv4Addr::LOCALHOST, 1)).unwrap();
        let port = probe.local_addr(0).port();
        drop(probe);
        let mut cfg = UdpConfig::new(Ipv4Addr::LOCALHOST, 3);
        cfg.port = port;
        let b = UdpBackend::open(cfg.clone()).unwrap();
        assert_eq!(b.local_addr(0).port(), port);
        assert_ne!(b.local_addr(1).port(), port);
        // The port is taken while `b` lives.
        assert!(UdpBackend::open(cfg).is_err());
    }

    #[test]
    fn reads_only_the_paths_asked_for() {
        let mut a = UdpBackend::open(UdpConfig::new(Ipv4Addr::LOCALHOST, 1)).unwrap();
        let mut b = UdpBackend::open(UdpConfig::new(Ipv4Addr::LOCALHOST, 3)).unwrap();
        assert_eq!(b.all_paths(), 0b111);
        // Six datagrams to b's path 2 (more than the first read asks for).
        for i in 0..6u8 {
            assert!(a.send_to(0, b.local_addr(2), &[i; 10]).unwrap());
        }
        let mut mask = 0;
        for _ in 0..1000 {
            mask = b.readable_paths(Some(Duration::from_millis(10))).unwrap();
            if mask != 0 {
                break;
            }
        }
        assert_eq!(mask, 0b100, "only path 2 has data");
        let mut batch = RecvBatch::new(8, 64);
        assert_eq!(b.recv_batch_paths(&mut batch, 0b011).unwrap(), 0);
        let mut got = Vec::new();
        for _ in 0..1000 {
            b.recv_batch_paths(&mut batch, 0b100).unwrap();
            got.extend(batch.iter().map(|d| (d.path, d.data[0], d.data.len())));
            if got.len() >= 6 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let want: Vec<_> = (0..6u8).map(|i| (2u8, i, 10usize)).collect();
        assert_eq!(got, want);
        assert_eq!(b.readable_paths(Some(Duration::ZERO)).unwrap(), 0);
    }

    #[test]
    fn errno_classes() {
        let k = |n| sys::classify(&io::Error::from_raw_os_error(n));
        assert_eq!(k(libc::EINTR), ErrKind::Interrupted);
        assert_eq!(k(libc::EAGAIN), ErrKind::WouldBlock);
        assert_eq!(k(libc::ENOBUFS), ErrKind::WouldBlock);
        assert_eq!(k(libc::ECONNREFUSED), ErrKind::Icmp);
        assert_eq!(k(libc::EPERM), ErrKind::Rejected);
        assert_eq!(k(libc::EMSGSIZE), ErrKind::Rejected);
        assert_eq!(k(libc::EBADF), ErrKind::Fatal);
    }
}
