//! libfabric objects and the translation of the fi_* API to the layers
//! below. Errors become `-FI_E*` in exactly one place: [`errno`].

pub mod addr;
pub mod av;
pub mod cntr;
pub mod convert;
pub mod cq;
pub mod dgram;
pub mod endpoint;
pub mod eq;
pub mod errno;
pub mod fabric;
pub mod getinfo;
pub mod idle;
pub mod info;
pub mod mr;
pub mod mr_target;
pub mod nic;
pub mod offer;
pub mod ops;
pub mod outbox;
pub mod params;
pub mod rdm_ep;
pub mod sink;
pub mod slab;
pub mod stats;
pub mod transport;
pub mod wait;
