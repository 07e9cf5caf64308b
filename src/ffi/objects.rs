//! Entry points for the domain's children (AV, CQ, counter, MR, endpoint)
//! and their close/bind/control dispatch. Each checks its pointers; objects
//! are owned by their fids (see `object`).

use super::guard;
use super::object;
use crate::bindings as b;
use crate::fi::addr::{ADDR_LEN, EpAddr};
use crate::fi::av::{ADDR_NOTAVAIL, Av, Inserted};
use crate::fi::cntr::Cntr;
use crate::fi::cq::{Cq, Entry};
use crate::fi::endpoint::{Endpoint, random_u64};
use crate::fi::errno::{Error, Result};
use crate::fi::fabric::Domain;
use crate::fi::mr::Region;
use crate::fi::ops::{FlagMode, RecvOp, SendOp};
use crate::mem::UserIov;
use std::ffi::{c_char, c_void};
use std::os::raw::c_int;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn srd_shim_rs_of(fid: *const b::fid, fclass: usize) -> *mut c_void;
    fn srd_shim_new_av(rs: *mut c_void, context: *mut c_void) -> *mut b::fid_av;
    fn srd_shim_new_cq(rs: *mut c_void, context: *mut c_void) -> *mut b::fid_cq;
    fn srd_shim_new_cntr(rs: *mut c_void, context: *mut c_void) -> *mut b::fid_cntr;
    fn srd_shim_new_mr(
        rs: *mut c_void,
        context: *mut c_void,
        desc: *mut c_void,
        key: u64,
    ) -> *mut b::fid_mr;
    fn srd_shim_new_ep(
        rs: *mut c_void,
        context: *mut c_void,
        ep_type: c_int,
        caps: u64,
    ) -> *mut b::fid_ep;
}

/// A registered memory region as the fid sees it.
#[derive(Debug)]
pub struct MrObj {
    pub domain: Arc<Domain>,
    pub region: Region,
}

// The `mode` of a data call (ofi-shim/srd_shim.h).
pub(crate) const SRD_OP_DEFAULT: c_int = 0;
pub(crate) const SRD_OP_MSG: c_int = 1;
pub(crate) const SRD_OP_INJECT: c_int = 2;

/// Hands `obj` to a new fid made by `make`, or releases it if that fails.
fn publish<T, F>(
    obj: Arc<T>,
    make: impl FnOnce(*mut c_void) -> *mut F,
    out: *mut *mut F,
) -> Result<c_int> {
    let rs = object::into_raw(obj);
    let fid = make(rs);
    if fid.is_null() {
        // SAFETY: rs was created just above and never shared.
        let _ = unsafe { object::close::<T>(rs) };
        return Err(Error::NoMem);
    }
    // SAFETY: out was checked non-null by the caller.
    unsafe { *out = fid };
    Ok(0)
}

pub(crate) fn close(rs: *mut c_void, fclass: usize) -> Result<c_int> {
    // SAFETY: rs is the fid's own object of class `fclass` (shim-checked).
    unsafe {
        match fclass as u32 {
            b::FI_CLASS_AV => object::close::<Av>(rs)?,
            b::FI_CLASS_CQ => object::close::<Cq>(rs)?,
            b::FI_CLASS_CNTR => object::close::<Cntr>(rs)?,
            b::FI_CLASS_EP => close_endpoint(rs)?,
            b::FI_CLASS_EQ => object::close::<crate::fi::eq::Eq>(rs)?,
            b::FI_CLASS_WAIT => object::close::<crate::fi::wait::WaitSet>(rs)?,
            b::FI_CLASS_POLL => object::close::<crate::fi::wait::PollSet>(rs)?,
            b::FI_CLASS_MR => {
                // Our own borrow must be gone before close counts references.
                let (domain, key) = {
                    let mr = object::borrow::<MrObj>(rs)?;
                    (mr.domain.clone(), mr.region.key)
                };
                object::close::<MrObj>(rs)?;
                if let Ok(served) = domain.mrs.deregister(key) {
                    crate::srd_log!(
                        Info,
                        Mr,
                        "MR key {key:#x} closed after serving {served} remote RMA/atomic accesses"
                    );
                }
            }
            _ => return Err(Error::Inval),
        }
    }
    Ok(0)
}

/// Closes an endpoint; its keepalive thread may hold a reference for the
/// length of one progress round, so a busy answer is retried briefly.
///
/// # Safety
/// As for `object::close`.
unsafe fn close_endpoint(rs: *mut c_void) -> Result<()> {
    for _ in 0..1000 {
        // SAFETY: per the contract.
        match unsafe { object::close::<Endpoint>(rs) } {
            Err(Error::Busy) => std::thread::sleep(Duration::from_micros(100)),
            r => return r,
        }
    }
    Err(Error::Busy)
}

pub(crate) fn bind(rs: *mut c_void, fclass: usize, bfid: *mut b::fid, flags: u64) -> Result<c_int> {
    if bfid.is_null() {
        return Err(Error::Inval);
    }
    if fclass as u32 != b::FI_CLASS_EP {
        // Only endpoints take bindings here (MRs to endpoints: FI_MR_ENDPOINT
        // is not a mode we require).
        return Err(Error::NoSys);
    }
    // SAFETY: rs is an endpoint (class checked by the shim).
    let ep = unsafe { object::borrow::<Endpoint>(rs)? };
    // SAFETY: bfid is non-null; the shim reads only its class and ops.
    let brs = unsafe { srd_shim_rs_of(bfid, 0) };
    if brs.is_null() {
        return Err(Error::Inval);
    }
    // SAFETY: bfid is one of our fids; its class names its object type.
    unsafe {
        match (*bfid).fclass as u32 {
            b::FI_CLASS_AV => ep.bind_av(object::borrow::<Av>(brs)?)?,
            b::FI_CLASS_CQ => ep.bind_cq(object::borrow::<Cq>(brs)?, flags)?,
            b::FI_CLASS_CNTR => ep.bind_cntr(object::borrow::<Cntr>(brs)?, flags)?,
            // Connectionless endpoints report no events; the binding is kept
            // as a no-op so applications written for any endpoint work.
            b::FI_CLASS_EQ => {}
            _ => return Err(Error::Inval),
        }
    }
    Ok(0)
}

pub(crate) fn control(
    rs: *mut c_void,
    fclass: usize,
    command: c_int,
    arg: *mut c_void,
) -> Result<c_int> {
    match (fclass as u32, command as u32) {
        (b::FI_CLASS_EP, b::FI_ENABLE) => {
            // SAFETY: rs is an endpoint.
            let ep = unsafe { object::borrow::<Endpoint>(rs)? };
            ep.enable()?;
            Ok(0)
        }
        (b::FI_CLASS_EP, c) if c == b::FI_GETOPSFLAG || c == b::FI_SETOPSFLAG => {
            if arg.is_null() {
                return Err(Error::Inval);
            }
            // SAFETY: rs is an endpoint; arg points to a u64 (fi_endpoint(3)).
            let ep = unsafe { object::borrow::<Endpoint>(rs)? };
            let flags = unsafe { &mut *(arg as *mut u64) };
            let mut st = ep.lock();
            let tx = *flags & b::FI_TRANSMIT != 0;
            let rx = *flags & b::FI_RECV != 0;
            if tx == rx {
                return Err(Error::Inval);
            }
            let slot = if tx {
                &mut st.tx_flags
            } else {
                &mut st.rx_flags
            };
            if c == b::FI_GETOPSFLAG {
                *flags = *slot;
            } else {
                *slot = *flags & !(b::FI_TRANSMIT | b::FI_RECV);
            }
            Ok(0)
        }
        (c, cmd)
            if (cmd == b::FI_GETWAIT || cmd == b::FI_GETWAITOBJ)
                && [
                    b::FI_CLASS_CQ,
                    b::FI_CLASS_CNTR,
                    b::FI_CLASS_EQ,
                    b::FI_CLASS_WAIT,
                ]
                .contains(&c) =>
        {
            super::wait::control(rs, fclass, command, arg)
        }
        _ => Err(Error::NoSys),
    }
}

// ---------------------------------------------------------------- AV ----

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_open(
    domain: *mut c_void,
    attr: *mut b::fi_av_attr,
    av: *mut *mut b::fid_av,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || av.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: domain is our domain object; attr is valid for the call.
        let (d, a) = unsafe { (object::borrow::<Domain>(domain)?, &*attr) };
        if a.rx_ctx_bits != 0 {
            // Scalable endpoints are not offered.
            return Err(Error::NoSys);
        }
        if a.flags & b::FI_EVENT != 0 {
            return Err(Error::NoSys);
        }
        if a.flags & !(b::FI_READ | b::FI_SYMMETRIC) != 0 {
            return Err(Error::Inval);
        }
        let read_only = a.flags & b::FI_READ != 0;
        let obj = if a.name.is_null() {
            // FI_READ opens an existing named AV (fi_av(3)).
            if read_only {
                return Err(Error::Inval);
            }
            Arc::new(Av::new(a.type_, d.info.addr_format, a.count)?)
        } else {
            // SAFETY: a non-NULL name is a C string (fi_av(3)).
            let name = unsafe { std::ffi::CStr::from_ptr(a.name) }
                .to_str()
                .map_err(|_| Error::Inval)?;
            if name.is_empty() {
                return Err(Error::Inval);
            }
            Arc::new(Av::open_named(
                a.type_,
                d.info.addr_format,
                a.count,
                name,
                read_only,
            )?)
        };
        // SAFETY: the shim wraps rs in a new fid.
        publish(obj, |rs| unsafe { srd_shim_new_av(rs, context) }, av)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_insert(
    av: *mut c_void,
    addr: *const c_void,
    count: usize,
    fi_addr: *mut u64,
    flags: u64,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if addr.is_null() && count > 0 || count > (1 << 24) {
            return Err(Error::Inval);
        }
        if flags & !(b::FI_MORE | b::FI_SYNC_ERR) != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: av is our AV.
        let av = unsafe { object::borrow::<Av>(av)? };
        let errs = if flags & b::FI_SYNC_ERR != 0 {
            context as *mut c_int
        } else {
            std::ptr::null_mut()
        };
        let mut i = 0usize;
        let mut record = |r: Inserted| {
            let (fa, err) = match r {
                Inserted::Ok(f) => (f, 0),
                Inserted::Bad => (ADDR_NOTAVAIL, b::FI_EINVAL),
            };
            // SAFETY: the application passes arrays of `count` entries.
            unsafe {
                if !fi_addr.is_null() {
                    *fi_addr.add(i) = fa;
                }
                if !errs.is_null() {
                    *errs.add(i) = err;
                }
            }
            i += 1;
        };
        let n = if av.addr_format == b::FI_ADDR_STR {
            // An array of NUL-terminated strings, back to back.
            let mut ok = 0;
            let mut p = addr as *const c_char;
            for _ in 0..count {
                // SAFETY: each record is a NUL-terminated string.
                let s = unsafe { std::ffi::CStr::from_ptr(p) };
                let parsed = s.to_str().ok().and_then(|t| EpAddr::from_str_form(t).ok());
                match parsed.map(|a| av.insert_one(a)) {
                    Some(Ok(f)) => {
                        ok += 1;
                        record(Inserted::Ok(f));
                    }
                    _ => record(Inserted::Bad),
                }
                // SAFETY: step past this string and its NUL.
                p = unsafe { p.add(s.to_bytes_with_nul().len()) };
            }
            ok
        } else {
            // SAFETY: count binary addresses of ADDR_LEN bytes each.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, count * ADDR_LEN) };
            av.insert_raw(bytes, count, ADDR_LEN, &mut record)
        };
        Ok(c_int::try_from(n).unwrap_or(c_int::MAX))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_remove(
    av: *mut c_void,
    fi_addr: *mut u64,
    count: usize,
    flags: u64,
) -> c_int {
    guard::call(|| {
        if fi_addr.is_null() && count > 0 || flags != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: av is our AV; fi_addr holds count entries.
        let av = unsafe { object::borrow::<Av>(av)? };
        let list = unsafe { std::slice::from_raw_parts(fi_addr, count) };
        let mut res = Ok(0);
        for &a in list {
            if let Err(e) = av.remove(a) {
                res = Err(e);
            }
        }
        res
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_lookup(
    av: *mut c_void,
    fi_addr: u64,
    addr: *mut c_void,
    addrlen: *mut usize,
) -> c_int {
    guard::call(|| {
        if addrlen.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: av is our AV.
        let av = unsafe { object::borrow::<Av>(av)? };
        let a = av.lookup(fi_addr).ok_or(Error::Inval)?;
        let bytes = a.encode(av.addr_format);
        // SAFETY: addrlen is non-null; addr has *addrlen bytes (or is NULL).
        unsafe {
            let room = *addrlen;
            if !addr.is_null() {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    addr as *mut u8,
                    room.min(bytes.len()),
                );
            }
            *addrlen = bytes.len();
        }
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_av_straddr(
    av: *mut c_void,
    addr: *const c_void,
    buf: *mut c_char,
    len: *mut usize,
) -> *const c_char {
    let mut out: *const c_char = std::ptr::null();
    let _ = guard::call(|| {
        if addr.is_null() || buf.is_null() || len.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: av is our AV; addr holds one address of its format.
        let av = unsafe { object::borrow::<Av>(av)? };
        let text = if av.addr_format == b::FI_ADDR_STR {
            // SAFETY: a string-format address is NUL-terminated.
            unsafe { std::ffi::CStr::from_ptr(addr as *const c_char) }
                .to_string_lossy()
                .into_owned()
        } else {
            // SAFETY: a binary address has ADDR_LEN bytes.
            let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, ADDR_LEN) };
            EpAddr::from_bytes(bytes)
                .map(|a| a.to_string())
                .map_err(|_| Error::Inval)?
        };
        // SAFETY: buf has *len bytes; we write at most *len including NUL.
        unsafe {
            let room = *len;
            if room > 0 {
                let n = text.len().min(room - 1);
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
            }
            *len = text.len() + 1;
        }
        out = buf;
        Ok(0)
    });
    out
}

// ---------------------------------------------------------------- CQ ----

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_open(
    domain: *mut c_void,
    attr: *mut b::fi_cq_attr,
    cq: *mut *mut b::fid_cq,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || cq.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: domain is ours; attr valid for the call.
        let (_d, a) = unsafe { (object::borrow::<Domain>(domain)?, &*attr) };
        if a.wait_cond != b::FI_CQ_COND_NONE {
            return Err(Error::NoSys);
        }
        let set = if a.wait_obj == b::FI_WAIT_SET {
            Some(super::wait::wait_set_of(a.wait_set)?)
        } else {
            None
        };
        let mut obj = Cq::with_wait(a.format, a.size, a.wait_obj, a.flags, set.is_some())?;
        obj.context = context as usize;
        let obj = Arc::new(obj);
        if let Some(ws) = set {
            obj.wait.join(&ws);
            ws.add(crate::fi::wait::Member::Cq(Arc::downgrade(&obj)));
        }
        // SAFETY: the shim wraps rs in a new fid.
        publish(obj, |rs| unsafe { srd_shim_new_cq(rs, context) }, cq)
    })
}

/// Writes one entry in the queue's format at `dst`.
///
/// # Safety
/// `dst` must have room for one entry of `format`.
unsafe fn write_entry(format: u32, dst: *mut u8, e: &Entry) {
    let ctx = e.context as *mut c_void;
    // SAFETY: per the contract; unaligned writes are used since the
    // application's buffer alignment is not ours to assume.
    unsafe {
        match format {
            f if f == b::FI_CQ_FORMAT_MSG => {
                (dst as *mut b::fi_cq_msg_entry).write_unaligned(b::fi_cq_msg_entry {
                    op_context: ctx,
                    flags: e.flags,
                    len: e.len,
                })
            }
            f if f == b::FI_CQ_FORMAT_DATA => {
                (dst as *mut b::fi_cq_data_entry).write_unaligned(b::fi_cq_data_entry {
                    op_context: ctx,
                    flags: e.flags,
                    len: e.len,
                    buf: e.buf as *mut c_void,
                    data: e.data,
                })
            }
            f if f == b::FI_CQ_FORMAT_TAGGED => (dst as *mut b::fi_cq_tagged_entry)
                .write_unaligned(b::fi_cq_tagged_entry {
                    op_context: ctx,
                    flags: e.flags,
                    len: e.len,
                    buf: e.buf as *mut c_void,
                    data: e.data,
                    tag: e.tag,
                }),
            _ => (dst as *mut b::fi_cq_entry).write_unaligned(b::fi_cq_entry { op_context: ctx }),
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_read(
    cq: *mut c_void,
    buf: *mut c_void,
    count: usize,
    src_addr: *mut u64,
    _cond: *const c_void,
    timeout: c_int,
    blocking: c_int,
) -> isize {
    guard::call_isize(|| {
        if buf.is_null() && count > 0 {
            return Err(Error::Inval);
        }
        // A polling read borrows the queue without counting a reference;
        // a blocking one, which may wait long, holds one.
        let held;
        let cq: &Cq = if blocking != 0 {
            // SAFETY: cq is our CQ.
            held = unsafe { object::borrow::<Cq>(cq)? };
            &held
        } else {
            // SAFETY: cq is our CQ, open for this call (fi_close of a queue
            // being read is the application's error).
            unsafe { object::borrow_ref::<Cq>(cq)? }
        };
        let size = cq.entry_size();
        let deadline = (blocking != 0 && timeout >= 0)
            .then(|| Instant::now() + Duration::from_millis(timeout as u64));
        loop {
            cq.progress();
            let mut i = 0usize;
            let r = cq.take(count, &mut |e| {
                // SAFETY: buf holds `count` entries of the queue's format;
                // src_addr (if given) holds `count` fi_addr_t.
                unsafe {
                    write_entry(cq.format, (buf as *mut u8).add(i * size), e);
                    if !src_addr.is_null() {
                        *src_addr.add(i) = e.src;
                    }
                }
                i += 1;
            });
            match r {
                Ok(n) => {
                    cq.idle.busy();
                    return Ok(n as isize);
                }
                Err(Error::Again) if blocking != 0 => {
                    // Sleeps until input, a timer, an entry or fi_cq_signal
                    // (fi::wait); -FI_EAGAIN after the timeout or a signal.
                    if cq.take_signal() || !cq.wait(deadline) || cq.take_signal() {
                        return Err(Error::Again);
                    }
                }
                Err(Error::Again) => {
                    // Spin a while, then give the core away (fi::idle).
                    if cq.idle.should_yield() {
                        cq.idle.yield_now();
                    }
                    return Err(Error::Again);
                }
                Err(e) => return Err(e),
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_readerr(
    cq: *mut c_void,
    buf: *mut b::fi_cq_err_entry,
    flags: u64,
) -> isize {
    guard::call_isize(|| {
        if buf.is_null() || flags != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: cq is our CQ; buf points to one fi_cq_err_entry.
        let cq = unsafe { object::borrow::<Cq>(cq)? };
        let out = unsafe { &mut *buf };
        let user_data = out.err_data;
        let user_size = out.err_data_size;
        cq.take_err(&mut |e| {
            out.op_context = e.entry.context as *mut c_void;
            out.flags = e.entry.flags;
            out.len = e.entry.len;
            out.buf = e.entry.buf as *mut c_void;
            out.data = e.entry.data;
            out.tag = e.entry.tag;
            out.olen = e.olen;
            out.err = e.err;
            out.prov_errno = e.prov_errno;
        })?;
        // err_data: copied into the application's buffer when it gave one
        // (API 1.5), else pointed at ours (valid until the next readerr).
        cq.with_last_err(|e| {
            let data = e.map_or(&[][..], |e| &e.err_data[..]);
            if user_size > 0 && !user_data.is_null() {
                let n = data.len().min(user_size);
                // SAFETY: the application's buffer has user_size bytes.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), user_data as *mut u8, n) };
                out.err_data_size = n;
            } else {
                out.err_data = if data.is_empty() {
                    std::ptr::null_mut()
                } else {
                    data.as_ptr() as *mut c_void
                };
                out.err_data_size = data.len();
            }
        });
        Ok(1)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_signal(cq: *mut c_void) -> c_int {
    guard::call(|| {
        // SAFETY: cq is our CQ.
        unsafe { object::borrow::<Cq>(cq)? }.signal();
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cq_strerror(
    _cq: *mut c_void,
    prov_errno: c_int,
    _err_data: *const c_void,
    buf: *mut c_char,
    len: usize,
) -> *const c_char {
    let text: &'static std::ffi::CStr = match prov_errno {
        0 => c"no provider error",
        1 => c"srd: the peer speaks another protocol version",
        2 => c"srd: the peer did not answer (handshake timeout)",
        _ => c"srd: transport error (see FI_LOG_LEVEL=warn output)",
    };
    if !buf.is_null() && len > 0 {
        let bytes = text.to_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: buf has len bytes; we write n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
        return buf;
    }
    text.as_ptr()
}

// ----------------------------------------------------------- counter ----

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cntr_open(
    domain: *mut c_void,
    attr: *mut b::fi_cntr_attr,
    cntr: *mut *mut b::fid_cntr,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if cntr.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: domain is ours; attr is NULL or valid.
        let _d = unsafe { object::borrow::<Domain>(domain)? };
        let (events, wait, flags, ws) = match unsafe { attr.as_ref() } {
            Some(a) => (a.events, a.wait_obj, a.flags, a.wait_set),
            None => (
                b::FI_CNTR_EVENTS_COMP,
                b::FI_WAIT_UNSPEC,
                0,
                std::ptr::null_mut(),
            ),
        };
        let set = if wait == b::FI_WAIT_SET {
            Some(super::wait::wait_set_of(ws)?)
        } else {
            None
        };
        let mut obj = Cntr::with_wait(events, wait, flags, set.is_some())?;
        obj.context = context as usize;
        let obj = Arc::new(obj);
        if let Some(ws) = set {
            obj.wait.join(&ws);
            ws.add(crate::fi::wait::Member::Cntr(Arc::downgrade(&obj)));
        }
        // SAFETY: the shim wraps rs in a new fid.
        publish(obj, |rs| unsafe { srd_shim_new_cntr(rs, context) }, cntr)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cntr_read(cntr: *mut c_void, err: c_int) -> u64 {
    let mut v = 0;
    guard::call_void(|| {
        // SAFETY: cntr is our counter.
        if let Ok(c) = unsafe { object::borrow::<Cntr>(cntr) } {
            c.progress();
            v = if err != 0 { c.read_err() } else { c.read() };
        }
    });
    v
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cntr_update(
    cntr: *mut c_void,
    value: u64,
    err: c_int,
    set: c_int,
) -> c_int {
    guard::call(|| {
        // SAFETY: cntr is our counter.
        let c = unsafe { object::borrow::<Cntr>(cntr)? };
        if set != 0 {
            c.set(value, err != 0);
        } else {
            c.add(value, err != 0);
        }
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cntr_wait(cntr: *mut c_void, threshold: u64, timeout: c_int) -> c_int {
    guard::call(|| {
        // SAFETY: cntr is our counter.
        let c = unsafe { object::borrow::<Cntr>(cntr)? };
        let deadline =
            (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
        let errs = c.read_err();
        loop {
            c.progress();
            if c.read() >= threshold {
                return Ok(0);
            }
            if c.read_err() != errs {
                return Err(Error::Avail);
            }
            // Sleeps until input, a timer, an update or the deadline.
            if !c.wait_for((c.read(), c.read_err()), deadline) {
                c.progress();
                if c.read() >= threshold {
                    return Ok(0);
                }
                return Err(Error::TimedOut);
            }
        }
    })
}

// ---------------------------------------------------------------- MR ----

#[allow(clippy::too_many_arguments)] // mirrors fi_mr_regv's parameters
fn register(
    domain: *mut c_void,
    iov: &[b::iovec],
    access: u64,
    offset: u64,
    requested_key: u64,
    flags: u64,
    context: *mut c_void,
    mr: *mut *mut b::fid_mr,
) -> Result<c_int> {
    if mr.is_null() || flags != 0 {
        return Err(Error::Inval);
    }
    // SAFETY: domain is ours.
    let d = unsafe { object::borrow::<Domain>(domain)? };
    if iov.len() > crate::fi::offer::IOV_LIMIT {
        return Err(Error::Inval);
    }
    let segs = iov
        .iter()
        .map(|v| (v.iov_base as usize, v.iov_len))
        .collect();
    let prov_key =
        d.mr_mode() & b::FI_MR_PROV_KEY as i32 != 0 || d.mr_mode() == b::FI_MR_BASIC as i32;
    let region = d.mrs.register(
        segs,
        access,
        offset,
        requested_key,
        prov_key,
        &mut random_u64,
    )?;
    let key = region.key;
    if region.access & (b::FI_REMOTE_READ | b::FI_REMOTE_WRITE) != 0 {
        let len: usize = region.iov.iter().map(|s| s.1).sum();
        crate::srd_log!(
            Info,
            Mr,
            "MR key {key:#x} registered for remote access: {len} bytes, access {:#x}",
            region.access
        );
    }
    let obj = Arc::new(MrObj { domain: d, region });
    let rs = object::into_raw(obj);
    // The descriptor handed to data calls is the object itself.
    // SAFETY: the shim wraps rs in a new fid.
    let fid = unsafe { srd_shim_new_mr(rs, context, rs, key) };
    if fid.is_null() {
        // SAFETY: rs was never shared.
        if let Ok(m) = unsafe { object::borrow::<MrObj>(rs) } {
            let _ = m.domain.mrs.deregister(key);
        }
        let _ = unsafe { object::close::<MrObj>(rs) };
        return Err(Error::NoMem);
    }
    // SAFETY: mr is non-null.
    unsafe { *mr = fid };
    Ok(0)
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_mr_reg(
    domain: *mut c_void,
    iov: *const b::iovec,
    count: usize,
    access: u64,
    offset: u64,
    requested_key: u64,
    flags: u64,
    mr: *mut *mut b::fid_mr,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if iov.is_null() && count > 0 {
            return Err(Error::Inval);
        }
        let list = if count == 0 {
            &[][..]
        } else {
            // SAFETY: the application passes count iovecs.
            unsafe { std::slice::from_raw_parts(iov, count) }
        };
        register(
            domain,
            list,
            access,
            offset,
            requested_key,
            flags,
            context,
            mr,
        )
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_mr_regattr(
    domain: *mut c_void,
    attr: *const b::fi_mr_attr,
    flags: u64,
    mr: *mut *mut b::fid_mr,
) -> c_int {
    guard::call(|| {
        if attr.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: attr is valid for the call.
        let a = unsafe { &*attr };
        if a.iface != b::FI_HMEM_SYSTEM {
            return Err(Error::NoSys);
        }
        if a.mr_iov.is_null() && a.iov_count > 0 {
            return Err(Error::Inval);
        }
        let list = if a.iov_count == 0 {
            &[][..]
        } else {
            // SAFETY: attr lists iov_count iovecs.
            unsafe { std::slice::from_raw_parts(a.mr_iov, a.iov_count) }
        };
        register(
            domain,
            list,
            a.access,
            a.offset,
            a.requested_key,
            flags,
            a.context,
            mr,
        )
    })
}

// ---------------------------------------------------------- endpoint ----

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_endpoint(
    domain: *mut c_void,
    info: *mut b::fi_info,
    ep: *mut *mut b::fid_ep,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if info.is_null() || ep.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: domain is ours; info is a valid fi_info.
        let d = unsafe { object::borrow::<Domain>(domain)? };
        let info = unsafe { super::info::from_c(info) };
        let obj = Endpoint::open(d, &info)?;
        let (ty, caps) = (obj.ep_type as c_int, obj.caps);
        // SAFETY: the shim wraps rs in a new fid.
        publish(
            obj,
            |rs| unsafe { srd_shim_new_ep(rs, context, ty, caps) },
            ep,
        )
    })
}

/// The mode of a data call from the shim (`SRD_OP_*`).
pub(crate) fn flag_mode(mode: c_int) -> Result<FlagMode> {
    match mode {
        SRD_OP_DEFAULT => Ok(FlagMode::Default),
        SRD_OP_MSG => Ok(FlagMode::Msg),
        SRD_OP_INJECT => Ok(FlagMode::Inject),
        _ => Err(Error::Inval),
    }
}

/// Builds the iov of a data call.
///
/// # Safety
/// `iov` holds `count` iovecs valid until the operation completes.
pub(crate) unsafe fn user_iov(iov: *const b::iovec, count: usize, limit: usize) -> Result<UserIov> {
    if count == 0 {
        return Ok(UserIov::empty());
    }
    if iov.is_null() || count > limit {
        return Err(Error::Inval);
    }
    // SAFETY: per the contract.
    let list = unsafe { std::slice::from_raw_parts(iov, count) };
    if let Some(v) = list.iter().find(|v| v.iov_base.is_null() && v.iov_len > 0) {
        // A client bug worth seeing in the log (Open MPI 4.1's mtl ofi posts
        // such sends for MPI_BOTTOM struct datatypes): refused, never read.
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            let l = v.iov_len;
            crate::srd_log!(
                Warn,
                EpData,
                "data call with a NULL buffer of {l} bytes refused (-FI_EINVAL); further ones are not logged"
            );
        }
        return Err(Error::Inval);
    }
    // SAFETY: libfabric's rule: buffers stay valid until completion. One
    // pass from the caller's iovecs into the list (no staging copy).
    Ok(unsafe { UserIov::from_raw(list.iter().map(|v| (v.iov_base as *mut u8, v.iov_len))) })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_send(
    ep: *mut c_void,
    iov: *const b::iovec,
    _desc: *mut *mut c_void,
    count: usize,
    addr: u64,
    tag: u64,
    data: u64,
    context: *mut c_void,
    flags: u64,
    tagged: c_int,
    mode: c_int,
) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is our endpoint.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        // SAFETY: the application's iovecs (contract of the data calls).
        let iov = unsafe { user_iov(iov, count, ep.iov_limit)? };
        let mode = flag_mode(mode)?;
        let op = SendOp {
            iov,
            dest: addr,
            tag,
            data,
            context: context as usize,
            flags,
            tagged: tagged != 0,
            report: false,
        };
        ep.send(op, mode)?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_recv(
    ep: *mut c_void,
    iov: *const b::iovec,
    _desc: *mut *mut c_void,
    count: usize,
    addr: u64,
    tag: u64,
    ignore: u64,
    context: *mut c_void,
    flags: u64,
    tagged: c_int,
    mode: c_int,
) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is our endpoint.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        // SAFETY: the application's iovecs (contract of the data calls).
        let iov = unsafe { user_iov(iov, count, ep.iov_limit)? };
        let mode = flag_mode(mode)?;
        // Without FI_DIRECTED_RECV the source address is ignored.
        let src = if ep.caps & b::FI_DIRECTED_RECV != 0 {
            addr
        } else {
            ADDR_NOTAVAIL
        };
        ep.recv(
            RecvOp {
                iov,
                src,
                tag,
                ignore,
                context: context as usize,
                flags,
                tagged: tagged != 0,
                report: false,
            },
            mode,
        )?;
        Ok(0)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_cancel(ep: *mut c_void, context: *mut c_void) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is our endpoint.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        if ep.cancel(context as usize) {
            Ok(0)
        } else {
            Err(Error::NoEnt)
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_getopt(
    ep: *mut c_void,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut usize,
) -> c_int {
    guard::call(|| {
        if optval.is_null() || optlen.is_null() {
            return Err(Error::Inval);
        }
        if level as u32 != b::FI_OPT_ENDPOINT {
            return Err(Error::Os(b::FI_ENOPROTOOPT));
        }
        // SAFETY: ep is ours; optval/optlen are valid.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        match optname as u32 {
            b::FI_OPT_MIN_MULTI_RECV => unsafe {
                if *optlen < std::mem::size_of::<usize>() {
                    return Err(Error::Os(b::FI_ETOOSMALL as i32));
                }
                *(optval as *mut usize) = ep.lock().min_multi_recv;
                *optlen = std::mem::size_of::<usize>();
                Ok(0)
            },
            _ => Err(Error::Os(b::FI_ENOPROTOOPT)),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_setopt(
    ep: *mut c_void,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: usize,
) -> c_int {
    guard::call(|| {
        if optval.is_null() {
            return Err(Error::Inval);
        }
        if level as u32 != b::FI_OPT_ENDPOINT {
            return Err(Error::Os(b::FI_ENOPROTOOPT));
        }
        // SAFETY: ep is ours; optval holds optlen bytes.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        match optname as u32 {
            b::FI_OPT_MIN_MULTI_RECV => {
                if optlen != std::mem::size_of::<usize>() {
                    return Err(Error::Inval);
                }
                let v = unsafe { *(optval as *const usize) };
                let mut st = ep.lock();
                if st.enabled {
                    return Err(Error::OpBadState);
                }
                st.min_multi_recv = v;
                Ok(0)
            }
            _ => Err(Error::Os(b::FI_ENOPROTOOPT)),
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_size_left(ep: *mut c_void, tx: c_int) -> isize {
    guard::call_isize(|| {
        // SAFETY: ep is ours.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        Ok(ep.size_left(tx != 0)? as isize)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_ep_getname(
    ep: *mut c_void,
    addr: *mut c_void,
    addrlen: *mut usize,
) -> c_int {
    guard::call(|| {
        if addrlen.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: ep is ours.
        let ep = unsafe { object::borrow::<Endpoint>(ep)? };
        let bytes = ep.name().encode(ep.domain.info.addr_format);
        // SAFETY: addrlen non-null; addr has *addrlen bytes when non-null.
        unsafe {
            let room = *addrlen;
            *addrlen = bytes.len();
            if room < bytes.len() || addr.is_null() {
                return Err(Error::Os(b::FI_ETOOSMALL as i32));
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len());
        }
        Ok(0)
    })
}

// ---------------------------------------------------------------- EQ ----

unsafe extern "C" {
    fn srd_shim_new_eq(rs: *mut c_void, context: *mut c_void) -> *mut b::fid_eq;
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_eq_open(
    _fabric: *mut c_void,
    attr: *mut b::fi_eq_attr,
    eq: *mut *mut b::fid_eq,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || eq.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: attr is valid for the call.
        let a = unsafe { &*attr };
        let set = if a.wait_obj == b::FI_WAIT_SET {
            Some(super::wait::wait_set_of(a.wait_set)?)
        } else {
            None
        };
        let obj = Arc::new(crate::fi::eq::Eq::with_wait(
            a.size,
            a.wait_obj,
            a.flags,
            set.is_some(),
        )?);
        if let Some(ws) = set {
            obj.wait.join(&ws);
            ws.add(crate::fi::wait::Member::Eq(Arc::downgrade(&obj)));
        }
        // SAFETY: the shim wraps rs in a new fid.
        publish(obj, |rs| unsafe { srd_shim_new_eq(rs, context) }, eq)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_eq_read(
    eq: *mut c_void,
    event: *mut u32,
    buf: *mut c_void,
    len: usize,
    flags: u64,
    timeout: c_int,
    blocking: c_int,
) -> isize {
    guard::call_isize(|| {
        if event.is_null() || (buf.is_null() && len > 0) || flags & !b::FI_PEEK != 0 {
            return Err(Error::Inval);
        }
        // SAFETY: eq is our EQ.
        let eq = unsafe { object::borrow::<crate::fi::eq::Eq>(eq)? };
        let deadline =
            (timeout >= 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
        loop {
            if let Some(ev) = eq.read(true) {
                if ev.data.len() > len {
                    return Err(Error::Os(b::FI_ETOOSMALL as i32));
                }
                let ev = if flags & b::FI_PEEK != 0 {
                    ev
                } else {
                    eq.read(false).unwrap_or(ev)
                };
                // SAFETY: event non-null; buf has len >= data bytes.
                unsafe {
                    *event = ev.event;
                    std::ptr::copy_nonoverlapping(ev.data.as_ptr(), buf as *mut u8, ev.data.len());
                }
                return Ok(ev.data.len() as isize);
            }
            if blocking == 0 || !eq.wait_for(deadline) {
                return Err(Error::Again);
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_eq_readerr(
    eq: *mut c_void,
    buf: *mut b::fi_eq_err_entry,
    _flags: u64,
) -> isize {
    guard::call_isize(|| {
        if buf.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: eq is our EQ. No error events are produced.
        let _eq = unsafe { object::borrow::<crate::fi::eq::Eq>(eq)? };
        Err(Error::Again)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_eq_write(
    eq: *mut c_void,
    event: u32,
    buf: *const c_void,
    len: usize,
    flags: u64,
) -> isize {
    guard::call_isize(|| {
        if (buf.is_null() && len > 0) || len > crate::fi::eq::MAX_EVENT || flags & !b::FI_PEEK != 0
        {
            return Err(Error::Inval);
        }
        // SAFETY: eq is our EQ; buf holds len bytes.
        let eq = unsafe { object::borrow::<crate::fi::eq::Eq>(eq)? };
        let data = if len == 0 {
            Vec::new()
        } else {
            unsafe { std::slice::from_raw_parts(buf as *const u8, len) }.to_vec()
        };
        eq.write(crate::fi::eq::Event { event, data })?;
        Ok(len as isize)
    })
}
