//! Scale workloads over the simulator's switched network: N SRD devices,
//! all-to-all or incast, every message checked (exactly once, intact
//! bytes), with the figures the scale report needs: virtual completion
//! time, goodput against link capacity, Jain's fairness over senders,
//! retransmits and drops, queue high-water marks, bytes held per idle peer.
//! Shared by tests/srd_scale.rs (CI sizes) and benches/srd_scale.rs (full
//! sizes). Everything is virtual time: deterministic for a given seed.
#![allow(dead_code)]

use srd_fi::srd::sim::{LinkConfig, NetConfig, Sim, device_addr};
use srd_fi::srd::{
    Ah, Cq, Device, DeviceConfig, Opcode, Pd, QpAttr, QpState, QpType, Qpn, RecvWr, SendWr,
    WcStatus,
};

const QKEY: u32 = 0x5ca1_e000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every device sends `msgs` messages to every other device.
    AllToAll,
    /// Devices 1..=senders each send `msgs` messages to device 0.
    Incast { senders: usize },
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub devices: usize,
    pub pattern: Pattern,
    /// Messages per (sender, receiver) pair.
    pub msgs: u32,
    /// Payload bytes per message (>= 16).
    pub size: usize,
    pub link: LinkConfig,
    pub net: NetConfig,
    pub dev: DeviceConfig,
    /// Give up (panic) past this virtual time.
    pub deadline: u64,
    /// Measure the heap bytes a device holds after the traffic, with this
    /// live-bytes probe (a counting global allocator in the binary).
    pub live_bytes: Option<fn() -> i64>,
}

/// 100 Gb/s links, 1 MiB per switch port, 64 KiB NIC queue.
pub fn default_link() -> LinkConfig {
    LinkConfig {
        rate: 12_500_000_000,
        queue_bytes: 1 << 20,
        nic_bytes: 64 << 10,
    }
}

/// 2 µs one-way propagation, no jitter (the switch reorders enough).
pub fn default_net(seed: u64) -> NetConfig {
    NetConfig {
        seed,
        delay: 2_000,
        jitter: 0,
        ..NetConfig::default()
    }
}

/// The device configuration for a datacenter fabric (what the scale runs
/// use besides the defaults): delay-based congestion control with a 25 µs
/// RTT target, an RTO floor of 200 µs and a first window of 8 packets.
/// The defaults (loss-based AIMD that ignores isolated losses, RTO from
/// 3 SRTT with a 50 µs floor, first window of 32) are
/// tuned for the kernel UDP path, whose timing noise on a loaded host
/// reaches milliseconds.
pub fn datacenter(mut cfg: DeviceConfig) -> DeviceConfig {
    cfg.cc_target_delay = 25_000;
    cfg.min_rto = 200_000;
    cfg.initial_rto = 1_000_000;
    cfg.cwnd_init = 8;
    cfg.cwnd_min = 8;
    cfg
}

impl Workload {
    pub fn new(devices: usize, pattern: Pattern, msgs: u32, size: usize) -> Workload {
        Workload {
            devices,
            pattern,
            msgs,
            size,
            link: default_link(),
            net: default_net(1),
            dev: DeviceConfig {
                max_payload: size.max(16),
                ..DeviceConfig::default()
            },
            deadline: 60_000_000_000,
            live_bytes: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub name: String,
    pub devices: usize,
    pub senders: usize,
    pub messages: u64,
    pub payload_bytes: u64,
    /// Virtual ns from the first post to the last completion.
    pub virtual_ns: u64,
    /// What the busiest link had to carry (payload + header) at link rate:
    /// the best possible completion time.
    pub ideal_ns: u64,
    /// Payload bytes per second.
    pub goodput: f64,
    /// Capacity of the links the pattern is bound by, bytes per second.
    pub capacity: f64,
    /// Jain's index over per-sender throughput (bytes / own finish time),
    /// and over per-sender finish times.
    pub jain: f64,
    pub jain_finish: f64,
    /// "default" or "datacenter" (see `datacenter`).
    pub profile: &'static str,
    /// Earliest and latest sender finish, virtual ns.
    pub first_finish: u64,
    pub last_finish: u64,
    pub retransmits: u64,
    pub rto_events: u64,
    pub fast_retransmits: u64,
    pub rnr_naks: u64,
    pub duplicates_rx: u64,
    pub queue_drops: u64,
    pub max_port_queue: u64,
    /// High-water marks over devices of `Usage::queued` and `in_flight`.
    pub max_dev_queued: u32,
    pub max_dev_in_flight: u32,
    pub max_tx_buffers: u32,
    pub datagrams: u64,
    /// Heap bytes held after the traffic, above a device that never talked
    /// and beyond its send pool, divided by the peers it knows (device 0:
    /// the incast receiver, or any all-to-all member).
    pub bytes_per_idle_peer: Option<f64>,
    pub idle_peers: u32,
    /// Bytes of the device-wide send pool at the end (not counted per peer).
    pub pool_bytes: i64,
}

impl Report {
    pub fn goodput_frac(&self) -> f64 {
        self.goodput / self.capacity
    }
    pub fn efficiency(&self) -> f64 {
        self.ideal_ns as f64 / self.virtual_ns.max(1) as f64
    }
    pub fn header() -> &'static str {
        "| workload | profile | msgs | virtual time | ideal | goodput (of capacity) | Jain (tput / finish) | retx | RTOs | queue drops | max port queue | bytes/idle peer |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    }
    pub fn row(&self) -> String {
        let per_peer = self
            .bytes_per_idle_peer
            .map_or("-".to_string(), |b| format!("{b:.0}"));
        format!(
            "| {} | {} | {} | {:.3} ms | {:.3} ms | {:.2} Gb/s ({:.1}%) | {:.3} / {:.3} | {} | {} | {} | {} KiB | {} |",
            self.name,
            self.profile,
            self.messages,
            self.virtual_ns as f64 / 1e6,
            self.ideal_ns as f64 / 1e6,
            self.goodput * 8.0 / 1e9,
            100.0 * self.goodput_frac(),
            self.jain,
            self.jain_finish,
            self.retransmits,
            self.rto_events,
            self.queue_drops,
            self.max_port_queue / 1024,
            per_peer,
        )
    }
}

/// Jain's fairness index of `xs`: 1 when all equal, 1/n when one has all.
pub fn jain(xs: &[f64]) -> f64 {
    let s: f64 = xs.iter().sum();
    let s2: f64 = xs.iter().map(|x| x * x).sum();
    if s2 == 0.0 {
        return 1.0;
    }
    s * s / (xs.len() as f64 * s2)
}

struct Node {
    pd: Pd,
    qp: Qpn,
    cq: Cq,
    /// Destinations in posting order, `msgs` rounds.
    dsts: Vec<u32>,
    /// AH per destination device (dense; only those used are created).
    ahs: Vec<Option<Ah>>,
    /// Next index into the (round, dst) sequence to post.
    cursor: usize,
    sent_ok: u64,
    to_send: u64,
    finish: u64,
    bytes_sent: u64,
}

/// Fills `buf` with message (src, dst, seq): a 16-byte header, then a word
/// pattern derived from it.
fn fill(buf: &mut [u8], src: u32, dst: u32, seq: u32) {
    buf[..4].copy_from_slice(&src.to_le_bytes());
    buf[4..8].copy_from_slice(&dst.to_le_bytes());
    buf[8..12].copy_from_slice(&seq.to_le_bytes());
    buf[12..16].copy_from_slice(&0x5eed_u32.to_le_bytes());
    let w = pattern_word(src, dst, seq);
    for (k, c) in buf[16..].chunks_mut(8).enumerate() {
        let v = w.wrapping_add(k as u64).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

fn pattern_word(src: u32, dst: u32, seq: u32) -> u64 {
    let x = (u64::from(src) << 40) ^ (u64::from(dst) << 20) ^ u64::from(seq);
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Checks a received payload; returns (src, seq).
fn check(buf: &[u8], me: u32, size: usize) -> (u32, u32) {
    assert_eq!(buf.len(), size, "length");
    let word = |r: std::ops::Range<usize>| u32::from_le_bytes(buf[r].try_into().unwrap());
    let (src, dst, seq) = (word(0..4), word(4..8), word(8..12));
    assert_eq!(dst, me, "message for {dst} delivered to {me}");
    assert_eq!(word(12..16), 0x5eed);
    let w = pattern_word(src, dst, seq);
    for (k, c) in buf[16..].chunks(8).enumerate() {
        let v = w.wrapping_add(k as u64).to_le_bytes();
        assert_eq!(c, &v[..c.len()], "payload of {src}->{dst} #{seq} corrupted");
    }
    (src, seq)
}

fn setup_device(d: &mut Device, cfg: &DeviceConfig, recv_size: usize) -> (Pd, Qpn, Cq) {
    let pd = d.alloc_pd().unwrap();
    let cq = d.create_cq(cfg.sq_depth + cfg.rq_depth).unwrap();
    let qp = d
        .create_qp(QpAttr {
            pd,
            qp_type: QpType::Srd,
            qkey: QKEY,
            send_cq: cq,
            recv_cq: cq,
            sq_depth: 0,
            rq_depth: 0,
        })
        .unwrap();
    for s in [QpState::Init, QpState::Rtr, QpState::Rts] {
        d.modify_qp(qp, s).unwrap();
    }
    for k in 0..cfg.rq_depth {
        d.post_recv(
            qp,
            RecvWr {
                wr_id: u64::from(k),
                buf: vec![0; recv_size],
            },
        )
        .unwrap();
    }
    (pd, qp, cq)
}

/// Runs the workload; panics on any lost, duplicated or corrupted message,
/// any failed completion, or a stall past the deadline.
pub fn run(w: &Workload) -> Report {
    let n = w.devices;
    let k = w.msgs;
    assert!(w.size >= 16 && w.size <= w.dev.max_payload);
    let mut sim = Sim::new(w.net.clone(), vec![w.dev.clone(); n]).expect("sim");
    sim.set_links(Some(w.link));
    let senders: Vec<usize> = match w.pattern {
        Pattern::AllToAll => (0..n).collect(),
        Pattern::Incast { senders } => {
            assert!(senders < n);
            (1..=senders).collect()
        }
    };
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let d = &mut sim.devices[i];
        let (pd, qp, cq) = setup_device(d, &w.dev, w.size);
        let mut dsts = Vec::new();
        if senders.contains(&i) || matches!(w.pattern, Pattern::AllToAll) {
            match w.pattern {
                Pattern::AllToAll => {
                    // Rotated order: at any moment the senders spread over
                    // all receivers instead of all hitting device 0 first.
                    dsts.extend((1..n).map(|r| ((i + r) % n) as u32));
                }
                Pattern::Incast { .. } => {
                    if i != 0 {
                        dsts.push(0);
                    }
                }
            }
        }
        nodes.push(Node {
            pd,
            qp,
            cq,
            to_send: dsts.len() as u64 * u64::from(k),
            dsts,
            ahs: vec![None; n],
            cursor: 0,
            sent_ok: 0,
            finish: 0,
            bytes_sent: 0,
        });
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let d = &mut sim.devices[i];
        for &dst in &node.dsts {
            let dst = dst as usize;
            if node.ahs[dst].is_none() {
                node.ahs[dst] = Some(d.create_ah(node.pd, device_addr(dst)).expect("create_ah"));
            }
        }
    }
    let baseline = w.live_bytes.map(|live| {
        // A device set up the same way that never talked to anyone.
        let mut d = Device::new(sim.devices[0].config().clone()).unwrap();
        setup_device(&mut d, &w.dev, w.size);
        let before = live();
        drop(d);
        before - live()
    });
    sim.set_tracked(true);

    let total: u64 = nodes.iter().map(|x| x.to_send).sum();
    let qps: Vec<Qpn> = nodes.iter().map(|x| x.qp).collect();
    // Seen bits by (src, dst, seq) → index src*n*k + dst*k + seq.
    let idx = |src: usize, dst: usize, seq: u32| (src * n + dst) * k as usize + seq as usize;
    let mut seen = vec![0u64; (n * n * k as usize).div_ceil(64)];
    let mut received = 0u64;
    let mut sent_ok = 0u64;
    let mut payload = vec![0u8; w.size];
    let mut report = Report {
        devices: n,
        senders: senders.len(),
        messages: total,
        ..Report::default()
    };
    let start = sim.now;

    let post = |sim: &mut Sim, nodes: &mut [Node], i: usize, payload: &mut [u8]| {
        let node = &mut nodes[i];
        let d = sim.dev(i);
        let per_round = node.dsts.len();
        while (node.cursor as u64) < node.to_send && d.send_room(node.qp) > 0 {
            let seq = (node.cursor / per_round) as u32;
            let dst = node.dsts[node.cursor % per_round];
            fill(payload, i as u32, dst, seq);
            let wr = SendWr {
                wr_id: node.cursor as u64,
                ah: node.ahs[dst as usize].unwrap(),
                remote_qpn: qps[dst as usize],
                remote_qkey: QKEY,
                data: payload,
            };
            d.post_send(node.qp, wr).expect("post_send");
            node.cursor += 1;
        }
    };
    for i in 0..n {
        post(&mut sim, &mut nodes, i, &mut payload);
    }
    let trace: u64 = std::env::var("SCALE_TRACE")
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let mut next_trace = 0u64;
    let mut steps = 0u64;
    let mut active = Vec::new();
    let mut bufs: Vec<(u64, Vec<u8>)> = Vec::new();
    while received < total || sent_ok < total {
        if !sim.step(w.deadline) {
            panic!(
                "{}: stalled at {} ns: {received}/{total} received, {sent_ok}/{total} sends completed",
                w_name(w),
                sim.now
            );
        }
        if trace > 0 && sim.now >= next_trace {
            next_trace = sim.now + trace;
            let a0 = device_addr(0);
            let (mut cw, mut fl, mut paced, mut nsend) = (0u64, 0u64, 0u32, 0u32);
            for &i in &senders {
                if let Some(p) = sim.devices[i].peer_info(a0) {
                    cw += u64::from(p.cwnd);
                    fl += u64::from(p.in_flight);
                    nsend += 1;
                    if p.in_flight == 0 {
                        paced += 1;
                    }
                }
            }
            let ps = sim.port_stats(0);
            eprintln!(
                "t={} fwd={} drops={} cwnd_sum={cw} inflight={fl} idle={paced}/{nsend} rx={received}",
                sim.now, ps.forwarded, ps.drops
            );
        }
        steps += 1;
        if steps.is_multiple_of(4096) {
            // Gauges are O(peers) to read: sample them.
            for d in &sim.devices {
                let u = d.usage();
                report.max_dev_queued = report.max_dev_queued.max(u.queued);
                report.max_dev_in_flight = report.max_dev_in_flight.max(u.in_flight);
                report.max_tx_buffers = report.max_tx_buffers.max(u.tx_buffers_in_use);
            }
        }
        sim.take_active(&mut active);
        for i in active.drain(..) {
            let cq = nodes[i].cq;
            let qp = nodes[i].qp;
            let mut more_room = false;
            {
                let d = &mut sim.devices[i];
                while let Some(c) = d.poll_cq(cq) {
                    assert_eq!(
                        c.status,
                        WcStatus::Success,
                        "{:?} on device {i} at {}",
                        c.opcode,
                        sim.now
                    );
                    match c.opcode {
                        Opcode::Send => {
                            let node = &mut nodes[i];
                            node.sent_ok += 1;
                            node.bytes_sent += c.len as u64;
                            sent_ok += 1;
                            if node.sent_ok == node.to_send {
                                node.finish = sim.now;
                            }
                            more_room = true;
                        }
                        Opcode::Recv => {
                            let buf = c.buf.expect("receive buffer");
                            let (src, seq) = check(&buf[..c.len], i as u32, w.size);
                            let b = idx(src as usize, i, seq);
                            let (wd, bit) = (b / 64, 1u64 << (b % 64));
                            if seen[wd] & bit != 0 {
                                report.duplicates_rx += 1;
                            }
                            seen[wd] |= bit;
                            received += 1;
                            bufs.push((c.wr_id, buf));
                        }
                    }
                }
                for (wr_id, buf) in bufs.drain(..) {
                    d.post_recv(qp, RecvWr { wr_id, buf }).expect("repost");
                }
            }
            sim.touch(i);
            if more_room {
                post(&mut sim, &mut nodes, i, &mut payload);
            }
        }
    }
    let end = sim.now;
    assert_eq!(report.duplicates_rx, 0, "duplicate deliveries");
    assert!(seen.iter().map(|x| u64::from(x.count_ones())).sum::<u64>() == total);

    // Let the last acks and timers settle: nothing may stay in flight.
    while sim.step(end + 1_000_000_000) {}
    for d in &sim.devices {
        let u = d.usage();
        assert_eq!(u.in_flight, 0);
        assert_eq!(u.queued, 0);
        assert_eq!(u.tx_buffers_in_use, 0);
        let s = d.stats();
        report.retransmits += s.retransmits;
        report.rto_events += s.rto_events;
        report.fast_retransmits += s.fast_retransmits;
        report.rnr_naks += s.rnr_naks_sent;
    }
    report.queue_drops = sim.stats.queue_drops;
    report.max_port_queue = sim.stats.max_queue_bytes;
    report.datagrams = sim.stats.sent;
    report.virtual_ns = end - start;
    report.payload_bytes = total * w.size as u64;

    // Ideal: the busiest link carries its bytes back to back.
    let wire = (w.size + 40) as u64;
    let per_link_msgs = match w.pattern {
        Pattern::AllToAll => (n as u64 - 1) * u64::from(k),
        Pattern::Incast { senders } => senders as u64 * u64::from(k),
    };
    report.ideal_ns = w.link.ser_ns(per_link_msgs * wire);
    let links = match w.pattern {
        Pattern::AllToAll => n as f64,
        Pattern::Incast { .. } => 1.0,
    };
    report.capacity = links * w.link.rate as f64;
    report.goodput = report.payload_bytes as f64 * 1e9 / report.virtual_ns.max(1) as f64;
    let tput: Vec<f64> = senders
        .iter()
        .map(|&i| nodes[i].bytes_sent as f64 / (nodes[i].finish - start).max(1) as f64)
        .collect();
    report.jain = jain(&tput);
    let fin: Vec<f64> = senders
        .iter()
        .map(|&i| (nodes[i].finish - start) as f64)
        .collect();
    report.jain_finish = jain(&fin);
    report.profile = if w.dev.cc_target_delay > 0 {
        "datacenter"
    } else {
        "default"
    };
    report.first_finish = senders
        .iter()
        .map(|&i| nodes[i].finish - start)
        .min()
        .unwrap_or(0);
    report.last_finish = senders
        .iter()
        .map(|&i| nodes[i].finish - start)
        .max()
        .unwrap_or(0);

    if let (Some(live), Some(base)) = (w.live_bytes, baseline) {
        let u = sim.devices[0].usage();
        let peers = u.peers;
        // The send-buffer pool is device-wide (bounded by tx_buffers, kept
        // for reuse): not per peer. Each buffer holds max_payload bytes
        // plus its bookkeeping (~48 bytes).
        let pool = i64::from(u.tx_buffers_allocated) * (w.dev.max_payload as i64 + 48);
        report.pool_bytes = pool;
        let placeholder = Device::new(sim.devices[0].config().clone()).unwrap();
        let d = std::mem::replace(&mut sim.devices[0], placeholder);
        let before = live();
        drop(d);
        let held = before - live();
        report.idle_peers = peers;
        report.bytes_per_idle_peer = Some((held - base - pool) as f64 / f64::from(peers.max(1)));
    }
    report.name = w_name(w);
    report
}

fn w_name(w: &Workload) -> String {
    match w.pattern {
        Pattern::AllToAll => format!("all-to-all {}x{} B", w.msgs, w.size),
        Pattern::Incast { senders } => format!("incast {senders}:1 {}x{} B", w.msgs, w.size),
    }
}
