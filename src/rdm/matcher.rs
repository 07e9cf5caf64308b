//! Tag matching: posted receives and unexpected messages.
//!
//! Posted receives with an exact tag (no ignore bits) live in a hash map of
//! per-tag queues. Receives with ignore bits are grouped by their ignore
//! mask (applications use very few: MPI_ANY_TAG is one), each group a hash
//! map from the masked tag to a queue in post order. Each posted receive
//! gets a sequence number, so a message takes the earliest of the first
//! compatible candidate of each queue it maps to — libfabric's "first
//! posted receive that matches" rule in O(number of masks), whatever the
//! number of posted receives. Queues are keyed by (tag, source) with a
//! wildcard source for any-source receives, so FI_DIRECTED_RECV receives
//! from thousands of peers cost no scan either: a message looks at the
//! head of (tag, its source) and (tag, any) in each map.
//!
//! Unexpected messages are in three lists: by (tag, source), by tag, and
//! all in arrival order (for receives with ignore bits, the one scan left:
//! the unexpected queue is short unless the application is behind).
//! Untagged receives use a second `Matcher` with tag 0.
//!
//! All lists are intrusive (index links inside slab entries), so nothing is
//! allocated per operation. A queue a match empties keeps its key (the next
//! receive or message of that tag, the usual case, finds it instead of
//! inserting it again, and the match removes nothing); empty keys are
//! dropped when they would grow a map, so its size stays within twice the
//! keys live at once.

pub use super::pool::Handle;
use super::pool::{NIL, Slab};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hasher for u64 keys (tags are not attacker-chosen in a
/// way that matters: the map is bounded by our own posted receives).
#[derive(Default, Clone, Copy)]
pub struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        let x = (self.0 ^ v).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 = x ^ (x >> 31);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v).rotate_left(32) ^ 0x9e37_79b9);
    }
}

/// Source of an any-source receive in map keys.
const ANY: u32 = u32::MAX;

/// (tag after the ignore mask, source or ANY).
type Key = (u64, u32);

/// Queues by key. A queue a match empties keeps its key; when the keys
/// reach `limit`, the empty ones are dropped and `limit` becomes at least
/// twice the live ones, so the map holds at most twice the keys ever live
/// at once and a purge is at least half a map of new keys away from the
/// next (amortised O(1) per key).
#[derive(Debug)]
struct TagMap {
    map: HashMap<Key, Head, BuildHasherDefault<TagHasher>>,
    limit: usize,
}

impl TagMap {
    fn with_capacity(n: usize) -> Self {
        TagMap {
            map: HashMap::with_capacity_and_hasher(n, Default::default()),
            limit: n.max(8),
        }
    }

    fn get(&self, key: &Key) -> Option<&Head> {
        self.map.get(key)
    }

    /// The queue of `key`, created empty if new.
    fn queue(&mut self, key: Key) -> &mut Head {
        if self.map.len() >= self.limit {
            self.map.retain(|_, h| h.head != NIL);
            self.limit = self.limit.max(2 * self.map.len());
        }
        self.map.entry(key).or_insert(EMPTY)
    }
}

#[derive(Clone, Copy, Debug)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links {
    prev: NIL,
    next: NIL,
};

#[derive(Clone, Copy, Debug)]
struct Head {
    head: u32,
    tail: u32,
}

const EMPTY: Head = Head {
    head: NIL,
    tail: NIL,
};

fn push_back<T>(slab: &mut Slab<T>, h: &mut Head, i: u32, l: fn(&mut T) -> &mut Links) {
    if let Some(e) = slab.at_mut(i) {
        *l(e) = Links {
            prev: h.tail,
            next: NIL,
        };
    }
    if h.tail == NIL {
        h.head = i;
    } else if let Some(t) = slab.at_mut(h.tail) {
        l(t).next = i;
    }
    h.tail = i;
}

fn unlink<T>(slab: &mut Slab<T>, h: &mut Head, i: u32, l: fn(&mut T) -> &mut Links) {
    let Some(e) = slab.at_mut(i) else {
        return;
    };
    let Links { prev, next } = *l(e);
    *l(e) = UNLINKED;
    match slab.at_mut(prev) {
        Some(p) => l(p).next = next,
        None => h.head = next,
    }
    match slab.at_mut(next) {
        Some(n) => l(n).prev = prev,
        None => h.tail = prev,
    }
}

fn map_push<T>(
    map: &mut TagMap,
    slab: &mut Slab<T>,
    tag: Key,
    i: u32,
    l: fn(&mut T) -> &mut Links,
) {
    push_back(slab, map.queue(tag), i, l);
}

/// Unlinks entry `i` from queue `tag`; an emptied queue keeps its key.
fn map_unlink<T>(
    map: &mut TagMap,
    slab: &mut Slab<T>,
    tag: Key,
    i: u32,
    l: fn(&mut T) -> &mut Links,
) {
    if let Some(h) = map.map.get_mut(&tag) {
        unlink(slab, h, i, l);
    }
}

/// Wildcard groups kept while empty before they are purged.
const MAX_IDLE: usize = 8;

#[derive(Debug)]
struct Group {
    ignore: u64,
    map: TagMap,
    count: usize,
    /// How many of `count` are directed: lets a lookup skip the probe that
    /// cannot hit (a probe that misses costs a cache miss or two).
    directed: usize,
}

#[derive(Debug)]
struct Posted {
    seq: u64,
    tag: u64,
    ignore: u64,
    src: Option<u32>,
    value: u32,
    link: Links,
}

#[derive(Debug)]
struct Unexp {
    tag: u64,
    src: u32,
    value: u32,
    by_tag: Links,
    by_tag_src: Links,
    all: Links,
}

fn posted_link(p: &mut Posted) -> &mut Links {
    &mut p.link
}
fn unexp_tag_link(u: &mut Unexp) -> &mut Links {
    &mut u.by_tag
}
fn unexp_tag_src_link(u: &mut Unexp) -> &mut Links {
    &mut u.by_tag_src
}
fn unexp_all_link(u: &mut Unexp) -> &mut Links {
    &mut u.all
}

fn src_ok(want: Option<u32>, src: u32) -> bool {
    want.is_none_or(|w| w == src)
}

#[derive(Debug)]
pub struct Matcher {
    posted: Slab<Posted>,
    /// Exact-tag receives; `exact_directed` of `exact_count` are directed.
    exact: TagMap,
    exact_count: usize,
    exact_directed: usize,
    /// Wildcard receives by ignore mask. Empty groups are kept (a mask
    /// comes back, and a group's map keeps its memory) up to `MAX_IDLE`.
    groups: Vec<Group>,
    seq: u64,
    unexp: Slab<Unexp>,
    /// Keys (tag, ANY) and (tag, source).
    unexp_tag: TagMap,
    unexp_all: Head,
}

impl Matcher {
    pub fn new(max_posted: usize, max_unexpected: usize) -> Self {
        Matcher {
            posted: Slab::with_capacity(max_posted),
            exact: TagMap::with_capacity(max_posted),
            exact_count: 0,
            exact_directed: 0,
            groups: Vec::new(),
            seq: 0,
            unexp: Slab::with_capacity(max_unexpected),
            unexp_tag: TagMap::with_capacity(2 * max_unexpected),
            unexp_all: EMPTY,
        }
    }

    /// Posts a receive carrying `value`; `None` when the table is full.
    pub fn post(&mut self, tag: u64, ignore: u64, src: Option<u32>, value: u32) -> Option<Handle> {
        self.seq += 1;
        let tag = tag & !ignore;
        let h = self
            .posted
            .insert(Posted {
                seq: self.seq,
                tag,
                ignore,
                src,
                value,
                link: UNLINKED,
            })
            .ok()?;
        let i = h.idx();
        let key = (tag, src.unwrap_or(ANY));
        let directed = usize::from(src.is_some());
        if ignore == 0 {
            self.exact_count += 1;
            self.exact_directed += directed;
            map_push(&mut self.exact, &mut self.posted, key, i, posted_link);
        } else {
            let g = match self.groups.iter().position(|g| g.ignore == ignore) {
                Some(g) => g,
                None => {
                    if self.groups.len() >= MAX_IDLE {
                        self.groups.retain(|g| g.count > 0);
                    }
                    self.groups.push(Group {
                        ignore,
                        map: TagMap::with_capacity(0),
                        count: 0,
                        directed: 0,
                    });
                    self.groups.len() - 1
                }
            };
            let g = &mut self.groups[g];
            g.count += 1;
            g.directed += directed;
            map_push(&mut g.map, &mut self.posted, key, i, posted_link);
        }
        Some(h)
    }

    pub fn unpost(&mut self, h: Handle) -> Option<u32> {
        let (key, ignore, directed) = {
            let p = self.posted.get(h)?;
            (
                (p.tag, p.src.unwrap_or(ANY)),
                p.ignore,
                usize::from(p.src.is_some()),
            )
        };
        let i = h.idx();
        if ignore == 0 {
            map_unlink(&mut self.exact, &mut self.posted, key, i, posted_link);
            self.exact_count -= 1;
            self.exact_directed -= directed;
        } else if let Some(g) = self.groups.iter_mut().find(|g| g.ignore == ignore) {
            map_unlink(&mut g.map, &mut self.posted, key, i, posted_link);
            g.count -= 1;
            g.directed -= directed;
        }
        self.posted.remove(h).map(|p| p.value)
    }

    /// The earliest posted receive that takes a message (`tag`, `src`);
    /// it stays posted (multi-receive buffers take several messages).
    pub fn match_posted(&self, tag: u64, src: u32) -> Option<(Handle, u32)> {
        let mut best = None;
        let mut consider = |c: Option<(Handle, u64, u32)>| {
            if let Some(c) = c
                && best.is_none_or(|(_, s, _)| c.1 < s)
            {
                best = Some(c);
            }
        };
        if self.exact_directed > 0 {
            consider(self.head_of(&self.exact, (tag, src)));
        }
        if self.exact_count > self.exact_directed {
            consider(self.head_of(&self.exact, (tag, ANY)));
        }
        for g in &self.groups {
            let t = tag & !g.ignore;
            if g.directed > 0 {
                consider(self.head_of(&g.map, (t, src)));
            }
            if g.count > g.directed {
                consider(self.head_of(&g.map, (t, ANY)));
            }
        }
        best.map(|(h, _, v)| (h, v))
    }

    /// Oldest receive of queue `key`: (handle, seq, value).
    fn head_of(&self, map: &TagMap, key: Key) -> Option<(Handle, u64, u32)> {
        let (h, p) = self.posted.entry_at(map.get(&key)?.head)?;
        Some((h, p.seq, p.value))
    }

    /// Appends the source of every directed posted receive.
    pub fn directed_sources(&self, out: &mut Vec<u32>) {
        if self.exact_directed == 0 && self.groups.iter().all(|g| g.directed == 0) {
            return;
        }
        out.extend(self.posted.iter().filter_map(|(_, p)| p.src));
    }

    /// The posted receives directed at `src`: (handle, value).
    pub fn posted_from(&self, src: u32) -> Vec<(Handle, u32)> {
        self.posted
            .iter()
            .filter(|(_, p)| p.src == Some(src))
            .map(|(h, p)| (h, p.value))
            .collect()
    }

    pub fn posted_len(&self) -> usize {
        self.posted.len()
    }

    pub fn posted_full(&self) -> bool {
        self.posted.is_full()
    }

    /// Records an unexpected message; `None` when the table is full.
    pub fn add_unexpected(&mut self, tag: u64, src: u32, value: u32) -> Option<Handle> {
        let h = self
            .unexp
            .insert(Unexp {
                tag,
                src,
                value,
                by_tag: UNLINKED,
                by_tag_src: UNLINKED,
                all: UNLINKED,
            })
            .ok()?;
        let i = h.idx();
        map_push(
            &mut self.unexp_tag,
            &mut self.unexp,
            (tag, ANY),
            i,
            unexp_tag_link,
        );
        map_push(
            &mut self.unexp_tag,
            &mut self.unexp,
            (tag, src),
            i,
            unexp_tag_src_link,
        );
        push_back(&mut self.unexp, &mut self.unexp_all, i, unexp_all_link);
        Some(h)
    }

    pub fn unexpected_full(&self) -> bool {
        self.unexp.is_full()
    }

    pub fn unexpected_len(&self) -> usize {
        self.unexp.len()
    }

    /// The earliest unexpected message a receive (`tag`, `ignore`, `src`)
    /// takes; left in place (FI_PEEK).
    pub fn find_unexpected(
        &self,
        tag: u64,
        ignore: u64,
        src: Option<u32>,
    ) -> Option<(Handle, u32)> {
        if ignore == 0 {
            let i = self.unexp_tag.get(&(tag, src.unwrap_or(ANY)))?.head;
            return self.unexp.entry_at(i).map(|(h, u)| (h, u.value));
        }
        let want = tag & !ignore;
        let mut i = self.unexp_all.head;
        while let Some((h, u)) = self.unexp.entry_at(i) {
            if u.tag & !ignore == want && src_ok(src, u.src) {
                return Some((h, u.value));
            }
            i = u.all.next;
        }
        None
    }

    pub fn remove_unexpected(&mut self, h: Handle) -> Option<u32> {
        let (tag, src) = self.unexp.get(h).map(|u| (u.tag, u.src))?;
        let i = h.idx();
        map_unlink(
            &mut self.unexp_tag,
            &mut self.unexp,
            (tag, ANY),
            i,
            unexp_tag_link,
        );
        map_unlink(
            &mut self.unexp_tag,
            &mut self.unexp,
            (tag, src),
            i,
            unexp_tag_src_link,
        );
        unlink(&mut self.unexp, &mut self.unexp_all, i, unexp_all_link);
        self.unexp.remove(h).map(|u| u.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_of_exact_and_wildcard_wins() {
        let mut m = Matcher::new(16, 16);
        let w = m.post(0x10, 0xff, None, 1).unwrap(); // any tag 0x00..0xff
        let e = m.post(0x12, 0, None, 2).unwrap();
        assert_eq!(m.match_posted(0x12, 0), Some((w, 1)));
        m.unpost(w);
        assert_eq!(m.match_posted(0x12, 0), Some((e, 2)));
        let w2 = m.post(0x0, 0xff, None, 3).unwrap();
        assert_eq!(m.match_posted(0x12, 0), Some((e, 2)));
        assert_eq!(m.match_posted(0x13, 0), Some((w2, 3)));
        assert_eq!(m.match_posted(0x113, 0), None);
    }

    #[test]
    fn several_masks_keep_post_order() {
        let mut m = Matcher::new(64, 4);
        let a = m.post(0x1200, 0x00ff, None, 1).unwrap(); // 0x12__
        let b = m.post(0x1000, 0x0fff, None, 2).unwrap(); // 0x1___
        let c = m.post(0x1234, 0, None, 3).unwrap();
        assert_eq!(m.match_posted(0x1234, 0), Some((a, 1)));
        assert_eq!(m.match_posted(0x1334, 0), Some((b, 2)));
        m.unpost(a);
        assert_eq!(m.match_posted(0x1234, 0), Some((b, 2)));
        m.unpost(b);
        assert_eq!(m.match_posted(0x1234, 0), Some((c, 3)));
        assert_eq!(m.match_posted(0x1334, 0), None);
        // Masks come and go without growing the group list.
        for k in 0..100u64 {
            let h = m.post(0, 1 << (k % 20), None, 9).unwrap();
            m.unpost(h);
        }
        assert!(m.groups.len() <= MAX_IDLE + 1);
    }

    #[test]
    fn directed_receives_filter_source() {
        let mut m = Matcher::new(16, 16);
        let a = m.post(5, 0, Some(1), 10).unwrap();
        let b = m.post(5, 0, None, 11).unwrap();
        assert_eq!(m.match_posted(5, 2), Some((b, 11)));
        assert_eq!(m.match_posted(5, 1), Some((a, 10)));
        assert_eq!(m.unpost(a), Some(10));
        assert_eq!(m.unpost(a), None);
        assert_eq!(m.match_posted(5, 1), Some((b, 11)));
    }

    #[test]
    fn emptied_keys_stay_bounded() {
        let mut m = Matcher::new(16, 16);
        let cap = m.exact.map.capacity();
        // Many distinct tags, one receive live at a time: the emptied
        // keys are purged instead of growing the map.
        for t in 0..10_000u64 {
            let h = m.post(t, 0, None, 1).unwrap();
            assert_eq!(m.match_posted(t, 0), Some((h, 1)));
            assert_eq!(m.unpost(h), Some(1));
            assert_eq!(m.match_posted(t, 0), None);
        }
        assert!(m.exact.map.capacity() <= cap);
        // Sixteen live tags and churn on others: bounded by twice the live
        // keys, and matching still right.
        let live: Vec<_> = (0..16u64)
            .map(|t| m.post(1 << 40 | t, 0, None, 2).unwrap())
            .collect();
        m.unpost(live[0]);
        for t in 0..10_000u64 {
            let h = m.post(t, 0, Some(3), 4).unwrap();
            assert_eq!(m.match_posted(t, 3), Some((h, 4)));
            m.unpost(h);
        }
        assert!(m.exact.map.len() <= 2 * 16, "{}", m.exact.map.len());
        assert_eq!(m.match_posted(1 << 40 | 5, 9), Some((live[5], 2)));
        assert_eq!(m.match_posted(1 << 40, 9), None);
        // Unexpected messages likewise.
        for t in 0..10_000u64 {
            let h = m.add_unexpected(t, (t % 7) as u32, 5).unwrap();
            assert_eq!(m.find_unexpected(t, 0, None), Some((h, 5)));
            assert_eq!(m.remove_unexpected(h), Some(5));
            assert_eq!(m.find_unexpected(t, 0, Some((t % 7) as u32)), None);
        }
        assert!(m.unexp_tag.map.len() <= 2 * 32, "{}", m.unexp_tag.map.len());
    }

    #[test]
    fn unexpected_in_arrival_order() {
        let mut m = Matcher::new(4, 4);
        let x = m.add_unexpected(7, 1, 100).unwrap();
        let y = m.add_unexpected(8, 2, 101).unwrap();
        let z = m.add_unexpected(7, 2, 102).unwrap();
        assert_eq!(m.find_unexpected(7, 0, Some(2)), Some((z, 102)));
        assert_eq!(m.find_unexpected(0, u64::MAX, Some(2)), Some((y, 101)));
        assert_eq!(m.find_unexpected(0, u64::MAX, None), Some((x, 100)));
        m.remove_unexpected(x);
        assert_eq!(m.find_unexpected(7, 0, None), Some((z, 102)));
        m.add_unexpected(1, 1, 1).unwrap();
        m.add_unexpected(1, 1, 2).unwrap();
        assert!(m.add_unexpected(1, 1, 3).is_none());
        assert!(m.unexpected_full());
    }
}
