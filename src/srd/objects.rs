//! Verbs objects: PD, MR, AH, QP, CQ, and the handle table they live in.

use super::{Completion, RecvWr};
use std::collections::VecDeque;

/// QP type (docs/srd-spec.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QpType {
    /// Unreliable datagram; receive buffers get a 40-byte prefix.
    Ud,
    /// Scalable reliable datagram: reliable, unordered, exactly once.
    Srd,
}

/// QP state (docs/srd-spec.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QpState {
    Reset,
    Init,
    Rtr,
    Rts,
    Err,
}

impl QpState {
    /// The transitions modify_qp allows: the verbs ladder, plus any state to
    /// ERR or RESET.
    pub fn can_move_to(self, to: QpState) -> bool {
        use QpState::*;
        matches!(
            (self, to),
            (Reset, Init)
                | (Init, Init)
                | (Init, Rtr)
                | (Rtr, Rts)
                | (Rts, Rts)
                | (_, Err)
                | (_, Reset)
        )
    }
    pub fn can_receive(self) -> bool {
        matches!(self, QpState::Rtr | QpState::Rts)
    }
    pub fn can_post_recv(self) -> bool {
        matches!(self, QpState::Init | QpState::Rtr | QpState::Rts)
    }
}

/// MR access flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access(pub u32);

impl Access {
    pub const LOCAL_WRITE: Access = Access(1);
    pub const REMOTE_READ: Access = Access(2);
    pub const REMOTE_WRITE: Access = Access(4);
    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
}

/// A registered memory region's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mr {
    pub lkey: u32,
    pub rkey: u32,
}

/// Set in rkeys so an lkey is never accepted where an rkey is due.
pub(crate) const RKEY_BIT: u32 = 0x8000_0000;

#[derive(Debug)]
pub(crate) struct MrEntry {
    pub pd: u32,
    pub addr: u64,
    pub len: u64,
    pub access: Access,
}

#[derive(Debug)]
pub(crate) struct AhEntry {
    pub pd: u32,
    pub peer: u32,
}

#[derive(Debug)]
pub(crate) struct CqEntry {
    pub depth: u32,
    /// Queue slots promised to QPs (sum of their SQ/RQ depths): completions
    /// can never exceed this, so pushing never fails.
    pub reserved: u32,
    pub entries: VecDeque<Completion>,
}

#[derive(Debug)]
pub(crate) struct QpEntry {
    pub pd: u32,
    pub qp_type: QpType,
    pub qkey: u32,
    pub state: QpState,
    pub send_cq: u32,
    pub recv_cq: u32,
    pub sq_depth: u32,
    pub rq_depth: u32,
    /// Send WRs posted and not yet completed.
    pub sq_outstanding: u32,
    pub rq: VecDeque<RecvWr>,
    /// SRD data is handed to the caller of `handle_datagram` in place
    /// (`Arrival`) instead of being copied into a posted receive.
    pub in_place: bool,
}

/// A bounded table of objects addressed by handles `generation << 16 | index`
/// (index + 1, so 0 is never valid); a destroyed slot bumps its generation so
/// stale handles (and stale QPNs on the wire) miss.
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<(u16, Option<T>)>,
    free: Vec<u16>,
    cap: u32,
    len: u32,
}

impl<T> Table<T> {
    pub fn new(cap: u32) -> Self {
        Table {
            slots: Vec::new(),
            free: Vec::new(),
            cap: cap.min(0xffff),
            len: 0,
        }
    }

    pub fn insert(&mut self, v: T) -> Option<u32> {
        if self.len >= self.cap {
            return None;
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u16::try_from(self.slots.len()).ok()?;
                self.slots.push((0, None));
                i
            }
        };
        let slot = self.slots.get_mut(usize::from(idx))?;
        slot.1 = Some(v);
        self.len += 1;
        Some((u32::from(slot.0) << 16) | (u32::from(idx) + 1))
    }

    fn locate(&self, h: u32) -> Option<usize> {
        let idx = (h & 0xffff).checked_sub(1)?;
        let gen_ = h >> 16;
        let i = usize::try_from(idx).ok()?;
        let slot = self.slots.get(i)?;
        (u32::from(slot.0) == gen_ && slot.1.is_some()).then_some(i)
    }

    pub fn get(&self, h: u32) -> Option<&T> {
        let i = self.locate(h)?;
        self.slots.get(i)?.1.as_ref()
    }

    pub fn get_mut(&mut self, h: u32) -> Option<&mut T> {
        let i = self.locate(h)?;
        self.slots.get_mut(i)?.1.as_mut()
    }

    pub fn remove(&mut self, h: u32) -> Option<T> {
        let i = self.locate(h)?;
        let slot = self.slots.get_mut(i)?;
        let v = slot.1.take();
        // Generations live in the handle's top 16 bits.
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(u16::try_from(i).ok()?);
        self.len -= 1;
        v
    }

    /// Live entries.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.1.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_handles_are_generational_and_bounded() {
        let mut t = Table::new(2);
        let a = t.insert("a").unwrap();
        let b = t.insert("b").unwrap();
        assert!(t.insert("c").is_none());
        assert_eq!(t.remove(a), Some("a"));
        assert!(t.get(a).is_none());
        let c = t.insert("c").unwrap();
        assert_ne!(a, c, "reused slot must get a new handle");
        assert_eq!(t.get(c), Some(&"c"));
        assert_eq!(t.get(b), Some(&"b"));
        assert!(t.get(0).is_none());
        assert!(t.get(0xffff_ffff).is_none());
    }

    #[test]
    fn state_ladder() {
        use QpState::*;
        assert!(Reset.can_move_to(Init));
        assert!(!Reset.can_move_to(Rts));
        assert!(!Init.can_move_to(Rts));
        assert!(Rtr.can_move_to(Rts));
        assert!(Rts.can_move_to(Err));
        assert!(Err.can_move_to(Reset));
        assert!(!Err.can_move_to(Rts));
    }
}
