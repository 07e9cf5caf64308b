//! Conversion between `struct fi_info` and [`crate::fi::info::Info`].
//!
//! Ownership: hints are borrowed for the call; the lists we return are
//! allocated by the core's fi_dupinfo (so fi_freeinfo releases them) with
//! strings and addresses from malloc.

use crate::bindings as b;
use crate::fi::info::{DomainAttr, EpAttr, FabricAttr, Info, RxAttr, TxAttr};
use std::ffi::{CStr, c_char, c_void};

unsafe fn opt_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: caller passes a NUL-terminated string from an fi_info.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

unsafe fn opt_bytes(p: *const c_void, len: usize) -> Option<Vec<u8>> {
    if p.is_null() || len == 0 || len > 4096 {
        None
    } else {
        // SAFETY: fi_info promises `len` readable bytes at `p`.
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec())
    }
}

/// Reads an application's hints.
///
/// # Safety
/// `h` must point to a valid `struct fi_info` whose attribute pointers are
/// NULL or valid.
pub unsafe fn from_c(h: *const b::fi_info) -> Info {
    // SAFETY: per the function contract.
    let h = unsafe { &*h };
    // SAFETY: attribute pointers are NULL or valid (contract).
    unsafe {
        Info {
            caps: h.caps,
            mode: h.mode,
            addr_format: h.addr_format,
            src_addr: opt_bytes(h.src_addr, h.src_addrlen),
            dest_addr: opt_bytes(h.dest_addr, h.dest_addrlen),
            tx: h.tx_attr.as_ref().map(|t| TxAttr {
                caps: t.caps,
                mode: t.mode,
                op_flags: t.op_flags,
                msg_order: t.msg_order,
                comp_order: t.comp_order,
                inject_size: t.inject_size,
                size: t.size,
                iov_limit: t.iov_limit,
                rma_iov_limit: t.rma_iov_limit,
            }),
            rx: h.rx_attr.as_ref().map(|r| RxAttr {
                caps: r.caps,
                mode: r.mode,
                op_flags: r.op_flags,
                msg_order: r.msg_order,
                comp_order: r.comp_order,
                total_buffered_recv: r.total_buffered_recv,
                size: r.size,
                iov_limit: r.iov_limit,
            }),
            ep: h.ep_attr.as_ref().map(|e| EpAttr {
                ep_type: e.type_,
                protocol: e.protocol,
                protocol_version: e.protocol_version,
                max_msg_size: e.max_msg_size,
                msg_prefix_size: e.msg_prefix_size,
                max_order_raw_size: e.max_order_raw_size,
                max_order_war_size: e.max_order_war_size,
                max_order_waw_size: e.max_order_waw_size,
                mem_tag_format: e.mem_tag_format,
                tx_ctx_cnt: e.tx_ctx_cnt,
                rx_ctx_cnt: e.rx_ctx_cnt,
            }),
            domain: h.domain_attr.as_ref().map(|d| DomainAttr {
                name: opt_str(d.name),
                threading: d.threading,
                control_progress: d.control_progress,
                data_progress: d.data_progress,
                resource_mgmt: d.resource_mgmt,
                av_type: d.av_type,
                mr_mode: d.mr_mode,
                mr_key_size: d.mr_key_size,
                cq_data_size: d.cq_data_size,
                cq_cnt: d.cq_cnt,
                ep_cnt: d.ep_cnt,
                tx_ctx_cnt: d.tx_ctx_cnt,
                rx_ctx_cnt: d.rx_ctx_cnt,
                max_ep_tx_ctx: d.max_ep_tx_ctx,
                max_ep_rx_ctx: d.max_ep_rx_ctx,
                max_ep_stx_ctx: d.max_ep_stx_ctx,
                max_ep_srx_ctx: d.max_ep_srx_ctx,
                cntr_cnt: d.cntr_cnt,
                mr_iov_limit: d.mr_iov_limit,
                caps: d.caps,
                mode: d.mode,
                max_err_data: d.max_err_data,
                mr_cnt: d.mr_cnt,
            }),
            fabric: h.fabric_attr.as_ref().map(|f| FabricAttr {
                name: opt_str(f.name),
                prov_version: f.prov_version,
                api_version: f.api_version,
            }),
            // Hints' NIC attributes are not matched.
            nic: None,
        }
    }
}

fn c_string(s: &str) -> *mut c_char {
    let mut v: Vec<u8> = s.bytes().filter(|&c| c != 0).collect();
    v.push(0);
    // SAFETY: malloc of v.len() bytes, filled below; freed by fi_freeinfo.
    let p = unsafe { libc::malloc(v.len()) } as *mut u8;
    if !p.is_null() {
        // SAFETY: p has room for v.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len()) };
    }
    p as *mut c_char
}

fn c_bytes(v: &[u8]) -> *mut c_void {
    // SAFETY: malloc'd copy, owned by the fi_info from here on.
    let p = unsafe { libc::malloc(v.len().max(1)) } as *mut u8;
    if !p.is_null() {
        // SAFETY: p has room for v.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), p, v.len()) };
    }
    p as *mut c_void
}

/// Builds one C fi_info (from fi_dupinfo, so all attribute structs exist).
/// Returns NULL when out of memory.
pub fn to_c(i: &Info) -> *mut b::fi_info {
    // SAFETY: fi_dupinfo(NULL) allocates a zeroed info with all attrs.
    let p = unsafe { b::fi_dupinfo(std::ptr::null()) };
    if p.is_null() {
        return p;
    }
    // SAFETY: p is a fresh, valid fi_info with non-NULL attribute structs.
    let o = unsafe { &mut *p };
    o.caps = i.caps;
    o.mode = i.mode;
    o.addr_format = i.addr_format;
    if let Some(a) = &i.src_addr {
        o.src_addr = c_bytes(a);
        o.src_addrlen = if o.src_addr.is_null() { 0 } else { a.len() };
    }
    if let Some(a) = &i.dest_addr {
        o.dest_addr = c_bytes(a);
        o.dest_addrlen = if o.dest_addr.is_null() { 0 } else { a.len() };
    }
    // SAFETY: the attribute pointers of a fi_dupinfo result are valid.
    unsafe {
        if let (Some(t), Some(ot)) = (&i.tx, o.tx_attr.as_mut()) {
            ot.caps = t.caps;
            ot.mode = t.mode;
            ot.op_flags = t.op_flags;
            ot.msg_order = t.msg_order;
            ot.comp_order = t.comp_order;
            ot.inject_size = t.inject_size;
            ot.size = t.size;
            ot.iov_limit = t.iov_limit;
            ot.rma_iov_limit = t.rma_iov_limit;
        }
        if let (Some(r), Some(or)) = (&i.rx, o.rx_attr.as_mut()) {
            or.caps = r.caps;
            or.mode = r.mode;
            or.op_flags = r.op_flags;
            or.msg_order = r.msg_order;
            or.comp_order = r.comp_order;
            or.total_buffered_recv = r.total_buffered_recv;
            or.size = r.size;
            or.iov_limit = r.iov_limit;
        }
        if let (Some(e), Some(oe)) = (&i.ep, o.ep_attr.as_mut()) {
            oe.type_ = e.ep_type;
            oe.protocol = e.protocol;
            oe.protocol_version = e.protocol_version;
            oe.max_msg_size = e.max_msg_size;
            oe.msg_prefix_size = e.msg_prefix_size;
            oe.max_order_raw_size = e.max_order_raw_size;
            oe.max_order_war_size = e.max_order_war_size;
            oe.max_order_waw_size = e.max_order_waw_size;
            oe.mem_tag_format = e.mem_tag_format;
            oe.tx_ctx_cnt = e.tx_ctx_cnt;
            oe.rx_ctx_cnt = e.rx_ctx_cnt;
        }
        if let (Some(d), Some(od)) = (&i.domain, o.domain_attr.as_mut()) {
            if let Some(n) = &d.name {
                od.name = c_string(n);
            }
            od.threading = d.threading;
            od.control_progress = d.control_progress;
            od.data_progress = d.data_progress;
            od.resource_mgmt = d.resource_mgmt;
            od.av_type = d.av_type;
            od.mr_mode = d.mr_mode;
            od.mr_key_size = d.mr_key_size;
            od.cq_data_size = d.cq_data_size;
            od.cq_cnt = d.cq_cnt;
            od.ep_cnt = d.ep_cnt;
            od.tx_ctx_cnt = d.tx_ctx_cnt;
            od.rx_ctx_cnt = d.rx_ctx_cnt;
            od.max_ep_tx_ctx = d.max_ep_tx_ctx;
            od.max_ep_rx_ctx = d.max_ep_rx_ctx;
            od.max_ep_stx_ctx = d.max_ep_stx_ctx;
            od.max_ep_srx_ctx = d.max_ep_srx_ctx;
            od.cntr_cnt = d.cntr_cnt;
            od.mr_iov_limit = d.mr_iov_limit;
            od.caps = d.caps;
            od.mode = d.mode;
            od.max_err_data = d.max_err_data;
            od.mr_cnt = d.mr_cnt;
        }
        if let (Some(f), Some(of)) = (&i.fabric, o.fabric_attr.as_mut()) {
            if let Some(n) = &f.name {
                of.name = c_string(n);
            }
            // prov_name stays NULL: the core fills it in.
            of.prov_version = f.prov_version;
            of.api_version = f.api_version;
        }
    }
    if let Some(n) = &i.nic {
        // NULL when out of memory: the entry then has no nic, as when
        // nothing is known about it.
        o.nic = super::nic::to_c(n);
    }
    p
}

/// Builds a linked list; NULL and the partial list freed on failure.
pub fn list_to_c(items: &[Info]) -> Option<*mut b::fi_info> {
    let mut head: *mut b::fi_info = std::ptr::null_mut();
    let mut tail: *mut b::fi_info = std::ptr::null_mut();
    for i in items {
        let p = to_c(i);
        if p.is_null() {
            // SAFETY: head is NULL or a list we built.
            unsafe { b::fi_freeinfo(head) };
            return None;
        }
        if tail.is_null() {
            head = p;
        } else {
            // SAFETY: tail is the last node we built.
            unsafe { (*tail).next = p };
        }
        tail = p;
    }
    Some(head)
}
