//! A fixed-capacity slab: operations in flight, addressed by index (the
//! wr_id or token handed to the layer below). Allocation happens up to the
//! capacity once; afterwards slots are reused.

/// Slots of `T` with a free list; `insert` fails when `cap` are in use.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    cap: usize,
    used: usize,
}

impl<T> Slab<T> {
    pub fn new(cap: usize) -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            cap,
            used: 0,
        }
    }

    pub fn insert(&mut self, v: T) -> Option<u32> {
        let i = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.cap => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).ok()?
            }
            None => return None,
        };
        self.slots[i as usize] = Some(v);
        self.used += 1;
        Some(i)
    }

    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.used -= 1;
        Some(v)
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.slots.get(i as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slots.get_mut(i as usize)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }

    pub fn room(&self) -> usize {
        self.cap - self.used
    }

    /// Index of the first entry matching `f`.
    pub fn find(&self, mut f: impl FnMut(&T) -> bool) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(&mut f))
            .and_then(|i| u32::try_from(i).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_reused() {
        let mut s = Slab::new(2);
        let a = s.insert('a').unwrap();
        let b = s.insert('b').unwrap();
        assert_eq!(s.insert('c'), None);
        assert_eq!(s.remove(a), Some('a'));
        assert_eq!(s.remove(a), None);
        assert_eq!(s.insert('d'), Some(a));
        assert_eq!(s.get(b), Some(&'b'));
        assert_eq!(s.find(|&c| c == 'd'), Some(a));
        assert_eq!((s.len(), s.room()), (2, 0));
    }
}
