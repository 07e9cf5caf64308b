//! The send buffer pool: every posted send is copied into one of these and
//! stays there until it completes, so retransmission needs no allocation.
//! Buffers are allocated lazily on first use and then reused for the life of
//! the device; the pool never grows beyond its configured size.

use super::Qpn;

pub(crate) const NONE: u32 = u32::MAX;

#[derive(Debug)]
pub(crate) struct TxBuf {
    pub data: Vec<u8>,
    pub wr_id: u64,
    pub src_qpn: Qpn,
    pub dst_qpn: Qpn,
    pub qkey: u32,
    pub peer: u32,
}

#[derive(Debug)]
pub(crate) struct Pool {
    bufs: Vec<TxBuf>,
    free: Vec<u32>,
    cap: u32,
    in_use: u32,
    /// Capacity given to each buffer when first created (max payload), so
    /// it never grows afterwards.
    buf_size: usize,
}

impl Pool {
    pub fn new(cap: u32, buf_size: usize) -> Self {
        Pool {
            bufs: Vec::new(),
            free: Vec::new(),
            cap,
            in_use: 0,
            buf_size,
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

    /// Takes a buffer and fills it with a copy of `data`; `None` when empty.
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
                });
                self.allocated() - 1
            }
            None => return None,
        };
        let b = self.get_mut(id)?;
        b.data.clear();
        b.data.extend_from_slice(data);
        self.in_use += 1;
        Some(id)
    }

    pub fn get(&self, id: u32) -> Option<&TxBuf> {
        self.bufs.get(usize::try_from(id).ok()?)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut TxBuf> {
        self.bufs.get_mut(usize::try_from(id).ok()?)
    }

    pub fn release(&mut self, id: u32) {
        self.free.push(id);
        self.in_use -= 1;
    }
}
