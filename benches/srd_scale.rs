//! Scale report (full sizes) over the simulator's switched network: 1024
//! SRD devices all-to-all and a 10/100/1000:1 incast, with the default
//! device configuration and the datacenter profile (delay-based congestion
//! control). Prints a markdown table (benches/README.md, "Scale"). Virtual
//! time, so the figures are deterministic; wall time only says how long
//! the simulation took. `cargo bench --bench srd_scale [-- quick|incast]`.

#[path = "../tests/common/live_bytes.rs"]
mod live_bytes;
#[path = "../tests/common/scale.rs"]
mod scale;

use live_bytes::live;
use scale::{Pattern, Workload};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; "quick" runs all-to-all at 128 devices
    // instead of 1024, "incast" skips all-to-all.
    let quick = args.iter().any(|a| a == "quick");
    let incast_only = args.iter().any(|a| a == "incast");
    let mut runs: Vec<Workload> = Vec::new();
    for dc in [false, true] {
        for senders in [10usize, 100, 1000] {
            let mut w = Workload::new(senders + 1, Pattern::Incast { senders }, 64, 4096);
            if dc {
                w.dev = scale::datacenter(w.dev);
            }
            runs.push(w);
        }
    }
    let a2a = if quick { 128 } else { 1024 };
    for dc in [false, true].into_iter().filter(|_| !incast_only) {
        let mut w = Workload::new(a2a, Pattern::AllToAll, 1, 4096);
        if dc {
            w.dev = scale::datacenter(w.dev);
        }
        runs.push(w);
    }
    println!(
        "links {} Gb/s, switch queue {} KiB per port, NIC queue {} KiB, propagation {} ns",
        scale::default_link().rate * 8 / 1_000_000_000,
        scale::default_link().queue_bytes / 1024,
        scale::default_link().nic_bytes / 1024,
        scale::default_net(1).delay
    );
    println!("{}", scale::Report::header());
    for mut w in runs {
        w.live_bytes = Some(live);
        let t = Instant::now();
        let r = std::panic::catch_unwind(|| scale::run(&w));
        match r {
            Ok(r) => {
                println!("{}", r.row());
                eprintln!(
                    "  {} devices, {} datagrams, first/last sender done {:.3}/{:.3} ms, {} fast retx, {} RNR NAKs, {} idle peers, send pool {} KiB, wall {:.1?}",
                    r.devices,
                    r.datagrams,
                    r.first_finish as f64 / 1e6,
                    r.last_finish as f64 / 1e6,
                    r.fast_retransmits,
                    r.rnr_naks,
                    r.idle_peers,
                    r.pool_bytes / 1024,
                    t.elapsed()
                );
            }
            Err(_) => println!(
                "| {:?} x{} | {} | FAILED (see the panic above) |",
                w.pattern,
                w.devices,
                if w.dev.cc_target_delay > 0 {
                    "datacenter"
                } else {
                    "default"
                }
            ),
        }
    }
}
