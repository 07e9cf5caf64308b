//! kill -9 of a rank leaves no segment behind once another endpoint opens on
//! the host. Alone in its binary so no other test's `open` sweeps first.

mod shm_common;

use std::time::Duration;

use shm_common::{Kid, fmt_token, hear, role, say, shm_files, uid};
use srd_fi::io::shm::{CmaMode, ShmConfig, ShmEndpoint, process_gone};

fn open() -> ShmEndpoint {
    ShmEndpoint::open(ShmConfig {
        slots: 8,
        slot_size: 256,
        cma: CmaMode::Off,
    })
    .expect("open")
}

#[test]
fn kill9_leaves_no_segment_after_next_open() {
    if role().as_deref() == Some("sleeper") {
        let ep = open();
        say("token", &fmt_token(ep.token()));
        say("name", &ep.name());
        let _ = hear(); // the parent never answers: it kills us
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let mut kids: Vec<Kid> = (0..2)
        .map(|_| Kid::spawn("kill9_leaves_no_segment_after_next_open", "sleeper", &[]))
        .collect();
    let mut prefixes = Vec::new();
    for k in &mut kids {
        let _ = k.token();
        let name = k.expect("name")[0].clone();
        let prefix = format!("srd-{}-{}-", uid(), k.pid());
        assert!(name.starts_with(&prefix));
        assert_eq!(
            shm_files(&prefix),
            [name],
            "segment exists while the child runs"
        );
        prefixes.push(prefix);
    }
    for k in &mut kids {
        k.kill9();
        assert!(process_gone(k.pid()));
    }
    for p in &prefixes {
        assert_eq!(shm_files(p).len(), 1, "SIGKILL cannot unlink by itself");
    }
    let ep = open();
    assert_eq!(ep.stats().swept, 2);
    for p in &prefixes {
        assert!(
            shm_files(p).is_empty(),
            "open() swept the dead rank's segment {p}"
        );
    }
    // Our own live segment is not swept by a second open.
    let ep2 = open();
    assert_eq!(ep2.stats().swept, 0);
    assert_eq!(shm_files(&ep.name()).len(), 1);
}
