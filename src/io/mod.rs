//! I/O backends of the software SRD device (DESIGN §2).
//!
//! The device core (`srd`) is a sans-IO state machine; the backends move its
//! datagrams. `udp` carries them between hosts over nonblocking UDP sockets
//! with recvmmsg/sendmmsg batching and several source ports (multipath).

pub mod crc;
pub mod shm;
pub mod udp;
