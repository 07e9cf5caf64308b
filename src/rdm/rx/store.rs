//! Storage of message data that arrived before its receive buffer, and
//! the budgets it is charged to.
//!
//! A message's stored data is its [`Stash`]; the stash's class says which
//! budget holds it: out-of-order messages (`Reorder`, bounded per peer by
//! the msg credit window, never refused) or in-order messages without a
//! receive (`Unexpected`, bounded by `unexp_max_bytes`, `unexp_max_count`
//! and a chunk count). Only these methods move a stash between classes
//! or change its content, so the counters always equal the sums over the
//! stashes of each class: `unexp_bytes`/`unexp_chunks`/`unexp_msgs` those
//! of the unexpected ones, `reorder_bytes`/`reorder_msgs` those of the
//! held ones. Chunks are charged their buffer's size (`ChunkStore::charge`)
//! so the budgets bound memory really held.

use crate::rdm::pool::{ChunkList, ChunkStore};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Class {
    /// Counted nowhere (new, attached to a receive, discarded, done).
    #[default]
    Free,
    /// Held out of order.
    Reorder,
    /// In order without a receive (unexpected or claimed).
    Unexpected,
}

/// One message's stored data.
#[derive(Debug, Default)]
pub(super) struct Stash {
    list: ChunkList,
    /// Bytes charged and chunks held.
    bytes: usize,
    chunks: usize,
    class: Class,
}

/// The budget a chunk did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Full;

/// Limits of the unexpected budget.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub max_bytes: usize,
    pub max_msgs: usize,
    pub max_chunks: usize,
}

#[derive(Debug)]
pub(super) struct Store {
    chunks: ChunkStore,
    lim: Limits,
    unexp_bytes: usize,
    unexp_chunks: usize,
    unexp_msgs: usize,
    reorder_bytes: usize,
    reorder_msgs: usize,
}

impl Store {
    /// `expected`: chunks usually held at once (sizing only); `buf_cap`:
    /// the largest chunk (one packet).
    pub fn new(lim: Limits, expected: usize, buf_cap: usize) -> Self {
        Store {
            chunks: ChunkStore::new(expected, buf_cap),
            lim,
            unexp_bytes: 0,
            unexp_chunks: 0,
            unexp_msgs: 0,
            reorder_bytes: 0,
            reorder_msgs: 0,
        }
    }

    /// Whether a new in-order message without a receive, whose first
    /// packet carries `n` bytes, may be kept as unexpected.
    pub fn admits(&self, n: usize) -> bool {
        let charge = if n > 0 { self.chunks.charge(n) } else { 0 };
        self.unexp_bytes + charge <= self.lim.max_bytes
            && self.unexp_msgs < self.lim.max_msgs
            && self.unexp_chunks < self.lim.max_chunks
    }

    /// False while the unexpected budget is used up.
    pub fn has_room(&self) -> bool {
        self.unexp_bytes < self.lim.max_bytes
            && self.unexp_msgs < self.lim.max_msgs
            && self.unexp_chunks < self.lim.max_chunks
    }

    /// Bytes held for unexpected and for out-of-order messages.
    pub fn bytes(&self) -> (usize, usize) {
        (self.unexp_bytes, self.reorder_bytes)
    }

    /// A new message is held out of order.
    pub fn hold(&mut self, s: &mut Stash) {
        if s.class == Class::Free {
            s.class = Class::Reorder;
            self.reorder_msgs += 1;
        }
    }

    /// A message reached matching without a receive: it is kept as
    /// unexpected, with what it held out of order. May overshoot the
    /// unexpected budget by what was held: bounded by the credit window,
    /// and refusing it is not an option.
    pub fn keep(&mut self, s: &mut Stash) {
        match s.class {
            Class::Unexpected => return,
            Class::Reorder => {
                self.reorder_bytes -= s.bytes;
                self.reorder_msgs -= 1;
            }
            Class::Free => {}
        }
        s.class = Class::Unexpected;
        self.unexp_bytes += s.bytes;
        self.unexp_chunks += s.chunks;
        self.unexp_msgs += 1;
    }

    /// Stores a copy of `data` (at message offset `off`). Out-of-order
    /// data is always taken; unexpected data only within the budget
    /// (`Full`: present the packet again later). A message counted
    /// nowhere stores nothing.
    pub fn push(&mut self, s: &mut Stash, off: u64, data: &[u8]) -> Result<(), Full> {
        if data.is_empty() {
            return Ok(());
        }
        let c = self.chunks.charge(data.len());
        match s.class {
            Class::Free => return Ok(()),
            Class::Reorder => self.reorder_bytes += c,
            Class::Unexpected => {
                if self.unexp_bytes + c > self.lim.max_bytes
                    || self.unexp_chunks >= self.lim.max_chunks
                {
                    return Err(Full);
                }
                self.unexp_bytes += c;
                self.unexp_chunks += 1;
            }
        }
        self.chunks.push(&mut s.list, off, data);
        s.bytes += c;
        s.chunks += 1;
        Ok(())
    }

    /// Hands every stored chunk to `f(offset, bytes)`, frees them and
    /// takes the message out of its budget.
    pub fn release(&mut self, s: &mut Stash, f: impl FnMut(u64, &[u8])) {
        match s.class {
            Class::Free => {}
            Class::Reorder => {
                self.reorder_bytes -= s.bytes;
                self.reorder_msgs -= 1;
            }
            Class::Unexpected => {
                self.unexp_bytes -= s.bytes;
                self.unexp_chunks -= s.chunks;
                self.unexp_msgs -= 1;
            }
        }
        self.chunks.drain(&mut s.list, f);
        *s = Stash::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let lim = Limits {
            max_bytes: 1024,
            max_msgs: 2,
            max_chunks: 100,
        };
        Store::new(lim, 4, 512)
    }

    #[test]
    fn budgets_follow_the_stashes() {
        let mut st = store();
        let (mut a, mut b) = (Stash::default(), Stash::default());
        st.hold(&mut a);
        st.push(&mut a, 0, &[1; 10]).unwrap();
        st.push(&mut a, 10, &[2; 300]).unwrap();
        assert_eq!(st.bytes(), (0, 256 + 512));
        // Held data is taken whatever the unexpected budget.
        assert!(st.admits(600));
        st.keep(&mut a);
        assert_eq!(st.bytes(), (768, 0));
        assert!(!st.admits(600));
        assert!(st.admits(1));
        st.keep(&mut b);
        assert!(!st.has_room(), "two messages: the count is used up");
        assert_eq!(st.push(&mut b, 0, &[3; 300]), Err(Full));
        st.push(&mut b, 0, &[3; 10]).unwrap();
        assert_eq!(st.bytes(), (1024, 0));
        let mut got = Vec::new();
        st.release(&mut a, |off, d| got.push((off, d.len())));
        assert_eq!(got, [(0, 10), (10, 300)]);
        st.release(&mut b, |_, _| {});
        assert_eq!(st.bytes(), (0, 0));
        assert!(st.has_room());
        assert_eq!((st.unexp_msgs, st.unexp_chunks, st.reorder_msgs), (0, 0, 0));
        // A message counted nowhere stores nothing.
        let mut c = Stash::default();
        st.push(&mut c, 0, &[1; 10]).unwrap();
        assert_eq!(c.chunks, 0);
    }
}
