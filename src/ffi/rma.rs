//! Entry points for RMA (fi_rma(3)) and atomics (fi_atomic(3)) on RDM
//! endpoints, and fi_query_atomic. Each checks its pointers and arrays and
//! gathers the application's fi_ioc operands before the engine sees them.

use super::guard;
use super::object;
use super::objects::{flag_mode, user_iov};
use crate::bindings as b;
use crate::fi::endpoint::Endpoint;
use crate::fi::errno::{Error, Result};
use crate::fi::fabric::Domain;
use crate::fi::ops::{AtomicReq, RmaOp};
use crate::fi::sink::Dir;
use crate::mem::UserIov;
use crate::rdm::{AtomicKind, AtomicOp};
use smallvec::SmallVec;
use std::ffi::c_void;
use std::os::raw::c_int;

const NOT_SUPPORTED: Error = Error::Os(b::FI_EOPNOTSUPP);

/// One remote range (rma_iov_limit is 1).
///
/// # Safety
/// `rma` holds `count` entries when non-null.
unsafe fn one_range<T: Copy>(rma: *const T, count: usize) -> Result<T> {
    if rma.is_null() || count != 1 {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract.
    Ok(unsafe { *rma })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_rma(
    ep: *mut c_void,
    is_read: c_int,
    iov: *const b::iovec,
    _desc: *mut *mut c_void,
    count: usize,
    addr: u64,
    rma_iov: *const b::fi_rma_iov,
    rma_count: usize,
    data: u64,
    context: *mut c_void,
    flags: u64,
    mode: c_int,
) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is our endpoint; the arrays are the application's.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        let range = unsafe { one_range(rma_iov, rma_count)? };
        let iov = unsafe { user_iov(iov, count, ep.iov_limit)? };
        if iov.len() != range.len {
            return Err(Error::Inval);
        }
        let (flags, report) = ep.resolve_flags(Dir::Tx, flags, flag_mode(mode)?)?;
        if is_read != 0 && flags & b::FI_INJECT != 0 {
            return Err(Error::Inval);
        }
        ep.rma(RmaOp {
            read: is_read != 0,
            iov,
            dest: addr,
            addr: range.addr,
            key: range.key,
            data,
            context: context as usize,
            flags,
            report,
        })?;
        Ok(0)
    })
}

/// (address, bytes) pieces of caller memory.
type Segments = SmallVec<[(*mut u8, usize); 4]>;

/// The (address, bytes) segments of an fi_ioc array and the element total.
///
/// # Safety
/// `ioc` holds `count` entries when non-null, each `count` elements long.
unsafe fn ioc_segments(
    ioc: *const b::fi_ioc,
    count: usize,
    elem: usize,
    limit: usize,
) -> Result<(Segments, usize)> {
    let mut segs = SmallVec::new();
    if count == 0 {
        return Ok((segs, 0));
    }
    if ioc.is_null() || count > limit {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract.
    let list = unsafe { std::slice::from_raw_parts(ioc, count) };
    let mut total = 0usize;
    for v in list {
        let bytes = v.count.checked_mul(elem).ok_or(Error::Inval)?;
        if v.addr.is_null() && bytes > 0 {
            return Err(Error::Inval);
        }
        total = total.checked_add(v.count).ok_or(Error::Inval)?;
        segs.push((v.addr as *mut u8, bytes));
    }
    Ok((segs, total))
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_atomic(
    ep: *mut c_void,
    kind: c_int,
    iov: *const b::fi_ioc,
    count: usize,
    comparev: *const b::fi_ioc,
    compare_count: usize,
    resultv: *mut b::fi_ioc,
    result_count: usize,
    addr: u64,
    rma_iov: *const b::fi_rma_ioc,
    rma_count: usize,
    datatype: b::fi_datatype,
    op: b::fi_op,
    data: u64,
    context: *mut c_void,
    flags: u64,
    mode: c_int,
) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is our endpoint.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        let dt = crate::fi::convert::datatype(datatype).ok_or(NOT_SUPPORTED)?;
        let aop = crate::fi::convert::atomic_op(op).ok_or(NOT_SUPPORTED)?;
        let elem = dt.size();
        // SAFETY: the application's arrays (fi_atomic(3) contract).
        let range = unsafe { one_range(rma_iov, rma_count)? };
        let (op_segs, n) = unsafe { ioc_segments(iov, count, elem, ep.iov_limit)? };
        let gather = |segs: &[(*mut u8, usize)]| -> SmallVec<[u8; 64]> {
            // SAFETY: checked segments of the application's operand buffers.
            let v = unsafe { UserIov::from_raw(segs) };
            let mut out: SmallVec<[u8; 64]> = SmallVec::from_elem(0, v.len());
            v.copy_out(0, &mut out);
            out
        };
        let operand = gather(&op_segs);
        let compare = if kind == 2 {
            let (segs, cn) = unsafe { ioc_segments(comparev, compare_count, elem, ep.iov_limit)? };
            if cn != range.count {
                return Err(Error::Inval);
            }
            Some(gather(&segs))
        } else {
            None
        };
        let result = if kind >= 1 {
            let (segs, rn) = unsafe { ioc_segments(resultv, result_count, elem, ep.iov_limit)? };
            if rn != range.count {
                return Err(Error::Inval);
            }
            // SAFETY: result buffers stay valid until completion.
            Some(unsafe { UserIov::from_raw(&segs) })
        } else {
            None
        };
        // An FI_ATOMIC_READ may omit its operand; everything else carries
        // one element per target element.
        if !(n == range.count || (n == 0 && aop == AtomicOp::Read)) {
            return Err(Error::Inval);
        }
        let (flags, report) = ep.resolve_flags(Dir::Tx, flags, flag_mode(mode)?)?;
        if kind >= 1 && flags & b::FI_INJECT != 0 {
            return Err(Error::Inval);
        }
        // Remote CQ data is carried by writes, not by atomics.
        if flags & b::FI_REMOTE_CQ_DATA != 0 {
            let _ = data;
            return Err(NOT_SUPPORTED);
        }
        ep.atomic(AtomicReq {
            op: aop,
            datatype: dt,
            operand,
            compare,
            result,
            count: range.count,
            dest: addr,
            addr: range.addr,
            key: range.key,
            context: context as usize,
            flags,
            report,
        })?;
        Ok(0)
    })
}

fn kind_of(k: c_int) -> AtomicKind {
    match k {
        1 => AtomicKind::Fetch,
        2 => AtomicKind::Compare,
        _ => AtomicKind::Write,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_atomicvalid(
    ep: *mut c_void,
    kind: c_int,
    datatype: b::fi_datatype,
    op: b::fi_op,
    count: *mut usize,
) -> c_int {
    guard::call(|| {
        if count.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: ep is ours; count is non-null.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        let dt = crate::fi::convert::datatype(datatype).ok_or(NOT_SUPPORTED)?;
        let aop = crate::fi::convert::atomic_op(op).ok_or(NOT_SUPPORTED)?;
        let n = ep
            .atomic_valid(aop, dt, kind_of(kind))
            .ok_or(NOT_SUPPORTED)?;
        unsafe { *count = n };
        Ok(0)
    })
}

/// fi_query_atomic on a domain.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_query_atomic(
    domain: *mut c_void,
    datatype: b::fi_datatype,
    op: b::fi_op,
    attr: *mut b::fi_atomic_attr,
    flags: u64,
) -> c_int {
    guard::call(|| {
        if attr.is_null()
            || flags & !(b::FI_FETCH_ATOMIC | b::FI_COMPARE_ATOMIC | b::FI_TAGGED) != 0
        {
            return Err(Error::Inval);
        }
        // SAFETY: domain is ours; attr is non-null.
        let d = unsafe { object::borrow::<Domain>(domain)? };
        let dt = crate::fi::convert::datatype(datatype).ok_or(NOT_SUPPORTED)?;
        let aop = crate::fi::convert::atomic_op(op).ok_or(NOT_SUPPORTED)?;
        let kind = if flags & b::FI_COMPARE_ATOMIC != 0 {
            AtomicKind::Compare
        } else if flags & b::FI_FETCH_ATOMIC != 0 {
            AtomicKind::Fetch
        } else {
            AtomicKind::Write
        };
        if !crate::rdm::atomic::supported(aop, dt, kind) {
            return Err(NOT_SUPPORTED);
        }
        let mtu = crate::fi::offer::payload_limit(&d.iface, &d.params)
            .saturating_sub(crate::wire::srd::DATA_HEADER_LEN);
        let per = dt.size() * if kind == AtomicKind::Compare { 2 } else { 1 };
        // SAFETY: attr is non-null.
        unsafe {
            (*attr).size = dt.size();
            (*attr).count = mtu.saturating_sub(128) / per.max(1);
        }
        Ok(0)
    })
}
