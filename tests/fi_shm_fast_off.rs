//! The scenarios of tests/fi_shm_fast.rs with FI_SRD_SHM_FAST=0: the same
//! outcomes, and nothing goes the fast way.

mod common;
mod shm_fast_common;

use shm_fast_common::*;

/// Set before the provider reads its parameters (every test starts here).
fn setup() {
    common::env_once(&[("FI_SRD_SHM_FAST", "0")]);
}

#[test]
fn mixed_sizes_stay_in_send_order_without_the_fast_path() {
    setup();
    assert_eq!(mixed_sizes_keep_send_order(300), (0, 0));
}

#[test]
fn every_send_form_and_match_mode_without_the_fast_path() {
    setup();
    every_send_form_and_match_mode();
}

#[test]
fn concurrent_senders_without_the_fast_path() {
    setup();
    assert_eq!(concurrent_senders_on_one_endpoint(4, 2000), 0);
}

#[test]
fn injects_are_counted_without_the_fast_path() {
    setup();
    injects_count_in_the_send_counter();
}

#[test]
fn full_cq_keeps_completions_in_order_without_the_fast_path() {
    setup();
    assert_eq!(full_cq_keeps_completions_in_order(), 0);
}

#[test]
fn receives_count_with_selective_completion_without_the_fast_path() {
    setup();
    receive_counter_and_selective_completion();
}

#[test]
fn canceled_receive_without_the_fast_path() {
    setup();
    canceled_receive_takes_no_fast_frame();
}

#[test]
fn peer_gone_with_frames_in_its_ring_without_the_fast_path() {
    setup();
    peer_gone_with_fast_frames_in_the_ring();
}

#[test]
fn peek_claim_discard_without_the_fast_path() {
    setup();
    peek_claim_discard_between_received_frames();
}
