//! IPv4 interface discovery (getifaddrs + SIOCGIFMTU), for fi_getinfo's
//! one-domain-per-interface listing and for sizing datagrams from the MTU.

use std::ffi::CStr;
use std::io;
use std::mem;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use super::sys;

/// IPv4 + UDP header bytes taken from the MTU.
pub const IPV4_UDP_OVERHEAD: u32 = 28;
/// Largest UDP payload over IPv4 (65535 − 20 − 8).
pub const MAX_UDP_PAYLOAD: usize = 65507;

/// One IPv4 address of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub addr: Ipv4Addr,
    /// Interface MTU in bytes (0 if the kernel would not say).
    pub mtu: u32,
    pub is_loopback: bool,
    /// IFF_UP and IFF_RUNNING.
    pub is_up: bool,
}

impl Iface {
    /// Largest datagram payload that crosses this interface unfragmented:
    /// `mtu − 28`, capped at 65507 (loopback's 65536 MTU would allow more
    /// than UDP can carry). 0 if the MTU is unknown or tiny.
    pub fn max_udp_payload(&self) -> usize {
        (self.mtu.saturating_sub(IPV4_UDP_OVERHEAD) as usize).min(MAX_UDP_PAYLOAD)
    }
}

/// Every IPv4 address on this host, in the order fi_getinfo should offer
/// them: interfaces that are up before those that are down, routable before
/// loopback, otherwise in the kernel's order (stable sort).
pub fn interfaces() -> io::Result<Vec<Iface>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is valid for writes; on success it is freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // An unbound UDP socket answers the MTU ioctl.
    let probe = sys::udp_socket(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).ok();
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of at least
        // the family field's size.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so the address is a sockaddr_in.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        // SAFETY: ifa_name is a non-null NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        let flags = ifa.ifa_flags as libc::c_int;
        let mtu = probe
            .as_ref()
            .and_then(|fd| mtu_of(fd.as_raw_fd(), name))
            .unwrap_or(0);
        out.push(Iface {
            name: name.to_string_lossy().into_owned(),
            addr: sys::sockaddr_to(sin).ip().to_owned(),
            mtu,
            is_loopback: flags & libc::IFF_LOOPBACK != 0,
            is_up: flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0,
        });
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort_by_key(|i| (!i.is_up, i.is_loopback));
    Ok(out)
}

fn mtu_of(fd: libc::c_int, name: &CStr) -> Option<u32> {
    let bytes = name.to_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is a plain C struct/union; all-zero is valid.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name (zeroed tail);
    // SIOCGIFMTU writes only ifr_mtu inside it.
    let ret = unsafe { libc::ioctl(fd, libc::SIOCGIFMTU as _, &mut req) };
    if ret < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU succeeded, so the union holds the mtu member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).ok()
}
