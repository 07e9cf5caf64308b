//! More FI_EP_RDM behaviour through the libfabric core: CQ formats and
//! multi-entry reads, error entries under selective completion, counters
//! on errors, scatter-gather, *msg calls with flags, err_data ownership.

mod common;

use common::fab::*;
use srd_fi::bindings as b;
use std::ffi::c_void;
use std::time::{Duration, Instant};

#[test]
fn rdm_every_cq_format_reads_several_entries_with_the_right_stride() {
    for format in [
        b::FI_CQ_FORMAT_CONTEXT,
        b::FI_CQ_FORMAT_MSG,
        b::FI_CQ_FORMAT_DATA,
        b::FI_CQ_FORMAT_TAGGED,
    ] {
        let p = Pair::new(&Opts {
            cq_format: format,
            ..Opts::rdm()
        });
        let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; 64]).collect();
        for (i, buf) in bufs.iter_mut().enumerate() {
            assert_eq!(p.b.trecv(buf, ADDR_UNSPEC, 5, 0, 100 + i), 0);
        }
        for i in 0..4 {
            let m = vec![i as u8; 10 + i];
            assert_eq!(p.a.tsenddata(&m, 0x10 + i as u64, p.a.peer, 5, 200 + i), 0);
        }
        // Wait until the sender is done, then read B's four entries at once.
        let mut got: [Vec<Cqe>; 1] = Default::default();
        assert!(progress_until(&[p.a.txcq], &mut got, 10, |g| g[0].len() == 4));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut raw = [b::fi_cq_tagged_entry::default(); 4];
        let mut n = 0usize;
        while n < 4 && Instant::now() < deadline {
            // SAFETY: raw has room for 4 tagged entries (the largest format).
            let r = unsafe {
                ((*(*p.b.rxcq).ops).read.unwrap())(
                    p.b.rxcq,
                    (raw.as_mut_ptr() as *mut u8)
                        .add(n * entry_size(format))
                        .cast(),
                    4 - n,
                )
            };
            if r > 0 {
                n += r as usize;
            } else {
                assert_eq!(r, EAGAIN);
            }
        }
        assert_eq!(n, 4, "format {format}");
        let base = raw.as_ptr() as *const u8;
        let mut ctxs = vec![];
        for i in 0..4 {
            // SAFETY: entries are packed at the format's size.
            unsafe {
                let p = base.add(i * entry_size(format));
                let ctx = *(p as *const usize);
                ctxs.push(ctx);
                let k = ctx - 100;
                if format != b::FI_CQ_FORMAT_CONTEXT {
                    let e = &*(p as *const b::fi_cq_msg_entry);
                    assert_eq!(e.len, 10 + k, "len of entry {i} in format {format}");
                    assert_eq!(e.flags, b::FI_RECV | b::FI_TAGGED | b::FI_REMOTE_CQ_DATA);
                }
                if format == b::FI_CQ_FORMAT_DATA || format == b::FI_CQ_FORMAT_TAGGED {
                    let e = &*(p as *const b::fi_cq_data_entry);
                    assert_eq!(e.data, 0x10 + k as u64);
                    assert_eq!(e.buf as usize, bufs[k].as_ptr() as usize);
                }
                if format == b::FI_CQ_FORMAT_TAGGED {
                    assert_eq!((*(p as *const b::fi_cq_tagged_entry)).tag, 5);
                }
            }
        }
        ctxs.sort();
        assert_eq!(ctxs, [100, 101, 102, 103], "format {format}");
    }
}

fn entry_size(format: u32) -> usize {
    match format {
        f if f == b::FI_CQ_FORMAT_MSG => std::mem::size_of::<b::fi_cq_msg_entry>(),
        f if f == b::FI_CQ_FORMAT_DATA => std::mem::size_of::<b::fi_cq_data_entry>(),
        f if f == b::FI_CQ_FORMAT_TAGGED => std::mem::size_of::<b::fi_cq_tagged_entry>(),
        _ => std::mem::size_of::<b::fi_cq_entry>(),
    }
}

#[test]
fn rdm_errors_are_reported_under_selective_completion_and_counted() {
    let p = Pair::new(&Opts {
        tx_bind: b::FI_SELECTIVE_COMPLETION,
        rx_bind: b::FI_SELECTIVE_COMPLETION,
        cntrs: true,
        ..Opts::rdm()
    });
    // A receive without FI_COMPLETION that truncates: the error is reported.
    let mut small = vec![0u8; 10];
    assert_eq!(p.b.trecv(&mut small, ADDR_UNSPEC, 1, 0, 0x70), 0);
    assert_eq!(p.a.tsend(&pattern(100, 1), p.a.peer, 1, 0x71), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| !g[3].is_empty()
        && cntr_read(p.a.txcntr) == 1));
    let e = &got[3][0];
    assert_eq!(
        (e.err, e.ctx, e.olen),
        (b::FI_ETRUNC as i32, 0x70, 90),
        "{e:?}"
    );
    assert_eq!(cntr_readerr(p.b.rxcntr), 1, "truncation counts as an error");
    assert_eq!(cntr_read(p.b.rxcntr), 0);
    assert!(got[0].is_empty(), "send without FI_COMPLETION: {got:?}");
    // A canceled receive without FI_COMPLETION is reported too.
    assert_eq!(p.b.trecv(&mut small, ADDR_UNSPEC, 2, 0, 0x72), 0);
    assert_eq!(cancel(p.b.ep, 0x72), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    assert_eq!((got[3][0].err, got[3][0].ctx), (b::FI_ECANCELED, 0x72));
}

#[test]
fn rdm_scatter_gather_sends_and_receives() {
    let p = Pair::new(&Opts::rdm());
    for total in [30usize, 5000, 70_000, 300_000] {
        let data = pattern(total, total as u8);
        // Three send segments, two receive segments, uneven.
        let s = [total / 3, total / 3 + 1];
        let siov = [
            b::iovec {
                iov_base: data[..s[0]].as_ptr() as *mut c_void,
                iov_len: s[0],
            },
            b::iovec {
                iov_base: data[s[0]..s[1]].as_ptr() as *mut c_void,
                iov_len: s[1] - s[0],
            },
            b::iovec {
                iov_base: data[s[1]..].as_ptr() as *mut c_void,
                iov_len: total - s[1],
            },
        ];
        let r0 = total / 4 + 3;
        let mut ra = vec![0u8; r0];
        let mut rb = vec![0u8; total - r0 + 7];
        let riov = [
            b::iovec {
                iov_base: ra.as_mut_ptr().cast(),
                iov_len: ra.len(),
            },
            b::iovec {
                iov_base: rb.as_mut_ptr().cast(),
                iov_len: rb.len(),
            },
        ];
        let mut desc = [std::ptr::null_mut::<c_void>(); 3];
        // SAFETY: iovecs point to live buffers that outlive the operations.
        unsafe {
            let r = ((*(*p.b.ep).tagged).recvv.unwrap())(
                p.b.ep,
                riov.as_ptr(),
                desc.as_mut_ptr(),
                2,
                ADDR_UNSPEC,
                4,
                0,
                std::ptr::without_provenance_mut(1),
            );
            assert_eq!(r, 0);
            let r = ((*(*p.a.ep).tagged).sendv.unwrap())(
                p.a.ep,
                siov.as_ptr(),
                desc.as_mut_ptr(),
                3,
                p.a.peer,
                4,
                std::ptr::without_provenance_mut(2),
            );
            assert_eq!(r, 0);
        }
        let got = p.wait(1, 1, 10);
        assert_eq!(
            (got[3][0].err, got[3][0].len),
            (0, total),
            "{:?}",
            got[3][0]
        );
        let mut joined = ra.clone();
        joined.extend_from_slice(&rb[..total - r0]);
        assert!(joined == data, "scatter-gather bytes at {total}");
    }
}

#[test]
fn rdm_msg_calls_take_their_flags() {
    let p = Pair::new(&Opts::rdm());
    let mut r = [vec![0u8; 64], vec![0u8; 64]];
    let [r0, r1] = &mut r;
    assert_eq!(p.b.trecvmsg(r0, ADDR_UNSPEC, 3, 0, 1, 0), 0);
    assert_eq!(p.b.recvmsg(r1, ADDR_UNSPEC, 2, 0), 0);
    // tsendmsg with FI_REMOTE_CQ_DATA | FI_INJECT | FI_COMPLETION: the
    // buffer is free on return and a completion still comes.
    let mut buf = b"injected".to_vec();
    assert_eq!(
        p.a.tsendmsg(
            &buf,
            p.a.peer,
            3,
            10,
            0xCAFE,
            b::FI_REMOTE_CQ_DATA | b::FI_INJECT | b::FI_COMPLETION
        ),
        0
    );
    buf.fill(0);
    // sendmsg with FI_REMOTE_CQ_DATA.
    assert_eq!(
        p.a.sendmsg(
            b"msgdata",
            p.a.peer,
            11,
            0xF00D,
            b::FI_REMOTE_CQ_DATA | b::FI_COMPLETION
        ),
        0
    );
    let mut got = p.wait(2, 2, 10);
    got[3].sort_by_key(|e| e.ctx);
    got[0].sort_by_key(|e| e.ctx);
    assert_eq!(
        (got[3][0].data, got[3][0].flags),
        (0xCAFE, b::FI_RECV | b::FI_TAGGED | b::FI_REMOTE_CQ_DATA)
    );
    assert_eq!(&r[0][..8], b"injected");
    assert_eq!(
        (got[3][1].data, got[3][1].flags),
        (0xF00D, b::FI_RECV | b::FI_MSG | b::FI_REMOTE_CQ_DATA)
    );
    assert_eq!(&r[1][..7], b"msgdata");
    assert_eq!(got[0].iter().map(|e| e.ctx).collect::<Vec<_>>(), [10, 11]);
    assert_eq!(got[0][0].flags, b::FI_SEND | b::FI_TAGGED);
}

#[test]
fn rdm_err_data_points_at_provider_memory_when_the_application_gives_none() {
    let p = Pair::new(&Opts {
        caps: Opts::rdm().caps | b::FI_SOURCE_ERR,
        b_knows_a: false,
        ..Opts::rdm()
    });
    let mut rbuf = vec![0u8; 16];
    assert_eq!(p.b.trecv(&mut rbuf, ADDR_UNSPEC, 1, 0, 1), 0);
    assert_eq!(p.a.tsend(b"anon", p.a.peer, 1, 2), 0);
    // Read without common::poll_cq (which supplies a buffer).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut e = b::fi_cq_tagged_entry::default();
    loop {
        // SAFETY: room for one entry.
        let n = unsafe {
            ((*(*p.b.rxcq).ops).read.unwrap())(
                p.b.rxcq,
                (&mut e as *mut b::fi_cq_tagged_entry).cast(),
                1,
            )
        };
        let _ = poll_cq(p.a.txcq);
        if n == EAVAIL {
            break;
        }
        assert_eq!(n, EAGAIN, "expected an error entry first");
        assert!(Instant::now() < deadline, "no error entry");
    }
    let mut err = b::fi_cq_err_entry::default();
    // SAFETY: err is a valid entry with err_data NULL / size 0.
    let n = unsafe { ((*(*p.b.rxcq).ops).readerr.unwrap())(p.b.rxcq, &mut err, 0) };
    assert_eq!(n, 1);
    assert_eq!(err.err, b::FI_EADDRNOTAVAIL);
    assert_eq!(err.err_data_size, p.a.name.len());
    assert!(!err.err_data.is_null());
    // SAFETY: the provider's buffer is valid until the next readerr.
    let d = unsafe { std::slice::from_raw_parts(err.err_data as *const u8, err.err_data_size) };
    assert_eq!(d, &p.a.name[..]);
    // The empty queue then says so.
    // SAFETY: as above.
    let n = unsafe { ((*(*p.b.rxcq).ops).readerr.unwrap())(p.b.rxcq, &mut err, 0) };
    assert_eq!(n, EAGAIN);
}

#[test]
fn rdm_size_left_and_min_multi_recv_option() {
    let p = Pair::new(&Opts {
        min_multi_recv: Some(777),
        ..Opts::rdm()
    });
    // SAFETY: the eps are open and enabled.
    let (tx, rx) = unsafe {
        (
            ((*(*p.a.ep).ops).tx_size_left.unwrap())(p.a.ep),
            ((*(*p.a.ep).ops).rx_size_left.unwrap())(p.a.ep),
        )
    };
    assert!(tx > 0 && rx > 0, "{tx} {rx}");
    let mut v = 0usize;
    let mut len = std::mem::size_of::<usize>();
    // SAFETY: v is a usize.
    let rc = unsafe {
        ((*(*p.a.ep).ops).getopt.unwrap())(
            &mut (*p.a.ep).fid,
            b::FI_OPT_ENDPOINT as i32,
            b::FI_OPT_MIN_MULTI_RECV as i32,
            (&mut v as *mut usize).cast(),
            &mut len,
        )
    };
    assert_eq!((rc, v), (0, 777));
    // A posted receive lowers rx_size_left by one.
    let mut buf = vec![0u8; 8];
    assert_eq!(p.b.recv(&mut buf, ADDR_UNSPEC, 1), 0);
    // SAFETY: as above.
    let rx_b = unsafe { ((*(*p.b.ep).ops).rx_size_left.unwrap())(p.b.ep) };
    assert_eq!(rx_b, rx - 1);
}

#[test]
fn rdm_without_directed_recv_the_source_is_ignored() {
    let o = Opts {
        caps: b::FI_MSG | b::FI_TAGGED | b::FI_SOURCE,
        ..Opts::rdm()
    };
    let p = Pair::new(&o);
    // SAFETY: info is valid.
    assert_eq!(unsafe { (*p.info.0).caps } & b::FI_DIRECTED_RECV, 0);
    let mut buf = vec![0u8; 8];
    // An fi_addr that is not A's (B's own entry would be 1): ignored.
    let other = av_insert(p.b.av, &p.b.name);
    assert_eq!(p.b.trecv(&mut buf, other, 1, 0, 1), 0);
    assert_eq!(p.a.tsend(b"any", p.a.peer, 1, 2), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].ctx), (0, 1));
}

#[test]
fn rdm_unknown_sender_without_source_err_is_a_success_with_addr_notavail() {
    let o = Opts {
        b_knows_a: false,
        ..Opts::rdm()
    };
    assert_eq!(o.caps & b::FI_SOURCE_ERR, 0);
    let p = Pair::new(&o);
    // SAFETY: info is valid.
    assert_eq!(unsafe { (*p.info.0).caps } & b::FI_SOURCE_ERR, 0);
    let mut rbuf = vec![0u8; 16];
    assert_eq!(p.b.trecv(&mut rbuf, ADDR_UNSPEC, 1, 0, 1), 0);
    assert_eq!(p.a.tsend(b"anon", p.a.peer, 1, 2), 0);
    let got = p.wait(1, 1, 10);
    let e = &got[3][0];
    assert_eq!((e.err, e.len, e.src), (0, 4, ADDR_UNSPEC), "{e:?}");
    assert_eq!(&rbuf[..4], b"anon");
}

#[test]
fn rdm_cq_signal_wakes_a_blocked_sread() {
    let p = Pair::new(&Opts::rdm());
    #[derive(Clone, Copy)]
    struct Cq(*mut b::fid_cq);
    // SAFETY: the provider is FI_THREAD_SAFE; only the pointer moves.
    unsafe impl Send for Cq {}
    let cq = Cq(p.b.rxcq);
    let t = Instant::now();
    let waiter = std::thread::spawn(move || {
        let cq = cq;
        let mut e = b::fi_cq_tagged_entry::default();
        // SAFETY: room for one entry; the CQ outlives the thread (joined).
        unsafe {
            ((*(*cq.0).ops).sread.unwrap())(
                cq.0,
                (&mut e as *mut b::fi_cq_tagged_entry).cast(),
                1,
                std::ptr::null(),
                10_000,
            )
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: the CQ is open.
    assert_eq!(unsafe { ((*(*p.b.rxcq).ops).signal.unwrap())(p.b.rxcq) }, 0);
    let n = waiter.join().unwrap();
    assert_eq!(n, EAGAIN);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "sread returned after {:?}",
        t.elapsed()
    );
}

#[test]
fn rdm_multi_recv_with_medium_and_long_messages() {
    let p = Pair::new(&Opts {
        min_multi_recv: Some(4096),
        ..Opts::rdm()
    });
    let mut big = vec![0u8; 2 << 20];
    let base = big.as_ptr() as usize;
    assert_eq!(p.b.recvmsg(&mut big, ADDR_UNSPEC, 9, b::FI_MULTI_RECV), 0);
    let sizes = [100usize, 70_000, 300_000, 5, 1 << 20];
    let msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(n, i as u8))
        .collect();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(p.a.send(m, p.a.peer, 10 + i), 0);
    }
    let got = p.wait(sizes.len(), sizes.len(), 20);
    let mut spans = vec![];
    for e in &got[3] {
        assert_eq!((e.err, e.ctx), (0, 9), "{e:?}");
        let i = sizes.iter().position(|&n| n == e.len).expect("a sent size");
        let off = e.buf - base;
        assert!(big[off..off + e.len] == msgs[i][..], "message {i} at {off}");
        spans.push((off, off + e.len));
    }
    spans.sort();
    assert!(
        spans.windows(2).all(|w| w[0].1 <= w[1].0),
        "overlapping placements {spans:?}"
    );
}

#[test]
fn rdm_claim_and_discard_long_messages() {
    let p = Pair::new(&Opts::rdm());
    let long = pattern(1 << 20, 7);
    assert_eq!(p.a.tsend(&long, p.a.peer, 1, 11), 0);
    assert_eq!(p.a.tsend(&long, p.a.peer, 2, 12), 0);
    // Peek until the first is visible, claim it, receive it.
    let mut got: [Vec<Cqe>; 4] = Default::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        assert_eq!(
            p.b.trecvmsg(&mut [], ADDR_UNSPEC, 1, 0, 20, b::FI_PEEK | b::FI_CLAIM),
            0
        );
        assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
        let e = got[3].pop().unwrap();
        if e.err != b::FI_ENOMSG || Instant::now() > deadline {
            break e;
        }
    };
    assert_eq!((e.err, e.len, e.tag), (0, 1 << 20, 1), "{e:?}");
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(
        p.b.trecvmsg(&mut buf, ADDR_UNSPEC, 1, 0, 20, b::FI_CLAIM),
        0
    );
    assert!(progress_until(&p.cqs(), &mut got, 10, |g| !g[3].is_empty()));
    assert_eq!((got[3][0].err, got[3][0].len), (0, 1 << 20));
    assert!(buf == long);
    // Discard the second: its sender still completes.
    let e = loop {
        assert_eq!(
            p.b.trecvmsg(&mut [], ADDR_UNSPEC, 2, 0, 30, b::FI_PEEK | b::FI_DISCARD),
            0
        );
        let mut g: [Vec<Cqe>; 4] = Default::default();
        assert!(progress_until(&p.cqs(), &mut g, 5, |g| !g[3].is_empty()));
        got[0].extend(g[0].iter().cloned());
        let e = g[3].pop().unwrap();
        if e.err != b::FI_ENOMSG || Instant::now() > deadline {
            break e;
        }
    };
    assert_eq!((e.err, e.len), (0, 1 << 20));
    assert!(
        progress_until(&p.cqs(), &mut got, 10, |g| g[0].len() >= 2),
        "sender completions {got:?}"
    );
    assert!(got[0].iter().all(|e| e.err == 0), "{got:?}");
}

#[test]
fn rdm_av_remove_and_reinsert_keeps_the_conversation_going() {
    let mut p = Pair::new(&Opts::rdm());
    let mut buf = vec![0u8; 16];
    for round in 0..3u8 {
        assert_eq!(p.b.trecv(&mut buf, ADDR_UNSPEC, 1, 0, 1), 0);
        let m = [round; 16];
        assert_eq!(p.a.tsend(&m, p.a.peer, 1, 2), 0);
        let got = p.wait(1, 1, 10);
        assert_eq!(
            (got[0][0].err, got[3][0].err),
            (0, 0),
            "round {round}: {got:?}"
        );
        assert_eq!(buf, m);
        // A drops B from its AV and inserts it again under a new fi_addr.
        let mut old = p.a.peer;
        // SAFETY: one fi_addr.
        let rc = unsafe { ((*(*p.a.av).ops).remove.unwrap())(p.a.av, &mut old, 1, 0) };
        assert_eq!(rc, 0);
        let _ = p.drain(10);
        p.a.peer = av_insert(p.a.av, &p.b.name);
        assert_ne!(p.a.peer, old);
    }
}

#[test]
fn rdm_send_to_a_removed_fi_addr_is_einval_after_use() {
    let p = Pair::new(&Opts::rdm());
    let mut buf = vec![0u8; 16];
    assert_eq!(p.b.trecv(&mut buf, ADDR_UNSPEC, 1, 0, 1), 0);
    assert_eq!(p.a.tsend(b"first", p.a.peer, 1, 2), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[0][0].err, got[3][0].err), (0, 0));
    let mut old = p.a.peer;
    // SAFETY: one fi_addr.
    let rc = unsafe { ((*(*p.a.av).ops).remove.unwrap())(p.a.av, &mut old, 1, 0) };
    assert_eq!(rc, 0);
    // Same as for an fi_addr never used (fi_objects: bad_addresses_and_av_operations).
    assert_eq!(p.a.tsend(b"stale", old, 1, 3), -(b::FI_EINVAL as isize));
    assert_eq!(p.a.send(b"stale", old, 4), -(b::FI_EINVAL as isize));
}

#[test]
fn rdm_completion_levels_all_complete_with_data_intact() {
    let p = Pair::new(&Opts::rdm());
    for level in [
        b::FI_INJECT_COMPLETE,
        b::FI_TRANSMIT_COMPLETE,
        b::FI_DELIVERY_COMPLETE,
    ] {
        for size in [0usize, 100, 70_000, 1 << 20] {
            let m = pattern(size, size as u8);
            let mut buf = vec![0u8; size.max(1)];
            assert_eq!(p.b.trecv(&mut buf, ADDR_UNSPEC, 6, 0, 1), 0);
            assert_eq!(
                p.a.tsendmsg(&m, p.a.peer, 6, 2, 0, level | b::FI_COMPLETION),
                0
            );
            let got = p.wait(1, 1, 20);
            assert_eq!(
                (got[0][0].err, got[0][0].ctx),
                (0, 2),
                "level {level:#x} size {size}"
            );
            assert_eq!((got[3][0].err, got[3][0].len), (0, size));
            assert!(buf[..size] == m[..]);
        }
    }
}

#[test]
fn rdm_cancel_of_a_multi_recv_buffer_releases_it() {
    let p = Pair::new(&Opts {
        min_multi_recv: Some(64),
        ..Opts::rdm()
    });
    let mut big = vec![0u8; 8192];
    assert_eq!(
        p.b.recvmsg(&mut big, ADDR_UNSPEC, 0x31, b::FI_MULTI_RECV),
        0
    );
    assert_eq!(p.a.send(&pattern(1000, 1), p.a.peer, 1), 0);
    let got = p.wait(1, 1, 10);
    assert_eq!((got[3][0].err, got[3][0].len), (0, 1000));
    assert_eq!(got[3][0].flags & b::FI_MULTI_RECV, 0, "still has room");
    assert_eq!(cancel(p.b.ep, 0x31), 0);
    let mut got: [Vec<Cqe>; 4] = Default::default();
    assert!(progress_until(&p.cqs(), &mut got, 5, |g| !g[3].is_empty()));
    let e = &got[3][0];
    assert_eq!((e.err, e.ctx), (b::FI_ECANCELED, 0x31), "{e:?}");
    assert_ne!(
        e.flags & b::FI_MULTI_RECV,
        0,
        "the cancel releases the buffer"
    );
    // Released: a new message finds no receive.
    assert_eq!(p.a.send(b"after", p.a.peer, 2), 0);
    assert!(p.drain(50)[3].is_empty());
}
