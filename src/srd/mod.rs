//! srd
pub mod backend;
