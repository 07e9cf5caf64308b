//! rdm
