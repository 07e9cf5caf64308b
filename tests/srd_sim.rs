//! Deterministic simulation tests of the SRD device core (DESIGN §7.2):
//! exactly-once delivery with intact bytes under loss, duplication,
//! reordering and corruption; dead paths; vanished peers; RNR; bounded memory.
//! All times asserted are virtual (the simulator's clock), never wall clock.

use srd_fi::srd::sim::{BlackHole, NetConfig, Sim, device_addr};
use srd_fi::srd::{
    Ah, Cq, DeviceConfig, Opcode, QpAttr, QpState, QpType, Qpn, RecvWr, SendWr, SrdError, WcStatus,
};

const QKEY: u32 = 0x5152_4400;
const MS: u64 = 1_000_000;

struct Node {
    qp: Qpn,
    cq: Cq,
    /// ahs[j]: handle for device j.
    ahs: Vec<Ah>,
}

struct Net {
    sim: Sim,
    nodes: Vec<Node>,
}

fn setup(net: NetConfig, cfg: DeviceConfig, n: usize, qp_type: QpType) -> Net {
    let mut sim = Sim::new(net, vec![cfg.clone(); n]).expect("sim");
    let mut nodes = Vec::new();
    for i in 0..n {
        let d = &mut sim.devices[i];
        let pd = d.alloc_pd().unwrap();
        let cq = d.create_cq(cfg.sq_depth + cfg.rq_depth).unwrap();
        let qp = d
            .create_qp(QpAttr { pd, qp_type, qkey: QKEY, send_cq: cq, recv_cq: cq, sq_depth: 0, rq_depth: 0 })
            .unwrap();
        for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
            d.modify_qp(qp, s).unwrap();
        }
        let ahs = (0..n).map(|j| d.create_ah(pd, device_addr(j)).unwrap()).collect();
        nodes.push(Node { qp, cq, ahs });
    }
    Net { sim, nodes }
}

/// Message `id`: 8-byte id, then bytes derived from it; length varies.
fn message(id: u64, buf: &mut Vec<u8>) {
    let len = 8 + usize::try_from(id % 57).unwrap();
    buf.clear();
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend((8..len).map(|i| (id.wrapping_mul(31).wrapping_add(i as u64 * 7) & 0xff) as u8));
}

fn check_message(data: &[u8]) -> u64 {
    let id = u64::from_le_bytes(data[..8].try_into().unwrap());
    let mut want = Vec::new();
    message(id, &mut want);
    assert_eq!(data, &want[..], "payload of message {id} corrupted");
    id
}

#[derive(Debug, Default)]
struct Outcome {
    virtual_ns: u64,
    sent_ok: u64,
    received: u64,
    duplicates: u64,
    max_in_use: u32,
    max_in_flight: u32,
}

/// Streams `count` messages from device 0 to device 1 and checks every one
/// arrives exactly once, intact, within `deadline` virtual ns.
fn stream(net: &mut Net, count: u64, deadline: u64) -> Outcome {
    let cfg = net.sim.devices[0].config().clone();
    let rx_qp = net.nodes[1].qp;
    for k in 0..cfg.rq_depth {
        net.sim.devices[1]
            .post_recv(rx_qp, RecvWr { wr_id: u64::from(k), buf: vec![0; 64] })
            .unwrap();
    }
    let mut seen = vec![false; usize::try_from(count).unwrap()];
    let mut out = Outcome::default();
    let mut next_id = 0u64;
    let mut msg = Vec::new();
    let start = net.sim.now;
    while out.sent_ok < count || out.received < count {
        let (tx_qp, tx_cq, ah) = (net.nodes[0].qp, net.nodes[0].cq, net.nodes[0].ahs[1]);
        let d0 = &mut net.sim.devices[0];
        while next_id < count && d0.send_room(tx_qp) > 0 {
            message(next_id, &mut msg);
            let wr = SendWr { wr_id: next_id, ah, remote_qpn: rx_qp, remote_qkey: QKEY, data: &msg };
            d0.post_send(tx_qp, wr).unwrap();
            next_id += 1;
        }
        while let Some(c) = d0.poll_cq(tx_cq) {
            assert_eq!(c.opcode, Opcode::Send);
            assert_eq!(c.status, WcStatus::Success, "send {} failed at {}", c.wr_id, net.sim.now);
            out.sent_ok += 1;
        }
        let rx_cq = net.nodes[1].cq;
        let d1 = &mut net.sim.devices[1];
        while let Some(c) = d1.poll_cq(rx_cq) {
            assert_eq!(c.opcode, Opcode::Recv);
            assert_eq!(c.status, WcStatus::Success);
            let buf = c.buf.expect("receive hands its buffer back");
            let id = check_message(&buf[..c.len]);
            let s = &mut seen[usize::try_from(id).unwrap()];
            if *s {
                out.duplicates += 1;
            }
            *s = true;
            out.received += 1;
            assert_eq!(c.src, Some((device_addr(0), net.nodes[0].qp)));
            d1.post_recv(rx_qp, RecvWr { wr_id: c.wr_id, buf }).unwrap();
        }
        for d in &net.sim.devices {
            let u = d.usage();
            assert!(u.tx_buffers_in_use <= cfg.tx_buffers);
            assert!(u.tx_buffers_allocated <= cfg.tx_buffers);
            assert!(u.in_flight <= cfg.window);
            assert!(u.queued <= cfg.tx_buffers + cfg.window);
            assert!(u.ctrl_queued <= cfg.ctrl_queue + u.peers);
            assert!(u.recv_posted <= cfg.rq_depth);
            assert!(u.cq_entries <= cfg.sq_depth + cfg.rq_depth);
            out.max_in_use = out.max_in_use.max(u.tx_buffers_in_use);
            out.max_in_flight = out.max_in_flight.max(u.in_flight);
        }
        assert!(net.sim.now - start <= deadline, "stalled: {out:?} at {}", net.sim.now);
        if !net.sim.step(start + deadline) && (out.sent_ok < count || out.received < count) {
            let d0 = &net.sim.devices[0];
            panic!("no events left but not done: {out:?} {:?} {:?} {:?} rx {:?}", d0.stats(), d0.usage(), d0.peer_info(device_addr(1)), net.sim.devices[1].stats());
        }
    }
    assert_eq!(out.duplicates, 0);
    assert!(seen.iter().all(|&s| s));
    out.virtual_ns = net.sim.now - start;
    out
}

fn lossy(loss_ppm: u32, seed: u64) -> NetConfig {
    NetConfig { seed, loss_ppm, ..NetConfig::default() }
}

fn run_stream(loss_ppm: u32, deadline: u64) -> (Outcome, Net) {
    let mut net = setup(lossy(loss_ppm, 7), DeviceConfig::default(), 2, QpType::Srd);
    let out = stream(&mut net, 100_000, deadline);
    (out, net)
}

#[test]
fn stream_100k_no_loss() {
    let (out, net) = run_stream(0, 50 * MS);
    let s = net.sim.devices[0].stats();
    assert_eq!(s.retransmits, 0);
    assert_eq!(s.rto_events, 0);
    assert_eq!(net.sim.devices[1].stats().duplicates, 0);
    eprintln!("0%: {out:?}");
}

#[test]
fn stream_100k_1pct_loss() {
    let (out, net) = run_stream(10_000, 500 * MS);
    assert!(net.sim.devices[0].stats().retransmits > 0);
    eprintln!("1%: {out:?} {:?}", net.sim.devices[0].stats());
}

#[test]
fn stream_100k_10pct_loss() {
    let (out, net) = run_stream(100_000, 1_000 * MS);
    eprintln!("10%: {out:?} {:?}", net.sim.devices[0].stats());
}

#[test]
fn stream_100k_30pct_loss() {
    let (out, net) = run_stream(300_000, 2_000 * MS);
    let s = net.sim.devices[0].stats();
    assert_eq!(s.retry_exceeded, 0);
    eprintln!("30%: {out:?} {s:?}");
}
