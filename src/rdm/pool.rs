//! Bounded storage: one slab type with generation-tagged handles for
//! every table (operations, messages, peers, matcher entries, chunks), and
//! a chunk store for data that arrived before its receive was posted.
//!
//! Both are sized at creation and never grow past their limit, so network
//! input cannot turn into unbounded memory; entries are recycled, so the
//! steady state allocates nothing.

use std::num::NonZeroU64;

/// "No entry" in index links.
pub const NIL: u32 = u32::MAX;

/// Bits of a slot's generation that handles (and the tokens and wire
/// fields built from them) carry.
pub const GEN_BITS: u32 = 24;
const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// An entry of a [`Slab`]: its slot and the slot's generation when the
/// entry was stored. Removing the entry moves the slot to the next
/// generation, so a handle kept past its entry's life (a datagram verdict,
/// a queued control packet, a stale response) is refused by the slab.
///
/// Packed in one non-zero word, `(generation + 1) << 32 | slot`, so a
/// handle travels in a register and `Option<Handle>` costs nothing extra.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle(NonZeroU64);

/// The generation part of a handle as entries store it (generation + 1).
type Tag = u32;

const fn tag(generation: u32) -> Tag {
    (generation & GEN_MASK) + 1
}

impl Handle {
    /// A handle rebuilt from its parts (a token, an RMA op reference). The
    /// generation is taken modulo 2^GEN_BITS, as the slab counts it.
    #[inline]
    pub const fn from_parts(idx: u32, generation: u32) -> Self {
        Handle::tagged(idx, tag(generation))
    }

    #[inline]
    const fn tagged(idx: u32, tag: Tag) -> Self {
        // tag ≥ 1: the word is never zero.
        match NonZeroU64::new(((tag as u64) << 32) | idx as u64) {
            Some(v) => Handle(v),
            None => Handle(NonZeroU64::MAX),
        }
    }

    #[inline]
    fn tag(self) -> Tag {
        (self.0.get() >> 32) as Tag
    }

    #[inline]
    pub fn idx(self) -> u32 {
        self.0.get() as u32
    }

    #[inline]
    pub fn generation(self) -> u32 {
        self.tag() - 1
    }
}

#[derive(Debug)]
struct Entry<T> {
    /// The slot's generation + 1 (what handles carry).
    tag: Tag,
    value: Option<T>,
}

/// A bounded slab with a free list. Owners address entries by [`Handle`]
/// (checked against the slot's generation); structures that link their
/// own entries by slot (`NIL`-terminated lists inside one matcher or
/// chunk store, which unlink an entry before removing it) use the `*_at`
/// slot accessors.
#[derive(Debug)]
pub struct Slab<T> {
    entries: Vec<Entry<T>>,
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
    #[inline]
    pub fn insert(&mut self, v: T) -> Result<Handle, T> {
        if let Some(i) = self.free.pop() {
            let e = &mut self.entries[i as usize];
            e.value = Some(v);
            self.used += 1;
            return Ok(Handle::tagged(i, e.tag));
        }
        if self.entries.len() >= self.cap {
            return Err(v);
        }
        Ok(self.push(v))
    }

    /// Stores `v` even past the capacity: for entries whose number the
    /// protocol bounds (out-of-order messages: the msg credit window per
    /// peer), which must never be refused. The slab keeps what it grew to.
    #[inline]
    pub fn insert_force(&mut self, v: T) -> Handle {
        match self.insert(v) {
            Ok(h) => h,
            Err(v) => self.push(v),
        }
    }

    #[inline]
    fn push(&mut self, v: T) -> Handle {
        self.entries.push(Entry {
            tag: tag(0),
            value: Some(v),
        });
        self.used += 1;
        Handle::tagged((self.entries.len() - 1) as u32, tag(0))
    }

    #[inline]
    fn entry(&self, h: Handle) -> Option<&Entry<T>> {
        self.entries
            .get(h.idx() as usize)
            .filter(|e| e.tag == h.tag())
    }

    #[inline]
    pub fn get(&self, h: Handle) -> Option<&T> {
        self.entry(h)?.value.as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, h: Handle) -> Option<&mut T> {
        let e = self.entries.get_mut(h.idx() as usize)?;
        if e.tag != h.tag() {
            return None;
        }
        e.value.as_mut()
    }

    #[inline]
    pub fn contains(&self, h: Handle) -> bool {
        self.get(h).is_some()
    }

    /// Removes the entry of `h`; its slot moves to the next generation.
    #[inline]
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        let e = self.entries.get_mut(h.idx() as usize)?;
        if e.tag != h.tag() || e.value.is_none() {
            return None;
        }
        e.tag = tag(e.tag);
        self.free.push(h.idx());
        self.used -= 1;
        // Last, so the value moves straight into the caller's slot.
        e.value.take()
    }

    /// The handle of the live entry in slot `i` (an index that came from
    /// the wire, checked by the caller against the entry's content).
    #[inline]
    pub fn handle_at(&self, i: u32) -> Option<Handle> {
        self.entry_at(i).map(|(h, _)| h)
    }

    /// The live entry in slot `i` with its handle.
    #[inline]
    pub fn entry_at(&self, i: u32) -> Option<(Handle, &T)> {
        let e = self.entries.get(i as usize)?;
        Some((Handle::tagged(i, e.tag), e.value.as_ref()?))
    }

    /// The live entry in slot `i` (links within one structure).
    #[inline]
    pub fn at(&self, i: u32) -> Option<&T> {
        self.entries.get(i as usize)?.value.as_ref()
    }

    #[inline]
    pub fn at_mut(&mut self, i: u32) -> Option<&mut T> {
        self.entries.get_mut(i as usize)?.value.as_mut()
    }

    #[inline]
    pub fn remove_at(&mut self, i: u32) -> Option<T> {
        let h = self.handle_at(i)?;
        self.remove(h)
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.used
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.used >= self.cap
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Slots ever used (≥ `capacity` after `insert_force` grew the slab):
    /// `handle_at(i)` for `i` below it visits every entry.
    pub fn slots(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Live entries with their handles (cancel, timeouts, liveness: rare,
    /// bounded scans).
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            let v = e.value.as_ref()?;
            Some((Handle::tagged(i as u32, e.tag), v))
        })
    }

    /// Slots of live entries.
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.value.is_some())
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
        let i = self
            .chunks
            .insert_force(Chunk {
                data: buf,
                offset,
                next: NIL,
            })
            .idx();
        if list.tail == NIL {
            list.head = i;
        } else if let Some(t) = self.chunks.at_mut(list.tail) {
            t.next = i;
        }
        list.tail = i;
    }

    /// Hands every chunk of `list` to `f(offset, bytes)` and frees them.
    pub fn drain(&mut self, list: &mut ChunkList, mut f: impl FnMut(u64, &[u8])) {
        let mut i = list.head;
        while i != NIL {
            let Some(c) = self.chunks.remove_at(i) else {
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
        assert_eq!(c.idx(), a.idx());
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(s.indices().count(), 2);
        assert_eq!(
            s.iter().map(|(h, &v)| (h, v)).collect::<Vec<_>>(),
            [(c, 4), (b, 2)]
        );
    }

    #[test]
    fn stale_handles_are_refused() {
        let mut s = Slab::with_capacity(1);
        let a = s.insert("a").unwrap();
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b").unwrap();
        assert_eq!((b.idx(), b.generation()), (a.idx(), 1));
        assert_eq!(s.get(a), None);
        assert_eq!(s.get_mut(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.handle_at(a.idx()), Some(b));
        assert_eq!(s.at(a.idx()), Some(&"b"));
        // Generations wrap at GEN_BITS, as tokens carry them.
        let mut h = b;
        for _ in 0..(1u32 << GEN_BITS) {
            s.remove(h);
            h = s.insert("x").unwrap();
        }
        assert_eq!(h.generation(), 1);
        assert_eq!(Handle::from_parts(h.idx(), 1 + (1 << GEN_BITS)), h);
        // One word, also as an option.
        assert_eq!(std::mem::size_of::<Option<Handle>>(), 8);
        // Forced entries past the capacity are slots too.
        let f = s.insert_force("f");
        assert_eq!((s.len(), s.slots()), (2, 2));
        assert_eq!(s.remove_at(f.idx()), Some("f"));
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
