//! Logging through the libfabric core (FI_LOG_LEVEL, FI_LOG_PROV apply).
//! Outside a process that loaded us through the core (unit tests), messages
//! go nowhere.

use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

static LOADED: AtomicBool = AtomicBool::new(false);

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

/// Log levels (enum fi_log_level).
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Warn = 0,
    Trace = 1,
    Info = 2,
    Debug = 3,
}

/// Subsystems (enum fi_log_subsys).
#[derive(Clone, Copy, Debug)]
pub enum Subsys {
    Core = 0,
    Fabric = 1,
    Domain = 2,
    EpCtrl = 3,
    EpData = 4,
    Av = 5,
    Cq = 6,
    Eq = 7,
    Mr = 8,
    Cntr = 9,
}

/// Called once the core has loaded us (fi_prov_ini).
pub fn mark_loaded() {
    LOADED.store(true, Ordering::Release);
}

/// Whether a message at this level would be printed.
pub fn enabled(level: Level, subsys: Subsys) -> bool {
    // SAFETY: the shim function only reads the static provider record.
    LOADED.load(Ordering::Acquire)
        && unsafe { srd_shim_log_enabled(level as c_int, subsys as c_int) } != 0
}

/// Emits `msg` if enabled. `func` names the origin.
pub fn log(level: Level, subsys: Subsys, func: &str, line: u32, msg: &str) {
    if !enabled(level, subsys) {
        return;
    }
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

/// Shorthand for a core-subsystem warning.
pub fn warn(msg: &str) {
    log(Level::Warn, Subsys::Core, "srd", 0, msg);
}

/// `srd_log!(Level, Subsys, "fmt", args…)`: formats only when enabled.
#[macro_export]
macro_rules! srd_log {
    ($lvl:ident, $sub:ident, $($arg:tt)*) => {{
        use $crate::ffi::log::{Level, Subsys};
        if $crate::ffi::log::enabled(Level::$lvl, Subsys::$sub) {
            $crate::ffi::log::log(Level::$lvl, Subsys::$sub, module_path!(), line!(), &format!($($arg)*));
        }
    }};
}
