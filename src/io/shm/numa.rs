//! NUMA placement of receive segments through hwloc 2: a receive ring and
//! its packet slots are read by the process that owns them, so their pages
//! go to the memory nearest to that process's CPUs (its CPU binding, or the
//! CPU it runs on when unbound). The policy is hwloc's non-strict BIND
//! (Linux: preferred), so a full node falls back to another one instead of
//! failing the allocation. Hosts with one NUMA node skip all of this without
//! loading the topology.

#[cfg(test)]
use std::ffi::c_uint;
use std::ffi::{c_int, c_void};
use std::io;
use std::ptr;
use std::sync::OnceLock;

type Topology = *mut c_void;
type Bitmap = *mut c_void;

/// The calling thread's binding: asking for the whole process makes hwloc
/// walk every thread, which fails when threads come and go meanwhile (seen
/// in a multi-threaded test run). A launcher binds a rank as a whole, so its
/// threads share the binding.
const HWLOC_CPUBIND_THREAD: c_int = 1 << 1;
const HWLOC_MEMBIND_BIND: c_int = 2;
#[cfg(test)]
const HWLOC_MEMBIND_BYNODESET: c_int = 1 << 5;
/// Virtual depth of NUMA nodes in hwloc 2.
#[cfg(test)]
const HWLOC_TYPE_DEPTH_NUMANODE: c_int = -3;

// Linked by build.rs (pkg-config hwloc >= 2.0).
unsafe extern "C" {
    fn hwloc_topology_init(topology: *mut Topology) -> c_int;
    fn hwloc_topology_load(topology: Topology) -> c_int;
    fn hwloc_topology_destroy(topology: Topology);
    #[cfg(test)]
    fn hwloc_get_nbobjs_by_depth(topology: Topology, depth: c_int) -> c_uint;
    fn hwloc_topology_get_topology_cpuset(topology: Topology) -> *const c_void;
    fn hwloc_bitmap_alloc() -> Bitmap;
    fn hwloc_bitmap_free(bitmap: Bitmap);
    fn hwloc_bitmap_isequal(a: *const c_void, b: *const c_void) -> c_int;
    fn hwloc_bitmap_iszero(bitmap: *const c_void) -> c_int;
    #[cfg(test)]
    fn hwloc_bitmap_first(bitmap: *const c_void) -> c_int;
    fn hwloc_get_cpubind(topology: Topology, set: Bitmap, flags: c_int) -> c_int;
    fn hwloc_get_last_cpu_location(topology: Topology, set: Bitmap, flags: c_int) -> c_int;
    fn hwloc_set_area_membind(
        topology: Topology,
        addr: *const c_void,
        len: usize,
        set: *const c_void,
        policy: c_int,
        flags: c_int,
    ) -> c_int;
    #[cfg(test)]
    fn hwloc_get_area_membind(
        topology: Topology,
        addr: *const c_void,
        len: usize,
        set: Bitmap,
        policy: *mut c_int,
        flags: c_int,
    ) -> c_int;
}

/// The loaded topology, shared by the whole process (never destroyed: it
/// lives as long as the provider may create segments).
struct Topo(Topology);
// SAFETY: hwloc allows concurrent calls that do not modify the topology
// (binding queries and area binding only read it).
unsafe impl Send for Topo {}
// SAFETY: as above.
unsafe impl Sync for Topo {}

fn topology() -> io::Result<&'static Topo> {
    static TOPO: OnceLock<Option<Topo>> = OnceLock::new();
    TOPO.get_or_init(|| {
        let mut t: Topology = ptr::null_mut();
        // SAFETY: init writes a new topology handle into t.
        if unsafe { hwloc_topology_init(&mut t) } != 0 {
            return None;
        }
        // SAFETY: t is an initialized, not yet loaded topology.
        if unsafe { hwloc_topology_load(t) } != 0 {
            // SAFETY: t is ours and not used again.
            unsafe { hwloc_topology_destroy(t) };
            return None;
        }
        Some(Topo(t))
    })
    .as_ref()
    .ok_or_else(|| io::Error::other("hwloc could not load the topology"))
}

/// An hwloc bitmap freed on drop.
struct Set(Bitmap);

impl Set {
    fn new() -> io::Result<Set> {
        // SAFETY: plain allocation; NULL on failure.
        let b = unsafe { hwloc_bitmap_alloc() };
        if b.is_null() {
            Err(io::Error::from(io::ErrorKind::OutOfMemory))
        } else {
            Ok(Set(b))
        }
    }
}

impl Drop for Set {
    fn drop(&mut self) {
        // SAFETY: allocated by hwloc_bitmap_alloc, freed once.
        unsafe { hwloc_bitmap_free(self.0) };
    }
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
/// when it is not bound (binding = the whole machine).
fn own_cpus(t: &Topo) -> io::Result<Set> {
    let set = Set::new()?;
    // SAFETY: t is loaded; set is a valid bitmap.
    let bound = unsafe { hwloc_get_cpubind(t.0, set.0, HWLOC_CPUBIND_THREAD) } == 0
        && unsafe { hwloc_bitmap_iszero(set.0) } == 0
        // SAFETY: both are valid bitmaps of this topology.
        && unsafe { hwloc_bitmap_isequal(set.0, hwloc_topology_get_topology_cpuset(t.0)) } == 0;
    // SAFETY: as above.
    if !bound && unsafe { hwloc_get_last_cpu_location(t.0, set.0, HWLOC_CPUBIND_THREAD) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(set)
}

/// Binds `len` bytes at `addr` (a fresh mapping whose pages are not yet
/// allocated) to the NUMA node(s) near this process, whatever the node
/// count.
pub(crate) fn bind_near_self(addr: *mut u8, len: usize) -> io::Result<()> {
    let t = topology()?;
    let cpus = own_cpus(t)?;
    // SAFETY: addr/len is a mapping of ours; cpus is a valid cpuset.
    let r = unsafe { hwloc_set_area_membind(t.0, addr.cast(), len, cpus.0, HWLOC_MEMBIND_BIND, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The first NUMA node an area is bound to, as hwloc reads it back.
#[cfg(test)]
pub(crate) fn area_node(addr: *const u8, len: usize) -> io::Result<Option<u32>> {
    let t = topology()?;
    let nodes = Set::new()?;
    let mut policy: c_int = 0;
    // SAFETY: addr/len is a mapping of ours; nodes and policy are writable.
    let r = unsafe {
        hwloc_get_area_membind(
            t.0,
            addr.cast(),
            len,
            nodes.0,
            &mut policy,
            HWLOC_MEMBIND_BYNODESET,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: nodes is a valid bitmap.
    let first = unsafe { hwloc_bitmap_first(nodes.0) };
    Ok((policy == HWLOC_MEMBIND_BIND && first >= 0).then_some(first as u32))
}

/// NUMA node count seen by hwloc.
#[cfg(test)]
pub(crate) fn hwloc_nodes() -> io::Result<usize> {
    let t = topology()?;
    // SAFETY: t is loaded.
    Ok(unsafe { hwloc_get_nbobjs_by_depth(t.0, HWLOC_TYPE_DEPTH_NUMANODE) } as usize)
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
