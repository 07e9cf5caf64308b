//! The panic boundary: every `extern "C"` entry runs its body through
//! [`call`], so a panic becomes an error code instead of unwinding into C.

use crate::fi::errno::{Error, Result};
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`; Ok(n) → n, Err(e) → -FI_E*, panic → -FI_EOTHER (logged).
pub fn call(f: impl FnOnce() -> Result<c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => e.code(),
        Err(_) => {
            crate::log::warn("internal error (panic) caught at the API boundary");
            Error::Os(0).code()
        }
    }
}

/// Same for calls returning `ssize_t`.
pub fn call_isize(f: impl FnOnce() -> Result<isize>) -> isize {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => e.code() as isize,
        Err(_) => {
            crate::log::warn("internal error (panic) caught at the API boundary");
            Error::Os(0).code() as isize
        }
    }
}

/// For `void` entries: a panic is logged and swallowed.
pub fn call_void(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        crate::log::warn("internal error (panic) caught at the API boundary");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_and_errors_become_codes() {
        assert_eq!(call(|| Ok(3)), 3);
        assert_eq!(call(|| Err(Error::Inval)), -22);
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = call(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(r, -256);
    }
}
