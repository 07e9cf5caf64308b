//! Provider-level entry points: fi_prov_ini, getinfo, fabric, cleanup,
//! and the generic close/bind/control dispatch by fid class.

use super::guard;
use super::info;
use super::object;
use crate::bindings as b;
use crate::fi::errno::Error;
use crate::fi::fabric::{Domain, Fabric};
use crate::fi::getinfo::{self, Request};
use crate::fi::params::{self, Kind, Params};
use crate::log::{Level, Subsys};
use std::ffi::{CStr, CString, c_char, c_void};
use std::os::raw::c_int;
use std::sync::Arc;

unsafe extern "C" {
    fn srd_shim_provider() -> *mut b::fi_provider;
    fn srd_shim_new_fabric(
        rs: *mut c_void,
        context: *mut c_void,
        api_version: u32,
    ) -> *mut b::fid_fabric;
    fn srd_shim_new_domain(rs: *mut c_void, context: *mut c_void) -> *mut b::fid_domain;
}

/// The libfabric core calls this when it loads libsrd-fi.so. It registers
/// the FI_SRD_* parameters and returns the provider record.
#[unsafe(no_mangle)]
pub extern "C" fn fi_prov_ini() -> *mut b::fi_provider {
    // SAFETY: returns a pointer to the shim's static record.
    let prov = unsafe { srd_shim_provider() };
    guard::call_void(|| {
        crate::log::install(crate::log::Sink {
            enabled: log_enabled,
            emit: log_emit,
        });
        define_params(prov);
        params::install(read_params(prov));
    });
    prov
}

unsafe extern "C" {
    fn srd_shim_log_enabled(level: c_int, subsys: c_int) -> c_int;
    fn srd_shim_log(
        level: c_int,
        subsys: c_int,
        func: *const c_char,
        line: c_int,
        msg: *const c_char,
    );
}

/// The log sink: the core's FI_LOG through the shim.
fn log_enabled(level: Level, subsys: Subsys) -> bool {
    // SAFETY: the shim function only reads the static provider record.
    unsafe { srd_shim_log_enabled(level as c_int, subsys as c_int) != 0 }
}

fn log_emit(level: Level, subsys: Subsys, func: &str, line: u32, msg: &str) {
    let (Ok(f), Ok(m)) = (CString::new(func), CString::new(msg.replace('\0', " "))) else {
        return;
    };
    // SAFETY: both strings are NUL-terminated and live across the call.
    unsafe {
        srd_shim_log(
            level as c_int,
            subsys as c_int,
            f.as_ptr(),
            line as c_int,
            m.as_ptr(),
        )
    };
}

fn define_params(prov: *mut b::fi_provider) {
    let fmt = c"%s";
    for d in params::DEFS {
        let (Ok(name), Ok(help)) = (
            CString::new(d.name),
            CString::new(format!(
                "{} (default: {})",
                d.help,
                shown_default(d.default)
            )),
        ) else {
            continue;
        };
        let ty = match d.kind {
            Kind::Int => b::FI_PARAM_INT,
            Kind::Bool => b::FI_PARAM_BOOL,
            Kind::Str => b::FI_PARAM_STRING,
            Kind::Size => b::FI_PARAM_SIZE_T,
        };
        // SAFETY: prov is the static record; strings live across the call;
        // the format takes exactly one string argument.
        unsafe { b::fi_param_define(prov, name.as_ptr(), ty, fmt.as_ptr(), help.as_ptr()) };
    }
}

fn shown_default(d: &str) -> &str {
    if d.is_empty() { "unset" } else { d }
}

fn read_params(prov: *mut b::fi_provider) -> Params {
    Params::parse(|name| {
        let def = params::DEFS.iter().find(|d| d.name == name)?;
        let cname = CString::new(name).ok()?;
        match def.kind {
            Kind::Str => {
                let mut v: *mut c_char = std::ptr::null_mut();
                // SAFETY: a string parameter writes a char* (owned by the core).
                let rc = unsafe {
                    b::fi_param_get(prov, cname.as_ptr(), &mut v as *mut _ as *mut c_void)
                };
                if rc != 0 || v.is_null() {
                    return None;
                }
                // SAFETY: the core returns a NUL-terminated string.
                Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
            }
            Kind::Int | Kind::Bool => {
                let mut v: c_int = 0;
                // SAFETY: int and bool parameters write an int.
                let rc = unsafe {
                    b::fi_param_get(prov, cname.as_ptr(), &mut v as *mut _ as *mut c_void)
                };
                (rc == 0).then(|| v.to_string())
            }
            Kind::Size => {
                let mut v: usize = 0;
                // SAFETY: size_t parameters write a size_t.
                let rc = unsafe {
                    b::fi_param_get(prov, cname.as_ptr(), &mut v as *mut _ as *mut c_void)
                };
                (rc == 0).then(|| v.to_string())
            }
        }
    })
}

unsafe fn opt_cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: caller passes a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// fi_getinfo for our provider.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_getinfo(
    version: u32,
    node: *const c_char,
    service: *const c_char,
    flags: u64,
    hints: *const b::fi_info,
    out: *mut *mut b::fi_info,
) -> c_int {
    guard::call(|| {
        if out.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: out is non-null.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: node and service are NULL or strings from the caller.
        let (node, service) = unsafe { (opt_cstr(node), opt_cstr(service)) };
        // SAFETY: hints is NULL or a valid fi_info.
        let hints = (!hints.is_null()).then(|| unsafe { info::from_c(hints) });
        let req = Request {
            version,
            node,
            service,
            flags,
        };
        let list = getinfo::getinfo(
            &req,
            hints.as_ref(),
            &getinfo::cached_interfaces(),
            params::get(),
        )?;
        let head = info::list_to_c(&list).ok_or(Error::NoMem)?;
        // SAFETY: out is non-null.
        unsafe { *out = head };
        Ok(0)
    })
}

/// fi_fabric.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_fabric(
    attr: *mut b::fi_fabric_attr,
    fabric: *mut *mut b::fid_fabric,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if attr.is_null() || fabric.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: attr is non-null and valid for the call.
        let a = unsafe { &*attr };
        // SAFETY: name is NULL or a string.
        let name = unsafe { opt_cstr(a.name) };
        let api = if a.api_version != 0 {
            a.api_version
        } else {
            crate::fi::info::API_VERSION
        };
        let f = Arc::new(Fabric::open(name, api)?);
        let rs = object::into_raw(f);
        // SAFETY: the shim allocates the fid container around rs.
        let fid = unsafe { srd_shim_new_fabric(rs, context, api) };
        if fid.is_null() {
            // SAFETY: rs came from into_raw just above and was never shared.
            let _ = unsafe { object::close::<Fabric>(rs) };
            return Err(Error::NoMem);
        }
        // SAFETY: fabric is non-null.
        unsafe { *fabric = fid };
        Ok(0)
    })
}

/// Provider unload.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_cleanup() {
    guard::call_void(|| {});
}

/// fi_domain on our fabric.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_domain_open(
    fabric: *mut c_void,
    fi: *mut b::fi_info,
    dom: *mut *mut b::fid_domain,
    context: *mut c_void,
) -> c_int {
    guard::call(|| {
        if fi.is_null() || dom.is_null() {
            return Err(Error::Inval);
        }
        // SAFETY: fabric is the rs of one of our fabric fids (checked by the shim).
        let fab = unsafe { object::borrow::<Fabric>(fabric)? };
        // SAFETY: fi is a valid fi_info from the application.
        let info = unsafe { info::from_c(fi) };
        let d = Arc::new(Domain::open(fab, info)?);
        let rs = object::into_raw(d);
        // SAFETY: the shim allocates the fid container around rs.
        let fid = unsafe { srd_shim_new_domain(rs, context) };
        if fid.is_null() {
            // SAFETY: rs came from into_raw above and was never shared.
            let _ = unsafe { object::close::<Domain>(rs) };
            return Err(Error::NoMem);
        }
        // SAFETY: dom is non-null.
        unsafe { *dom = fid };
        Ok(0)
    })
}

/// fi_close on any of our fids; the shim frees the container on success.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_close(rs: *mut c_void, fclass: usize) -> c_int {
    guard::call(|| {
        // SAFETY: rs is the fid's own object of the class the fid says.
        unsafe {
            match fclass as u32 {
                b::FI_CLASS_FABRIC => object::close::<Fabric>(rs)?,
                b::FI_CLASS_DOMAIN => object::close::<Domain>(rs)?,
                _ => return super::objects::close(rs, fclass),
            }
        }
        Ok(0)
    })
}

/// fi_bind on any of our fids.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_bind(
    rs: *mut c_void,
    fclass: usize,
    bfid: *mut b::fid,
    flags: u64,
) -> c_int {
    guard::call(|| super::objects::bind(rs, fclass, bfid, flags))
}

/// fi_control on any of our fids.
#[unsafe(no_mangle)]
pub extern "C" fn srd_rs_control(
    rs: *mut c_void,
    fclass: usize,
    command: c_int,
    arg: *mut c_void,
) -> c_int {
    guard::call(|| super::objects::control(rs, fclass, command, arg))
}
