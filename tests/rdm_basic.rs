//! Data transfer across protocol cut-offs, ordering, CQ data, truncation,
//! inject, completion semantics.

mod rdm_common;

use rdm_common::{Net, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::Config;
use srd_fi::rdm::OpFlags;
use srd_fi::rdm::{CompFlags, ErrorKind};

fn sizes(net: &Net) -> Vec<usize> {
    let e = net.eps[0].eager_max();
    let m = net.eps[0].medium_max();
    vec![
        0,
        1,
        e - 1,
        e,
        e + 1,
        3 * e,
        m - 1,
        m,
        m + 1,
        300_000,
        1 << 20,
        8 << 20,
    ]
}

fn transfer_all_sizes(tagged: bool, seed: u64, mk: impl Fn(usize) -> Config) {
    let mut net = Net::new(2, seed, mk);
    let p = net.peer(0, 1);
    let sizes = sizes(&net);
    for (k, &len) in sizes.iter().enumerate() {
        let data = pattern(k as u64, len);
        // Half the receives are posted first, half after (unexpected path).
        let post_first = k % 2 == 0;
        let post = |net: &mut Net| {
            if tagged {
                net.eps[1]
                    .trecv(
                        net.now,
                        owned(len),
                        None,
                        k as u64,
                        0,
                        100 + k as u64,
                        OpFlags::empty(),
                    )
                    .unwrap();
            } else {
                net.eps[1]
                    .recv(net.now, owned(len), None, 100 + k as u64, OpFlags::empty())
                    .unwrap();
            }
        };
        if post_first {
            post(&mut net);
        }
        let iov = UserIov::from_vec(data.clone());
        if tagged {
            net.eps[0]
                .tsend(net.now, p, iov, k as u64, None, k as u64, OpFlags::empty())
                .unwrap();
        } else {
            net.eps[0]
                .send(net.now, p, iov, None, k as u64, OpFlags::empty())
                .unwrap();
        }
        if !post_first {
            net.run(50);
            post(&mut net);
        }
        net.run(200_000);
        let rc = net.take(1);
        assert_eq!(rc.len(), 1, "len {len}: one receive completion");
        let c = &rc[0];
        assert!(c.err.is_none(), "len {len}: {:?}", c.err);
        assert_eq!(c.len, len);
        assert_eq!(c.context, 100 + k as u64);
        assert_eq!(
            c.flags,
            CompFlags::RECV
                | if tagged {
                    CompFlags::TAGGED
                } else {
                    CompFlags::MSG
                }
        );
        assert_eq!(c.iov.as_ref().unwrap().to_vec(), data, "len {len}: bytes");
        let sc = net.take(0);
        assert_eq!(sc.len(), 1, "len {len}: one send completion");
        assert_eq!(sc[0].context, k as u64);
        assert_eq!(
            sc[0].flags,
            CompFlags::SEND
                | if tagged {
                    CompFlags::TAGGED
                } else {
                    CompFlags::MSG
                }
        );
        assert!(sc[0].err.is_none());
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
    assert_eq!(net.eps[1].stored_bytes(), (0, 0));
}

#[test]
fn tagged_every_size_around_cutoffs() {
    transfer_all_sizes(true, 1, cfg);
}

#[test]
fn untagged_every_size_around_cutoffs() {
    transfer_all_sizes(false, 2, cfg);
}

#[test]
fn every_size_with_ethernet_mtu_and_small_cts_window() {
    transfer_all_sizes(true, 3, |i| Config {
        mtu: 1472,
        cts_window: 16 * 1024,
        ..cfg(i)
    });
}

#[test]
fn every_size_with_loopback_mtu() {
    transfer_all_sizes(false, 4, |i| Config {
        mtu: 65_000,
        eager_max: 65_000,
        ..cfg(i)
    });
}

#[test]
fn sas_ordering_under_reordering() {
    let mut net = Net::new(2, 7, |i| Config {
        reorder_window: 8,
        ..cfg(i)
    });
    net.max_delay = 200_000;
    let p = net.peer(0, 1);
    let n = 300;
    // Same tag for all: receives must take messages in send order.
    for k in 0..n {
        let len = [0, 10, 9000, 70_000][k % 4];
        let mut d = pattern(k as u64, len);
        if len > 0 {
            d[0] = k as u8;
        }
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(d),
                5,
                Some(k as u64),
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        if k % 50 == 0 {
            net.step();
        }
    }
    net.run(50);
    for k in 0..n {
        net.eps[1]
            .trecv(
                net.now,
                owned(70_000),
                None,
                5,
                0,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
    }
    net.run(200_000);
    let rc = net.take(1);
    assert_eq!(rc.len(), n);
    let mut by_ctx: Vec<_> = rc.iter().collect();
    by_ctx.sort_by_key(|c| c.context);
    for (k, c) in by_ctx.iter().enumerate() {
        assert_eq!(c.data, k as u64, "receive {k} got message {}", c.data);
        assert_eq!(
            c.flags & CompFlags::REMOTE_CQ_DATA,
            CompFlags::REMOTE_CQ_DATA
        );
        let len = [0, 10, 9000, 70_000][k % 4];
        assert_eq!(c.len, len);
        let mut want = pattern(k as u64, len);
        if len > 0 {
            want[0] = k as u8;
        }
        assert_eq!(&c.iov.as_ref().unwrap().to_vec()[..len], &want[..]);
    }
    assert_eq!(net.take(0).len(), n);
}

#[test]
fn remote_cq_data_and_tag_reported() {
    let mut net = Net::new(2, 9, cfg);
    let p = net.peer(0, 1);
    net.eps[1]
        .trecv(net.now, owned(8), None, 0, u64::MAX, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(b"abc".to_vec()),
            0xfeed,
            Some(0x1122_3344_5566_7788),
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    assert_eq!(rc[0].data, 0x1122_3344_5566_7788);
    assert_eq!(rc[0].tag, 0xfeed);
    assert_eq!(
        rc[0].flags,
        CompFlags::RECV | CompFlags::TAGGED | CompFlags::REMOTE_CQ_DATA
    );
    assert_eq!(rc[0].src, Some(net.peer(1, 0)));
    assert_eq!(rc[0].len, 3);
}

#[test]
fn truncation_reports_etrunc_with_olen() {
    let mut net = Net::new(2, 11, cfg);
    let p = net.peer(0, 1);
    for (k, &len) in [100usize, 20_000, 200_000].iter().enumerate() {
        let data = pattern(k as u64, len);
        net.eps[1]
            .trecv(net.now, owned(50), None, 1, 0, k as u64, OpFlags::empty())
            .unwrap();
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(data.clone()),
                1,
                None,
                0,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(100_000);
        let rc = net.take(1);
        assert_eq!(rc.len(), 1);
        let e = rc[0].err.as_ref().expect("truncation error");
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.olen, len - 50);
        assert_eq!(rc[0].len, 50);
        assert_eq!(rc[0].iov.as_ref().unwrap().to_vec(), data[..50].to_vec());
        // The sender still completes normally.
        let sc = net.take(0);
        assert!(sc[0].err.is_none());
    }
}

#[test]
fn inject_buffer_is_reusable_at_once() {
    let mut net = Net::new(2, 13, cfg);
    let p = net.peer(0, 1);
    let mut buf = b"first".to_vec();
    net.eps[0].tinject(net.now, p, &buf, 1, None).unwrap();
    buf.copy_from_slice(b"XXXXX");
    net.eps[0].tinject(net.now, p, &buf, 1, Some(9)).unwrap();
    // FI_INJECT on tsend: completes at once, buffer returned.
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(b"third".to_vec()),
            1,
            None,
            77,
            OpFlags::INJECT,
        )
        .unwrap();
    let sc: Vec<_> = std::iter::from_fn(|| net.eps[0].poll_completion()).collect();
    assert_eq!(sc.len(), 3);
    assert!(!sc[0].report && !sc[1].report, "fi_inject has no event");
    assert!(sc[2].report);
    assert_eq!(sc[2].context, 77);
    assert_eq!(
        sc[2].iov.as_ref().unwrap().to_vec(),
        b"third",
        "buffer handed back"
    );
    assert!(
        net.eps[0].inject(net.now, p, &vec![0; 1000], None).is_err(),
        "over inject_size"
    );
    for k in 0..3 {
        net.eps[1]
            .trecv(net.now, owned(16), None, 1, 0, k, OpFlags::empty())
            .unwrap();
    }
    net.run(1000);
    let rc = net.take(1);
    let got: Vec<_> = rc
        .iter()
        .map(|c| c.iov.as_ref().unwrap().to_vec()[..c.len].to_vec())
        .collect();
    assert_eq!(
        got,
        vec![b"first".to_vec(), b"XXXXX".to_vec(), b"third".to_vec()]
    );
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
}

#[test]
fn selective_completion_suppresses_but_counts() {
    let mut net = Net::new(2, 15, |i| Config {
        tx_selective: true,
        rx_selective: true,
        ..cfg(i)
    });
    let p = net.peer(0, 1);
    net.eps[1]
        .trecv(net.now, owned(4), None, 1, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[1]
        .trecv(net.now, owned(4), None, 1, 0, 2, OpFlags::COMPLETION)
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![1]),
            1,
            None,
            3,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![2]),
            1,
            None,
            4,
            OpFlags::COMPLETION,
        )
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    let mut sc = net.take(0);
    // Send completions follow datagram acks, which come in any order.
    sc.sort_by_key(|c| c.context);
    let rep = |v: &Vec<srd_fi::rdm::Completion>| {
        v.iter().map(|c| (c.context, c.report)).collect::<Vec<_>>()
    };
    assert_eq!(rep(&rc), vec![(1, false), (2, true)]);
    assert_eq!(rep(&sc), vec![(3, false), (4, true)]);
}

#[test]
fn delivery_complete_waits_for_the_receiver() {
    let mut net = Net::new(2, 17, cfg);
    let p = net.peer(0, 1);
    for (k, len) in [10usize, 30_000, 500_000].into_iter().enumerate() {
        let k = k as u64;
        net.eps[0]
            .tsend(
                net.now,
                p,
                UserIov::from_vec(pattern(k, len)),
                k,
                None,
                k,
                OpFlags::DELIVERY_COMPLETE,
            )
            .unwrap();
        net.run(2000);
        // No receive yet: every datagram is acked, but not delivered.
        assert!(
            net.take(0).is_empty(),
            "len {len}: no completion before the match"
        );
        net.eps[1]
            .trecv(net.now, owned(len), None, k, 0, k, OpFlags::empty())
            .unwrap();
        net.run(100_000);
        let rc = net.take(1);
        let sc = net.take(0);
        assert_eq!(rc.len(), 1);
        assert_eq!(sc.len(), 1, "len {len}: completes after the receive");
        assert!(sc[0].err.is_none());
    }
    // A plain send completes when acked, without a receive.
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::from_vec(vec![1; 10]),
            9,
            None,
            9,
            OpFlags::empty(),
        )
        .unwrap();
    net.run(1000);
    assert_eq!(net.take(0).len(), 1);
}

#[test]
fn zero_length_with_empty_iovs() {
    let mut net = Net::new(2, 19, cfg);
    let p = net.peer(0, 1);
    net.eps[1]
        .trecv(net.now, UserIov::empty(), None, 3, 0, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(
            net.now,
            p,
            UserIov::empty(),
            3,
            Some(5),
            2,
            OpFlags::empty(),
        )
        .unwrap();
    net.eps[0]
        .send(net.now, p, UserIov::empty(), None, 4, OpFlags::empty())
        .unwrap();
    net.run(1000);
    net.eps[1]
        .recv(net.now, UserIov::empty(), None, 5, OpFlags::empty())
        .unwrap();
    net.run(1000);
    let rc = net.take(1);
    assert_eq!(rc.len(), 2);
    assert!(rc.iter().all(|c| c.len == 0 && c.err.is_none()));
    assert_eq!(rc[0].data, 5);
    assert_eq!(net.take(0).len(), 2);
}
