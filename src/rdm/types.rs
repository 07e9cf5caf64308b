//! The protocol's own vocabulary: what a caller asks of an operation, what
//! a completion reports, access rights and why an operation failed. These
//! say what the libfabric flags and errno values mean to the protocol, not
//! their numbers: `fi::convert` translates both ways, in one place, and the
//! wire carries codes of its own (`wire::rdm::Status`).

use crate::wire::rdm::Status;
use bitflags::bitflags;

bitflags! {
    /// What a posting call asks for (the operation flags of fi_sendmsg,
    /// fi_trecvmsg, fi_writemsg, ... that the protocol acts on).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct OpFlags: u32 {
        /// Report this operation (under selective completion).
        const COMPLETION = 1 << 0;
        /// Copy the payload now; the caller may reuse its buffer at once.
        const INJECT = 1 << 1;
        /// Complete when the buffer may be reused (with INJECT: at once).
        const INJECT_COMPLETE = 1 << 2;
        /// Complete when the transport has taken the data.
        const TRANSMIT_COMPLETE = 1 << 3;
        /// Complete when the data is placed at the target.
        const DELIVERY_COMPLETE = 1 << 4;
        /// A receive buffer that takes several messages.
        const MULTI_RECV = 1 << 5;
        /// Look for a matching message without taking it.
        const PEEK = 1 << 6;
        /// With PEEK: reserve the message found; alone: receive the
        /// message reserved for this context.
        const CLAIM = 1 << 7;
        /// Drop the message instead of receiving it.
        const DISCARD = 1 << 8;
    }

    /// What a completion reports.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct CompFlags: u32 {
        const SEND = 1 << 0;
        const RECV = 1 << 1;
        const MSG = 1 << 2;
        const TAGGED = 1 << 3;
        const RMA = 1 << 4;
        const ATOMIC = 1 << 5;
        const READ = 1 << 6;
        const WRITE = 1 << 7;
        const REMOTE_READ = 1 << 8;
        const REMOTE_WRITE = 1 << 9;
        /// The completion carries the sender's remote CQ data.
        const REMOTE_CQ_DATA = 1 << 10;
        /// A multi-receive buffer is released (nothing more lands in it).
        const MULTI_RECV = 1 << 11;
    }

    /// What a remote access to registered memory needs.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Access: u8 {
        const REMOTE_READ = 1 << 0;
        const REMOTE_WRITE = 1 << 1;
    }
}

impl CompFlags {
    /// A message send or receive, tagged or not.
    pub fn msg(dir: CompFlags, tagged: bool) -> CompFlags {
        dir | if tagged {
            CompFlags::TAGGED
        } else {
            CompFlags::MSG
        }
    }
}

/// Why an operation failed (the error of its completion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The peer is gone or the transport gave up on it.
    Unreachable,
    /// Any other transport or copy failure.
    Io,
    /// The receive buffer was shorter than the message.
    Truncated,
    /// Cancelled by the caller.
    Canceled,
    /// The sender is not in the address vector.
    AddrNotAvail,
    /// The peer never answered.
    TimedOut,
    /// The target refused the access (key, rights).
    AccessDenied,
    /// The target found the request invalid (range, arguments).
    InvalidArgument,
    /// The peer cannot do it (no registry, older protocol).
    NotSupported,
    /// Nothing to receive (FI_CLAIM of a context that claimed nothing).
    NoMessage,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Unreachable,
        ErrorKind::Io,
        ErrorKind::Truncated,
        ErrorKind::Canceled,
        ErrorKind::AddrNotAvail,
        ErrorKind::TimedOut,
        ErrorKind::AccessDenied,
        ErrorKind::InvalidArgument,
        ErrorKind::NotSupported,
        ErrorKind::NoMessage,
    ];
}

impl ErrorKind {
    /// As a status on the wire.
    pub fn status(self) -> Status {
        match self {
            ErrorKind::Unreachable => Status::Unreachable,
            ErrorKind::Io => Status::Io,
            ErrorKind::Truncated => Status::Truncated,
            ErrorKind::Canceled => Status::Canceled,
            ErrorKind::AddrNotAvail => Status::AddrNotAvail,
            ErrorKind::TimedOut => Status::TimedOut,
            ErrorKind::AccessDenied => Status::AccessDenied,
            ErrorKind::InvalidArgument => Status::InvalidArgument,
            ErrorKind::NotSupported => Status::NotSupported,
            ErrorKind::NoMessage => Status::NoMessage,
        }
    }

    /// The error a status from the wire stands for: `None` for success, `Io`
    /// for a code this build does not know.
    pub fn from_status(s: Status) -> Option<ErrorKind> {
        Some(match s {
            Status::Ok => return None,
            Status::Unreachable => ErrorKind::Unreachable,
            Status::Io | Status::Unknown(_) => ErrorKind::Io,
            Status::Truncated => ErrorKind::Truncated,
            Status::Canceled => ErrorKind::Canceled,
            Status::AddrNotAvail => ErrorKind::AddrNotAvail,
            Status::TimedOut => ErrorKind::TimedOut,
            Status::AccessDenied => ErrorKind::AccessDenied,
            Status::InvalidArgument => ErrorKind::InvalidArgument,
            Status::NotSupported => ErrorKind::NotSupported,
            Status::NoMessage => ErrorKind::NoMessage,
        })
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            ErrorKind::Unreachable => "peer unreachable",
            ErrorKind::Io => "I/O error",
            ErrorKind::Truncated => "message truncated",
            ErrorKind::Canceled => "operation cancelled",
            ErrorKind::AddrNotAvail => "sender not in the address vector",
            ErrorKind::TimedOut => "peer timed out",
            ErrorKind::AccessDenied => "access denied",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotSupported => "not supported",
            ErrorKind::NoMessage => "no message",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_round_trips_through_the_wire() {
        for k in ErrorKind::ALL {
            assert_ne!(k.status(), Status::Ok);
            assert_eq!(ErrorKind::from_status(k.status()), Some(k));
            let code = u32::from(k.status());
            assert_eq!(Status::from(code), k.status());
        }
        assert_eq!(ErrorKind::from_status(Status::Ok), None);
        assert_eq!(
            ErrorKind::from_status(Status::from(999)),
            Some(ErrorKind::Io)
        );
        assert_eq!(u32::from(Status::from(999)), 999);
    }
}
