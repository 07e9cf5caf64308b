//! A two-endpoint harness over the real libfabric core: fabric, domain, and
//! per side an AV, CQs, optional counters and an endpoint on the `lo`
//! domain; names exchanged with fi_getname/fi_av_insert. Data calls go
//! through the ops tables (the API's inline wrappers are not in bindings).
#![allow(dead_code, clippy::missing_safety_doc)]

use super::*;
use srd_fi::bindings as b;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::time::{Duration, Instant};

/// FI_ADDR_UNSPEC / FI_ADDR_NOTAVAIL.
pub const ADDR_UNSPEC: u64 = u64::MAX;
pub const EAGAIN: isize = -(b::FI_EAGAIN as isize);
pub const EAVAIL: isize = -(b::FI_EAVAIL as isize);
pub const EINVAL: i32 = -b::FI_EINVAL;

/// How to build a pair.
#[derive(Clone, Debug)]
pub struct Opts {
    pub ep_type: u32,
    /// Capabilities asked for in the hints (0: the provider's).
    pub caps: u64,
    /// FI_MSG_PREFIX wanted (DGRAM).
    pub prefix: bool,
    pub cq_format: u32,
    pub cq_size: usize,
    /// Extra flags for the CQ bindings (e.g. FI_SELECTIVE_COMPLETION).
    pub tx_bind: u64,
    pub rx_bind: u64,
    /// Open and bind send/recv counters.
    pub cntrs: bool,
    pub min_multi_recv: Option<usize>,
    /// Whether A's AV holds B, and B's AV holds A.
    pub a_knows_b: bool,
    pub b_knows_a: bool,
    pub enable: bool,
}

impl Opts {
    pub fn rdm() -> Opts {
        Opts {
            ep_type: b::FI_EP_RDM,
            caps: b::FI_MSG | b::FI_TAGGED | b::FI_DIRECTED_RECV | b::FI_SOURCE | b::FI_MULTI_RECV,
            prefix: false,
            cq_format: b::FI_CQ_FORMAT_TAGGED,
            cq_size: 0,
            tx_bind: 0,
            rx_bind: 0,
            cntrs: false,
            min_multi_recv: None,
            a_knows_b: true,
            b_knows_a: true,
            enable: true,
        }
    }
    pub fn dgram() -> Opts {
        Opts {
            ep_type: b::FI_EP_DGRAM,
            caps: b::FI_MSG | b::FI_SOURCE,
            cq_format: b::FI_CQ_FORMAT_DATA,
            ..Opts::rdm()
        }
    }
}

/// Hints for the `lo` domain.
pub fn lo_hints(o: &Opts) -> InfoList {
    let h = hints(o.ep_type);
    // SAFETY: h and its attrs are valid; strings are freed by fi_freeinfo.
    unsafe {
        (*(*h.0).domain_attr).name = libc::strdup(c"lo".as_ptr());
        (*h.0).caps = o.caps;
        (*h.0).mode = b::FI_CONTEXT | if o.prefix { b::FI_MSG_PREFIX } else { 0 };
    }
    h
}

/// The fi_info for `o` (a private copy the caller owns).
pub fn lo_info(o: &Opts) -> InfoList {
    let list = getinfo(None, None, 0, Some(&lo_hints(o))).expect("srd on lo");
    let want = if o.prefix { b::FI_MSG_PREFIX } else { 0 };
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list.
        let i = unsafe { &*cur };
        if i.mode & b::FI_MSG_PREFIX == want {
            // SAFETY: duplicate one node (next is not followed by dupinfo).
            return InfoList(unsafe { b::fi_dupinfo(cur) });
        }
        cur = i.next;
    }
    panic!("no entry with the wanted prefix mode");
}

/// One CQ entry or error entry, provider-independent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cqe {
    pub ctx: usize,
    pub flags: u64,
    pub len: usize,
    pub buf: usize,
    pub data: u64,
    pub tag: u64,
    pub src: u64,
    /// 0 for a successful entry, else the positive FI_E* value.
    pub err: i32,
    pub olen: usize,
    pub prov_errno: i32,
    pub err_data: Vec<u8>,
}

// ---- thin wrappers over the ops tables --------------------------------------

pub fn av_open(dom: *mut b::fid_domain, ty: u32) -> Result<*mut b::fid_av, c_int> {
    let mut attr = b::fi_av_attr {
        type_: ty,
        ..Default::default()
    };
    let mut av = null();
    // SAFETY: dom is open; ops table populated.
    let rc = unsafe { ((*(*dom).ops).av_open.unwrap())(dom, &mut attr, &mut av, void()) };
    if rc == 0 { Ok(av) } else { Err(rc) }
}

pub fn cq_open(dom: *mut b::fid_domain, format: u32, size: usize) -> Result<*mut b::fid_cq, c_int> {
    let mut attr = b::fi_cq_attr {
        size,
        format,
        wait_obj: b::FI_WAIT_UNSPEC,
        ..Default::default()
    };
    let mut cq = null();
    // SAFETY: as above.
    let rc = unsafe { ((*(*dom).ops).cq_open.unwrap())(dom, &mut attr, &mut cq, void()) };
    if rc == 0 { Ok(cq) } else { Err(rc) }
}

pub fn cntr_open(dom: *mut b::fid_domain) -> Result<*mut b::fid_cntr, c_int> {
    let mut attr = b::fi_cntr_attr {
        events: b::FI_CNTR_EVENTS_COMP,
        wait_obj: b::FI_WAIT_UNSPEC,
        ..Default::default()
    };
    let mut c = null();
    // SAFETY: as above.
    let rc = unsafe { ((*(*dom).ops).cntr_open.unwrap())(dom, &mut attr, &mut c, void()) };
    if rc == 0 { Ok(c) } else { Err(rc) }
}

pub fn endpoint(dom: *mut b::fid_domain, info: *mut b::fi_info) -> Result<*mut b::fid_ep, c_int> {
    let mut ep = null();
    // SAFETY: as above.
    let rc = unsafe { ((*(*dom).ops).endpoint.unwrap())(dom, info, &mut ep, void()) };
    if rc == 0 { Ok(ep) } else { Err(rc) }
}

pub fn ep_bind(ep: *mut b::fid_ep, bfid: *mut b::fid, flags: u64) -> c_int {
    // SAFETY: ep is open; fi_ops has bind.
    unsafe { ((*(*ep).fid.ops).bind.unwrap())(&mut (*ep).fid, bfid, flags) }
}

pub fn enable(ep: *mut b::fid_ep) -> c_int {
    // SAFETY: as above.
    unsafe { ((*(*ep).fid.ops).control.unwrap())(&mut (*ep).fid, b::FI_ENABLE as c_int, void()) }
}

pub fn getname(ep: *mut b::fid_ep) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let mut len = buf.len();
    // SAFETY: buf has len bytes.
    let rc = unsafe {
        ((*(*ep).cm).getname.unwrap())(&mut (*ep).fid, buf.as_mut_ptr().cast(), &mut len)
    };
    assert_eq!(rc, 0, "fi_getname");
    buf.truncate(len);
    buf
}

pub fn av_insert(av: *mut b::fid_av, addr: &[u8]) -> u64 {
    let mut fa = 0u64;
    // SAFETY: addr holds one address.
    let rc =
        unsafe { ((*(*av).ops).insert.unwrap())(av, addr.as_ptr().cast(), 1, &mut fa, 0, void()) };
    assert_eq!(rc, 1, "fi_av_insert");
    fa
}

pub fn setopt_min_multi_recv(ep: *mut b::fid_ep, v: usize) -> c_int {
    // SAFETY: optval is a usize.
    unsafe {
        ((*(*ep).ops).setopt.unwrap())(
            &mut (*ep).fid,
            b::FI_OPT_ENDPOINT as c_int,
            b::FI_OPT_MIN_MULTI_RECV as c_int,
            (&v as *const usize).cast(),
            std::mem::size_of::<usize>(),
        )
    }
}

pub fn cancel(ep: *mut b::fid_ep, ctx: usize) -> isize {
    // SAFETY: as above.
    unsafe { ((*(*ep).ops).cancel.unwrap())(&mut (*ep).fid, ctx as *mut c_void) }
}

pub fn cntr_read(c: *mut b::fid_cntr) -> u64 {
    // SAFETY: c is open.
    unsafe { ((*(*c).ops).read.unwrap())(c) }
}

pub fn cntr_readerr(c: *mut b::fid_cntr) -> u64 {
    // SAFETY: c is open.
    unsafe { ((*(*c).ops).readerr.unwrap())(c) }
}

pub fn cntr_wait(c: *mut b::fid_cntr, threshold: u64, timeout_ms: c_int) -> c_int {
    // SAFETY: c is open.
    unsafe { ((*(*c).ops).wait.unwrap())(c, threshold, timeout_ms) }
}

/// One read of at most one entry (tagged format buffer, big enough for all
/// formats); an error entry is fetched with readerr.
pub fn poll_cq(cq: *mut b::fid_cq) -> Option<Cqe> {
    let mut e = b::fi_cq_tagged_entry::default();
    let mut src = ADDR_UNSPEC;
    // SAFETY: room for one entry of any format.
    let n = unsafe {
        ((*(*cq).ops).readfrom.unwrap())(
            cq,
            (&mut e as *mut b::fi_cq_tagged_entry).cast(),
            1,
            &mut src,
        )
    };
    if n == 1 {
        return Some(Cqe {
            ctx: e.op_context as usize,
            flags: e.flags,
            len: e.len,
            buf: e.buf as usize,
            data: e.data,
            tag: e.tag,
            src,
            ..Default::default()
        });
    }
    if n == EAGAIN {
        return None;
    }
    assert_eq!(n, EAVAIL, "fi_cq_readfrom returned {n}");
    Some(read_err(cq))
}

pub fn read_err(cq: *mut b::fid_cq) -> Cqe {
    let mut data = [0u8; 256];
    let mut e = b::fi_cq_err_entry {
        err_data: data.as_mut_ptr().cast(),
        err_data_size: data.len(),
        ..Default::default()
    };
    // SAFETY: e is a valid err entry with a 256-byte err_data buffer.
    let n = unsafe { ((*(*cq).ops).readerr.unwrap())(cq, &mut e, 0) };
    assert_eq!(n, 1, "fi_cq_readerr");
    let err_data = if e.err_data_size == 0 || e.err_data.is_null() {
        vec![]
    } else {
        // SAFETY: the provider wrote err_data_size bytes there.
        unsafe { std::slice::from_raw_parts(e.err_data as *const u8, e.err_data_size) }.to_vec()
    };
    Cqe {
        ctx: e.op_context as usize,
        flags: e.flags,
        len: e.len,
        buf: e.buf as usize,
        data: e.data,
        tag: e.tag,
        src: ADDR_UNSPEC,
        err: e.err,
        olen: e.olen,
        prov_errno: e.prov_errno,
        err_data,
    }
}

/// Polls all `cqs` round-robin until `done(collected)` holds; a bounded
/// number of rounds and a deadline, so a bug fails instead of hanging.
pub fn progress_until(
    cqs: &[*mut b::fid_cq],
    got: &mut [Vec<Cqe>],
    secs: u64,
    mut done: impl FnMut(&[Vec<Cqe>]) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    for i in 0..20_000_000u64 {
        if done(got) {
            return true;
        }
        for (k, &cq) in cqs.iter().enumerate() {
            while let Some(e) = poll_cq(cq) {
                got[k].push(e);
            }
        }
        if i % 256 == 0 && Instant::now() > deadline {
            break;
        }
    }
    done(got)
}

// ---- the pair ---------------------------------------------------------------

/// One side: endpoint, its AV, CQs, counters, and the peer's fi_addr.
pub struct Side {
    pub ep: *mut b::fid_ep,
    pub av: *mut b::fid_av,
    pub txcq: *mut b::fid_cq,
    pub rxcq: *mut b::fid_cq,
    pub txcntr: *mut b::fid_cntr,
    pub rxcntr: *mut b::fid_cntr,
    pub name: Vec<u8>,
    /// The other side's fi_addr in this side's AV (ADDR_UNSPEC if absent).
    pub peer: u64,
    pub closed: bool,
}

impl Side {
    pub fn open(dom: *mut b::fid_domain, info: *mut b::fi_info, o: &Opts) -> Side {
        let av = av_open(dom, b::FI_AV_TABLE).expect("fi_av_open");
        let txcq = cq_open(dom, o.cq_format, o.cq_size).expect("fi_cq_open tx");
        let rxcq = cq_open(dom, o.cq_format, o.cq_size).expect("fi_cq_open rx");
        let ep = endpoint(dom, info).expect("fi_endpoint");
        assert_eq!(ep_bind(ep, fid_of(av), 0), 0, "bind av");
        assert_eq!(
            ep_bind(ep, fid_of(txcq), b::FI_TRANSMIT | o.tx_bind),
            0,
            "bind tx cq"
        );
        assert_eq!(
            ep_bind(ep, fid_of(rxcq), b::FI_RECV | o.rx_bind),
            0,
            "bind rx cq"
        );
        let (mut txcntr, mut rxcntr) = (null(), null());
        if o.cntrs {
            txcntr = cntr_open(dom).expect("cntr");
            rxcntr = cntr_open(dom).expect("cntr");
            assert_eq!(ep_bind(ep, fid_of(txcntr), b::FI_SEND), 0);
            assert_eq!(ep_bind(ep, fid_of(rxcntr), b::FI_RECV), 0);
        }
        if let Some(m) = o.min_multi_recv {
            assert_eq!(setopt_min_multi_recv(ep, m), 0, "FI_OPT_MIN_MULTI_RECV");
        }
        if o.enable {
            assert_eq!(enable(ep), 0, "fi_enable");
        }
        let name = getname(ep);
        Side {
            ep,
            av,
            txcq,
            rxcq,
            txcntr,
            rxcntr,
            name,
            peer: ADDR_UNSPEC,
            closed: false,
        }
    }

    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        assert_eq!(close(fid_of(self.ep)), 0, "close ep");
        for f in [fid_of(self.txcq), fid_of(self.rxcq), fid_of(self.av)] {
            assert_eq!(close(f), 0, "close child");
        }
        for c in [self.txcntr, self.rxcntr] {
            if !c.is_null() {
                assert_eq!(close(fid_of(c)), 0, "close cntr");
            }
        }
    }

    // ---- data calls ----

    pub fn send(&self, buf: &[u8], dest: u64, ctx: usize) -> isize {
        // SAFETY: buf outlives the operation (callers wait for completion).
        unsafe {
            ((*(*self.ep).msg).send.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                void(),
                dest,
                ctx as *mut c_void,
            )
        }
    }
    pub fn senddata(&self, buf: &[u8], data: u64, dest: u64, ctx: usize) -> isize {
        // SAFETY: as above.
        unsafe {
            ((*(*self.ep).msg).senddata.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                void(),
                data,
                dest,
                ctx as *mut c_void,
            )
        }
    }
    pub fn inject(&self, buf: &[u8], dest: u64) -> isize {
        // SAFETY: copied during the call.
        unsafe {
            ((*(*self.ep).msg).inject.unwrap())(self.ep, buf.as_ptr().cast(), buf.len(), dest)
        }
    }
    pub fn injectdata(&self, buf: &[u8], data: u64, dest: u64) -> isize {
        // SAFETY: copied during the call.
        unsafe {
            ((*(*self.ep).msg).injectdata.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                data,
                dest,
            )
        }
    }
    pub fn recv(&self, buf: &mut [u8], src: u64, ctx: usize) -> isize {
        // SAFETY: buf outlives the operation.
        unsafe {
            ((*(*self.ep).msg).recv.unwrap())(
                self.ep,
                buf.as_mut_ptr().cast(),
                buf.len(),
                void(),
                src,
                ctx as *mut c_void,
            )
        }
    }
    pub fn recvmsg(&self, buf: &mut [u8], src: u64, ctx: usize, flags: u64) -> isize {
        let iov = b::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut desc = void();
        let msg = b::fi_msg {
            msg_iov: &iov,
            desc: &mut desc,
            iov_count: 1,
            addr: src,
            context: ctx as *mut c_void,
            data: 0,
        };
        // SAFETY: msg is valid for the call; buf outlives the operation.
        unsafe { ((*(*self.ep).msg).recvmsg.unwrap())(self.ep, &msg, flags) }
    }
    pub fn sendmsg(&self, buf: &[u8], dest: u64, ctx: usize, data: u64, flags: u64) -> isize {
        let iov = b::iovec {
            iov_base: buf.as_ptr() as *mut c_void,
            iov_len: buf.len(),
        };
        let mut desc = void();
        let msg = b::fi_msg {
            msg_iov: &iov,
            desc: &mut desc,
            iov_count: 1,
            addr: dest,
            context: ctx as *mut c_void,
            data,
        };
        // SAFETY: as above.
        unsafe { ((*(*self.ep).msg).sendmsg.unwrap())(self.ep, &msg, flags) }
    }
    pub fn tsend(&self, buf: &[u8], dest: u64, tag: u64, ctx: usize) -> isize {
        // SAFETY: as above.
        unsafe {
            ((*(*self.ep).tagged).send.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                void(),
                dest,
                tag,
                ctx as *mut c_void,
            )
        }
    }
    pub fn tsenddata(&self, buf: &[u8], data: u64, dest: u64, tag: u64, ctx: usize) -> isize {
        // SAFETY: as above.
        unsafe {
            ((*(*self.ep).tagged).senddata.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                void(),
                data,
                dest,
                tag,
                ctx as *mut c_void,
            )
        }
    }
    pub fn tinject(&self, buf: &[u8], dest: u64, tag: u64) -> isize {
        // SAFETY: copied during the call.
        unsafe {
            ((*(*self.ep).tagged).inject.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                dest,
                tag,
            )
        }
    }
    pub fn tinjectdata(&self, buf: &[u8], data: u64, dest: u64, tag: u64) -> isize {
        // SAFETY: copied during the call.
        unsafe {
            ((*(*self.ep).tagged).injectdata.unwrap())(
                self.ep,
                buf.as_ptr().cast(),
                buf.len(),
                data,
                dest,
                tag,
            )
        }
    }
    pub fn trecv(&self, buf: &mut [u8], src: u64, tag: u64, ignore: u64, ctx: usize) -> isize {
        // SAFETY: buf outlives the operation.
        unsafe {
            ((*(*self.ep).tagged).recv.unwrap())(
                self.ep,
                buf.as_mut_ptr().cast(),
                buf.len(),
                void(),
                src,
                tag,
                ignore,
                ctx as *mut c_void,
            )
        }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn trecvmsg(
        &self,
        buf: &mut [u8],
        src: u64,
        tag: u64,
        ignore: u64,
        ctx: usize,
        flags: u64,
    ) -> isize {
        let iov = b::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut desc = void();
        let msg = b::fi_msg_tagged {
            msg_iov: if buf.is_empty() {
                std::ptr::null()
            } else {
                &iov
            },
            desc: &mut desc,
            iov_count: usize::from(!buf.is_empty()),
            addr: src,
            tag,
            ignore,
            context: ctx as *mut c_void,
            data: 0,
        };
        // SAFETY: as above.
        unsafe { ((*(*self.ep).tagged).recvmsg.unwrap())(self.ep, &msg, flags) }
    }
    #[allow(clippy::too_many_arguments)]
    pub fn tsendmsg(
        &self,
        buf: &[u8],
        dest: u64,
        tag: u64,
        ctx: usize,
        data: u64,
        flags: u64,
    ) -> isize {
        let iov = b::iovec {
            iov_base: buf.as_ptr() as *mut c_void,
            iov_len: buf.len(),
        };
        let mut desc = void();
        let msg = b::fi_msg_tagged {
            msg_iov: &iov,
            desc: &mut desc,
            iov_count: 1,
            addr: dest,
            tag,
            ignore: 0,
            context: ctx as *mut c_void,
            data,
        };
        // SAFETY: as above.
        unsafe { ((*(*self.ep).tagged).sendmsg.unwrap())(self.ep, &msg, flags) }
    }
}

/// RMA through the ops tables: `addr` is an offset (mr_mode 0) or a
/// virtual address, `key` the target MR's key.
impl Side {
    /// fi_write of `buf` into `dest`'s memory.
    pub fn write_to(&self, buf: &[u8], dest: u64, addr: u64, key: u64, ctx: usize) -> isize {
        // SAFETY: ep is enabled; buf lives until the completion is read.
        unsafe {
            ((*(*self.ep).rma).write.unwrap())(
                self.ep,
                buf.as_ptr() as *const c_void,
                buf.len(),
                ptr::null_mut(),
                dest,
                addr,
                key,
                ctx as *mut c_void,
            )
        }
    }

    /// fi_read of `dest`'s memory into `buf`.
    pub fn read_from(&self, buf: &mut [u8], dest: u64, addr: u64, key: u64, ctx: usize) -> isize {
        // SAFETY: as above.
        unsafe {
            ((*(*self.ep).rma).read.unwrap())(
                self.ep,
                buf.as_mut_ptr() as *mut c_void,
                buf.len(),
                ptr::null_mut(),
                dest,
                addr,
                key,
                ctx as *mut c_void,
            )
        }
    }

    /// fi_atomic (no fetch) of `operand` with `op` on `dt` at the peer.
    pub fn atomic(
        &self,
        op: u32,
        dt: u32,
        operand: &[u64],
        addr: u64,
        key: u64,
        ctx: usize,
    ) -> isize {
        // SAFETY: as above.
        unsafe {
            ((*(*self.ep).atomic).write.unwrap())(
                self.ep,
                operand.as_ptr() as *const c_void,
                operand.len(),
                ptr::null_mut(),
                self.peer,
                addr,
                key,
                dt,
                op,
                ctx as *mut c_void,
            )
        }
    }

    /// fi_write to the peer.
    pub fn write(&self, buf: &[u8], addr: u64, key: u64, ctx: usize) -> isize {
        self.write_to(buf, self.peer, addr, key, ctx)
    }

    /// fi_read from the peer.
    pub fn read(&self, buf: &mut [u8], addr: u64, key: u64, ctx: usize) -> isize {
        self.read_from(buf, self.peer, addr, key, ctx)
    }
}

/// Access for a region peers both read and write.
pub const REMOTE_RW: u64 = b::FI_REMOTE_READ | b::FI_REMOTE_WRITE;

/// fi_mr_reg of `buf` with `access` and requested `key` (used with mr_mode
/// 0; the provider picks the key otherwise). `buf` must outlive the MR.
pub fn mr_reg(dom: *mut b::fid_domain, buf: &mut [u8], access: u64, key: u64) -> *mut b::fid_mr {
    let mut mr = ptr::null_mut();
    // SAFETY: dom is open; buf outlives the registration (closed by the caller).
    let rc = unsafe {
        ((*(*dom).mr).reg.unwrap())(
            &mut (*dom).fid,
            buf.as_mut_ptr() as *const c_void,
            buf.len(),
            access,
            0,
            key,
            0,
            &mut mr,
            ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "fi_mr_reg");
    mr
}

/// The key of an open MR.
pub fn mr_key(mr: *mut b::fid_mr) -> u64 {
    // SAFETY: mr is open.
    unsafe { (*mr).key }
}

/// Retries a posting call while it returns -FI_EAGAIN, progressing `cqs`
/// (entries found are kept in `got`).
pub fn post_retry(
    cqs: &[*mut b::fid_cq],
    got: &mut [Vec<Cqe>],
    mut f: impl FnMut() -> isize,
) -> isize {
    let deadline = Instant::now() + Duration::from_secs(15);
    for i in 0..1_000_000u32 {
        let rc = f();
        if rc != EAGAIN || (i % 256 == 255 && Instant::now() > deadline) {
            return rc;
        }
        for (k, &cq) in cqs.iter().enumerate() {
            while let Some(e) = poll_cq(cq) {
                got[k].push(e);
            }
        }
    }
    EAGAIN
}

/// Two endpoints in one domain on `lo`.
pub struct Pair {
    pub info: InfoList,
    pub fab: *mut b::fid_fabric,
    pub dom: *mut b::fid_domain,
    pub a: Side,
    pub b: Side,
}

impl Pair {
    pub fn new(o: &Opts) -> Pair {
        Pair::with_info(lo_info(o), o)
    }

    /// A pair opened from `info` (e.g. with an edited mr_mode).
    pub fn with_info(info: InfoList, o: &Opts) -> Pair {
        // SAFETY: info is a valid entry.
        let fab = fabric(unsafe { &*info.0 }).expect("fi_fabric");
        let dom = domain(fab, info.0).expect("fi_domain");
        let mut a = Side::open(dom, info.0, o);
        let mut b = Side::open(dom, info.0, o);
        if o.a_knows_b {
            a.peer = av_insert(a.av, &b.name);
        }
        if o.b_knows_a {
            b.peer = av_insert(b.av, &a.name);
        }
        Pair {
            info,
            fab,
            dom,
            a,
            b,
        }
    }

    /// All four CQs: [a.tx, a.rx, b.tx, b.rx].
    pub fn cqs(&self) -> [*mut b::fid_cq; 4] {
        [self.a.txcq, self.a.rxcq, self.b.txcq, self.b.rxcq]
    }

    /// Progresses both sides until A's tx CQ has `atx` entries and B's rx CQ
    /// `brx` (others collected too). Returns [a.tx, a.rx, b.tx, b.rx].
    pub fn wait(&self, atx: usize, brx: usize, secs: u64) -> [Vec<Cqe>; 4] {
        let mut got: [Vec<Cqe>; 4] = Default::default();
        let ok = progress_until(&self.cqs(), &mut got, secs, |g| {
            g[0].len() >= atx && g[3].len() >= brx
        });
        assert!(
            ok,
            "timed out waiting for {atx} tx / {brx} rx completions: got {} / {}: {got:?}",
            got[0].len(),
            got[3].len()
        );
        got
    }

    /// Polls every CQ for a while and returns what showed up.
    pub fn drain(&self, ms: u64) -> [Vec<Cqe>; 4] {
        let mut got: [Vec<Cqe>; 4] = Default::default();
        let deadline = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < deadline {
            for (k, &cq) in self.cqs().iter().enumerate() {
                while let Some(e) = poll_cq(cq) {
                    got[k].push(e);
                }
            }
        }
        got
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // leak rather than double-panic
        }
        self.a.close();
        self.b.close();
        assert_eq!(close(fid_of(self.dom)), 0, "close domain");
        assert_eq!(close(fid_of(self.fab)), 0, "close fabric");
    }
}

/// A recognisable pattern for `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

/// One endpoint with its own fabric and domain (the two-process tests).
pub struct Node {
    pub info: InfoList,
    pub fab: *mut b::fid_fabric,
    pub dom: *mut b::fid_domain,
    pub s: Side,
}

impl Node {
    pub fn new(o: &Opts) -> Node {
        Node::with_info(lo_info(o), o)
    }

    /// A node of the two-process tests: messages, tags, RMA, directed
    /// receive and source addresses, plus `extra` caps; mr_mode 0 (offsets
    /// and application keys).
    pub fn peer(extra: u64) -> Node {
        let o = Opts {
            caps: b::FI_MSG | b::FI_TAGGED | b::FI_RMA | b::FI_DIRECTED_RECV | b::FI_SOURCE | extra,
            ..Opts::rdm()
        };
        let info = lo_info(&o);
        // SAFETY: info is our own copy; its domain_attr is valid.
        unsafe { (*(*info.0).domain_attr).mr_mode = 0 };
        Node::with_info(info, &o)
    }

    pub fn with_info(info: InfoList, o: &Opts) -> Node {
        // SAFETY: info is a valid entry.
        let fab = fabric(unsafe { &*info.0 }).expect("fi_fabric");
        let dom = domain(fab, info.0).expect("fi_domain");
        let s = Side::open(dom, info.0, o);
        Node { info, fab, dom, s }
    }

    /// Prints this endpoint's address for the parent process (a line
    /// `ADDR:<hex>`, see common::child::Kid::addr).
    pub fn announce(&self) {
        use std::io::Write;
        println!("\nADDR:{}", hex(&self.s.name));
        std::io::stdout().flush().unwrap();
    }

    /// Progresses until the tx CQ has `tx` and the rx CQ `rx` entries.
    pub fn wait(&self, tx: usize, rx: usize, secs: u64) -> [Vec<Cqe>; 2] {
        let mut got: [Vec<Cqe>; 2] = Default::default();
        let ok = progress_until(&[self.s.txcq, self.s.rxcq], &mut got, secs, |g| {
            g[0].len() >= tx && g[1].len() >= rx
        });
        assert!(ok, "timed out waiting for {tx} tx / {rx} rx: {got:?}");
        got
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        self.s.close();
        assert_eq!(close(fid_of(self.dom)), 0, "close domain");
        assert_eq!(close(fid_of(self.fab)), 0, "close fabric");
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// One FI_PEEK on B for `tag` and its completion.
pub fn peek_once(p: &Pair, tag: u64, ctx: usize, flags: u64) -> Cqe {
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let rc =
        p.b.trecvmsg(&mut [], ADDR_UNSPEC, tag, 0, ctx, b::FI_PEEK | flags);
    assert_eq!(rc, 0);
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    assert_eq!(got[3].len(), 1, "{got:?}");
    got[3].pop().unwrap()
}

/// FI_PEEK on B until the unexpected message with `tag` is seen.
pub fn peek(p: &Pair, tag: u64, ctx: usize, flags: u64) -> Cqe {
    for _ in 0..2000 {
        let e = peek_once(p, tag, ctx, flags);
        if e.err != b::FI_ENOMSG {
            return e;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("message with tag {tag} never seen by FI_PEEK");
}
