//! Per-peer message ordering (SAS): messages reach matching in the sender's
//! msg_id order although their packets arrive in any order.
//!
//! Each peer has a ring of `window` slots for msg_ids `[next, next+window)`;
//! msg_ids further ahead go to one overflow list shared by all peers and
//! bounded in length. A message whose first packet arrives while both are
//! full is refused (`Place::Full`) so the caller can defer the packet — it is
//! never dropped, because the transport below does not retransmit what it
//! has delivered.

use super::pool::NIL;

#[derive(Debug, PartialEq, Eq)]
pub enum Place {
    /// It is the next message: deliver it now, then drain with `pop_ready`.
    Now,
    /// Held until the messages before it are delivered.
    Held,
    /// Its msg_id is behind the window or its slot is taken: a duplicate or
    /// a forged packet.
    Stale,
    /// No room in the window or the overflow list.
    Full,
}

#[derive(Debug)]
pub struct Window {
    next: u32,
    ring: Vec<u32>,
}

impl Window {
    pub fn new(size: usize) -> Self {
        Window {
            next: 0,
            ring: vec![NIL; size.max(1)],
        }
    }

    pub fn next_id(&self) -> u32 {
        self.next
    }

    fn slot(&self, id: u32) -> usize {
        id as usize % self.ring.len()
    }

    /// Distance of `id` ahead of the next expected msg_id (negative: old).
    fn ahead(&self, id: u32) -> i64 {
        id.wrapping_sub(self.next) as i32 as i64
    }
}

/// Messages beyond their peer's window.
#[derive(Debug)]
pub struct Overflow {
    list: Vec<(u32, u32, u32)>, // (peer, msg_id, value)
    cap: usize,
}

impl Overflow {
    pub fn new(cap: usize) -> Self {
        Overflow {
            list: Vec::with_capacity(cap),
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Drops every entry of `peer` and returns their values (peer removed).
    pub fn remove_peer(&mut self, peer: u32, mut f: impl FnMut(u32)) {
        self.list.retain(|&(p, _, v)| {
            if p == peer {
                f(v);
            }
            p != peer
        });
    }
}

/// Places the first packet of message `id` (carrying `value`).
pub fn place(w: &mut Window, ov: &mut Overflow, peer: u32, id: u32, value: u32) -> Place {
    let d = w.ahead(id);
    if d < 0 {
        return Place::Stale;
    }
    if d == 0 {
        return Place::Now;
    }
    if (d as usize) < w.ring.len() {
        let s = w.slot(id);
        if w.ring[s] != NIL {
            return Place::Stale;
        }
        w.ring[s] = value;
        return Place::Held;
    }
    if ov.list.iter().any(|&(p, m, _)| p == peer && m == id) {
        return Place::Stale;
    }
    if ov.list.len() >= ov.cap {
        return Place::Full;
    }
    ov.list.push((peer, id, value));
    Place::Held
}

/// Marks the next message delivered, pulls overflow entries that now fit
/// in the window, and returns the next held message if it is ready.
pub fn advance(w: &mut Window, ov: &mut Overflow, peer: u32) -> Option<u32> {
    w.next = w.next.wrapping_add(1);
    if !ov.list.is_empty() {
        let len = w.ring.len() as i64;
        let mut i = 0;
        while i < ov.list.len() {
            let (p, id, v) = ov.list[i];
            let d = w.ahead(id);
            if p == peer && (0..len).contains(&d) {
                let s = w.slot(id);
                w.ring[s] = v;
                ov.list.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
    let s = w.slot(w.next);
    let v = w.ring[s];
    if v != NIL {
        w.ring[s] = NIL;
        Some(v)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_through_window_and_overflow() {
        let mut w = Window::new(2);
        let mut ov = Overflow::new(2);
        // Arrival order 3, 1, 2, 0 with window 2: 2 and 3 overflow.
        assert_eq!(place(&mut w, &mut ov, 0, 3, 30), Place::Held);
        assert_eq!(place(&mut w, &mut ov, 0, 2, 20), Place::Held);
        assert_eq!(place(&mut w, &mut ov, 0, 4, 40), Place::Full);
        assert_eq!(place(&mut w, &mut ov, 0, 1, 10), Place::Held);
        assert_eq!(place(&mut w, &mut ov, 0, 1, 10), Place::Stale);
        assert_eq!(place(&mut w, &mut ov, 0, 0, 0), Place::Now);
        let mut got = vec![0];
        while let Some(v) = advance(&mut w, &mut ov, 0) {
            got.push(v);
        }
        assert_eq!(got, vec![0, 10, 20, 30]);
        assert_eq!(w.next_id(), 4);
        assert!(ov.is_empty());
        assert_eq!(place(&mut w, &mut ov, 0, 3, 0), Place::Stale);
    }

    #[test]
    fn msg_ids_wrap() {
        let mut w = Window::new(4);
        let mut ov = Overflow::new(1);
        w.next = u32::MAX;
        assert_eq!(place(&mut w, &mut ov, 0, 0, 7), Place::Held);
        assert_eq!(place(&mut w, &mut ov, 0, u32::MAX, 6), Place::Now);
        assert_eq!(advance(&mut w, &mut ov, 0), Some(7));
    }
}
