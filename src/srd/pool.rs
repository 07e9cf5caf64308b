//! The send buffer pool: every posted send is copied into one of these and
//! stays there until it completes, so retransmission needs no allocation.
//! Each buffer keeps room for the data header in front of the payload
//! (`HEADROOM`): a transmission writes its header there and the datagram
//! goes to the kernel straight from the pool, with no copy. A buffer the
//! I/O layer still holds (handed out for sending, not yet taken by the
//! kernel) is pinned: freeing it waits until it is unpinned, so a datagram
//! never goes out of a buffer that was reused meanwhile.
//!
//! A sender that builds its packets itself borrows a buffer (`lend`), writes
//! the payload into it and posts it: the packet is written once, where it
//! is sent and kept for retransmission from.
//!
//! Buffers are allocated lazily on first use and then reused for the life of
//! the device; the pool never grows beyond its configured number. A buffer's
//! memory only grows (to the largest payload it carried), so reuse costs no
//! clearing.

use super::{ExtRef, Qpn};
use crate::wire::srd::DATA_HEADER_LEN;

pub(crate) const NONE: u32 = u32::MAX;
/// Bytes in front of every payload for the data header.
pub(crate) const HEADROOM: usize = DATA_HEADER_LEN;

#[derive(Debug)]
pub(crate) struct TxBuf {
    /// `HEADROOM` bytes, then the payload (`len` bytes), then spare room.
    data: Vec<u8>,
    len: usize,
    pub wr_id: u64,
    pub src_qpn: Qpn,
    pub dst_qpn: Qpn,
    pub qkey: u32,
    pub peer: u32,
    /// The payload's tail, left in the sender's memory (zero copy).
    pub ext: Option<ExtRef>,
    /// Handed to the I/O layer and not yet returned.
    pins: u16,
    /// Released while pinned: free it when the last pin goes.
    released: bool,
}

impl TxBuf {
    #[cfg(test)]
    pub fn payload(&self) -> &[u8] {
        &self.data[HEADROOM..HEADROOM + self.len]
    }

    /// The payload: the bytes in the buffer and the `ext` tail.
    pub fn payload_len(&self) -> usize {
        self.len + self.ext.map_or(0, |e| e.len as usize)
    }

    /// The datagram (without an `ext` tail), header room included (the
    /// header is written into it before each transmission).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[..HEADROOM + self.len]
    }

    pub fn frame(&self) -> &[u8] {
        &self.data[..HEADROOM + self.len]
    }

    /// The payload area, all of its room.
    pub fn spare(&self) -> &[u8] {
        &self.data[HEADROOM..]
    }

    /// Makes room for a payload of `n` bytes, growing only. Called with an
    /// empty payload, so a larger buffer replaces the old one: fresh zeroed
    /// memory whose pages the system maps only when a packet is written into
    /// them (a room asked for the largest link costs a small packet only the
    /// pages it fills).
    fn room(&mut self, n: usize) {
        if self.data.len() < HEADROOM + n {
            self.data = vec![0; HEADROOM + n];
        }
    }
}

#[derive(Debug)]
pub(crate) struct Pool {
    bufs: Vec<TxBuf>,
    free: Vec<u32>,
    cap: u32,
    in_use: u32,
    /// Buffers holding an `ext` reference (until freed).
    ext_live: u32,
    /// Capacity given to each buffer when first created (max payload and
    /// header room), so it never grows afterwards.
    buf_size: usize,
}

impl Pool {
    pub fn new(cap: u32, payload_size: usize) -> Self {
        Pool {
            bufs: Vec::new(),
            free: Vec::new(),
            cap,
            in_use: 0,
            ext_live: 0,
            buf_size: payload_size + HEADROOM,
        }
    }

    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    pub fn ext_live(&self) -> u32 {
        self.ext_live
    }

    /// Makes the payload of lent buffer `id` end in `ext` (counted live
    /// until the buffer is freed).
    pub fn set_ext(&mut self, id: u32, ext: ExtRef) {
        let Some(b) = self.get_mut(id) else { return };
        if b.ext.replace(ext).is_none() {
            self.ext_live += 1;
        }
    }

    /// Puts `id` on the free list; its reference, if any, is dropped.
    fn free(&mut self, id: u32) {
        let Some(b) = self.get_mut(id) else { return };
        b.released = false;
        if b.ext.take().is_some() {
            self.ext_live -= 1;
        }
        self.free.push(id);
        self.in_use -= 1;
    }

    pub fn allocated(&self) -> u32 {
        u32::try_from(self.bufs.len()).unwrap_or(u32::MAX)
    }

    pub fn available(&self) -> u32 {
        self.cap - self.in_use
    }

    /// Takes a buffer and fills its payload with a copy of `data`; `None`
    /// when empty.
    pub fn take(&mut self, data: &[u8]) -> Option<u32> {
        let id = self.lend(data.len())?;
        let b = self.get_mut(id)?;
        b.data[HEADROOM..][..data.len()].copy_from_slice(data);
        b.len = data.len();
        Some(id)
    }

    /// Takes a buffer with room for a payload of `room` bytes, its payload
    /// empty, for the caller to write (`spare_mut`, `set_len`) and post or
    /// `release`; `None` when empty.
    pub fn lend(&mut self, room: usize) -> Option<u32> {
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.allocated() < self.cap => {
                // Sized for this first use at once (not allocated small,
                // then replaced by `room`).
                self.bufs.push(TxBuf {
                    data: vec![0; self.buf_size.max(HEADROOM + room)],
                    len: 0,
                    wr_id: 0,
                    src_qpn: 0,
                    dst_qpn: 0,
                    qkey: 0,
                    peer: NONE,
                    ext: None,
                    pins: 0,
                    released: false,
                });
                self.allocated() - 1
            }
            None => return None,
        };
        let b = self.get_mut(id)?;
        b.room(room);
        b.len = 0;
        b.released = false;
        self.in_use += 1;
        Some(id)
    }

    /// The payload area of a lent buffer, all of its room.
    pub fn spare_mut(&mut self, id: u32) -> Option<&mut [u8]> {
        self.get_mut(id).map(|b| &mut b.data[HEADROOM..])
    }

    /// Sets the payload length of a lent buffer (at most its room).
    pub fn set_len(&mut self, id: u32, n: usize) -> bool {
        match self.get_mut(id) {
            Some(b) if HEADROOM + n <= b.data.len() => {
                b.len = n;
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, id: u32) -> Option<&TxBuf> {
        self.bufs.get(usize::try_from(id).ok()?)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut TxBuf> {
        self.bufs.get_mut(usize::try_from(id).ok()?)
    }

    /// The send it held is over. A pinned buffer is freed at its last
    /// `unpin`.
    pub fn release(&mut self, id: u32) {
        let Some(b) = self.get_mut(id) else { return };
        if b.pins > 0 {
            b.released = true;
            return;
        }
        self.free(id);
    }

    pub fn pin(&mut self, id: u32) {
        if let Some(b) = self.get_mut(id) {
            b.pins += 1;
        }
    }

    pub fn unpin(&mut self, id: u32) {
        let Some(b) = self.get_mut(id) else { return };
        b.pins = b.pins.saturating_sub(1);
        if b.pins == 0 && b.released {
            self.free(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_buffer_is_freed_at_its_last_unpin() {
        let mut p = Pool::new(2, 16);
        let a = p.take(b"abc").unwrap();
        assert_eq!(p.get(a).unwrap().payload(), b"abc");
        assert_eq!(p.get(a).unwrap().frame().len(), HEADROOM + 3);
        p.pin(a);
        p.pin(a);
        p.release(a);
        assert_eq!(p.in_use(), 1, "still pinned");
        p.unpin(a);
        assert_eq!(p.in_use(), 1);
        p.unpin(a);
        assert_eq!(p.in_use(), 0, "freed at the last unpin");
        let b = p.take(b"xy").unwrap();
        assert_eq!(b, a, "reused");
        p.pin(b);
        p.unpin(b);
        assert_eq!(p.in_use(), 1, "unpinning a live buffer does not free it");
    }

    #[test]
    fn a_lent_buffer_is_written_in_place_and_grows_only() {
        let mut p = Pool::new(2, 16);
        let a = p.lend(40).unwrap();
        assert_eq!(p.in_use(), 1);
        let room = p.spare_mut(a).unwrap();
        assert!(
            room.len() >= 40,
            "room for the asked payload beyond the default size"
        );
        room[..5].copy_from_slice(b"hello");
        assert!(p.set_len(a, 5));
        assert!(
            !p.set_len(a, 1 << 20),
            "a length beyond the room is refused"
        );
        assert_eq!(p.get(a).unwrap().payload(), b"hello");
        assert_eq!(p.get(a).unwrap().frame().len(), HEADROOM + 5);
        p.release(a);
        assert_eq!(p.in_use(), 0);
        // Reused for a small copy: the payload is exactly the new data.
        let b = p.take(b"xy").unwrap();
        assert_eq!(b, a);
        assert_eq!(p.get(b).unwrap().payload(), b"xy");
        assert!(
            p.spare_mut(b).unwrap().len() >= 40,
            "memory kept, not shrunk"
        );
        assert!(p.lend(1).is_some());
        assert!(p.lend(1).is_none(), "no more than the configured number");
    }

    #[test]
    fn an_ext_reference_lives_until_its_buffer_is_freed() {
        let mut p = Pool::new(2, 16);
        let a = p.lend(8).unwrap();
        assert!(p.set_len(a, 4));
        p.set_ext(
            a,
            ExtRef {
                key: 7,
                off: 100,
                len: 1000,
            },
        );
        assert_eq!(p.get(a).unwrap().payload_len(), 1004);
        assert_eq!(
            p.get(a).unwrap().frame().len(),
            HEADROOM + 4,
            "the tail is not in the buffer"
        );
        assert_eq!(p.ext_live(), 1);
        p.pin(a);
        p.release(a);
        assert_eq!(p.ext_live(), 1, "still held by the I/O layer");
        p.unpin(a);
        assert_eq!(p.ext_live(), 0);
        let b = p.lend(8).unwrap();
        assert_eq!(b, a);
        assert_eq!(
            p.get(b).unwrap().ext,
            None,
            "a reused buffer carries no reference"
        );
        p.release(b);
    }
}
