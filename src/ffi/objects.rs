//! Entry points for the domain's children (AV, CQ, counter, MR, endpoint)
//! and their close/bind/control dispatch.

use super::bindings as b;
use super::guard;
use crate::fi::errno::{Error, Result};
use std::os::raw::{c_int, c_void};

pub(crate) fn close(_rs: *mut c_void, _fclass: usize) -> Result<c_int> {
    Err(Error::Inval)
}

pub(crate) fn bind(
    _rs: *mut c_void,
    _fclass: usize,
    bfid: *mut b::fid,
    _flags: u64,
) -> Result<c_int> {
    if bfid.is_null() {
        return Err(Error::Inval);
    }
    Err(Error::NoSys)
}

pub(crate) fn control(
    _rs: *mut c_void,
    _fclass: usize,
    _command: c_int,
    _arg: *mut c_void,
) -> Result<c_int> {
    Err(Error::NoSys)
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_open(
    _domain: *mut c_void,
    attr: *mut b::fi_av_attr,
    av: *mut *mut b::fid_av,
    _context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || av.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_open(
    _domain: *mut c_void,
    attr: *mut b::fi_cq_attr,
    cq: *mut *mut b::fid_cq,
    _context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || cq.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cntr_open(
    _domain: *mut c_void,
    _attr: *mut b::fi_cntr_attr,
    cntr: *mut *mut b::fid_cntr,
    _context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if cntr.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_endpoint(
    _domain: *mut c_void,
    info: *mut b::fi_info,
    ep: *mut *mut b::fid_ep,
    _context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if info.is_null() || ep.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_query_atomic(
    _domain: *mut c_void,
    _datatype: b::fi_datatype,
    _op: b::fi_op,
    attr: *mut b::fi_atomic_attr,
    _flags: u64,
) -> c_int {
    guard::call(|| {
        if attr.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_mr_reg(
    _domain: *mut c_void,
    iov: *const b::iovec,
    count: usize,
    _access: u64,
    _offset: u64,
    _requested_key: u64,
    _flags: u64,
    mr: *mut *mut b::fid_mr,
    _context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if mr.is_null() || (iov.is_null() && count > 0) {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_mr_regattr(
    _domain: *mut c_void,
    attr: *const b::fi_mr_attr,
    _flags: u64,
    mr: *mut *mut b::fid_mr,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || mr.is_null() {
            return Err(Error::Inval);
        }
        Err(Error::NoSys)
    })
}
