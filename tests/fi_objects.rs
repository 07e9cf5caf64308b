//! Object-layer argument checking through the real libfabric core: NULL
//! pointers, bad flags, foreign fids, wrong states and busy objects give
//! error codes, never crashes.

mod common;

use common::fab::*;
use common::*;
use srd_fi::bindings as b;
use std::os::raw::c_int;

const EOPBADSTATE: isize = -(b::FI_EOPBADSTATE as isize);
const EBUSY: c_int = -b::FI_EBUSY;
const EINVAL_: isize = -(b::FI_EINVAL as isize);

fn for_both(f: impl Fn(Opts)) {
    f(Opts::rdm());
    f(Opts::dgram());
}

#[test]
fn data_calls_before_enable_are_eopbadstate() {
    for_both(|o| {
        let tagged = o.ep_type == b::FI_EP_RDM;
        let mut p = Pair::new(&Opts {
            enable: false,
            ..o.clone()
        });
        let mut buf = vec![0u8; 16];
        assert_eq!(p.a.send(&buf, p.a.peer, 1), EOPBADSTATE);
        assert_eq!(p.a.senddata(&buf, 1, p.a.peer, 1), EOPBADSTATE);
        assert_eq!(p.a.inject(&buf, p.a.peer), EOPBADSTATE);
        assert_eq!(p.b.recv(&mut buf, ADDR_UNSPEC, 1), EOPBADSTATE);
        if tagged {
            assert_eq!(p.a.tsend(&buf, p.a.peer, 1, 1), EOPBADSTATE);
            assert_eq!(p.b.trecv(&mut buf, ADDR_UNSPEC, 1, 0, 1), EOPBADSTATE);
        }
        // SAFETY: the ep is open.
        let left = unsafe { ((*(*p.a.ep).ops).tx_size_left.unwrap())(p.a.ep) };
        assert_eq!(left, EOPBADSTATE);
        // Enabled, the same calls work.
        assert_eq!(enable(p.a.ep), 0);
        assert_eq!(enable(p.b.ep), 0);
        assert_eq!(p.b.recv(&mut buf, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.a.send(b"now", p.a.peer, 2), 0);
        let got = p.wait(1, 1, 10);
        assert_eq!(got[3][0].err, 0);
        p.a.close();
        p.b.close();
    });
}

#[test]
fn enable_needs_an_av_and_cqs() {
    let info = lo_info(&Opts::rdm());
    // SAFETY: valid entry.
    let fab = fabric(unsafe { &*info.0 }).unwrap();
    let dom = domain(fab, info.0).unwrap();
    let ep = endpoint(dom, info.0).unwrap();
    assert_eq!(enable(ep), -(b::FI_ENOAV as c_int));
    let av = av_open(dom, b::FI_AV_TABLE).unwrap();
    assert_eq!(ep_bind(ep, fid_of(av), 0), 0);
    assert_eq!(enable(ep), -(b::FI_ENOCQ as c_int));
    let cq = cq_open(dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    assert_eq!(ep_bind(ep, fid_of(cq), b::FI_TRANSMIT | b::FI_RECV), 0);
    assert_eq!(enable(ep), 0);
    // Bindings after enable are refused.
    let cq2 = cq_open(dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    assert_eq!(ep_bind(ep, fid_of(cq2), b::FI_TRANSMIT), -b::FI_EINVAL);
    // The domain is busy while children are open.
    assert_eq!(close(fid_of(dom)), EBUSY);
    for f in [
        fid_of(ep),
        fid_of(cq),
        fid_of(cq2),
        fid_of(av),
        fid_of(dom),
        fid_of(fab),
    ] {
        assert_eq!(close(f), 0);
    }
}

#[test]
fn closing_a_cq_or_av_bound_to_an_open_endpoint_is_ebusy() {
    for_both(|o| {
        let mut p = Pair::new(&o);
        assert_eq!(close(fid_of(p.a.txcq)), EBUSY);
        assert_eq!(close(fid_of(p.a.rxcq)), EBUSY);
        assert_eq!(close(fid_of(p.a.av)), EBUSY);
        // Still usable after the refused close.
        let mut buf = vec![0u8; 8];
        assert_eq!(p.b.recv(&mut buf, ADDR_UNSPEC, 1), 0);
        assert_eq!(p.a.send(b"alive", p.a.peer, 2), 0);
        let got = p.wait(1, 1, 10);
        assert_eq!((got[0][0].err, got[3][0].err), (0, 0));
        // Closing the endpoint first frees them (Side::close asserts 0).
        p.a.close();
        p.b.close();
    });
}

#[test]
fn bind_checks_its_fid_and_flags() {
    let mut p = Pair::new(&Opts {
        enable: false,
        ..Opts::rdm()
    });
    let ep = p.a.ep;
    assert_eq!(
        ep_bind(ep, null(), b::FI_TRANSMIT),
        -b::FI_EINVAL,
        "NULL fid"
    );
    // A fid that is not ours, with a CQ's class.
    let mut foreign_ops: b::fi_ops = Default::default();
    let mut foreign = b::fid {
        fclass: b::FI_CLASS_CQ as usize,
        context: void(),
        ops: &mut foreign_ops,
    };
    assert_eq!(
        ep_bind(ep, &mut foreign, b::FI_TRANSMIT),
        -b::FI_EINVAL,
        "foreign fid"
    );
    // One of ours of a class endpoints do not bind.
    assert_eq!(ep_bind(ep, fid_of(p.dom), 0), -b::FI_EINVAL, "domain");
    assert_eq!(ep_bind(ep, fid_of(p.b.ep), 0), -b::FI_EINVAL, "endpoint");
    // A CQ with no direction, or an unknown flag.
    let dom = p.dom;
    let cq = cq_open(dom, b::FI_CQ_FORMAT_TAGGED, 0).unwrap();
    assert_eq!(ep_bind(ep, fid_of(cq), 0), -b::FI_EINVAL, "no direction");
    assert_eq!(
        ep_bind(ep, fid_of(cq), b::FI_TRANSMIT | (1 << 62)),
        -b::FI_EINVAL,
        "bad flag"
    );
    // A direction that already has a CQ.
    assert_eq!(
        ep_bind(ep, fid_of(cq), b::FI_TRANSMIT),
        -b::FI_EINVAL,
        "second tx cq"
    );
    // A counter with no event kind.
    let c = cntr_open(dom).unwrap();
    assert_eq!(
        ep_bind(ep, fid_of(c), 0),
        -b::FI_EINVAL,
        "cntr without flags"
    );
    // Binding the CQ to a NULL endpoint through the fid ops of the CQ itself.
    // SAFETY: cq is open; its bind rejects what it cannot take.
    let rc = unsafe { ((*(*cq).fid.ops).bind.unwrap())(&mut (*cq).fid, fid_of(ep), 0) };
    assert!(rc < 0, "cq bind: {rc}");
    p.a.close();
    p.b.close();
    assert_eq!(close(fid_of(cq)), 0);
    assert_eq!(close(fid_of(c)), 0);
}

#[test]
fn null_pointers_are_einval() {
    let mut p = Pair::new(&Opts::rdm());
    // fi_av_insert with a NULL address and count 1.
    let mut fa = 0u64;
    // SAFETY: the provider must reject NULL addr.
    let rc = unsafe {
        ((*(*p.a.av).ops).insert.unwrap())(p.a.av, std::ptr::null(), 1, &mut fa, 0, void())
    };
    assert_eq!(rc, -b::FI_EINVAL);
    // Unknown insert flags.
    // SAFETY: name is a valid address.
    let rc = unsafe {
        ((*(*p.a.av).ops).insert.unwrap())(
            p.a.av,
            p.b.name.as_ptr().cast(),
            1,
            &mut fa,
            1 << 60,
            void(),
        )
    };
    assert_eq!(rc, -b::FI_EINVAL);
    // fi_cq_read with a NULL buffer and count > 0.
    // SAFETY: the provider must reject NULL buf.
    let n = unsafe { ((*(*p.a.rxcq).ops).read.unwrap())(p.a.rxcq, void(), 1) };
    assert_eq!(n, EINVAL_);
    // fi_cq_readerr with NULL.
    // SAFETY: as above.
    let n = unsafe { ((*(*p.a.rxcq).ops).readerr.unwrap())(p.a.rxcq, null(), 0) };
    assert_eq!(n, EINVAL_);
    // fi_getname with NULL addrlen; with a short buffer: ETOOSMALL and the size.
    // SAFETY: as above.
    let rc = unsafe { ((*(*p.a.ep).cm).getname.unwrap())(&mut (*p.a.ep).fid, void(), null()) };
    assert_eq!(rc, -b::FI_EINVAL);
    let mut small = [0u8; 4];
    let mut len = small.len();
    // SAFETY: small has len bytes.
    let rc = unsafe {
        ((*(*p.a.ep).cm).getname.unwrap())(&mut (*p.a.ep).fid, small.as_mut_ptr().cast(), &mut len)
    };
    assert_eq!(rc, -(b::FI_ETOOSMALL as c_int));
    assert_eq!(len, p.a.name.len());
    // A send with a NULL iov and count 1.
    // SAFETY: the provider must reject it.
    let n = unsafe {
        ((*(*p.a.ep).msg).sendv.unwrap())(p.a.ep, std::ptr::null(), null(), 1, p.a.peer, void())
    };
    assert_eq!(n, EINVAL_);
    // fi_sendmsg with a NULL msg.
    // SAFETY: as above.
    let n = unsafe { ((*(*p.a.ep).msg).sendmsg.unwrap())(p.a.ep, std::ptr::null(), 0) };
    assert_eq!(n, EINVAL_);
    // A NULL-based iov with a length.
    let iov = b::iovec {
        iov_base: void(),
        iov_len: 10,
    };
    // SAFETY: as above.
    let n = unsafe { ((*(*p.a.ep).msg).sendv.unwrap())(p.a.ep, &iov, null(), 1, p.a.peer, void()) };
    assert_eq!(n, EINVAL_);
    // More iovs than iov_limit.
    let iovs = [b::iovec {
        iov_base: void(),
        iov_len: 0,
    }; 64];
    // SAFETY: as above.
    let n = unsafe {
        ((*(*p.a.ep).msg).sendv.unwrap())(p.a.ep, iovs.as_ptr(), null(), 64, p.a.peer, void())
    };
    assert_eq!(n, EINVAL_);
    // Options: NULL value, unknown level.
    // SAFETY: as above.
    let rc = unsafe {
        ((*(*p.a.ep).ops).setopt.unwrap())(
            &mut (*p.a.ep).fid,
            b::FI_OPT_ENDPOINT as c_int,
            b::FI_OPT_MIN_MULTI_RECV as c_int,
            std::ptr::null(),
            8,
        )
    };
    assert_eq!(rc, -b::FI_EINVAL);
    let v = 1usize;
    // SAFETY: as above.
    let rc = unsafe {
        ((*(*p.a.ep).ops).setopt.unwrap())(
            &mut (*p.a.ep).fid,
            12345,
            0,
            (&v as *const usize).cast(),
            8,
        )
    };
    assert_eq!(rc, -(b::FI_ENOPROTOOPT as c_int));
    // Open calls with NULL out-pointers.
    // SAFETY: as above.
    let rc =
        unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, std::ptr::null_mut(), null(), void()) };
    assert_eq!(rc, -b::FI_EINVAL);
    // SAFETY: as above.
    let rc = unsafe { ((*(*p.dom).ops).endpoint.unwrap())(p.dom, p.info.0, null(), void()) };
    assert_eq!(rc, -b::FI_EINVAL);
    p.a.close();
    p.b.close();
}

#[test]
fn bad_addresses_and_av_operations() {
    let mut p = Pair::new(&Opts::rdm());
    // A garbage address is not inserted; its slot says FI_ADDR_NOTAVAIL.
    let junk = [0xA5u8; 40];
    let mut fa = 0u64;
    // SAFETY: junk holds one 40-byte record.
    let rc = unsafe {
        ((*(*p.a.av).ops).insert.unwrap())(p.a.av, junk.as_ptr().cast(), 1, &mut fa, 0, void())
    };
    assert_eq!(rc, 0);
    assert_eq!(fa, ADDR_UNSPEC);
    // Lookup returns what was inserted.
    let mut out = [0u8; 64];
    let mut len = out.len();
    // SAFETY: out has len bytes.
    let rc = unsafe {
        ((*(*p.a.av).ops).lookup.unwrap())(p.a.av, p.a.peer, out.as_mut_ptr().cast(), &mut len)
    };
    assert_eq!(rc, 0);
    assert_eq!(&out[..len], &p.b.name[..]);
    // Send to an fi_addr that is not in the AV.
    assert_eq!(p.a.send(b"x", 999, 1), EINVAL_);
    assert_eq!(p.a.tsend(b"x", 999, 1, 1), EINVAL_);
    // After fi_av_remove the address is gone.
    let mut peer = p.a.peer;
    // SAFETY: one fi_addr.
    let rc = unsafe { ((*(*p.a.av).ops).remove.unwrap())(p.a.av, &mut peer, 1, 0) };
    assert_eq!(rc, 0);
    assert_eq!(p.a.send(b"x", p.a.peer, 1), EINVAL_);
    // SAFETY: as above.
    let rc = unsafe { ((*(*p.a.av).ops).remove.unwrap())(p.a.av, &mut peer, 1, 0) };
    assert_eq!(rc, -b::FI_EINVAL, "removed twice");
    // fi_cancel of an unknown context.
    assert_eq!(cancel(p.a.ep, 0xdead), -(b::FI_ENOENT as isize));
    p.a.close();
    p.b.close();
}

#[test]
fn cq_and_counter_attributes_are_checked() {
    let p = Pair::new(&Opts::rdm());
    assert_eq!(cq_open(p.dom, 99, 0).err(), Some(-b::FI_EINVAL));
    // FI_WAIT_POLLFD is not offered (FI_WAIT_FD is: tests/fi_wait.rs).
    let mut attr = b::fi_cq_attr {
        format: b::FI_CQ_FORMAT_MSG,
        wait_obj: b::FI_WAIT_POLLFD,
        ..Default::default()
    };
    let mut cq = null();
    // SAFETY: valid attr.
    let rc = unsafe { ((*(*p.dom).ops).cq_open.unwrap())(p.dom, &mut attr, &mut cq, void()) };
    assert_eq!(rc, -b::FI_ENOSYS);
    // Counter add/set through the ops table.
    let c = cntr_open(p.dom).unwrap();
    // SAFETY: c is open.
    unsafe {
        assert_eq!(((*(*c).ops).add.unwrap())(c, 5), 0);
        assert_eq!(((*(*c).ops).adderr.unwrap())(c, 2), 0);
    }
    assert_eq!((cntr_read(c), cntr_readerr(c)), (5, 2));
    // SAFETY: c is open.
    unsafe { assert_eq!(((*(*c).ops).set.unwrap())(c, 1), 0) };
    assert_eq!(cntr_read(c), 1);
    assert_eq!(cntr_wait(c, 1, 0), 0);
    assert_eq!(cntr_wait(c, 2, 10), -b::FI_ETIMEDOUT);
    assert_eq!(close(fid_of(c)), 0);
}

#[test]
fn mr_registration_and_bad_arguments() {
    let p = Pair::new(&Opts::rdm());
    let buf = vec![0u8; 4096];
    let mut mr: *mut b::fid_mr = null();
    // SAFETY: domain's mr ops are populated; buf lives across the MR.
    let rc = unsafe {
        ((*(*p.dom).mr).reg.unwrap())(
            &mut (*p.dom).fid,
            buf.as_ptr().cast(),
            buf.len(),
            b::FI_SEND | b::FI_RECV,
            0,
            0,
            0,
            &mut mr,
            void(),
        )
    };
    assert_eq!(rc, 0);
    assert!(!mr.is_null());
    // SAFETY: mr is open.
    assert!(
        !unsafe { (*mr).mem_desc }.is_null(),
        "a descriptor for data calls"
    );
    // NULL output pointer, unknown flags.
    // SAFETY: as above.
    let rc = unsafe {
        ((*(*p.dom).mr).reg.unwrap())(
            &mut (*p.dom).fid,
            buf.as_ptr().cast(),
            buf.len(),
            b::FI_SEND,
            0,
            0,
            0,
            null(),
            void(),
        )
    };
    assert_eq!(rc, -b::FI_EINVAL);
    let mut mr2: *mut b::fid_mr = null();
    // SAFETY: as above.
    let rc = unsafe {
        ((*(*p.dom).mr).reg.unwrap())(
            &mut (*p.dom).fid,
            buf.as_ptr().cast(),
            buf.len(),
            b::FI_SEND,
            0,
            0,
            1 << 60,
            &mut mr2,
            void(),
        )
    };
    assert_eq!(rc, -b::FI_EINVAL);
    assert_eq!(close(fid_of(mr)), 0);
}
