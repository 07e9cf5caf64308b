//! The sendmmsg path: message headers for one path's chunk of datagrams,
//! optionally coalescing runs of equal-size datagrams to one destination into
//! a single UDP GSO message (UDP_SEGMENT), which the kernel splits again.

use std::collections::HashSet;
use std::io;
use std::mem;
use std::net::SocketAddrV4;

use super::sys::{self, ErrKind};
use super::{MAX_ERR_RETRIES, MAX_TAIL, MAX_UDP_PAYLOAD, SEND_CHUNK, SendItem, UdpStats};

/// Most segments in one GSO message (the kernel's UDP_MAX_SEGMENTS is ≥ 64).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Control buffer per message: room for one UDP_SEGMENT cmsg (24 bytes),
/// in u64s for cmsghdr alignment.
type Ctrl = [u64; 4];

/// Where GSO may be used: on, unless the kernel lacks it, except toward the
/// destinations for which it refused a GSO send (a route whose MTU is below
/// the segment size, a device without checksum offload): those get plain
/// datagrams, the others keep their bursts. Past `MAX_REFUSED` such
/// destinations GSO is turned off for all (the set stays bounded).
#[derive(Debug)]
pub(super) struct Gso {
    on: bool,
    refused: HashSet<SocketAddrV4>,
}

const MAX_REFUSED: usize = 1024;

impl Gso {
    pub(super) fn new(on: bool) -> Self {
        Gso {
            on,
            refused: HashSet::new(),
        }
    }

    /// Whether sends may use GSO at all.
    pub(super) fn on(&self) -> bool {
        self.on
    }

    fn allows(&self, dst: SocketAddrV4) -> bool {
        self.on && (self.refused.is_empty() || !self.refused.contains(&dst))
    }

    fn refuse(&mut self, dst: SocketAddrV4) {
        if self.refused.len() >= MAX_REFUSED {
            self.on = false;
            self.refused.clear();
        } else {
            self.refused.insert(dst);
        }
    }

    /// Destinations currently sent plain datagrams for a GSO refusal.
    pub(super) fn refused(&self) -> usize {
        self.refused.len()
    }
}

/// Preallocated sendmmsg scratch; raw pointers are rebuilt for every chunk.
pub(super) struct SendScratch {
    names: Box<[libc::sockaddr_in]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    ctrl: Box<[Ctrl]>,
    /// Per message: first chunk position, number of datagrams and bytes.
    starts: Box<[u8]>,
    runs: Box<[u8]>,
    bytes: Box<[u32]>,
    /// Chunk position → index into the caller's items.
    pub(super) idx: Box<[u32]>,
    /// Per-item "handed over" flags of the current send_batch call.
    pub(super) done: Vec<bool>,
    /// Per item of the current send_batch call: the next item on its path.
    pub(super) next: Vec<u32>,
}

impl SendScratch {
    pub(super) fn new() -> Self {
        // SAFETY (for the three `zeroed` calls): sockaddr_in, iovec and
        // mmsghdr are plain C structs for which all-zero (null pointers, zero
        // lengths) is valid; pointers are set before each sendmmsg.
        Self {
            // SAFETY: see above.
            names: (0..SEND_CHUNK).map(|_| unsafe { mem::zeroed() }).collect(),
            // SAFETY: see above.
            // One per datagram and tail slice.
            iovs: (0..SEND_CHUNK * (1 + MAX_TAIL))
                .map(|_| unsafe { mem::zeroed() })
                .collect(),
            // SAFETY: see above.
            hdrs: (0..SEND_CHUNK).map(|_| unsafe { mem::zeroed() }).collect(),
            ctrl: vec![[0; 4]; SEND_CHUNK].into_boxed_slice(),
            starts: vec![0; SEND_CHUNK].into_boxed_slice(),
            runs: vec![0; SEND_CHUNK].into_boxed_slice(),
            bytes: vec![0; SEND_CHUNK].into_boxed_slice(),
            idx: vec![0; SEND_CHUNK].into_boxed_slice(),
            done: Vec::with_capacity(SEND_CHUNK),
            next: Vec::new(),
        }
    }

    /// Fills message headers for chunk positions `from..k`; returns the
    /// number of messages. Where `gso` allows the destination, a run of datagrams to one destination,
    /// all of one size except possibly a shorter, non-empty last one, and
    /// at most 65507 bytes in total, becomes one message.
    fn build(&mut self, items: &[SendItem<'_>], from: usize, k: usize, gso: &Gso) -> usize {
        let mut j = from;
        let mut m = 0;
        let mut v = 0;
        while j < k {
            let first = &items[self.idx[j] as usize];
            let seg = first.len();
            let mut run = 1;
            if seg > 0 && gso.allows(first.dst) {
                let mut total = seg;
                while j + run < k && run < GSO_MAX_SEGMENTS {
                    let it = &items[self.idx[j + run] as usize];
                    let len = it.len();
                    if it.dst != first.dst || len == 0 || len > seg || total + len > MAX_UDP_PAYLOAD
                    {
                        break;
                    }
                    total += len;
                    run += 1;
                    if len < seg {
                        break;
                    }
                }
            }
            // [data, tail...] of each datagram in turn: a GSO message's
            // segments are cut by size, whatever the iovec boundaries.
            let v0 = v;
            let mut bytes = 0;
            for q in j..j + run {
                let it = &items[self.idx[q] as usize];
                for data in std::iter::once(it.data).chain(it.tail.iter().copied()) {
                    if data.is_empty() {
                        continue;
                    }
                    self.iovs[v] = libc::iovec {
                        iov_base: data.as_ptr().cast_mut().cast(),
                        iov_len: data.len(),
                    };
                    v += 1;
                    bytes += data.len();
                }
            }
            self.names[m] = sys::sockaddr_from(first.dst);
            let h = &mut self.hdrs[m];
            h.msg_hdr.msg_name = (&mut self.names[m] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = sys::SOCKADDR_IN_LEN;
            h.msg_hdr.msg_iov = &mut self.iovs[v0];
            h.msg_hdr.msg_iovlen = v - v0;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
            if run > 1 {
                let cm = self.ctrl[m].as_mut_ptr().cast::<libc::cmsghdr>();
                // SAFETY: `ctrl[m]` is 32 bytes, 8-aligned, so it holds a
                // cmsghdr plus 2 data bytes (CMSG_SPACE(2) = 24); CMSG_DATA
                // points inside it and the u16 write is unaligned-safe.
                unsafe {
                    (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                    (*cm).cmsg_level = libc::SOL_UDP;
                    (*cm).cmsg_type = libc::UDP_SEGMENT;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), seg as u16);
                    h.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                }
                h.msg_hdr.msg_control = cm.cast();
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            self.starts[m] = j as u8;
            self.runs[m] = run as u8;
            self.bytes[m] = bytes as u32;
            m += 1;
            j += run;
        }
        m
    }

    fn bytes_of(&self, msg: usize) -> u64 {
        u64::from(self.bytes[msg])
    }
}

/// Errors after which a GSO message is retried as plain datagrams (the
/// route's MTU is below the segment size, no checksum offload, old kernel).
fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::EMSGSIZE | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Sends chunk positions `0..k` (items `tx.idx[..k]`) on socket `fd`.
/// Returns how many (a prefix of the chunk) were handed over or lost on the
/// way; short when the socket buffer is full. On an unexpected error, the
/// count so far and the error. A refused GSO send marks its destination in
/// `gso` and resends the rest, that destination's as plain datagrams.
pub(super) fn send_chunk(
    fd: libc::c_int,
    tx: &mut SendScratch,
    items: &[SendItem<'_>],
    k: usize,
    gso: &mut Gso,
    stats: &mut UdpStats,
) -> Result<usize, (usize, io::Error)> {
    let mut base = 0;
    'build: loop {
        let m = tx.build(items, base, k, gso);
        let mut h = 0;
        let mut retries = 0;
        while h < m {
            // SAFETY: headers `h..m` were filled by `build` with pointers
            // into `tx`'s boxed arrays and into caller slices borrowed for the
            // whole call; the kernel only reads through them.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    tx.hdrs[h..m].as_mut_ptr(),
                    (m - h) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            stats.send_syscalls += 1;
            if r > 0 {
                for msg in h..h + r as usize {
                    let run = tx.runs[msg] as usize;
                    stats.tx_datagrams += run as u64;
                    stats.tx_bytes += tx.bytes_of(msg);
                    stats.gso_sends += u64::from(run > 1);
                    base += run;
                }
                h += r as usize;
                continue;
            }
            let e = if r == 0 {
                io::Error::from_raw_os_error(libc::EAGAIN)
            } else {
                io::Error::last_os_error()
            };
            if tx.runs[h] > 1 && gso_unsupported(&e) {
                gso.refuse(items[tx.idx[tx.starts[h] as usize] as usize].dst);
                stats.gso_fallbacks += 1;
                continue 'build;
            }
            match sys::classify(&e) {
                ErrKind::Interrupted => {}
                ErrKind::WouldBlock => {
                    stats.eagain += 1;
                    return Ok(base);
                }
                ErrKind::Icmp => {
                    // The pending error was consumed; the message was not sent.
                    stats.icmp_errors += 1;
                    retries += 1;
                    if retries > MAX_ERR_RETRIES {
                        return Ok(base);
                    }
                }
                ErrKind::Rejected => {
                    // Refused by the kernel: lost, as on the wire.
                    let run = tx.runs[h] as usize;
                    stats.tx_rejected += run as u64;
                    base += run;
                    h += 1;
                }
                ErrKind::Fatal => {
                    stats.io_errors += 1;
                    return Err((base, e));
                }
            }
        }
        return Ok(base);
    }
}
