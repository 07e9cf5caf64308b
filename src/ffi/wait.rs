//! Entry points for wait sets, poll sets, fi_trywait and FI_GETWAIT
//! (fi_poll(3), fi_control(3) on CQs, counters and EQs). The objects live
//! in `fi::wait`; ownership as for every fid (see `object`).

use super::guard;
use super::object;
use crate::bindings as b;
use crate::fi::cntr::Cntr;
use crate::fi::cq::Cq;
use crate::fi::eq::Eq;
use crate::fi::errno::{Error, Result};
use crate::fi::wait::{Member, PollSet, WaitSet};
use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::Arc;

unsafe extern "C" {
    fn srd_shim_rs_of(fid: *const b::fid, fclass: usize) -> *mut c_void;
    fn srd_shim_new_wait(rs: *mut c_void) -> *mut b::fid_wait;
    fn srd_shim_new_poll(rs: *mut c_void) -> *mut b::fid_poll;
}

/// Our wait set behind a `struct fid_wait *` (an attr's wait_set).
pub(crate) fn wait_set_of(ws: *mut b::fid_wait) -> Result<Arc<WaitSet>> {
    if ws.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: ws is non-null; the shim reads only its class and ops.
    let rs = unsafe { srd_shim_rs_of(ws as *const b::fid, b::FI_CLASS_WAIT as usize) };
    if rs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: rs is a WaitSet (class checked by the shim).
    unsafe { object::borrow::<WaitSet>(rs) }
}

/// The member a fid stands for, with its context (CQs and counters; EQs
/// only in wait sets).
fn member_of(fid: *mut b::fid, eq_ok: bool) -> Result<(Member, usize, u64)> {
    if fid.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: fid is non-null; the shim reads only its class and ops.
    let rs = unsafe { srd_shim_rs_of(fid, 0) };
    if rs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: fid is one of ours: its class names its object type.
    unsafe {
        match (*fid).fclass as u32 {
            b::FI_CLASS_CQ => {
                let c = object::borrow::<Cq>(rs)?;
                Ok((Member::Cq(Arc::downgrade(&c)), c.context, 0))
            }
            b::FI_CLASS_CNTR => {
                let c = object::borrow::<Cntr>(rs)?;
                let v = c.read().wrapping_add(c.read_err().rotate_left(32));
                Ok((Member::Cntr(Arc::downgrade(&c)), c.context, v))
            }
            b::FI_CLASS_EQ if eq_ok => {
                let e = object::borrow::<Eq>(rs)?;
                Ok((Member::Eq(Arc::downgrade(&e)), 0, 0))
            }
            _ => Err(Error::Inval),
        }
    }
}

/// fi_control(FI_GETWAIT / FI_GETWAITOBJ) on a CQ, counter, EQ or wait set.
pub(crate) fn control(
    rs: *mut c_void,
    fclass: usize,
    command: c_int,
    arg: *mut c_void,
) -> Result<c_int> {
    if arg.is_null() {
        return Err(Error::Inval);
    }
    let getwait = command as u32 == b::FI_GETWAIT;
    if !getwait && command as u32 != b::FI_GETWAITOBJ {
        return Err(Error::NoSys);
    }
    // SAFETY: rs is the fid's own object of class `fclass` (shim-checked).
    let (kind, fd) = unsafe {
        match fclass as u32 {
            b::FI_CLASS_CQ => {
                let c = object::borrow::<Cq>(rs)?;
                (c.wait.kind, getwait.then(|| c.wait.get_fd()))
            }
            b::FI_CLASS_CNTR => {
                let c = object::borrow::<Cntr>(rs)?;
                (c.wait.kind, getwait.then(|| c.wait.get_fd()))
            }
            b::FI_CLASS_EQ => {
                let e = object::borrow::<Eq>(rs)?;
                (e.wait.kind, getwait.then(|| e.wait.get_fd()))
            }
            b::FI_CLASS_WAIT => {
                let w = object::borrow::<WaitSet>(rs)?;
                (b::FI_WAIT_FD, getwait.then(|| Ok(w.epoll.fd())))
            }
            _ => return Err(Error::NoSys),
        }
    };
    match fd {
        // SAFETY: FI_GETWAIT on an fd wait object takes an int * (fi_cq(3)).
        Some(fd) => unsafe { *(arg as *mut c_int) = fd? },
        // SAFETY: FI_GETWAITOBJ takes an enum fi_wait_obj *.
        None => unsafe { *(arg as *mut b::fi_wait_obj) = kind },
    }
    Ok(0)
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_wait_open(
    _fabric: *mut c_void,
    attr: *mut b::fi_wait_attr,
    waitset: *mut *mut b::fid_wait,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || waitset.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: attr is valid for the call.
        let a = unsafe { &*attr };
        let obj = Arc::new(WaitSet::new(a.wait_obj, a.flags)?);
        let rs = object::into_raw(obj);
        // SAFETY: the shim wraps rs in a new fid.
        let fid = unsafe { srd_shim_new_wait(rs) };
        if fid.is_null() {
            // SAFETY: rs was never shared.
            let _ = unsafe { object::close::<WaitSet>(rs) };
            return Err(Error::NoMem);
        }
        // SAFETY: waitset is non-null.
        unsafe { *waitset = fid };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_wait_wait(ws: *mut c_void, timeout: c_int) -> c_int {
    guard::call(|| {
        // SAFETY: ws is our wait set.
        let ws = unsafe { object::borrow::<WaitSet>(ws)? };
        ws.wait(timeout)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_poll_open(
    domain: *mut c_void,
    attr: *mut b::fi_poll_attr,
    pollset: *mut *mut b::fid_poll,
) -> c_int {
    guard::call(|| {
        if pollset.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: domain is ours; attr is NULL or valid for the call.
        let _d = unsafe { object::borrow::<crate::fi::fabric::Domain>(domain)? };
        let flags = unsafe { attr.as_ref() }.map_or(0, |a| a.flags);
        let obj = Arc::new(PollSet::new(flags)?);
        let rs = object::into_raw(obj);
        // SAFETY: the shim wraps rs in a new fid.
        let fid = unsafe { srd_shim_new_poll(rs) };
        if fid.is_null() {
            // SAFETY: rs was never shared.
            let _ = unsafe { object::close::<PollSet>(rs) };
            return Err(Error::NoMem);
        }
        // SAFETY: pollset is non-null.
        unsafe { *pollset = fid };
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_poll_add(ps: *mut c_void, fid: *mut b::fid, flags: u64) -> c_int {
    guard::call(|| {
        if flags != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: ps is our poll set.
        let ps = unsafe { object::borrow::<PollSet>(ps)? };
        let (m, ctx, start) = member_of(fid, false)?;
        ps.add(m, ctx, start);
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_poll_del(ps: *mut c_void, fid: *mut b::fid, flags: u64) -> c_int {
    guard::call(|| {
        if flags != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: ps is our poll set.
        let ps = unsafe { object::borrow::<PollSet>(ps)? };
        let (m, _, _) = member_of(fid, false)?;
        ps.remove(|x| match (x, &m) {
            (Member::Cq(a), Member::Cq(b)) => std::sync::Weak::ptr_eq(a, b),
            (Member::Cntr(a), Member::Cntr(b)) => std::sync::Weak::ptr_eq(a, b),
            _ => false,
        })?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_poll_poll(
    ps: *mut c_void,
    context: *mut *mut c_void,
    count: c_int,
) -> c_int {
    guard::call(|| {
        if count < 0 || (context.is_null() && count > 0) {
            return Err(Error::Inval);
        }
        // SAFETY: ps is our poll set.
        let ps = unsafe { object::borrow::<PollSet>(ps)? };
        let mut i = 0usize;
        let n = ps.poll(count as usize, &mut |ctx| {
            // SAFETY: the application's array holds `count` pointers.
            unsafe { *context.add(i) = ctx as *mut c_void };
            i += 1;
        });
        Ok(n as c_int)
    })
}

/// fi_trywait: 0 when every object may be waited on, -FI_EAGAIN when one
/// has something to read (or input waits) and the caller should read.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_trywait(fids: *mut *mut b::fid, count: c_int) -> c_int {
    guard::call(|| {
        if count < 0 || (fids.is_null() && count > 0) {
            return Err(Error::Inval);
        }
        for i in 0..count as usize {
            // SAFETY: the application passes `count` fids.
            let fid = unsafe { *fids.add(i) };
            if fid.is_null() {
                return Err(Error::Inval);
            }
            // SAFETY: fid is non-null.
            if unsafe { (*fid).fclass } as u32 == b::FI_CLASS_WAIT {
                // A wait set: try each of its members.
                // SAFETY: as in wait_set_of.
                let ws = wait_set_of(fid as *mut b::fid_wait)?;
                ws.trywait()?;
                continue;
            }
            let (m, _, _) = member_of(fid, true)?;
            crate::fi::wait::trywait(&m)?;
        }
        Ok(0)
    })
}
