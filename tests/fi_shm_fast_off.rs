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
