//! Zero-copy packets at the protocol level (`set_peer_zero_copy`): medium
//! and long-CTS data leave their payload in the send's iov (`TxInfo::ext`,
//! gathered by the harness as the transport gathers it), across segment
//! boundaries of multi-segment iovs, under reordering; a range over more
//! than `EXT_PIECES` segments is copied. Every byte arrives; a send that is
//! over no longer resolves.

mod rdm_common;

use rdm_common::{Net, cfg, owned, pattern};
use srd_fi::mem::UserIov;
use srd_fi::rdm::{ExtSlice, OpFlags};

/// `data` cut into segments of `seg` bytes.
fn segmented(data: &[u8], seg: usize) -> UserIov {
    UserIov::from_vecs(data.chunks(seg.max(1)).map(<[u8]>::to_vec).collect())
}

#[test]
fn zero_copy_packets_carry_every_byte_across_segments() {
    let mut net = Net::new(2, 7, cfg);
    for (i, j) in [(0, 1), (1, 0)] {
        let p = net.peer(i, j);
        net.eps[i].set_peer_zero_copy(p, true).unwrap();
    }
    let p = net.peer(0, 1);
    let m = net.eps[0].medium_max();
    // (size, segment size): whole buffers, segments inside packets (a
    // packet spans several: by reference up to 3, copied beyond), 1-byte
    // segments (always copied).
    let cases = [
        (m, usize::MAX),
        (m + 1, 5000),
        (300_000, 3000),
        (300_000, 1000),
        (200_000, 97),
        (70_000, 1),
        (4 << 20, usize::MAX),
    ];
    for (k, &(len, seg)) in cases.iter().enumerate() {
        let data = pattern(k as u64, len);
        net.eps[1]
            .recv(net.now, owned(len), None, 100 + k as u64, OpFlags::empty())
            .unwrap();
        let before = net.eps[0].stats().zc_packets;
        net.eps[0]
            .send(
                net.now,
                p,
                segmented(&data, seg),
                None,
                k as u64,
                OpFlags::empty(),
            )
            .unwrap();
        net.run(200_000);
        let rc = net.take(1);
        assert_eq!(rc.len(), 1, "{len}/{seg}: one receive");
        assert!(rc[0].err.is_none(), "{len}/{seg}: {:?}", rc[0].err);
        assert_eq!(
            rc[0].iov.as_ref().unwrap().to_vec(),
            data,
            "{len}/{seg}: bytes"
        );
        let sc = net.take(0);
        assert_eq!(sc.len(), 1);
        assert!(sc[0].err.is_none());
        let by_ref = net.eps[0].stats().zc_packets - before;
        // A packet (about one MTU) spans at most 3 segments of half an MTU
        // or more, and at least 5 of under a quarter.
        let mtu = net.eps[0].config().mtu;
        if seg.saturating_mul(2) >= mtu {
            assert!(by_ref > 0, "{len}/{seg}: data went by reference");
        } else if seg * 4 < mtu {
            assert_eq!(
                by_ref, 0,
                "{len}/{seg}: too many segments per packet: copied"
            );
        }
        // The send is over: its token resolves to nothing.
        let tok = 1u64 << 56;
        let e = ExtSlice { off: 0, len: 1 };
        assert!(!net.eps[0].ext_copy(tok, e, &mut [0u8; 1]));
    }
    assert_eq!(net.eps[0].pending_ops(), (0, 0));
    assert!(net.eps[0].stats().zc_bytes > 4 << 20);
}
