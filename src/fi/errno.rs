//! The one place where provider errors become libfabric error codes.

use crate::bindings as b;
use std::os::raw::c_int;

/// Errors returned through the libfabric API.  `code()` gives `-FI_E*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Bad argument (NULL pointer, bad flag, out-of-range value).
    Inval,
    /// Operation not supported by this provider.
    NoSys,
    /// No fi_info satisfies the hints.
    NoData,
    /// Resources temporarily exhausted: retry after progress.
    Again,
    /// Out of memory.
    NoMem,
    /// Object still in use (children open, bound to an endpoint).
    Busy,
    /// Operation on an object in the wrong state (e.g. not enabled).
    OpBadState,
    /// Not found (e.g. unknown address or key).
    NoEnt,
    /// Access denied (MR key or permission).
    Access,
    /// Address not available.
    AddrNotAvail,
    /// Message too long for the endpoint.
    MsgSize,
    /// Truncated receive.
    Trunc,
    /// Canceled.
    Canceled,
    /// I/O error toward a peer.
    Io,
    /// The peer cannot be reached.
    HostUnreach,
    /// Timed out.
    TimedOut,
    /// An error entry is pending on the queue (fi_cq_read).
    Avail,
    /// Other operating-system error (positive errno).
    Os(i32),
}

impl Error {
    /// The positive FI_E* value of this error.
    pub fn errno(self) -> c_int {
        match self {
            Error::Inval => b::FI_EINVAL,
            Error::NoSys => b::FI_ENOSYS,
            Error::NoData => b::FI_ENODATA,
            Error::Again => b::FI_EAGAIN,
            Error::NoMem => b::FI_ENOMEM,
            Error::Busy => b::FI_EBUSY,
            Error::OpBadState => b::FI_EOPBADSTATE as c_int,
            Error::NoEnt => b::FI_ENOENT,
            Error::Access => b::FI_EACCES,
            Error::AddrNotAvail => b::FI_EADDRNOTAVAIL,
            Error::MsgSize => b::FI_EMSGSIZE,
            Error::Trunc => b::FI_ETRUNC as c_int,
            Error::Canceled => b::FI_ECANCELED,
            Error::Io => b::FI_EIO,
            Error::HostUnreach => b::FI_EHOSTUNREACH,
            Error::TimedOut => b::FI_ETIMEDOUT,
            Error::Avail => b::FI_EAVAIL as c_int,
            Error::Os(e) if e > 0 => e,
            Error::Os(_) => b::FI_EOTHER as c_int,
        }
    }

    /// The negative code returned by libfabric calls.
    pub fn code(self) -> c_int {
        -self.errno()
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EAGAIN) => Error::Again,
            Some(libc::ENOMEM) | Some(libc::ENOBUFS) => Error::NoMem,
            Some(libc::EINVAL) => Error::Inval,
            Some(libc::EADDRNOTAVAIL) => Error::AddrNotAvail,
            Some(libc::EACCES) | Some(libc::EPERM) => Error::Access,
            Some(n) => Error::Os(n),
            None => Error::Io,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_negative_fi_values() {
        assert_eq!(Error::NoSys.code(), -38);
        assert_eq!(Error::NoData.code(), -61);
        assert_eq!(Error::Inval.code(), -22);
        assert_eq!(Error::Again.code(), -11);
        assert_eq!(Error::Trunc.code(), -265);
        assert_eq!(Error::Avail.code(), -259);
        let io = std::io::Error::from_raw_os_error(libc::EAGAIN);
        assert_eq!(Error::from(io), Error::Again);
    }
}
