//! NUMA placement of receive segments through hwloc 2: a receive ring and
//! its packet slots are read by the process that owns them, so their pages
//! go to the memory nearest to that process's CPUs (its CPU binding, or the
//! CPU it runs on when unbound). The policy is hwloc's non-strict BIND
//! (Linux: preferred), so a full node falls back to another one instead of
//! failing the allocation. Hosts with one NUMA node skip all of this without
//! loading the topology.

use hwlocality::Topology;
use hwlocality::cpu::binding::CpuBindingFlags;
use hwlocality::cpu::cpuset::CpuSet;
use hwlocality::memory::binding::{MemoryBindingFlags, MemoryBindingPolicy};
use std::io;
use std::sync::OnceLock;

/// The loaded topology, shared by the whole process (it lives as long as
/// the provider may create segments).
fn topology() -> io::Result<&'static Topology> {
    static TOPO: OnceLock<Option<Topology>> = OnceLock::new();
    TOPO.get_or_init(|| Topology::new().ok())
        .as_ref()
        .ok_or_else(|| io::Error::other("hwloc could not load the topology"))
}

fn hwloc_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// NUMA nodes online, from sysfs ("0", "0-1", "0,2-3"); 1 when unknown.
pub(crate) fn nodes_online() -> usize {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| count_list(s.trim()))
        .unwrap_or(1)
}

/// Counts the members of a kernel cpu/node list such as "0,2-3".
fn count_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>()
                    .ok()?
                    .checked_sub(a.parse::<usize>().ok()?)?
                    + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// The CPUs this process runs near: its binding, or the CPU it last ran on
/// when it is not bound (binding = the whole machine). The calling
/// thread's binding: asking for the whole process makes hwloc walk every
/// thread, which fails when threads come and go meanwhile. A launcher binds
/// a rank as a whole, so its threads share the binding.
fn own_cpus(t: &Topology) -> io::Result<CpuSet> {
    let flags = CpuBindingFlags::THREAD;
    match t.cpu_binding(flags) {
        Ok(set) if !set.is_empty() && set != *t.cpuset() => Ok(set),
        _ => t.last_cpu_location(flags).map_err(hwloc_err),
    }
}

/// Binds `len` bytes at `addr` (a fresh mapping whose pages are not yet
/// allocated) to the NUMA node(s) near this process, whatever the node
/// count. hwloc's non-strict BIND (Linux: preferred).
pub(crate) fn bind_near_self(addr: *mut u8, len: usize) -> io::Result<()> {
    let t = topology()?;
    let cpus = own_cpus(t)?;
    // SAFETY: addr/len is a mapping of ours, alive for the call; hwloc only
    // passes its address range to mbind, no byte is read.
    let area = unsafe { std::slice::from_raw_parts(addr.cast_const(), len) };
    t.bind_memory_area(
        area,
        &cpus,
        MemoryBindingPolicy::Bind,
        MemoryBindingFlags::empty(),
    )
    .map_err(hwloc_err)
}

/// The first NUMA node an area is bound to, as hwloc reads it back.
#[cfg(test)]
pub(crate) fn area_node(addr: *const u8, len: usize) -> io::Result<Option<u32>> {
    let t = topology()?;
    // SAFETY: addr/len is a mapping of ours, alive for the call.
    let area = unsafe { std::slice::from_raw_parts(addr, len) };
    let (nodes, policy) = t
        .area_memory_binding::<_, hwlocality::memory::nodeset::NodeSet>(
            area,
            MemoryBindingFlags::empty(),
        )
        .map_err(hwloc_err)?;
    let first = nodes
        .first_set()
        .and_then(|i| u32::try_from(usize::from(i)).ok());
    Ok(first.filter(|_| policy == Some(MemoryBindingPolicy::Bind)))
}

/// NUMA node count seen by hwloc.
#[cfg(test)]
pub(crate) fn hwloc_nodes() -> io::Result<usize> {
    let t = topology()?;
    Ok(
        t.objects_with_type(hwlocality::object::types::ObjectType::NUMANode)
            .count(),
    )
}

/// Places a new receive segment: binds it near this process on hosts with
/// more than one NUMA node. Returns whether a binding was set.
pub(crate) fn place(addr: *mut u8, len: usize) -> io::Result<bool> {
    if nodes_online() <= 1 {
        return Ok(false);
    }
    bind_near_self(addr, len).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::c_int;
    use std::ptr;

    #[test]
    fn node_lists() {
        assert_eq!(count_list("0"), Some(1));
        assert_eq!(count_list("0-1"), Some(2));
        assert_eq!(count_list("0,2-3,7"), Some(4));
        assert_eq!(count_list("3-1"), None);
        assert_eq!(count_list("x"), None);
        assert!(nodes_online() >= 1);
    }

    /// The binding path runs on any host (even with one node, where
    /// `place` skips it): a fresh shared mapping bound near this process
    /// reads back, through hwloc and through the kernel, as bound to an
    /// existing node, and its pages can then be allocated and used.
    #[test]
    fn binds_a_fresh_mapping_near_this_process() {
        let nodes = hwloc_nodes().expect("hwloc topology");
        assert!(nodes >= 1);
        assert_eq!(
            nodes,
            nodes_online(),
            "hwloc and sysfs agree on the node count"
        );
        // A /dev/shm file mapped shared, bound, then allocated: the order
        // segment::create uses.
        let len = 1 << 20;
        let path = std::ffi::CString::new(format!("/dev/shm/srd-numa-test-{}", std::process::id()))
            .unwrap();
        // SAFETY: path is NUL-terminated; the file is unlinked right after.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
                0o600,
            )
        };
        assert!(fd >= 0);
        // Unlinked at once: the descriptor keeps the file, and a failing
        // assertion below leaves nothing in /dev/shm.
        // SAFETY: path is NUL-terminated.
        unsafe { libc::unlink(path.as_ptr()) };
        // SAFETY: fd is ours.
        assert_eq!(unsafe { libc::ftruncate(fd, len as libc::off_t) }, 0);
        // SAFETY: shared mapping of our file, unmapped below.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let p = p.cast::<u8>();
        bind_near_self(p, len).expect("area binding");
        // SAFETY: fd is ours.
        assert_eq!(
            unsafe { libc::posix_fallocate(fd, 0, len as libc::off_t) },
            0
        );
        let node = area_node(p, len)
            .expect("read back")
            .expect("bound to a node");
        assert!(
            std::path::Path::new(&format!("/sys/devices/system/node/node{node}")).exists(),
            "node {node}"
        );
        if nodes == 1 {
            assert_eq!(node, 0);
        }
        // The kernel's own view of the policy at that address: preferred
        // (non-strict) or bind, with the node in the mask.
        let mut mode: c_int = -1;
        let mut mask = [0u64; 16];
        // SAFETY: get_mempolicy writes mode and at most 1024 mask bits.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_mempolicy,
                &mut mode as *mut c_int,
                mask.as_mut_ptr(),
                1024usize,
                p as usize,
                2usize, // MPOL_F_ADDR: the policy of the mapping at p
            )
        };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        // MPOL_PREFERRED 1, MPOL_BIND 2, MPOL_PREFERRED_MANY 5.
        assert!([1, 2, 5].contains(&(mode & 0xff)), "mode {mode}");
        assert_ne!(
            mask[node as usize / 64] & (1 << (node % 64)),
            0,
            "{mask:x?}"
        );
        // SAFETY: the mapping is len bytes, readable and writable.
        unsafe {
            ptr::write_bytes(p, 0x5a, len);
            assert_eq!(*p.add(len - 1), 0x5a);
            libc::munmap(p.cast(), len);
            libc::close(fd);
        }
    }
}
