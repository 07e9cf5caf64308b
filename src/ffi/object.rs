//! Rust objects behind the shim's fids.
//!
//! Each fid's `rs` pointer is an `Arc<T>` turned into a raw pointer when the
//! object is opened (the fid owns that reference). Children hold clones of
//! their parents' Arcs, so closing a parent that still has children is
//! refused with -FI_EBUSY, as libfabric requires.

use crate::fi::errno::{Error, Result};
use std::os::raw::c_void;
use std::sync::Arc;

/// Hands a new object to C.
pub fn into_raw<T>(obj: Arc<T>) -> *mut c_void {
    Arc::into_raw(obj) as *mut c_void
}

/// Borrows the object behind `rs` as a new Arc (the fid keeps its own).
///
/// # Safety
/// `rs` must come from [`into_raw`] with the same `T` and not be closed.
pub unsafe fn borrow<T>(rs: *mut c_void) -> Result<Arc<T>> {
    if rs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract, rs is a live Arc<T> pointer; we add a count
    // before materialising our own Arc so the fid's reference is untouched.
    unsafe {
        Arc::increment_strong_count(rs as *const T);
        Ok(Arc::from_raw(rs as *const T))
    }
}

/// Borrows the object behind `rs` for the length of one call, without
/// touching its reference count (two atomic read-modify-writes saved on the
/// paths an application spins on, such as fi_cq_read).
///
/// # Safety
/// As for [`borrow`], and the fid must stay open until the reference is
/// dropped: fi_close of an object while another call uses it is undefined
/// in libfabric, so the application guarantees this for the call.
pub unsafe fn borrow_ref<'a, T>(rs: *mut c_void) -> Result<&'a T> {
    if rs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract, rs is a live Arc<T> pointer that outlives 'a.
    Ok(unsafe { &*(rs as *const T) })
}

/// Releases the fid's reference unless others still hold the object.
///
/// # Safety
/// As for [`borrow`]; on success `rs` must not be used again.
pub unsafe fn close<T>(rs: *mut c_void) -> Result<()> {
    if rs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract, rs is the fid's live Arc<T>.
    let obj = unsafe { Arc::from_raw(rs as *const T) };
    // Atomically the last strong reference, or busy: a count read first
    // could be raced by a `Weak::upgrade` (an endpoint's keepalive thread),
    // and the object would then be dropped — its close work done — on that
    // thread after fi_close returned.
    match Arc::try_unwrap(obj) {
        Ok(last) => {
            drop(last);
            Ok(())
        }
        Err(obj) => {
            // Still bound or parent of open objects: give the reference back.
            let _ = Arc::into_raw(obj);
            Err(Error::Busy)
        }
    }
}
