//! Fixed layout of a receive-ring segment and the lock-free ring on it.
//!
//! The segment is one file in /dev/shm, mapped by its owner (the only
//! consumer) and by every local sender (producers). The ring is Vyukov's
//! bounded MPMC queue with a single consumer: each slot carries a sequence
//! number; a producer claims position `p` by CAS on `enqueue_pos` when
//! `slot[p].seq == p`, fills the slot and publishes `seq = p + 1`; the consumer
//! reads slot `p` when `seq == p + 1` and frees it with `seq = p + slots`.
//! A full ring shows as `seq < p` to a producer, which then gives up (`Full`):
//! nobody ever waits on another process.
//!
//! ```text
//! offset  header (256 B; line 0 is written once at creation, except `state`)
//!   0     magic  u64 = "SRDSHM01"
//!   8     version u32, 12 slots u32 (power of two), 16 slot_size u32,
//!  20     stride u32, 24 owner_pid u32, 28 flags u32 (bit 0: owner can use CMA)
//!  32     nonce u64, 40 state u32 (0 creating, 1 open, 2 closed)
//!  48     owner_base u64: where the owner maps this segment (CMA check)
//!  64     waiter u32: the owner is about to sleep; a producer that publishes
//!         while it is set rings the owner's doorbell (its own line)
//! 128     enqueue_pos u64 (its own 128-byte pair of lines: producers' CAS)
//! 256     slot[0], slot[1], ... each `stride` bytes (a multiple of 64):
//!           0 seq u64 | 8 len u32 | 12 writer pid u32 | 16 writer nonce u64 | 24 - | 32 data
//! ```
//! A producer stores its pid into the slot right after claiming it, and the
//! consumer clears it when freeing the slot: if a producer dies between claim
//! and publish, the consumer finds the slot claimed, unpublished, and owned by
//! a dead pid, and skips it instead of waiting forever (`Ring::skip`).
//! ```text
//! ```
//! An 8-byte packet and its slot header share one cache line, so a message
//! costs one line transfer to the consumer and one back.
//!
//! Multi-byte fields are native-endian: only processes of one host map it.

use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SRDSHM01");
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER: usize = 256;
pub(crate) const SLOT_HEADER: usize = 32;
pub(crate) const FLAG_CMA: u32 = 1;

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_SLOTS: usize = 12;
pub(crate) const OFF_SLOT_SIZE: usize = 16;
pub(crate) const OFF_STRIDE: usize = 20;
pub(crate) const OFF_PID: usize = 24;
pub(crate) const OFF_FLAGS: usize = 28;
pub(crate) const OFF_NONCE: usize = 32;
pub(crate) const OFF_STATE: usize = 40;
pub(crate) const OFF_BASE: usize = 48;
const OFF_WAITER: usize = 64;
const OFF_ENQ: usize = 128;

pub(crate) const STATE_CREATING: u32 = 0;
pub(crate) const STATE_OPEN: u32 = 1;
pub(crate) const STATE_CLOSED: u32 = 2;

/// Largest ring accepted from a peer's header (sanity bound, not a tuning).
pub(crate) const MAX_SLOTS: u32 = 1 << 20;
pub(crate) const MAX_SLOT_SIZE: u32 = 16 << 20;

/// Bytes between slot starts for a payload size.
pub(crate) fn stride_for(slot_size: usize) -> usize {
    (SLOT_HEADER + slot_size).div_ceil(64) * 64
}

/// Bytes of a whole segment.
pub(crate) fn segment_len(slots: usize, slot_size: usize) -> usize {
    HEADER + slots * stride_for(slot_size)
}

/// Geometry read from (or written to) a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub slots: u32,
    pub slot_size: u32,
    pub owner_pid: u32,
    pub flags: u32,
    pub nonce: u64,
}

/// Outcome of a consumer's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pop {
    Empty,
    Consumed,
    /// The callback declined the packet: still in the ring.
    Kept,
    /// Impossible length: freed, not delivered.
    Bad,
}

/// Outcome of a producer's attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    Done,
    Full,
}

/// A view of a mapped segment. Holds raw pointers; the mapping's owner
/// ([`super::segment::Mapping`]) keeps it alive for as long as the view is used.
#[derive(Debug)]
pub(crate) struct Ring {
    base: *mut u8,
    mask: u64,
    slots: u64,
    stride: usize,
    slot_size: usize,
}

// SAFETY: the ring only touches shared memory through atomics and through
// slot bytes owned by the caller per the sequence protocol; the raw pointer
// is valid for the life of the mapping, which moves with the owner.
unsafe impl Send for Ring {}

impl Ring {
    /// Writes a fresh header and slot sequence numbers (state stays
    /// `CREATING`; [`Ring::set_state`] publishes it).
    ///
    /// # Safety
    /// `base` points to a writable mapping of `segment_len(g.slots, g.slot_size)`
    /// bytes, 64-byte aligned, that nobody else uses yet.
    pub(crate) unsafe fn init(base: *mut u8, g: Geometry) -> Ring {
        let stride = stride_for(g.slot_size as usize);
        // SAFETY: all offsets lie inside the header of a mapping the caller
        // vouches for; nobody else reads it before `state` is published.
        unsafe {
            ptr::write(base.add(OFF_MAGIC) as *mut u64, MAGIC);
            ptr::write(base.add(OFF_VERSION) as *mut u32, VERSION);
            ptr::write(base.add(OFF_SLOTS) as *mut u32, g.slots);
            ptr::write(base.add(OFF_SLOT_SIZE) as *mut u32, g.slot_size);
            ptr::write(base.add(OFF_STRIDE) as *mut u32, stride as u32);
            ptr::write(base.add(OFF_PID) as *mut u32, g.owner_pid);
            ptr::write(base.add(OFF_FLAGS) as *mut u32, g.flags);
            ptr::write(base.add(OFF_NONCE) as *mut u64, g.nonce);
        }
        let ring = Ring {
            base,
            mask: g.slots as u64 - 1,
            slots: g.slots as u64,
            stride,
            slot_size: g.slot_size as usize,
        };
        ring.enq().store(0, Ordering::Relaxed);
        for i in 0..ring.slots {
            ring.seq(i).store(i, Ordering::Relaxed);
        }
        ring
    }

    /// Reads and checks a peer's header; `len` is the mapped length.
    ///
    /// # Safety
    /// `base` points to a readable and writable mapping of `len ≥ HEADER` bytes.
    pub(crate) unsafe fn attach(
        base: *mut u8,
        len: usize,
    ) -> Result<(Ring, Geometry), &'static str> {
        // SAFETY: `len ≥ HEADER`, so these header reads stay in the mapping.
        let (magic, version, slots, slot_size, stride, pid, flags, nonce) = unsafe {
            (
                ptr::read_volatile(base.add(OFF_MAGIC) as *const u64),
                ptr::read_volatile(base.add(OFF_VERSION) as *const u32),
                ptr::read_volatile(base.add(OFF_SLOTS) as *const u32),
                ptr::read_volatile(base.add(OFF_SLOT_SIZE) as *const u32),
                ptr::read_volatile(base.add(OFF_STRIDE) as *const u32),
                ptr::read_volatile(base.add(OFF_PID) as *const u32),
                ptr::read_volatile(base.add(OFF_FLAGS) as *const u32),
                ptr::read_volatile(base.add(OFF_NONCE) as *const u64),
            )
        };
        if magic != MAGIC {
            return Err("bad magic");
        }
        if version != VERSION {
            return Err("unsupported version");
        }
        if !slots.is_power_of_two()
            || slots > MAX_SLOTS
            || slot_size == 0
            || slot_size > MAX_SLOT_SIZE
        {
            return Err("bad geometry");
        }
        if stride as usize != stride_for(slot_size as usize)
            || segment_len(slots as usize, slot_size as usize) != len
        {
            return Err("size mismatch");
        }
        let g = Geometry {
            slots,
            slot_size,
            owner_pid: pid,
            flags,
            nonce,
        };
        let ring = Ring {
            base,
            mask: slots as u64 - 1,
            slots: slots as u64,
            stride: stride as usize,
            slot_size: slot_size as usize,
        };
        Ok((ring, g))
    }

    pub(crate) fn slots(&self) -> usize {
        self.slots as usize
    }

    pub(crate) fn slot_size(&self) -> usize {
        self.slot_size
    }

    fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-aligned header offset inside the mapping,
        // which outlives `self`; shared access goes through the atomic only.
        unsafe { &*(self.base.add(off) as *const AtomicU32) }
    }

    fn enq(&self) -> &AtomicU64 {
        // SAFETY: 8-aligned header offset inside the mapping (see atomic_u32).
        unsafe { &*(self.base.add(OFF_ENQ) as *const AtomicU64) }
    }

    fn slot(&self, pos: u64) -> *mut u8 {
        let i = (pos & self.mask) as usize;
        // SAFETY: i < slots, so the slot lies inside the checked segment length.
        unsafe { self.base.add(HEADER + i * self.stride) }
    }

    fn seq(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: a slot starts 64-aligned inside the mapping; its first 8
        // bytes are the sequence number, only ever accessed atomically.
        unsafe { &*(self.slot(pos) as *const AtomicU64) }
    }

    /// The address of this segment in its owner's address space: a peer
    /// that reads the nonce there with CMA and finds its own copy's value
    /// knows the pid it has names the owner, in its own pid namespace.
    pub(crate) fn owner_base(&self) -> u64 {
        // SAFETY: 8-aligned header offset inside the mapping; written once
        // before the state is published (release/acquire on `state`).
        unsafe { ptr::read_volatile(self.base.add(OFF_BASE) as *const u64) }
    }

    /// Owner, before publishing the state.
    pub(crate) fn set_owner_base(&self) {
        // SAFETY: as in `owner_base`; only the owner writes it, once.
        unsafe { ptr::write_volatile(self.base.add(OFF_BASE) as *mut u64, self.base as u64) }
    }

    /// Producers' claim counter: every slot claimed so far lies below it.
    pub(crate) fn enqueued(&self) -> u64 {
        self.enq().load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> u32 {
        self.atomic_u32(OFF_STATE).load(Ordering::Acquire)
    }

    pub(crate) fn set_state(&self, s: u32) {
        self.atomic_u32(OFF_STATE).store(s, Ordering::Release)
    }

    /// Producer: claims a free slot, tags it with the sender's identity and
    /// lets `write` fill its `len` bytes (≤ slot_size, checked by the
    /// caller) in place, then publishes it. Lock-free; never waits.
    /// `write` must not panic: a claimed slot left unpublished by a live
    /// process stalls the ring.
    pub(crate) fn push_with(
        &self,
        src_pid: u32,
        src_nonce: u64,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Push {
        assert!(len <= self.slot_size);
        let enq = self.enq();
        let mut pos = enq.load(Ordering::Relaxed);
        loop {
            let seq = self.seq(pos).load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i64;
            if diff == 0 {
                match enq.compare_exchange_weak(pos, pos + 1, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(cur) => pos = cur,
                }
            } else if diff < 0 {
                return Push::Full;
            } else {
                pos = enq.load(Ordering::Relaxed);
            }
        }
        // First thing after the claim: who is writing (see `writer`).
        self.writer_pid(pos).store(src_pid, Ordering::Relaxed);
        let slot = self.slot(pos);
        // SAFETY: winning the CAS at `pos` while `seq == pos` gives this
        // producer exclusive use of the slot until it publishes `pos + 1`;
        // the data region holds slot_size ≥ len bytes (asserted above), so
        // the slice is in the mapping and nobody else uses it meanwhile.
        let dst = unsafe {
            ptr::write(slot.add(8) as *mut u32, len as u32);
            ptr::write(slot.add(16) as *mut u64, src_nonce);
            std::slice::from_raw_parts_mut(slot.add(SLOT_HEADER), len)
        };
        write(dst);
        // SeqCst, paired with the consumer's in `set_waiter`/`published`:
        // either the consumer sees this slot before sleeping, or we see its
        // waiter flag after publishing and ring its doorbell (Dekker).
        self.seq(pos).store(pos + 1, Ordering::SeqCst);
        Push::Done
    }

    /// Whether the owner sleeps waiting for packets (producers read it
    /// right after publishing a slot).
    pub(crate) fn waiter(&self) -> bool {
        self.atomic_u32(OFF_WAITER).load(Ordering::SeqCst) != 0
    }

    /// Owner: announces (or withdraws) that it is about to sleep. After
    /// setting it the owner must look at its head slot again
    /// ([`published`](Self::published)) before sleeping.
    pub(crate) fn set_waiter(&self, on: bool) {
        self.atomic_u32(OFF_WAITER)
            .store(u32::from(on), Ordering::SeqCst);
    }

    /// Owner: whether the slot at `head` is published.
    pub(crate) fn published(&self, head: u64) -> bool {
        self.seq(head).load(Ordering::SeqCst) == head + 1
    }

    /// Consumer: if the slot at `head` is published, hands its contents to
    /// `f`; frees the slot unless `f` returns false (the packet then stays
    /// at the head of the ring and is offered again by the next call).
    ///
    /// # Safety
    /// Only the ring's single consumer calls this, with its own `head`.
    pub(crate) unsafe fn pop(&self, head: u64, f: &mut impl FnMut(u32, u64, &[u8]) -> bool) -> Pop {
        let seq = self.seq(head);
        if seq.load(Ordering::Acquire) != head + 1 {
            return Pop::Empty;
        }
        let slot = self.slot(head);
        // SAFETY: `seq == head + 1` (acquire) means a producer finished the
        // slot and no producer touches it until we store `head + slots`.
        let (len, nonce) = unsafe {
            (
                ptr::read(slot.add(8) as *const u32) as usize,
                ptr::read(slot.add(16) as *const u64),
            )
        };
        let pid = self.writer_pid(head).load(Ordering::Relaxed);
        if len > self.slot_size {
            self.free(head);
            return Pop::Bad;
        }
        // SAFETY: as above; len ≤ slot_size keeps the slice in the slot.
        let data = unsafe { std::slice::from_raw_parts(slot.add(SLOT_HEADER), len) };
        if !f(pid, nonce, data) {
            return Pop::Kept;
        }
        self.free(head);
        Pop::Consumed
    }

    fn writer_pid(&self, pos: u64) -> &AtomicU32 {
        // SAFETY: bytes 12..16 of a slot (4-aligned) inside the mapping; the
        // field is only accessed atomically.
        unsafe { &*(self.slot(pos).add(12) as *const AtomicU32) }
    }

    /// Consumer: hands slot `head` back to producers (writer cleared first,
    /// so a non-zero writer always belongs to the current claim).
    fn free(&self, head: u64) {
        self.writer_pid(head).store(0, Ordering::Relaxed);
        self.seq(head).store(head + self.slots, Ordering::Release);
    }

    /// Consumer: if slot `head` was claimed by a producer that has not
    /// published it, that producer's pid (0 if it has not even written it).
    pub(crate) fn writer(&self, head: u64) -> Option<u32> {
        if self.seq(head).load(Ordering::Acquire) != head
            || self.enq().load(Ordering::Relaxed) <= head
        {
            return None;
        }
        Some(self.writer_pid(head).load(Ordering::Relaxed))
    }

    /// Consumer: gives up on slot `head`, claimed by a producer that died
    /// before publishing it. The caller has made sure the writer is dead:
    /// a live one would later write into a slot handed to someone else.
    ///
    /// # Safety
    /// Only the ring's single consumer calls this, with its own `head`.
    pub(crate) unsafe fn skip(&self, head: u64) {
        self.free(head);
    }
}
