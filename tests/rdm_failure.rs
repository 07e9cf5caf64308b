//! Dead peers in the sans-IO RDM engine: liveness probes of silent peers
//! that operations wait on, directed receives, and messages half-arrived
//! from a peer that broke.

mod rdm_common;

use rdm_common::{Net, cfg, owned};
use srd_fi::rdm::Completion;
use srd_fi::rdm::ErrorKind;
use srd_fi::rdm::OpFlags;

const SEC: u64 = 1_000_000_000;
const LONG: usize = 1 << 20;

fn errs(c: &[Completion]) -> Vec<(u64, Option<ErrorKind>)> {
    let mut v: Vec<_> = c
        .iter()
        .map(|c| (c.context, c.err.as_ref().map(|e| e.kind)))
        .collect();
    v.sort();
    v
}

/// Endpoint 0 waits on endpoint 1: a long send it holds as unexpected (no
/// CTS), a receive directed at it, and a receive from anyone.
fn waiting_on_one() -> Net {
    let mut net = Net::new(2, 7, cfg);
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(net.now, p, owned(LONG), 5, None, 1, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .trecv(net.now, owned(64), Some(p), 9, 0, 2, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .trecv(net.now, owned(64), None, 8, 0, 3, OpFlags::empty())
        .unwrap();
    net.run(1000);
    assert!(net.take(0).is_empty(), "everything waits");
    net
}

#[test]
fn a_dead_peer_that_operations_only_wait_on_is_probed_and_failed() {
    let mut net = waiting_on_one();
    // Endpoint 1 dies: nothing of 0's is in flight, only probes can tell.
    net.fail_to.insert(1);
    net.advance(3 * SEC);
    let c = net.take(0);
    assert_eq!(
        errs(&c),
        vec![
            (1, Some(ErrorKind::Unreachable)),
            (2, Some(ErrorKind::Unreachable))
        ],
        "the send and the directed receive fail, the open receive stays"
    );
    assert!(net.eps[0].stats().probes >= 1);
    // Later: a directed receive fails at once, a send too.
    let p = net.peer(0, 1);
    net.eps[0]
        .trecv(net.now, owned(8), Some(p), 9, 0, 4, OpFlags::empty())
        .unwrap();
    net.eps[0]
        .tsend(net.now, p, owned(8), 9, None, 5, OpFlags::empty())
        .unwrap();
    net.run(100);
    assert_eq!(
        errs(&net.take(0)),
        vec![
            (4, Some(ErrorKind::Unreachable)),
            (5, Some(ErrorKind::Unreachable))
        ]
    );
    assert_eq!(net.eps[0].pending_ops(), (0, 1), "only the open receive");
}

#[test]
fn a_live_peer_answers_its_probes_and_nothing_fails() {
    let mut net = waiting_on_one();
    net.advance(5 * SEC);
    assert!(net.take(0).is_empty(), "no failure of a live peer");
    assert!(net.eps[0].stats().probes >= 1, "probes were sent");
    // It finally takes the message: all goes through.
    let p = net.peer(1, 0);
    net.eps[1]
        .trecv(net.now, owned(LONG), Some(p), 5, 0, 7, OpFlags::empty())
        .unwrap();
    net.run(100_000);
    assert_eq!(errs(&net.take(0)), vec![(1, None)]);
    assert_eq!(errs(&net.take(1)), vec![(7, None)]);
}

#[test]
fn half_arrived_message_of_a_broken_peer_fails_its_receive() {
    let mut net = Net::new(2, 9, cfg);
    let p = net.peer(0, 1);
    net.eps[0]
        .tsend(net.now, p, owned(LONG), 5, None, 1, OpFlags::empty())
        .unwrap();
    net.run(1000);
    // Endpoint 1 holds the long message's first packet as unexpected; its
    // sender is then found dead.
    let q = net.peer(1, 0);
    net.eps[1].peer_unreachable(q);
    assert_eq!(net.eps[1].peer_broken(q), Some(ErrorKind::Unreachable));
    // A receive from anyone matches it: the rest will not come.
    net.eps[1]
        .trecv(net.now, owned(LONG), None, 5, 0, 2, OpFlags::empty())
        .unwrap();
    net.run(1000);
    assert_eq!(errs(&net.take(1)), vec![(2, Some(ErrorKind::Unreachable))]);
    assert_eq!(net.eps[1].pending_ops(), (0, 0));
}
