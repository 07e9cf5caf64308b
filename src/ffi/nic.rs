//! `struct fid_nic` for fi_info->nic: built from [`Nic`], owned by the
//! fi_info it hangs from. The core frees it with fi_close(&nic->fid) from
//! fi_freeinfo and copies it with fi_control(FI_DUP) from fi_dupinfo, so the
//! fid carries its own ops: close frees every allocation made here, FI_DUP
//! builds an independent copy. All three attribute structs are always
//! present (Open MPI reads bus_attr without a NULL check).

use crate::bindings as b;
use crate::fi::nic::{Bus, LinkState, NETWORK_TYPE, Nic};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

/// A malloc'd NUL-terminated copy of `s` (NULL for None or out of memory).
fn c_str(s: Option<&str>) -> *mut c_char {
    let Some(s) = s else {
        return ptr::null_mut();
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != 0).collect();
    // SAFETY: malloc of len + 1 bytes, filled below; freed by nic_close.
    let p = unsafe { libc::malloc(bytes.len() + 1) } as *mut u8;
    if !p.is_null() {
        // SAFETY: p has room for len + 1 bytes.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            *p.add(bytes.len()) = 0;
        }
    }
    p.cast()
}

/// Reads a C string field back (NULL → None).
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
unsafe fn opt_str(p: *const c_char) -> Option<String> {
    // SAFETY: per the contract.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

static NIC_OPS: b::fi_ops = b::fi_ops {
    size: std::mem::size_of::<b::fi_ops>(),
    close: Some(nic_close),
    bind: Some(nic_bind),
    control: Some(nic_control),
    ops_open: Some(nic_ops_open),
    tostr: Some(nic_tostr),
    ops_set: None,
};

/// The text fi_tostr shows for a NIC, in the core's own layout.
pub fn describe(n: &Nic) -> String {
    let s = |v: &Option<String>| v.clone().unwrap_or_else(|| "(null)".into());
    let mut t = String::from("    nic:\n");
    t += "        fi_device_attr:\n";
    t += &format!("            name: {}\n", n.name);
    t += &format!("            device_id: {}\n", s(&n.device_id));
    t += &format!("            device_version: {}\n", s(&n.device_version));
    t += &format!("            vendor_id: {}\n", s(&n.vendor_id));
    t += &format!("            driver: {}\n", s(&n.driver));
    t += "            firmware: (null)\n";
    t += "        fi_bus_attr:\n";
    match n.bus {
        Bus::Unknown => t += "            bus_type: FI_BUS_UNKNOWN\n",
        Bus::Pci {
            domain,
            bus,
            device,
            function,
        } => {
            t += "            bus_type: FI_BUS_PCI\n";
            t += "            fi_pci_attr:\n";
            t += &format!("                domain_id: {domain}\n");
            t += &format!("                bus_id: {bus}\n");
            t += &format!("                device_id: {device}\n");
            t += &format!("                function_id: {function}\n");
        }
    }
    t += "        fi_link_attr:\n";
    t += &format!("            address: {}\n", n.address);
    t += &format!("            mtu: {}\n", n.mtu);
    t += &format!("            speed: {}\n", n.speed);
    let state = match n.state {
        LinkState::Unknown => "FI_LINK_UNKNOWN",
        LinkState::Down => "FI_LINK_DOWN",
        LinkState::Up => "FI_LINK_UP",
    };
    t += &format!("            state: {state}\n");
    t += &format!("            network_type: {NETWORK_TYPE}\n");
    t
}

/// fi_tostr for the nic: appends to the NUL-terminated text in `buf` (the
/// core writes no label before it), never past `len` bytes.
unsafe extern "C" fn nic_tostr(fid: *const b::fid, buf: *mut c_char, len: usize) -> c_int {
    super::guard::call(|| {
        if fid.is_null() || buf.is_null() || len == 0 {
            return Err(crate::fi::errno::Error::Inval);
        }
        // SAFETY: fid is a nic built by to_c.
        let text = describe(&unsafe { from_c(fid.cast()) });
        // SAFETY: buf holds len bytes, NUL-terminated within them (or full).
        unsafe {
            let used = libc::strnlen(buf, len);
            let room = len - used;
            if room > 1 {
                let n = text.len().min(room - 1);
                ptr::copy_nonoverlapping(text.as_ptr(), buf.add(used).cast(), n);
                *buf.add(used + n) = 0;
            }
        }
        Ok(0)
    })
}

/// Allocates a `fid_nic` describing `n`; NULL when out of memory.
pub fn to_c(n: &Nic) -> *mut b::fid_nic {
    // SAFETY: calloc'd zeroed structs are valid (NULL pointers, zero ints).
    let (nic, dev, bus, link) = unsafe {
        (
            libc::calloc(1, std::mem::size_of::<b::fid_nic>()) as *mut b::fid_nic,
            libc::calloc(1, std::mem::size_of::<b::fi_device_attr>()) as *mut b::fi_device_attr,
            libc::calloc(1, std::mem::size_of::<b::fi_bus_attr>()) as *mut b::fi_bus_attr,
            libc::calloc(1, std::mem::size_of::<b::fi_link_attr>()) as *mut b::fi_link_attr,
        )
    };
    if nic.is_null() || dev.is_null() || bus.is_null() || link.is_null() {
        // SAFETY: free(NULL) is a no-op; the others came from calloc.
        unsafe {
            libc::free(nic.cast());
            libc::free(dev.cast());
            libc::free(bus.cast());
            libc::free(link.cast());
        }
        return ptr::null_mut();
    }
    // SAFETY: all four are fresh, zeroed and ours.
    unsafe {
        (*nic).fid.fclass = b::FI_CLASS_NIC as usize;
        (*nic).fid.ops = ptr::addr_of!(NIC_OPS).cast_mut();
        (*nic).device_attr = dev;
        (*nic).bus_attr = bus;
        (*nic).link_attr = link;
        let d = &mut *dev;
        d.name = c_str(Some(&n.name));
        d.device_id = c_str(n.device_id.as_deref());
        d.device_version = c_str(n.device_version.as_deref());
        d.vendor_id = c_str(n.vendor_id.as_deref());
        d.driver = c_str(n.driver.as_deref());
        match n.bus {
            Bus::Unknown => (*bus).bus_type = b::FI_BUS_UNKNOWN,
            Bus::Pci {
                domain,
                bus: bus_id,
                device,
                function,
            } => {
                (*bus).bus_type = b::FI_BUS_PCI;
                (*bus).attr.pci = b::fi_pci_attr {
                    domain_id: domain,
                    bus_id,
                    device_id: device,
                    function_id: function,
                };
            }
        }
        let l = &mut *link;
        l.address = c_str(Some(&n.address));
        l.mtu = n.mtu;
        l.speed = n.speed;
        l.state = match n.state {
            LinkState::Unknown => b::FI_LINK_UNKNOWN,
            LinkState::Down => b::FI_LINK_DOWN,
            LinkState::Up => b::FI_LINK_UP,
        };
        l.network_type = c_str(Some(NETWORK_TYPE));
    }
    nic
}

/// Reads a `fid_nic` back into a [`Nic`].
///
/// # Safety
/// `nic` is a valid `fid_nic` whose attribute pointers are NULL or valid.
pub unsafe fn from_c(nic: *const b::fid_nic) -> Nic {
    // SAFETY: per the contract.
    unsafe {
        let nic = &*nic;
        let mut n = Nic::default();
        if let Some(d) = nic.device_attr.as_ref() {
            n.name = opt_str(d.name).unwrap_or_default();
            n.device_id = opt_str(d.device_id);
            n.device_version = opt_str(d.device_version);
            n.vendor_id = opt_str(d.vendor_id);
            n.driver = opt_str(d.driver);
        }
        if let Some(bus) = nic.bus_attr.as_ref()
            && bus.bus_type == b::FI_BUS_PCI
        {
            let p = bus.attr.pci;
            n.bus = Bus::Pci {
                domain: p.domain_id,
                bus: p.bus_id,
                device: p.device_id,
                function: p.function_id,
            };
        }
        if let Some(l) = nic.link_attr.as_ref() {
            n.address = opt_str(l.address).unwrap_or_default();
            n.mtu = l.mtu;
            n.speed = l.speed;
            n.state = match l.state {
                s if s == b::FI_LINK_UP => LinkState::Up,
                s if s == b::FI_LINK_DOWN => LinkState::Down,
                _ => LinkState::Unknown,
            };
        }
        n
    }
}

/// Frees a `fid_nic` built by [`to_c`].
///
/// # Safety
/// `nic` came from `to_c` (or is NULL) and is not used afterwards.
unsafe fn free(nic: *mut b::fid_nic) {
    if nic.is_null() {
        return;
    }
    // SAFETY: every pointer below was malloc'd/calloc'd by to_c or is NULL.
    unsafe {
        if let Some(d) = (*nic).device_attr.as_mut() {
            for s in [
                d.name,
                d.device_id,
                d.device_version,
                d.vendor_id,
                d.driver,
                d.firmware,
            ] {
                libc::free(s.cast());
            }
        }
        if let Some(l) = (*nic).link_attr.as_mut() {
            libc::free(l.address.cast());
            libc::free(l.network_type.cast());
        }
        libc::free((*nic).device_attr.cast());
        libc::free((*nic).bus_attr.cast());
        libc::free((*nic).link_attr.cast());
        libc::free(nic.cast());
    }
}

unsafe extern "C" fn nic_close(fid: *mut b::fid) -> c_int {
    // SAFETY: the core passes &nic->fid of a nic built by to_c; fid is its
    // first field.
    unsafe { free(fid.cast()) };
    0
}

unsafe extern "C" fn nic_bind(_fid: *mut b::fid, _bfid: *mut b::fid, _flags: u64) -> c_int {
    -(b::FI_ENOSYS as c_int)
}

unsafe extern "C" fn nic_ops_open(
    _fid: *mut b::fid,
    _name: *const c_char,
    _flags: u64,
    _ops: *mut *mut c_void,
    _context: *mut c_void,
) -> c_int {
    -(b::FI_ENOSYS as c_int)
}

unsafe extern "C" fn nic_control(fid: *mut b::fid, command: c_int, arg: *mut c_void) -> c_int {
    super::guard::call(|| {
        if command != b::FI_DUP as c_int {
            return Err(crate::fi::errno::Error::NoSys);
        }
        if fid.is_null() || arg.is_null() {
            return Err(crate::fi::errno::Error::Inval);
        }
        // SAFETY: fid is a nic built by to_c; arg is a `struct fid_nic **`.
        let copy = to_c(&unsafe { from_c(fid.cast()) });
        if copy.is_null() {
            return Err(crate::fi::errno::Error::NoMem);
        }
        // SAFETY: arg points to writable storage for one pointer (FI_DUP).
        unsafe { *(arg as *mut *mut b::fid_nic) = copy };
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_dup_and_close() {
        let n = Nic {
            name: "eth9".into(),
            driver: Some("virtio_net".into()),
            vendor_id: Some("0x1af4".into()),
            device_id: Some("0x1000".into()),
            device_version: None,
            bus: Bus::Pci {
                domain: 2,
                bus: 0xaf,
                device: 3,
                function: 1,
            },
            address: "192.0.2.9".into(),
            mtu: 1500,
            speed: 10_000_000_000,
            state: LinkState::Up,
        };
        let c = to_c(&n);
        assert!(!c.is_null());
        // SAFETY: c is a fresh nic from to_c.
        unsafe {
            assert_eq!((*c).fid.fclass, b::FI_CLASS_NIC as usize);
            assert_eq!((*(*c).bus_attr).bus_type, b::FI_BUS_PCI);
            assert_eq!((*(*c).bus_attr).attr.pci.bus_id, 0xaf);
            assert_eq!(
                opt_str((*(*c).link_attr).network_type).as_deref(),
                Some("Ethernet")
            );
            assert_eq!(from_c(c), n);
            let ops = &*(*c).fid.ops;
            let mut dup: *mut b::fid_nic = ptr::null_mut();
            let fid = ptr::addr_of_mut!((*c).fid);
            assert_eq!(
                ops.control.unwrap()(fid, b::FI_DUP as c_int, (&raw mut dup).cast()),
                0
            );
            assert!(!dup.is_null() && dup != c);
            assert_ne!((*dup).device_attr, (*c).device_attr);
            assert_eq!(from_c(dup), n);
            assert_eq!(
                ops.control.unwrap()(fid, b::FI_GETWAIT as c_int, ptr::null_mut()),
                -(b::FI_ENOSYS as c_int)
            );
            assert_eq!(ops.close.unwrap()(fid), 0);
            let dfid = ptr::addr_of_mut!((*dup).fid);
            assert_eq!((*(*dup).fid.ops).close.unwrap()(dfid), 0);
        }
        let unknown = Nic {
            name: "lo".into(),
            ..Nic::default()
        };
        let c = to_c(&unknown);
        // SAFETY: c is a fresh nic from to_c.
        unsafe {
            assert_eq!((*(*c).bus_attr).bus_type, b::FI_BUS_UNKNOWN);
            assert_eq!(from_c(c), unknown);
            nic_close(ptr::addr_of_mut!((*c).fid));
        }
    }
}
