//! The same-host fast path on (the default): small sends are written
//! straight into the peer's ring and eager messages placed without
//! per-message state. The same scenarios run with it off in
//! tests/fi_shm_fast_off.rs.

mod common;
mod shm_fast_common;

use shm_fast_common::*;

#[test]
fn fast_frames_and_engine_packets_of_one_sender_stay_in_send_order() {
    let (sends, placed) = mixed_sizes_keep_send_order(300);
    // Sizes 1, 8, 100 and 4096 go fast (4 of every 6 messages) unless a
    // larger message of the same sender is still queued ahead of them.
    assert!(sends > 0, "no send took the fast path");
    assert!(sends <= 200, "{sends} fast sends of 200 small messages");
    // The pre-posted half is placed on arrival when in order.
    assert!(placed > 0, "no message was placed on the fast path");
}

#[test]
fn every_send_form_and_match_mode_on_fast_frames() {
    every_send_form_and_match_mode();
}

#[test]
fn concurrent_senders_on_a_thread_safe_endpoint() {
    let fast = concurrent_senders_on_one_endpoint(4, 2000);
    assert!(fast > 0, "no send took the fast path");
}

#[test]
fn injects_are_counted_on_the_fast_path() {
    injects_count_in_the_send_counter();
}

#[test]
fn full_cq_keeps_fast_completions_in_order() {
    let fast = full_cq_keeps_completions_in_order();
    assert!(fast > 0, "no frame was received straight into its receive");
}

#[test]
fn fast_receives_count_with_selective_completion() {
    receive_counter_and_selective_completion();
}

#[test]
fn canceled_receive_takes_no_fast_frame() {
    shm_fast_common::canceled_receive_takes_no_fast_frame();
}

#[test]
fn peer_gone_with_fast_frames_in_its_ring() {
    peer_gone_with_fast_frames_in_the_ring();
}

#[test]
fn peek_claim_discard_between_fast_frames() {
    peek_claim_discard_between_received_frames();
}
