//! The send buffer pool: every posted send is copied into one of these and
//! stays there until it completes, so retransmission needs no allocation.
//! Each buffer keeps room for the data header in front of the payload
//! (`HEADROOM`): a transmission writes its header there and the datagram
//! goes to the kernel straight from the pool, with no copy. A buffer the
//! I/O layer still holds (handed out for sending, not yet taken by the
//! kernel) is pinned: freeing it waits until it is unpinned, so a datagram
//! never goes out of a buffer that was reused meanwhile.
//!
//! Buffers are allocated lazily on first use and then reused for the life of
//! the device; the pool never grows beyond its configured size.

use super::Qpn;
use crate::wire::srd::DATA_HEADER_LEN;

pub(crate) const NONE: u32 = u32::MAX;
/// Bytes in front of every payload for the data header.
pub(crate) const HEADROOM: usize = DATA_HEADER_LEN;

#[derive(Debug)]
pub(crate) struct TxBuf {
    /// `HEADROOM` bytes, then the payload.
    data: Vec<u8>,
    pub wr_id: u64,
    pub src_qpn: Qpn,
    pub dst_qpn: Qpn,
    pub qkey: u32,
    pub peer: u32,
    /// Handed to the I/O layer and not yet returned.
    pins: u16,
    /// Released while pinned: free it when the last pin goes.
    released: bool,
}

impl TxBuf {
    #[cfg(test)]
    pub fn payload(&self) -> &[u8] {
        &self.data[HEADROOM..]
    }

    pub fn payload_len(&self) -> usize {
        self.data.len() - HEADROOM
    }

    /// The whole buffer, header room included (the header is written into
    /// it before each transmission).
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    pub fn frame(&self) -> &[u8] {
        &self.data
    }
}

#[derive(Debug)]
pub(crate) struct Pool {
    bufs: Vec<TxBuf>,
    free: Vec<u32>,
    cap: u32,
    in_use: u32,
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
            buf_size: payload_size + HEADROOM,
        }
    }

    pub fn in_use(&self) -> u32 {
        self.in_use
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
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.allocated() < self.cap => {
                self.bufs.push(TxBuf {
                    data: Vec::with_capacity(self.buf_size),
                    wr_id: 0,
                    src_qpn: 0,
                    dst_qpn: 0,
                    qkey: 0,
                    peer: NONE,
                    pins: 0,
                    released: false,
                });
                self.allocated() - 1
            }
            None => return None,
        };
        let b = self.get_mut(id)?;
        b.data.clear();
        b.data.resize(HEADROOM, 0);
        b.data.extend_from_slice(data);
        b.released = false;
        self.in_use += 1;
        Some(id)
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
        self.free.push(id);
        self.in_use -= 1;
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
            b.released = false;
            self.free.push(id);
            self.in_use -= 1;
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
}
