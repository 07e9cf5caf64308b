//! Caller memory that lives across calls: the buffers of a posted send or
//! receive, read and written by the protocol layers until the operation
//! completes.
//!
//! The only way to build a [`UserIov`] over foreign memory is the `unsafe`
//! constructor below, whose contract is the libfabric one: the application
//! keeps the buffers valid and untouched until the operation's completion.
//! Everything after construction is safe, bounds-checked copying. Tests and
//! internal users build owned iovs from `Vec`s.

use smallvec::SmallVec;

#[derive(Clone, Copy, Debug)]
struct Seg {
    ptr: *mut u8,
    len: usize,
}

#[derive(Debug)]
enum Storage {
    /// Caller memory (pointers from an iovec).
    Raw(SmallVec<[Seg; 4]>),
    /// Owned memory (tests, internal bounce buffers).
    Owned(SmallVec<[Vec<u8>; 4]>),
}

/// A scatter-gather list the provider may copy into or out of.
#[derive(Debug)]
pub struct UserIov {
    storage: Storage,
    total: usize,
}

// SAFETY: a UserIov over raw memory is only created through `from_raw`, whose
// caller promises the memory stays valid until the operation completes; the
// provider serialises all access to one operation's buffers under the
// endpoint's lock, so moving the descriptor between threads is sound.
unsafe impl Send for UserIov {}

impl UserIov {
    /// An empty list (zero-length operations, which may carry NULL buffers).
    pub fn empty() -> Self {
        UserIov {
            storage: Storage::Owned(SmallVec::new()),
            total: 0,
        }
    }

    /// Wraps caller memory.  Segments of length zero are dropped, so NULL
    /// pointers with zero length are fine.
    ///
    /// # Safety
    /// Every `(ptr, len)` with `len > 0` must be valid for reads and writes of
    /// `len` bytes until the operation that owns this iov completes, and the
    /// caller must not access that memory concurrently (libfabric's rule for
    /// posted buffers).
    pub unsafe fn from_raw<S>(segs: impl IntoIterator<Item = S>) -> Self
    where
        S: std::borrow::Borrow<(*mut u8, usize)>,
    {
        let mut v = SmallVec::new();
        let mut total = 0usize;
        for s in segs {
            let &(ptr, len) = s.borrow();
            if len == 0 {
                continue;
            }
            total = total.saturating_add(len);
            v.push(Seg { ptr, len });
        }
        UserIov {
            storage: Storage::Raw(v),
            total,
        }
    }

    /// Owned buffers (tests and internal copies).
    pub fn from_vecs(bufs: Vec<Vec<u8>>) -> Self {
        let total = bufs.iter().map(Vec::len).sum();
        UserIov {
            storage: Storage::Owned(bufs.into_iter().collect()),
            total,
        }
    }

    /// One owned buffer.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self::from_vecs(vec![buf])
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Address of the first byte (for FI_MULTI_RECV and CQ `buf` fields);
    /// 0 for owned or empty lists.
    pub fn base_addr(&self) -> usize {
        match &self.storage {
            Storage::Raw(s) => s.first().map_or(0, |s| s.ptr as usize),
            Storage::Owned(_) => 0,
        }
    }

    /// The raw segments as (address, length), for single-copy transfers
    /// (CMA); empty for owned lists.
    pub fn raw_segments(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let s: &[Seg] = match &self.storage {
            Storage::Raw(s) => s,
            Storage::Owned(_) => &[],
        };
        s.iter().map(|s| (s.ptr as usize, s.len))
    }

    /// Copies bytes starting at `offset` into `dst`; returns how many were
    /// copied (less than `dst.len()` at the end of the list).
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> usize {
        let mut done = 0;
        self.for_each_chunk(offset, dst.len(), |chunk_ptr, owned, n| {
            let out = &mut dst[done..done + n];
            match owned {
                Some(src) => out.copy_from_slice(src),
                // SAFETY: `from_raw`'s contract: the segment is valid for
                // `len` bytes; for_each_chunk keeps the range inside it.
                None => unsafe { std::ptr::copy_nonoverlapping(chunk_ptr, out.as_mut_ptr(), n) },
            }
            done += n;
        });
        done
    }

    /// Copies `src` into the list starting at `offset`; returns how many bytes
    /// fitted.
    pub fn copy_in(&mut self, offset: usize, src: &[u8]) -> usize {
        let mut done = 0;
        match &mut self.storage {
            Storage::Owned(bufs) => {
                let mut skip = offset;
                for b in bufs.iter_mut() {
                    if done == src.len() {
                        break;
                    }
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    let n = (b.len() - skip).min(src.len() - done);
                    b[skip..skip + n].copy_from_slice(&src[done..done + n]);
                    done += n;
                    skip = 0;
                }
            }
            Storage::Raw(segs) => {
                let mut skip = offset;
                for s in segs.iter() {
                    if done == src.len() {
                        break;
                    }
                    if skip >= s.len {
                        skip -= s.len;
                        continue;
                    }
                    let n = (s.len - skip).min(src.len() - done);
                    // SAFETY: `from_raw`'s contract: the segment is valid for
                    // writes of `s.len` bytes and `skip + n <= s.len`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src.as_ptr().add(done), s.ptr.add(skip), n)
                    };
                    done += n;
                    skip = 0;
                }
            }
        }
        done
    }

    /// The bytes `offset..offset + len` as borrowed slices, one per
    /// segment they touch (fewer bytes at the end of the list): the
    /// caller hands them to the kernel by iovec instead of copying them.
    /// The borrow keeps the list, and so (by `from_raw`'s contract) its
    /// memory, alive for as long as the slices are used.
    pub fn slices<'a>(&'a self, offset: usize, len: usize, mut f: impl FnMut(&'a [u8])) {
        self.for_each_chunk(offset, len, |chunk_ptr, owned, n| match owned {
            Some(s) => f(s),
            // SAFETY: `from_raw`'s contract: the segment is valid for reads
            // of its length while the operation owning this list lives, and
            // `&self` borrows the list for the slice's lifetime;
            // for_each_chunk keeps `chunk_ptr..+n` inside the segment.
            None => f(unsafe { std::slice::from_raw_parts(chunk_ptr, n) }),
        });
    }

    /// How many segments the bytes `offset..offset + len` touch.
    pub fn pieces(&self, offset: usize, len: usize) -> usize {
        let mut n = 0;
        self.for_each_chunk(offset, len, |_, _, _| n += 1);
        n
    }

    /// Owned contents, concatenated (tests).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.total];
        self.copy_out(0, &mut v);
        v
    }

    fn for_each_chunk<'a>(
        &'a self,
        offset: usize,
        max: usize,
        mut f: impl FnMut(*const u8, Option<&'a [u8]>, usize),
    ) {
        let mut skip = offset;
        let mut left = max;
        match &self.storage {
            Storage::Owned(bufs) => {
                for b in bufs.iter() {
                    if left == 0 {
                        break;
                    }
                    if skip >= b.len() {
                        skip -= b.len();
                        continue;
                    }
                    let n = (b.len() - skip).min(left);
                    f(std::ptr::null(), Some(&b[skip..skip + n]), n);
                    left -= n;
                    skip = 0;
                }
            }
            Storage::Raw(segs) => {
                for s in segs.iter() {
                    if left == 0 {
                        break;
                    }
                    if skip >= s.len {
                        skip -= s.len;
                        continue;
                    }
                    let n = (s.len - skip).min(left);
                    // SAFETY: `skip < s.len`, so the pointer stays inside the
                    // segment `from_raw` was promised.
                    f(unsafe { s.ptr.add(skip) }, None, n);
                    left -= n;
                    skip = 0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_copy_across_segments() {
        let mut iov = UserIov::from_vecs(vec![vec![0; 3], vec![], vec![0; 5]]);
        assert_eq!(iov.len(), 8);
        assert_eq!(iov.copy_in(2, b"abcdefgh"), 6);
        assert_eq!(iov.to_vec(), b"\0\0abcdef");
        let mut out = [0u8; 4];
        assert_eq!(iov.copy_out(1, &mut out), 4);
        assert_eq!(&out, b"\0abc");
        assert_eq!(iov.copy_out(8, &mut out), 0);
    }

    #[test]
    fn raw_copy_across_segments() {
        let mut a = [0u8; 2];
        let mut b = [0u8; 3];
        // SAFETY: a and b outlive iov and are not touched while it lives.
        let mut iov = unsafe {
            UserIov::from_raw([
                (a.as_mut_ptr(), a.len()),
                (std::ptr::null_mut(), 0),
                (b.as_mut_ptr(), b.len()),
            ])
        };
        assert_eq!(iov.copy_in(0, b"xyzw"), 4);
        let mut out = [0u8; 5];
        assert_eq!(iov.copy_out(0, &mut out), 5);
        drop(iov);
        assert_eq!(&a, b"xy");
        assert_eq!(&b, b"zw\0");
        assert_eq!(&out, b"xyzw\0");
    }

    #[test]
    fn slices_borrow_the_range_per_segment() {
        let mut a = *b"abc";
        let mut b = *b"defgh";
        // SAFETY: a and b outlive iov and are only read while it lives.
        let iov = unsafe { UserIov::from_raw([(a.as_mut_ptr(), 3), (b.as_mut_ptr(), 5)]) };
        let mut got: Vec<&[u8]> = Vec::new();
        iov.slices(1, 5, |s| got.push(s));
        assert_eq!(got, [&b"bc"[..], &b"def"[..]]);
        assert_eq!(iov.pieces(1, 5), 2);
        assert_eq!(iov.pieces(3, 2), 1);
        got.clear();
        iov.slices(6, 10, |s| got.push(s));
        assert_eq!(got, [&b"gh"[..]], "short at the end of the list");
        let owned = UserIov::from_vecs(vec![b"xy".to_vec(), b"z".to_vec()]);
        let mut all = Vec::new();
        owned.slices(0, 3, |s| all.extend_from_slice(s));
        assert_eq!(all, b"xyz");
    }
}
