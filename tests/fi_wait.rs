//! Wait objects through the real libfabric core (fi_cq(3), fi_cntr(3),
//! fi_eq(3), fi_poll(3)): blocking reads woken by arrivals on the
//! shared-memory path (RDM endpoints of one process) and the UDP path
//! (DGRAM), timeouts, fi_cq_signal, FI_GETWAIT descriptors with
//! fi_trywait, poll sets and wait sets. A wake-up that did not happen
//! shows as a call that returns -FI_EAGAIN / -FI_ETIMEDOUT after its long
//! timeout instead of the entry: outcomes are asserted, never durations.

mod common;

use common::fab::{self, Opts, Pair};
use common::*;
use srd_fi::bindings as b;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::time::Duration;

const EAGAIN: isize = -(b::FI_EAGAIN as isize);
const ETIMEDOUT: c_int = -(b::FI_ETIMEDOUT as c_int);
/// A long timeout: only reached when a wake-up was lost.
const LONG_MS: c_int = 60_000;

/// Turns the keepalive thread off for this test binary, before the
/// provider reads its parameters: a blocked reader must then be woken by
/// the arrival itself (socket or shared-memory doorbell), not by a helper
/// that progresses the endpoint every few milliseconds.
fn no_keepalive() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: every test calls this first, before any libfabric call
        // reads the environment; Once serializes them.
        unsafe { std::env::set_var("FI_SRD_PROGRESS_INTERVAL_MS", "0") };
        init();
    });
}

/// Raw pointers moved into a helper thread (the objects outlive it).
#[derive(Clone, Copy)]
struct P<T>(*mut T);
// SAFETY: libfabric objects of a FI_THREAD_SAFE domain may be used from
// any thread; the tests join the thread before closing them.
unsafe impl<T> Send for P<T> {}

/// fi_cq_sread of one entry: (return, context, len).
fn sread(cq: *mut b::fid_cq, timeout: c_int) -> (isize, usize, usize) {
    let mut e = b::fi_cq_tagged_entry::default();
    // SAFETY: cq is open; room for one tagged entry.
    let n = unsafe {
        ((*(*cq).ops).sread.unwrap())(
            cq,
            (&mut e as *mut b::fi_cq_tagged_entry).cast(),
            1,
            std::ptr::null(),
            timeout,
        )
    };
    (n, e.op_context as usize, e.len)
}

fn cq_signal(cq: *mut b::fid_cq) -> c_int {
    // SAFETY: cq is open.
    unsafe { ((*(*cq).ops).signal.unwrap())(cq) }
}

fn control<T>(fid: *mut T, cmd: u32, arg: *mut c_void) -> c_int {
    let fid = fid as *mut b::fid;
    // SAFETY: fid is one of our open objects.
    unsafe { ((*(*fid).ops).control.unwrap())(fid, cmd as c_int, arg) }
}

fn getwait<T>(fid: *mut T) -> c_int {
    let mut fd: c_int = -1;
    assert_eq!(
        control(fid, b::FI_GETWAIT, (&mut fd as *mut c_int).cast()),
        0
    );
    assert!(fd >= 0);
    fd
}

fn trywait(fab_: *mut b::fid_fabric, fids: &[*mut b::fid]) -> c_int {
    let mut v = fids.to_vec();
    // SAFETY: fab_ is open; fids are our open objects.
    unsafe { ((*(*fab_).ops).trywait.unwrap())(fab_, v.as_mut_ptr(), v.len() as c_int) }
}

fn readable(fd: c_int, ms: c_int) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) == 1 }
}

/// B blocks in fi_cq_sread with no timeout; A sends later; B wakes with it.
fn sread_wakes_on_arrival(o: &Opts) {
    no_keepalive();
    let p = Pair::new(o);
    let mut buf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 7), 0);
    let rx = P(p.b.rxcq);
    let t = std::thread::spawn(move || {
        let rx = rx;
        sread(rx.0, -1)
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.a.send(b"wake", p.a.peer, 1), 0);
    let (n, ctx, len) = t.join().unwrap();
    assert_eq!(n, 1, "sread returned the arrival");
    assert_eq!((ctx, len), (7, 4));
    assert_eq!(&buf[..4], b"wake");
    let (n, _, _) = sread(p.a.txcq, LONG_MS);
    assert_eq!(n, 1, "the send's completion");
}

#[test]
fn rdm_sread_wakes_on_shared_memory_arrival() {
    sread_wakes_on_arrival(&Opts::rdm());
}

#[test]
fn dgram_sread_wakes_on_udp_arrival() {
    sread_wakes_on_arrival(&Opts::dgram());
}

#[test]
fn sread_timeout_and_signal() {
    no_keepalive();
    let p = Pair::new(&Opts::rdm());
    // Nothing comes: the timeout ends the call.
    assert_eq!(sread(p.b.rxcq, 30).0, EAGAIN);
    assert_eq!(sread(p.b.rxcq, 0).0, EAGAIN);
    // fi_cq_signal from another thread ends an endless sread.
    let rx = P(p.b.rxcq);
    let t = std::thread::spawn(move || {
        let rx = rx;
        sread(rx.0, -1).0
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cq_signal(p.b.rxcq), 0);
    assert_eq!(t.join().unwrap(), EAGAIN);
    // The signal was consumed: the next sread waits for its timeout.
    assert_eq!(sread(p.b.rxcq, 10).0, EAGAIN);
}

/// FI_GETWAIT + fi_trywait, the way an event loop uses them.
fn getwait_fd_becomes_readable(o: &Opts) {
    no_keepalive();
    let p = Pair::new(o);
    let fd = getwait(p.b.rxcq);
    let mut obj: b::fi_wait_obj = 0;
    assert_eq!(
        control(p.b.rxcq, b::FI_GETWAITOBJ, (&mut obj as *mut u32).cast()),
        0
    );
    assert_eq!(obj, b::FI_WAIT_FD);
    let mut buf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 9), 0);
    assert_eq!(trywait(p.fab, &[fid_of(p.b.rxcq)]), 0, "nothing to read");
    assert!(!readable(fd, 0));
    assert_eq!(p.a.send(b"fd", p.a.peer, 1), 0);
    assert!(readable(fd, LONG_MS), "the descriptor woke the event loop");
    let mut got = None;
    for _ in 0..1000 {
        got = fab::poll_cq(p.b.rxcq);
        if got.is_some() {
            break;
        }
        assert!(readable(fd, LONG_MS));
    }
    let e = got.expect("the entry after the wake-up");
    assert_eq!((e.ctx, e.len), (9, 2));
    // An entry waiting: trywait says read first.
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 10), 0);
    assert_eq!(p.a.send(b"again", p.a.peer, 2), 0);
    let mut rc = 0;
    for _ in 0..1000 {
        rc = trywait(p.fab, &[fid_of(p.b.rxcq)]);
        if rc != 0 {
            break;
        }
        assert!(readable(fd, LONG_MS));
    }
    assert_eq!(rc as isize, EAGAIN);
    assert_eq!(fab::poll_cq(p.b.rxcq).map(|e| e.ctx), Some(10));
}

#[test]
fn rdm_getwait_fd_and_trywait() {
    getwait_fd_becomes_readable(&Opts::rdm());
}

#[test]
fn dgram_getwait_fd_and_trywait() {
    getwait_fd_becomes_readable(&Opts::dgram());
}

#[test]
fn counter_wait_wakes_and_times_out() {
    no_keepalive();
    let o = Opts {
        cntrs: true,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    assert_eq!(fab::cntr_wait(p.b.rxcntr, 1, 20), ETIMEDOUT);
    let mut buf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 1), 0);
    let c = P(p.b.rxcntr);
    let t = std::thread::spawn(move || {
        let c = c;
        fab::cntr_wait(c.0, 1, -1)
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(p.a.send(b"count", p.a.peer, 1), 0);
    assert_eq!(t.join().unwrap(), 0, "woken by the receive");
    assert_eq!(fab::cntr_read(p.b.rxcntr), 1);
    // Its descriptor: readable after an update.
    let fd = getwait(p.b.rxcntr);
    let _ = readable(fd, 0);
    assert_eq!(trywait(p.fab, &[fid_of(p.b.rxcntr)]), 0);
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 2), 0);
    assert_eq!(p.a.send(b"count2", p.a.peer, 2), 0);
    assert!(readable(fd, LONG_MS));
    assert_eq!(fab::cntr_wait(p.b.rxcntr, 2, LONG_MS), 0);
}

fn eq_open(fab_: *mut b::fid_fabric, wait_obj: u32, ws: *mut b::fid_wait) -> *mut b::fid_eq {
    let mut attr = b::fi_eq_attr {
        size: 8,
        wait_obj,
        wait_set: ws,
        ..Default::default()
    };
    let mut eq = null();
    // SAFETY: fab_ is open.
    let rc = unsafe { ((*(*fab_).ops).eq_open.unwrap())(fab_, &mut attr, &mut eq, void()) };
    assert_eq!(rc, 0, "fi_eq_open");
    eq
}

fn eq_write(eq: *mut b::fid_eq, event: u32, data: &[u8]) -> isize {
    // SAFETY: eq is open; data is valid.
    unsafe { ((*(*eq).ops).write.unwrap())(eq, event, data.as_ptr().cast(), data.len(), 0) }
}

fn eq_sread(eq: *mut b::fid_eq, timeout: c_int) -> (isize, u32) {
    let mut ev = 0u32;
    let mut buf = [0u8; 64];
    // SAFETY: eq is open; buf has 64 bytes.
    let n = unsafe {
        ((*(*eq).ops).sread.unwrap())(eq, &mut ev, buf.as_mut_ptr().cast(), buf.len(), timeout, 0)
    };
    (n, ev)
}

#[test]
fn eq_sread_wakes_on_write_and_times_out() {
    no_keepalive();
    let p = Pair::new(&Opts::rdm());
    let eq = eq_open(p.fab, b::FI_WAIT_UNSPEC, null());
    assert_eq!(eq_sread(eq, 20).0, EAGAIN);
    let e = P(eq);
    let t = std::thread::spawn(move || {
        let e = e;
        eq_sread(e.0, -1)
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(eq_write(eq, 42, &[1, 2, 3]), 3);
    assert_eq!(t.join().unwrap(), (3, 42));
    let fd = getwait(eq);
    assert!(!readable(fd, 0));
    assert_eq!(eq_write(eq, 43, &[]), 0);
    assert!(readable(fd, LONG_MS));
    assert_eq!(eq_sread(eq, 0), (0, 43));
    assert!(!readable(fd, 0), "empty again");
    assert_eq!(close(fid_of(eq)), 0);
}

#[test]
fn poll_set_reports_the_queues_with_completions() {
    no_keepalive();
    let o = Opts {
        cntrs: true,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    let mut ps: *mut b::fid_poll = null();
    let mut attr = b::fi_poll_attr::default();
    // SAFETY: the domain is open.
    let rc = unsafe { ((*(*p.dom).ops).poll_open.unwrap())(p.dom, &mut attr, &mut ps) };
    assert_eq!(rc, 0, "fi_poll_open");
    let add = |f: *mut b::fid| {
        // SAFETY: ps is open; f is ours.
        unsafe { ((*(*ps).ops).poll_add.unwrap())(ps, f, 0) }
    };
    for f in [fid_of(p.a.txcq), fid_of(p.b.rxcq), fid_of(p.b.rxcntr)] {
        assert_eq!(add(f), 0);
    }
    let poll = |out: &mut [*mut c_void]| {
        // SAFETY: ps is open; out has room for out.len() contexts.
        unsafe { ((*(*ps).ops).poll.unwrap())(ps, out.as_mut_ptr(), out.len() as c_int) }
    };
    let mut ctx = [std::ptr::null_mut::<c_void>(); 4];
    assert_eq!(poll(&mut ctx), 0, "nothing yet");
    let mut buf = vec![0u8; 64];
    assert_eq!(p.b.recv(&mut buf, fab::ADDR_UNSPEC, 1), 0);
    assert_eq!(p.a.send(b"poll", p.a.peer, 1), 0);
    // The CQs were opened with a NULL context: what matters is how many
    // members report, and that reading empties them.
    let mut n = 0;
    for _ in 0..200_000 {
        n = poll(&mut ctx);
        if n == 3 {
            break;
        }
        std::thread::yield_now();
    }
    assert_eq!(n, 3, "tx CQ, rx CQ and the receive counter");
    assert!(fab::poll_cq(p.a.txcq).is_some());
    assert!(fab::poll_cq(p.b.rxcq).is_some());
    assert_eq!(poll(&mut ctx), 0, "read: nothing to report");
    // SAFETY: ps is open.
    let del = unsafe { ((*(*ps).ops).poll_del.unwrap())(ps, fid_of(p.a.txcq), 0) };
    assert_eq!(del, 0);
    // SAFETY: as above.
    let del = unsafe { ((*(*ps).ops).poll_del.unwrap())(ps, fid_of(p.a.txcq), 0) };
    assert_eq!(del, -(b::FI_ENOENT as c_int));
    assert_eq!(close(fid_of(ps)), 0);
}

#[test]
fn wait_set_wakes_on_any_member() {
    no_keepalive();
    let info = fab::lo_info(&Opts::rdm());
    let fab_ = fabric(info.first()).unwrap();
    let dom = domain(fab_, info.0).unwrap();
    let mut ws: *mut b::fid_wait = null();
    let mut wattr = b::fi_wait_attr {
        wait_obj: b::FI_WAIT_FD,
        flags: 0,
    };
    // SAFETY: fab_ is open.
    let rc = unsafe { ((*(*fab_).ops).wait_open.unwrap())(fab_, &mut wattr, &mut ws) };
    assert_eq!(rc, 0, "fi_wait_open");
    let cq_in_set = || {
        let mut attr = b::fi_cq_attr {
            format: b::FI_CQ_FORMAT_TAGGED,
            wait_obj: b::FI_WAIT_SET,
            wait_set: ws,
            ..Default::default()
        };
        let mut cq = null();
        // SAFETY: dom is open.
        let rc = unsafe { ((*(*dom).ops).cq_open.unwrap())(dom, &mut attr, &mut cq, void()) };
        assert_eq!(rc, 0, "CQ in a wait set");
        cq
    };
    let eq = eq_open(fab_, b::FI_WAIT_SET, ws);
    let o = Opts {
        enable: false,
        ..Opts::rdm()
    };
    let mut a = fab::Side::open(dom, info.0, &o);
    // B's receive CQ is the set's member.
    let rx = cq_in_set();
    let bav = fab::av_open(dom, b::FI_AV_TABLE).unwrap();
    let btx = fab::cq_open(dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    let ep = fab::endpoint(dom, info.0).unwrap();
    assert_eq!(fab::ep_bind(ep, fid_of(bav), 0), 0);
    assert_eq!(fab::ep_bind(ep, fid_of(btx), b::FI_TRANSMIT), 0);
    assert_eq!(fab::ep_bind(ep, fid_of(rx), b::FI_RECV), 0);
    assert_eq!(fab::enable(ep), 0);
    let mut bside = fab::Side {
        ep,
        av: bav,
        txcq: btx,
        rxcq: rx,
        txcntr: null(),
        rxcntr: null(),
        name: fab::getname(ep),
        peer: fab::ADDR_UNSPEC,
        closed: false,
    };
    assert_eq!(fab::enable(a.ep), 0);
    a.peer = fab::av_insert(a.av, &bside.name);
    let wait = |t: c_int| {
        // SAFETY: ws is open.
        unsafe { ((*(*ws).ops).wait.unwrap())(ws, t) }
    };
    assert_eq!(wait(20), ETIMEDOUT, "nothing in the set");
    let mut buf = vec![0u8; 64];
    assert_eq!(bside.recv(&mut buf, fab::ADDR_UNSPEC, 5), 0);
    let w = P(ws);
    let t = std::thread::spawn(move || {
        let w = w;
        // SAFETY: the set outlives the thread.
        unsafe { ((*(*w.0).ops).wait.unwrap())(w.0, -1) }
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.send(b"set", a.peer, 1), 0);
    assert_eq!(t.join().unwrap(), 0, "woken by the CQ member's arrival");
    assert_eq!(fab::poll_cq(rx).map(|e| e.ctx), Some(5));
    // The EQ member wakes it too, and the set's descriptor shows it.
    let mut obj: b::fi_wait_obj = 0;
    assert_eq!(
        control(ws, b::FI_GETWAITOBJ, (&mut obj as *mut u32).cast()),
        0
    );
    assert_eq!(obj, b::FI_WAIT_FD);
    let fd = getwait(ws);
    assert_eq!(eq_write(eq, 1, &[]), 0);
    assert!(readable(fd, LONG_MS));
    assert_eq!(wait(LONG_MS), 0);
    assert_eq!(eq_sread(eq, 0).1, 1);
    a.close();
    bside.close();
    assert_eq!(close(fid_of(eq)), 0);
    assert_eq!(close(fid_of(ws)), 0);
    assert_eq!(close(fid_of(dom)), 0);
    assert_eq!(close(fid_of(fab_)), 0);
}

#[test]
fn unsupported_wait_objects_are_refused() {
    no_keepalive();
    let p = Pair::new(&Opts::rdm());
    let mut attr = b::fi_cq_attr {
        format: b::FI_CQ_FORMAT_CONTEXT,
        wait_obj: b::FI_WAIT_POLLFD,
        ..Default::default()
    };
    let mut cq = null();
    // SAFETY: the domain is open.
    let rc = unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, &mut attr, &mut cq, void()) };
    assert_eq!(rc, -(b::FI_ENOSYS as c_int));
    // FI_WAIT_SET without a set.
    attr.wait_obj = b::FI_WAIT_SET;
    // SAFETY: as above.
    let rc = unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, &mut attr, &mut cq, void()) };
    assert_eq!(rc, -(b::FI_EINVAL as c_int));
    // FI_GETWAIT on a queue without an fd wait object.
    attr.wait_obj = b::FI_WAIT_NONE;
    // SAFETY: as above.
    let rc = unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, &mut attr, &mut cq, void()) };
    assert_eq!(rc, 0);
    let mut fd: c_int = -1;
    assert_eq!(
        control(cq, b::FI_GETWAIT, (&mut fd as *mut c_int).cast()),
        -(b::FI_ENOSYS as c_int)
    );
    assert_eq!(close(fid_of(cq)), 0);
}

/// FI_WAIT_YIELD and FI_WAIT_MUTEX_COND are accepted and block like an fd
/// (without handing one out).
#[test]
fn yield_and_mutex_cond_wait_objects_block() {
    no_keepalive();
    let p = Pair::new(&Opts::rdm());
    for w in [b::FI_WAIT_YIELD, b::FI_WAIT_MUTEX_COND] {
        let mut attr = b::fi_cq_attr {
            format: b::FI_CQ_FORMAT_TAGGED,
            wait_obj: w,
            ..Default::default()
        };
        let mut cq = null();
        // SAFETY: the domain is open.
        let rc = unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, &mut attr, &mut cq, void()) };
        assert_eq!(rc, 0);
        let mut obj: b::fi_wait_obj = 0;
        assert_eq!(
            control(cq, b::FI_GETWAITOBJ, (&mut obj as *mut u32).cast()),
            0
        );
        assert_eq!(obj, w);
        let mut fd: c_int = -1;
        assert_eq!(
            control(cq, b::FI_GETWAIT, (&mut fd as *mut c_int).cast()),
            -(b::FI_ENOSYS as c_int)
        );
        assert_eq!(sread(cq, 10).0, EAGAIN, "timeout honoured");
        let c = P(cq);
        let t = std::thread::spawn(move || {
            let c = c;
            sread(c.0, -1).0
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(cq_signal(cq), 0);
        assert_eq!(t.join().unwrap(), EAGAIN, "woken by fi_cq_signal");
        assert_eq!(close(fid_of(cq)), 0);
    }
}
