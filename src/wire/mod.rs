//! wire
pub mod rdm;
