//! Zero-copy sends over UDP under loss (FI_SRD_SHM=0, FI_SRD_DROP_RATE):
//! retransmissions read the sender's buffers again, every byte arrives,
//! and once a send has completed its buffers are never read again (they
//! are made inaccessible: a read by the kernel would fail the send call).

mod common;

use common::fab::*;
use common::stats::{ctr, page_of, wait_reading};
use common::{close, fid_of};

/// Over UDP at 5 % loss, set before the provider loads.
fn setup() {
    common::env_once(&[
        ("FI_SRD_SHM", "0"),
        ("FI_SRD_DROP_RATE", "0.05"),
        ("FI_SRD_DROP_SEED", "13"),
    ]);
}

/// `len` bytes of fresh pages (munmapped on drop), to be made
/// inaccessible after use.
struct Pages {
    ptr: *mut u8,
    len: usize,
}

impl Pages {
    fn new(len: usize) -> Pages {
        // SAFETY: an anonymous private mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Pages {
            ptr: ptr.cast(),
            len,
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is len bytes, readable and writable until
        // `revoke`, and borrowed mutably through self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// No access from now on (a read by the provider would fault; by the
    /// kernel, fail with EFAULT).
    fn revoke(&mut self) {
        // SAFETY: our own mapping.
        assert_eq!(
            unsafe { libc::mprotect(self.ptr.cast(), self.len, libc::PROT_NONE) },
            0
        );
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no slice of it outlives self.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[test]
fn every_size_arrives_whole_under_loss_and_completed_buffers_are_not_read() {
    setup();
    let p = Pair::new(&Opts::rdm());
    let sizes = [1usize, 65_537, 300_000, (1 << 20) + 3, 8 << 20];
    let mut done = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let mut src = Pages::new(size);
        src.bytes().copy_from_slice(&pattern(size, k as u8 ^ 0x33));
        let mut dst = vec![0u8; size];
        assert_eq!(p.b.recv(&mut dst, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.a.send(src.bytes(), p.a.peer, 2), 0);
        let got = p.wait(1, 1, 120);
        assert_eq!((got[0][0].err, got[3][0].err, got[3][0].len), (0, 0, size));
        assert!(dst == pattern(size, k as u8 ^ 0x33), "bytes at {size}");
        // The send is over: its pages may go away.
        src.revoke();
        done.push(src);
    }
    // Keep both sides working a while (acks, late retransmissions): a
    // read of a completed send's pages would show as a send error.
    p.drain(300);
    let pa = page_of(&p.a.name);
    let s = wait_reading(&pa, 20, p.a.txcq, |s| ctr(s, "zc_refs") == 0);
    assert!(ctr(&s, "retransmits") > 0, "loss was repaired: {s:#?}");
    assert!(ctr(&s, "zc_pkts") > 0);
    assert_eq!(ctr(&s, "udp_errors"), 0, "no completed send was read");
}

#[test]
fn rma_writes_arrive_whole_under_loss_and_completed_sources_are_not_read() {
    setup();
    let o = Opts {
        caps: srd_fi::bindings::FI_MSG | srd_fi::bindings::FI_RMA,
        cq_format: srd_fi::bindings::FI_CQ_FORMAT_DATA,
        ..Opts::rdm()
    };
    let info = lo_info(&o);
    // SAFETY: info is our own copy; its domain_attr is valid. mr_mode 0:
    // offsets and application keys.
    unsafe { (*(*info.0).domain_attr).mr_mode = 0 };
    let p = Pair::with_info(info, &o);
    let sizes = [1usize, 65_537, (1 << 20) + 3, 4 << 20];
    let mut done = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        let mut target = vec![0xEEu8; size + 64];
        let key = 40 + k as u64;
        let mr = mr_reg(p.dom, &mut target, REMOTE_RW, key);
        let mut src = Pages::new(size);
        src.bytes().copy_from_slice(&pattern(size, k as u8 ^ 0x5a));
        assert_eq!(p.a.write(src.bytes(), 16, key, 3), 0);
        let got = p.wait(1, 0, 120);
        assert_eq!((got[0].len(), got[0][0].err), (1, 0), "write {size}");
        assert!(
            target[16..16 + size] == pattern(size, k as u8 ^ 0x5a)[..],
            "bytes at {size}"
        );
        assert!(
            target[..16]
                .iter()
                .chain(&target[16 + size..])
                .all(|&x| x == 0xEE)
        );
        // The write is over: its source may go away.
        src.revoke();
        done.push(src);
        assert_eq!(close(fid_of(mr)), 0);
    }
    p.drain(300);
    let pa = page_of(&p.a.name);
    let s = wait_reading(&pa, 20, p.a.txcq, |s| ctr(s, "zc_refs") == 0);
    assert!(ctr(&s, "retransmits") > 0, "loss was repaired: {s:#?}");
    // Every byte but the 1-byte write's went by reference.
    let total: usize = sizes.iter().sum();
    assert!(
        ctr(&s, "zc_bytes") as usize >= total - 1,
        "writes went by reference: {s:#?}"
    );
    assert_eq!(ctr(&s, "udp_errors"), 0, "no completed write was read");
}
