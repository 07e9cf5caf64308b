//! Helpers for tests that go through the real libfabric core: they load our
//! provider from the build's `libfabric/` folder and call the API's inline
//! wrappers (which bindgen does not generate) through the ops tables.
#![allow(dead_code)]

use srd_fi::bindings as b;
use std::ffi::{CStr, CString, c_void};
use std::os::raw::c_int;
use std::path::PathBuf;
use std::ptr;
use std::sync::Once;

pub mod child;
pub mod fab;
pub mod pingpong;
pub mod stats;

pub const API: u32 = (1 << 16) | 17;

/// A folder holding `libsrd-fi.so` → the cdylib cargo built beside this
/// test binary (`target/<profile>/deps/libsrd_fi.so`, rebuilt by every
/// `cargo test`, unlike the uplifted copy that only `cargo build` updates).
pub fn provider_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps folder");
    let dir = deps
        .parent()
        .expect("target/<profile>")
        .join("libfabric-test");
    let link = dir.join("libsrd-fi.so");
    let target = deps.join("libsrd_fi.so");
    if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::remove_file(&link);
        // Several test binaries may race here; any of them creating the
        // same link is fine.
        let _ = std::os::unix::fs::symlink(&target, &link);
    }
    dir
}

static INIT: Once = Once::new();

/// Points the core at our provider (before its first use in this process).
pub fn init() {
    INIT.call_once(|| {
        let dir = provider_dir();
        assert!(
            dir.join("libsrd-fi.so").exists(),
            "{} missing: build the cdylib first",
            dir.display()
        );
        // SAFETY: called once, before any thread of this test binary reads
        // the environment through libfabric.
        unsafe {
            std::env::set_var("FI_PROVIDER_PATH", &dir);
            std::env::remove_var("FI_PROVIDER");
        }
    });
}

/// Owned fi_info list.
pub struct InfoList(pub *mut b::fi_info);

impl InfoList {
    pub fn iter(&self) -> impl Iterator<Item = &b::fi_info> {
        let mut cur = self.0;
        std::iter::from_fn(move || {
            if cur.is_null() {
                return None;
            }
            // SAFETY: cur is a node of a list returned by fi_getinfo.
            let r = unsafe { &*cur };
            cur = r.next;
            Some(r)
        })
    }
    pub fn first(&self) -> &b::fi_info {
        self.iter().next().expect("non-empty list")
    }
}

impl Drop for InfoList {
    fn drop(&mut self) {
        // SAFETY: the list came from fi_getinfo / fi_dupinfo.
        unsafe { b::fi_freeinfo(self.0) };
    }
}

/// Hints with prov_name "srd" and the given endpoint type (0 = any).
pub fn hints(ep_type: u32) -> InfoList {
    // SAFETY: fi_dupinfo(NULL) allocates a zeroed fi_info with attrs.
    let h = unsafe { b::fi_dupinfo(ptr::null()) };
    assert!(!h.is_null());
    // SAFETY: h and its attrs are valid; strdup'd strings are freed by fi_freeinfo.
    unsafe {
        (*(*h).fabric_attr).prov_name = libc::strdup(c"srd".as_ptr());
        (*(*h).ep_attr).type_ = ep_type;
    }
    InfoList(h)
}

/// fi_getinfo; Ok(list) or Err(negative code).
pub fn getinfo(
    node: Option<&str>,
    service: Option<&str>,
    flags: u64,
    hints: Option<&InfoList>,
) -> Result<InfoList, c_int> {
    getinfo_v(API, node, service, flags, hints)
}

/// fi_getinfo at API `version`.
pub fn getinfo_v(
    version: u32,
    node: Option<&str>,
    service: Option<&str>,
    flags: u64,
    hints: Option<&InfoList>,
) -> Result<InfoList, c_int> {
    init();
    let node = node.map(|s| CString::new(s).unwrap());
    let service = service.map(|s| CString::new(s).unwrap());
    let mut out: *mut b::fi_info = ptr::null_mut();
    // SAFETY: all pointers are valid or NULL as the API allows.
    let rc = unsafe {
        b::fi_getinfo(
            version,
            node.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            service.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            flags,
            hints.map_or(ptr::null(), |h| h.0 as *const _),
            &mut out,
        )
    };
    if rc == 0 { Ok(InfoList(out)) } else { Err(rc) }
}

pub fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libfabric strings are NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// fi_fabric.
pub fn fabric(info: &b::fi_info) -> Result<*mut b::fid_fabric, c_int> {
    let mut f = ptr::null_mut();
    // SAFETY: fabric_attr comes from a returned info.
    let rc = unsafe { b::fi_fabric(info.fabric_attr, &mut f, ptr::null_mut()) };
    if rc == 0 { Ok(f) } else { Err(rc) }
}

/// fi_domain (inline in the headers: through the ops table).
pub fn domain(fab: *mut b::fid_fabric, info: *mut b::fi_info) -> Result<*mut b::fid_domain, c_int> {
    let mut d = ptr::null_mut();
    // SAFETY: fab is an open fabric; its ops table is fully populated.
    let rc = unsafe { ((*(*fab).ops).domain.unwrap())(fab, info, &mut d, ptr::null_mut()) };
    if rc == 0 { Ok(d) } else { Err(rc) }
}

/// fi_close on any fid.
pub fn close(fid: *mut b::fid) -> c_int {
    // SAFETY: fid is an open object whose fi_ops has close.
    unsafe { ((*(*fid).ops).close.unwrap())(fid) }
}

pub fn fid_of<T>(p: *mut T) -> *mut b::fid {
    p as *mut b::fid
}

pub fn null<T>() -> *mut T {
    ptr::null_mut()
}

pub fn void() -> *mut c_void {
    ptr::null_mut()
}

/// Sets `vars` in the environment once per test binary, before the
/// provider reads its parameters: every test of a binary that needs them
/// calls this first.
pub fn env_once(vars: &[(&str, &str)]) {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        for (k, v) in vars {
            // SAFETY: runs once, before any thread of this binary calls
            // into libfabric.
            unsafe { std::env::set_var(k, v) };
        }
    });
}
