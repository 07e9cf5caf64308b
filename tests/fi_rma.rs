//! RMA and atomics on FI_EP_RDM through the libfabric core: fi_write /
//! fi_read with data checks, offset and virtual-address addressing, key,
//! range and access errors that leave memory untouched, atomics with fetched
//! results, RMA counters, fi_query_atomic and fi_atomicvalid.

mod common;

use common::fab::*;
use common::*;
use srd_fi::bindings as b;
use std::ffi::c_void;
use std::ptr;

fn rma_opts() -> Opts {
    Opts {
        caps: b::FI_MSG | b::FI_TAGGED | b::FI_RMA | b::FI_ATOMIC,
        cq_format: b::FI_CQ_FORMAT_DATA,
        ..Opts::rdm()
    }
}

/// A pair whose domain uses `mr_mode` (0: offsets and application keys).
fn pair(mr_mode: i32) -> Pair {
    let o = rma_opts();
    let info = lo_info(&o);
    // SAFETY: info is our own copy; its domain_attr is valid.
    unsafe { (*(*info.0).domain_attr).mr_mode = mr_mode };
    Pair::with_info(info, &o)
}

/// Waits for one completion on A's tx CQ (progressing both sides).
fn one_tx(p: &Pair) -> Cqe {
    let g = p.wait(1, 0, 20);
    assert_eq!(g[0].len(), 1, "{g:?}");
    g[0][0].clone()
}

#[test]
fn write_then_read_back_with_offsets() {
    let p = pair(0);
    for (k, &size) in [1usize, 4096, 100_000, 1 << 20].iter().enumerate() {
        let mut target = vec![0xEEu8; size + 64];
        let key = 100 + k as u64;
        let mr = mr_reg(p.dom, &mut target, REMOTE_RW, key);
        let data = pattern(size, k as u8);
        assert_eq!(p.a.write(&data, 32, key, 7), 0);
        let c = one_tx(&p);
        assert_eq!((c.err, c.ctx), (0, 7), "write {size}");
        assert_eq!(c.flags & (b::FI_RMA | b::FI_WRITE), b::FI_RMA | b::FI_WRITE);
        assert_eq!(&target[32..32 + size], &data[..], "written bytes {size}");
        assert!(
            target[..32]
                .iter()
                .chain(&target[32 + size..])
                .all(|&x| x == 0xEE),
            "guards"
        );
        let mut back = vec![0u8; size];
        assert_eq!(p.a.read(&mut back, 32, key, 8), 0);
        let c = one_tx(&p);
        assert_eq!((c.err, c.ctx), (0, 8), "read {size}");
        assert_eq!(c.flags & (b::FI_RMA | b::FI_READ), b::FI_RMA | b::FI_READ);
        assert_eq!(back, data, "read bytes {size}");
        assert_eq!(close(fid_of(mr)), 0);
    }
}

#[test]
fn virtual_addresses_and_provider_keys() {
    let p = pair((b::FI_MR_VIRT_ADDR | b::FI_MR_PROV_KEY | b::FI_MR_ALLOCATED) as i32);
    let mut target = vec![0u8; 8192];
    let mr = mr_reg(
        p.dom,
        &mut target,
        b::FI_REMOTE_WRITE | b::FI_REMOTE_READ,
        0,
    );
    let key = mr_key(mr);
    let mut small = [0u8; 16];
    let mr2 = mr_reg(p.dom, &mut small, b::FI_REMOTE_WRITE, 0);
    assert_ne!(key, mr_key(mr2), "provider keys differ");
    let base = target.as_ptr() as u64;
    let data = pattern(1000, 3);
    assert_eq!(p.a.write(&data, base + 100, key, 1), 0);
    assert_eq!(one_tx(&p).err, 0);
    assert_eq!(&target[100..1100], &data[..]);
    assert_eq!(close(fid_of(mr)), 0);
    assert_eq!(close(fid_of(mr2)), 0);
}

#[test]
fn bad_key_range_or_access_fail_and_leave_memory_untouched() {
    let p = pair(0);
    let mut target = vec![0x5Au8; 4096];
    let mr = mr_reg(p.dom, &mut target, b::FI_REMOTE_READ, 9);
    let data = vec![1u8; 100];
    // Unknown key.
    assert_eq!(p.a.write(&data, 0, 12345, 1), 0);
    let c = one_tx(&p);
    assert_eq!(c.err, b::FI_EACCES, "unknown key: {c:?}");
    // Missing FI_REMOTE_WRITE.
    assert_eq!(p.a.write(&data, 0, 9, 2), 0);
    assert_eq!(one_tx(&p).err, b::FI_EACCES, "read-only region");
    // Out of range read.
    let mut back = vec![0u8; 100];
    assert_eq!(p.a.read(&mut back, 4000, 9, 3), 0);
    assert_eq!(one_tx(&p).err, b::FI_EINVAL, "range past the end");
    assert!(target.iter().all(|&x| x == 0x5A), "target memory untouched");
    assert!(back.iter().all(|&x| x == 0), "nothing read");
    assert_eq!(close(fid_of(mr)), 0);
}

#[test]
fn atomics_sum_fetch_and_compare_swap() {
    let p = pair(0);
    let mut target = vec![0u8; 64];
    target[..8].copy_from_slice(&10u64.to_le_bytes());
    let mr = mr_reg(p.dom, &mut target, REMOTE_RW, 77);
    // fi_atomic FI_SUM.
    assert_eq!(p.a.atomic(b::FI_SUM, b::FI_UINT64, &[5], 0, 77, 1), 0);
    assert_eq!(one_tx(&p).err, 0);
    assert_eq!(u64::from_le_bytes(target[..8].try_into().unwrap()), 15);
    // fi_fetch_atomic FI_SUM returns the old value.
    let operand = [7u64];
    let mut result = [0u64];
    // SAFETY: buffers live until the completion.
    let rc = unsafe {
        ((*(*p.a.ep).atomic).readwrite.unwrap())(
            p.a.ep,
            operand.as_ptr() as *const c_void,
            1,
            ptr::null_mut(),
            result.as_mut_ptr() as *mut c_void,
            ptr::null_mut(),
            p.a.peer,
            0,
            77,
            b::FI_UINT64,
            b::FI_SUM,
            2 as *mut c_void,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!(one_tx(&p).err, 0);
    assert_eq!(result[0], 15, "fetched old value");
    assert_eq!(u64::from_le_bytes(target[..8].try_into().unwrap()), 22);
    // fi_compare_atomic FI_CSWAP: swaps only when equal.
    for (cmp, new, expect_after) in [(99u64, 1u64, 22u64), (22, 1, 1)] {
        let (o, c, mut r) = ([new], [cmp], [0u64]);
        // SAFETY: as above.
        let rc = unsafe {
            ((*(*p.a.ep).atomic).compwrite.unwrap())(
                p.a.ep,
                o.as_ptr() as *const c_void,
                1,
                ptr::null_mut(),
                c.as_ptr() as *const c_void,
                ptr::null_mut(),
                r.as_mut_ptr() as *mut c_void,
                ptr::null_mut(),
                p.a.peer,
                0,
                77,
                b::FI_UINT64,
                b::FI_CSWAP,
                3 as *mut c_void,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(one_tx(&p).err, 0);
        assert_eq!(
            u64::from_le_bytes(target[..8].try_into().unwrap()),
            expect_after
        );
    }
    assert_eq!(close(fid_of(mr)), 0);
}

#[test]
fn query_atomic_and_atomicvalid_answer_truthfully() {
    let p = pair(0);
    let mut attr = b::fi_atomic_attr::default();
    // SAFETY: the domain ops table is complete.
    let q = |dt, op, flags, attr: &mut b::fi_atomic_attr| unsafe {
        ((*(*p.dom).ops).query_atomic.unwrap())(p.dom, dt, op, attr, flags)
    };
    assert_eq!(q(b::FI_UINT64, b::FI_SUM, 0, &mut attr), 0);
    assert_eq!(attr.size, 8);
    assert!(attr.count >= 1);
    assert_eq!(
        q(b::FI_INT32, b::FI_CSWAP, b::FI_COMPARE_ATOMIC, &mut attr),
        0
    );
    assert_eq!(attr.size, 4);
    // Bitwise operations are not defined on floating point.
    assert_eq!(q(b::FI_DOUBLE, b::FI_BOR, 0, &mut attr), -b::FI_EOPNOTSUPP);
    let mut count = 0usize;
    // SAFETY: the atomic ops table is complete.
    let rc = unsafe {
        ((*(*p.a.ep).atomic).writevalid.unwrap())(p.a.ep, b::FI_UINT32, b::FI_SUM, &mut count)
    };
    assert_eq!(rc, 0);
    assert!(count >= 1);
    let rc = unsafe {
        ((*(*p.a.ep).atomic).writevalid.unwrap())(p.a.ep, b::FI_FLOAT, b::FI_BAND, &mut count)
    };
    assert_eq!(rc, -b::FI_EOPNOTSUPP);
}

#[test]
fn rma_counters_count_local_and_remote_operations() {
    let p = pair(0);
    let dom = p.dom;
    let (wc, rwc) = (cntr_open(dom).unwrap(), cntr_open(dom).unwrap());
    // Bindings are refused after enable; open fresh, unenabled endpoints.
    let o = Opts {
        enable: false,
        ..rma_opts()
    };
    let mut a = Side::open(dom, p.info.0, &o);
    let mut bside = Side::open(dom, p.info.0, &o);
    assert_eq!(ep_bind(a.ep, fid_of(wc), b::FI_WRITE), 0);
    assert_eq!(ep_bind(bside.ep, fid_of(rwc), b::FI_REMOTE_WRITE), 0);
    assert_eq!(enable(a.ep), 0);
    assert_eq!(enable(bside.ep), 0);
    a.peer = av_insert(a.av, &getname(bside.ep));
    bside.peer = av_insert(bside.av, &getname(a.ep));
    let mut target = vec![0u8; 256];
    let mr = mr_reg(dom, &mut target, b::FI_REMOTE_WRITE, 5);
    for i in 0..3 {
        assert_eq!(a.write(&[i as u8; 16], 16 * i as u64, 5, i), 0);
    }
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let ok = progress_until(
        &[a.txcq, a.rxcq, bside.txcq, bside.rxcq],
        &mut got,
        20,
        |g| g[0].len() >= 3,
    );
    assert!(ok, "{got:?}");
    assert_eq!(cntr_read(wc), 3, "FI_WRITE counter");
    let ok = progress_until(
        &[a.txcq, a.rxcq, bside.txcq, bside.rxcq],
        &mut got,
        5,
        |_| cntr_read(rwc) >= 3,
    );
    assert!(ok);
    assert_eq!(cntr_read(rwc), 3, "FI_REMOTE_WRITE counter");
    a.close();
    bside.close();
    assert_eq!(close(fid_of(mr)), 0);
    assert_eq!(close(fid_of(wc)), 0);
    assert_eq!(close(fid_of(rwc)), 0);
}

/// FI_RMA_EVENT: asked for in the hints and present in the entry; counters
/// bound with FI_REMOTE_WRITE / FI_REMOTE_READ count the peer's writes and
/// atomics / reads on our memory, and a blocked fi_cntr_wait on the remote
/// counter wakes when they land. Without FI_RMA_EVENT in the endpoint's
/// caps such a binding is refused.
#[test]
fn rma_event_counts_remote_accesses_at_the_target() {
    let o = Opts {
        caps: b::FI_RMA | b::FI_ATOMIC | b::FI_RMA_EVENT,
        enable: false,
        ..rma_opts()
    };
    let info = lo_info(&o);
    assert_ne!(info.first().caps & b::FI_RMA_EVENT, 0, "offered");
    // SAFETY: returned entries carry their rx attributes.
    assert_ne!(unsafe { (*info.first().rx_attr).caps } & b::FI_RMA_EVENT, 0);
    let fab_ = fabric(info.first()).unwrap();
    let dom = domain(fab_, info.0).unwrap();
    let (rwc, rrc) = (cntr_open(dom).unwrap(), cntr_open(dom).unwrap());
    let mut a = Side::open(dom, info.0, &o);
    let mut bside = Side::open(dom, info.0, &o);
    assert_eq!(ep_bind(bside.ep, fid_of(rwc), b::FI_REMOTE_WRITE), 0);
    assert_eq!(ep_bind(bside.ep, fid_of(rrc), b::FI_REMOTE_READ), 0);
    assert_eq!(enable(a.ep), 0);
    assert_eq!(enable(bside.ep), 0);
    a.peer = av_insert(a.av, &getname(bside.ep));
    let mut target = vec![0u8; 256];
    let mr = mr_reg(dom, &mut target, b::FI_REMOTE_WRITE | b::FI_REMOTE_READ, 9);
    // Two writes and one atomic: three remote writes.
    assert_eq!(a.write(&[1u8; 8], 0, 9, 1), 0);
    assert_eq!(a.write(&[2u8; 8], 8, 9, 2), 0);
    assert_eq!(a.atomic(b::FI_SUM, b::FI_UINT64, &[5], 16, 9, 3), 0);
    // B blocks on its remote-write counter; A's progress delivers.
    let c = rwc as usize;
    let waiter = std::thread::spawn(move || cntr_wait(c as *mut b::fid_cntr, 3, 60_000));
    let mut got: [Vec<Cqe>; 4] = Default::default();
    // Only A is progressed here: B's progress comes from its blocked waiter.
    let cqs = [a.txcq, a.rxcq];
    assert!(progress_until(&cqs, &mut got, 30, |g| g[0].len() >= 3));
    assert_eq!(
        waiter.join().unwrap(),
        0,
        "the remote writes woke the waiter"
    );
    assert_eq!(cntr_read(rwc), 3, "writes and the atomic");
    assert_eq!(cntr_read(rrc), 0);
    let mut back = [0u8; 16];
    assert_eq!(a.read(&mut back, 0, 9, 4), 0);
    let cqs = [a.txcq, a.rxcq, bside.txcq, bside.rxcq];
    assert!(progress_until(&cqs, &mut got, 30, |g| g[0].len() >= 4));
    assert_eq!(&back[..], &[[1u8; 8], [2u8; 8]].concat()[..]);
    assert_eq!(cntr_wait(rrc, 1, 60_000), 0);
    assert_eq!((cntr_read(rwc), cntr_read(rrc)), (3, 1));
    assert_eq!(got[0].iter().filter(|e| e.err != 0).count(), 0, "{got:?}");
    a.close();
    bside.close();
    assert_eq!(close(fid_of(mr)), 0);
    for c in [rwc, rrc] {
        assert_eq!(close(fid_of(c)), 0);
    }
    // An endpoint whose caps leave FI_RMA_EVENT out refuses remote counters.
    // SAFETY: info is our own copy.
    unsafe { (*info.0).caps &= !b::FI_RMA_EVENT };
    let ep = endpoint(dom, info.0).unwrap();
    let c = cntr_open(dom).unwrap();
    assert_eq!(ep_bind(ep, fid_of(c), b::FI_REMOTE_WRITE), -b::FI_EINVAL);
    assert_eq!(ep_bind(ep, fid_of(c), b::FI_WRITE), 0);
    assert_eq!(close(fid_of(ep)), 0);
    assert_eq!(close(fid_of(c)), 0);
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab_)), 0);
}
