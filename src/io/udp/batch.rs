//! Preallocated receive batch for recvmmsg: slot buffers, iovecs, source
//! addresses and message headers are allocated once and reused every call.

use std::mem;
use std::net::SocketAddrV4;

use super::sys;

/// Room for one cmsg carrying an int (CMSG_SPACE(4) = 24), 8-aligned.
type Ctrl = [u64; 4];

/// Default number of datagram slots in a [`RecvBatch`].
pub const DEFAULT_SLOTS: usize = 64;
/// Default slot size: any IPv4 UDP datagram (≤ 65507 bytes) fits.
pub const DEFAULT_SLOT_SIZE: usize = 65536;

/// One received datagram, borrowed from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvItem<'a> {
    /// Index of the local socket (path) it arrived on.
    pub path: u8,
    /// Sender address.
    pub src: SocketAddrV4,
    /// Payload.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    slot: u32,
    off: u32,
    len: u32,
    path: u8,
    src: SocketAddrV4,
}

/// Reusable receive batch. Create once (it allocates `slots × slot_size`
/// bytes), pass to [`UdpBackend::recv_batch`](super::UdpBackend::recv_batch)
/// repeatedly; each call replaces the previous contents.
pub struct RecvBatch {
    // Heap memory the kernel writes into; `iovs`/`hdrs` hold raw pointers into
    // `buf`, `names`, `iovs` and `ctrl`, refreshed by `headers` before
    // each call.
    buf: Box<[u8]>,
    names: Box<[libc::sockaddr_in]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
    /// Per-slot control buffer, for the UDP_GRO segment-size cmsg.
    ctrl: Box<[Ctrl]>,
    slot_size: usize,
    items: Vec<Meta>,
    /// The receive that filled the batch stopped at its capacity.
    full: bool,
}

// SAFETY: the raw pointers inside `iovs` and `hdrs` only point into heap
// allocations owned by this same struct; they are rebuilt and then
// dereferenced (by the kernel) only during a recvmmsg call made through
// `&mut self`. Moving the batch to another thread moves that ownership with it.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.capacity())
            .field("slot_size", &self.slot_size)
            .field("len", &self.items.len())
            .finish()
    }
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new(DEFAULT_SLOTS, DEFAULT_SLOT_SIZE)
    }
}

impl RecvBatch {
    /// `slots` is clamped to 1..=1024 and `slot_size` to 1..=65536. A datagram
    /// longer than `slot_size` is discarded and counted as truncated.
    pub fn new(slots: usize, slot_size: usize) -> Self {
        let slots = slots.clamp(1, 1024);
        let slot_size = slot_size.clamp(1, DEFAULT_SLOT_SIZE);
        let buf = vec![0u8; slots * slot_size].into_boxed_slice();
        // SAFETY: sockaddr_in, iovec and mmsghdr are plain C structs for
        // which all-zero (null pointers, zero lengths) is a valid value; the
        // pointers are filled in by `headers` before each use.
        let names: Box<[libc::sockaddr_in]> =
            (0..slots).map(|_| unsafe { mem::zeroed() }).collect();
        // SAFETY: as above.
        let iovs: Box<[libc::iovec]> = (0..slots).map(|_| unsafe { mem::zeroed() }).collect();
        // SAFETY: as above.
        let hdrs: Box<[libc::mmsghdr]> = (0..slots).map(|_| unsafe { mem::zeroed() }).collect();
        Self {
            buf,
            names,
            iovs,
            hdrs,
            ctrl: vec![[0; 4]; slots].into_boxed_slice(),
            slot_size,
            items: Vec::with_capacity(slots),
            full: false,
        }
    }

    /// Number of slots (maximum datagrams per call).
    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Size of each slot in bytes.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Datagrams held from the last receive.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.items.clear();
        self.full = false;
    }

    /// Whether the receive that filled the batch stopped because every
    /// slot was used (more may be waiting); `false`: it emptied every
    /// socket it read, so reading again at once would most likely find
    /// nothing.
    pub fn full(&self) -> bool {
        self.full
    }

    pub(super) fn set_full(&mut self, full: bool) {
        self.full = full;
    }

    pub fn get(&self, i: usize) -> Option<RecvItem<'_>> {
        let m = self.items.get(i)?;
        let start = m.slot as usize * self.slot_size + m.off as usize;
        Some(RecvItem {
            path: m.path,
            src: m.src,
            data: &self.buf[start..start + m.len as usize],
        })
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = RecvItem<'_>> + '_ {
        (0..self.items.len()).map(|i| self.get(i).expect("index below len"))
    }

    /// Prepares slots `first..first + n` for a recvmmsg call and returns
    /// their headers (a read that will likely find nothing need not prepare
    /// every slot). Pointers are rebuilt on every call (a few stores per
    /// slot) so they are always derived from the current borrow of the owned
    /// buffers; the kernel also overwrites `msg_namelen`, so it is reset.
    pub(super) fn headers(&mut self, first: usize, n: usize) -> &mut [libc::mmsghdr] {
        let end = first.saturating_add(n).min(self.hdrs.len());
        let base = self.buf.as_mut_ptr();
        for i in first..end {
            // `i * slot_size` is inside `buf` (it has slots × slot_size bytes).
            self.iovs[i].iov_base = base.wrapping_add(i * self.slot_size).cast();
            self.iovs[i].iov_len = self.slot_size;
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
            h.msg_hdr.msg_namelen = sys::SOCKADDR_IN_LEN;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = mem::size_of::<Ctrl>() as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        &mut self.hdrs[first.min(end)..end]
    }

    /// Outcome of slot `slot` after recvmmsg filled it: received length,
    /// whether it was truncated, the source, and the GRO segment size when
    /// the kernel coalesced several datagrams into this slot (0 otherwise).
    pub(super) fn slot_result(&self, slot: usize) -> (usize, bool, SocketAddrV4, usize) {
        let h = &self.hdrs[slot];
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (
            h.msg_len as usize,
            truncated,
            sys::sockaddr_to(&self.names[slot]),
            gro_segment(&h.msg_hdr),
        )
    }

    /// Adds the datagram at `off..off + len` of `slot` to the batch.
    pub(super) fn push(
        &mut self,
        slot: usize,
        off: usize,
        len: usize,
        path: u8,
        src: SocketAddrV4,
    ) {
        debug_assert!(off + len <= self.slot_size);
        self.items.push(Meta {
            slot: slot as u32,
            off: off as u32,
            len: len as u32,
            path,
            src,
        });
    }
}

/// The UDP_GRO segment size in a received message's control data, or 0.
pub(super) fn gro_segment(msg: &libc::msghdr) -> usize {
    if msg.msg_control.is_null() {
        return 0;
    }
    // SAFETY: msg_control/msg_controllen describe the control buffer the
    // kernel just filled; CMSG_FIRSTHDR (null when it is shorter than a
    // cmsghdr) and CMSG_NXTHDR stay within msg_controllen and return null at
    // its end; the data of a UDP_GRO cmsg is one int.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(msg);
        while !cm.is_null() {
            if (*cm).cmsg_level == libc::SOL_UDP && (*cm).cmsg_type == libc::UDP_GRO {
                let seg = std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::c_int>());
                return usize::try_from(seg).unwrap_or(0);
            }
            cm = libc::CMSG_NXTHDR(msg, cm);
        }
    }
    0
}
