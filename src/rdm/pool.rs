//! Bounded storage: a slab with a free list for operations and messages,
//! and a chunk store for data that arrived before its receive was posted.
//!
//! Both are sized at creation and never grow past their limit, so network
//! input cannot turn into unbounded memory; entries are recycled, so the
//! steady state allocates nothing.

/// "No entry" in index links.
pub const NIL: u32 = u32::MAX;

/// A fixed-capacity slab addressed by `u32`.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Option<T>>,
    free: Vec<u32>,
    cap: usize,
    used: usize,
}

impl<T> Slab<T> {
    pub fn with_capacity(cap: usize) -> Self {
        Slab {
            entries: Vec::with_capacity(cap),
            free: Vec::with_capacity(cap),
            cap,
            used: 0,
        }
    }

    /// A slab bounded by `cap` that allocates as it fills (amortised
    /// doubling) instead of up front: for tables whose bound is far above
    /// their usual size (peers: 65 536 allowed, a few used).
    pub fn lazy(cap: usize) -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            cap,
            used: 0,
        }
    }

    /// Stores `v`; `Err(v)` when full.
    pub fn insert(&mut self, v: T) -> Result<u32, T> {
        if let Some(i) = self.free.pop() {
            self.entries[i as usize] = Some(v);
            self.used += 1;
            return Ok(i);
        }
        if self.entries.len() >= self.cap {
            return Err(v);
        }
        self.entries.push(Some(v));
        self.used += 1;
        Ok((self.entries.len() - 1) as u32)
    }

    /// Stores `v` even past the capacity: for entries whose number the
    /// protocol bounds (out-of-order messages: the msg credit window per
    /// peer), which must never be refused. The slab keeps what it grew to.
    pub fn insert_force(&mut self, v: T) -> u32 {
        match self.insert(v) {
            Ok(i) => i,
            Err(v) => {
                self.entries.push(Some(v));
                self.used += 1;
                (self.entries.len() - 1) as u32
            }
        }
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.entries.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.used -= 1;
        Some(v)
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.entries.get(i as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.entries.get_mut(i as usize)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn is_full(&self) -> bool {
        self.used >= self.cap
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Indices of live entries (cancel, timeouts: rare, bounded scans).
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| i as u32)
    }
}

#[derive(Debug)]
struct Chunk {
    data: Vec<u8>,
    offset: u64,
    next: u32,
}

/// A singly linked list of chunks owned by one message.
#[derive(Clone, Copy, Debug)]
pub struct ChunkList {
    head: u32,
    tail: u32,
}

impl Default for ChunkList {
    fn default() -> Self {
        ChunkList {
            head: NIL,
            tail: NIL,
        }
    }
}

/// Chunks up to this size use small buffers.
pub const SMALL_CHUNK: usize = 256;

/// Data of messages that have no receive buffer yet, one chunk per packet.
/// Buffers come in two sizes (small, and one packet) and are recycled, so
/// the steady state allocates nothing; a chunk is charged its buffer's
/// size (`charge`), so budgets bound the memory really held, not just the
/// payload (a 1-byte message in a 64 kB buffer is 64 kB).
#[derive(Debug)]
pub struct ChunkStore {
    chunks: Slab<Chunk>,
    spare_small: Vec<Vec<u8>>,
    spare_large: Vec<Vec<u8>>,
    buf_cap: usize,
}

impl ChunkStore {
    /// `expected`: chunks usually held at once (initial sizing only).
    pub fn new(expected: usize, buf_cap: usize) -> Self {
        ChunkStore {
            chunks: Slab::with_capacity(expected),
            spare_small: Vec::with_capacity(expected),
            spare_large: Vec::with_capacity(expected),
            buf_cap: buf_cap.max(SMALL_CHUNK + 1),
        }
    }

    /// Bytes a chunk of `n` bytes holds.
    pub fn charge(&self, n: usize) -> usize {
        if n <= SMALL_CHUNK {
            SMALL_CHUNK
        } else {
            self.buf_cap.max(n)
        }
    }

    /// Appends a copy of `data` (at message `offset`) to `list`. The
    /// caller bounds how much is stored (budgets in `rx`); the store only
    /// recycles buffers.
    pub fn push(&mut self, list: &mut ChunkList, offset: u64, data: &[u8]) {
        let mut buf = if data.len() <= SMALL_CHUNK {
            self.spare_small
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(SMALL_CHUNK))
        } else {
            self.spare_large
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.buf_cap))
        };
        buf.clear();
        buf.extend_from_slice(data);
        let i = self.chunks.insert_force(Chunk {
            data: buf,
            offset,
            next: NIL,
        });
        if list.tail == NIL {
            list.head = i;
        } else if let Some(t) = self.chunks.get_mut(list.tail) {
            t.next = i;
        }
        list.tail = i;
    }

    /// Hands every chunk of `list` to `f(offset, bytes)` and frees them.
    pub fn drain(&mut self, list: &mut ChunkList, mut f: impl FnMut(u64, &[u8])) {
        let mut i = list.head;
        while i != NIL {
            let Some(c) = self.chunks.remove(i) else {
                break;
            };
            f(c.offset, &c.data);
            i = c.next;
            if c.data.capacity() > SMALL_CHUNK {
                self.spare_large.push(c.data);
            } else {
                self.spare_small.push(c.data);
            }
        }
        *list = ChunkList::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_is_bounded_and_recycles() {
        let mut s = Slab::with_capacity(2);
        let a = s.insert(1).unwrap();
        let b = s.insert(2).unwrap();
        assert_eq!(s.insert(3), Err(3));
        assert_eq!(s.remove(a), Some(1));
        assert_eq!(s.remove(a), None);
        let c = s.insert(4).unwrap();
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.indices().count(), 2);
    }

    #[test]
    fn chunks_drain_in_order_and_recycle() {
        let mut st = ChunkStore::new(1, 16);
        let mut l = ChunkList::default();
        st.push(&mut l, 5, b"xy");
        st.push(&mut l, 0, b"abcde");
        let mut got = vec![];
        st.drain(&mut l, |o, d| got.push((o, d.to_vec())));
        assert_eq!(got, vec![(5, b"xy".to_vec()), (0, b"abcde".to_vec())]);
        assert_eq!(st.spare_small.len(), 2);
        st.push(&mut l, 0, b"q");
        assert_eq!(st.spare_small.len(), 1);
        st.push(&mut l, 0, &[0; 300]);
        assert_eq!(st.charge(300), 300);
        assert_eq!(st.charge(3), SMALL_CHUNK);
    }
}
