//! srd
