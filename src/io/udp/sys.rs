//! Thin, checked wrappers over the socket system calls the UDP backend uses.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What a failed send/recv errno means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrKind {
    /// Interrupted by a signal: retry at once.
    Interrupted,
    /// Socket buffer full / empty, or kernel short of memory: stop, retry later.
    WouldBlock,
    /// A pending ICMP error reported on this socket (port/host unreachable).
    /// The error is consumed by the call; the socket stays usable.
    Icmp,
    /// The kernel refused this one datagram (netfilter drop → EPERM, no route,
    /// oversize). For an unreliable datagram service that is loss, not failure.
    Rejected,
    /// Anything else: a bug or a dead socket. Surface it.
    Fatal,
}

pub fn classify(err: &io::Error) -> ErrKind {
    match err.raw_os_error() {
        Some(libc::EINTR) => ErrKind::Interrupted,
        Some(libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM) => ErrKind::WouldBlock,
        Some(libc::ECONNREFUSED | libc::ECONNRESET | libc::EHOSTDOWN | libc::ENOPROTOOPT) => {
            ErrKind::Icmp
        }
        Some(
            libc::EPERM
            | libc::EACCES
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::ENETDOWN
            | libc::EMSGSIZE
            | libc::EADDRNOTAVAIL,
        ) => ErrKind::Rejected,
        _ => ErrKind::Fatal,
    }
}

pub fn sockaddr_from(addr: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
    sa
}

pub fn sockaddr_to(sa: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
        u16::from_be(sa.sin_port),
    )
}

pub const SOCKADDR_IN_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A nonblocking, close-on-exec UDP/IPv4 socket bound to `addr`.
pub fn udp_socket(addr: SocketAddrV4) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = sockaddr_from(addr);
    // SAFETY: `sa` is a valid sockaddr_in and the length matches its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            SOCKADDR_IN_LEN,
        )
    })?;
    Ok(fd)
}

pub fn set_int_opt(fd: &OwnedFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    // SAFETY: `val` lives across the call and the length is that of a c_int.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&val as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub fn get_int_opt(fd: &OwnedFd, level: i32, name: i32) -> io::Result<i32> {
    let mut val: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `val` and `len` are valid for writes and `len` gives val's size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut val as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(val)
}

/// Raises a socket buffer to `bytes`: the privileged *FORCE option first
/// (ignores net.core.[rw]mem_max), then the capped one. Failure is tolerated;
/// returns the size the kernel reports afterwards (it doubles the request).
pub fn raise_buffer(fd: &OwnedFd, force: i32, plain: i32, bytes: i32) -> i32 {
    if set_int_opt(fd, libc::SOL_SOCKET, force, bytes).is_err() {
        let _ = set_int_opt(fd, libc::SOL_SOCKET, plain, bytes);
    }
    get_int_opt(fd, libc::SOL_SOCKET, plain).unwrap_or(0)
}

pub fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddrV4> {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    let mut len = SOCKADDR_IN_LEN;
    // SAFETY: `sa`/`len` are valid for writes and describe a sockaddr_in.
    cvt(unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sa as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    })?;
    Ok(sockaddr_to(&sa))
}
