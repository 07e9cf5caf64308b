//! Endpoints: the libfabric object shared by both types; the engines
//! (`dgram`, `rdm`) do the data path. One lock per endpoint, taken once per
//! API call (FI_THREAD_SAFE); uncontended under FI_THREAD_DOMAIN.

use super::addr::EpAddr;
use super::av::Av;
use super::cntr::Cntr;
use super::cq::{Cq, Progress};
use super::dgram::Dgram;
use super::errno::{Error, Result};
use super::fabric::Domain;
use super::info::Info;
use super::offer;
use super::ops::{FlagMode, RecvOp, SendOp};
use super::rdm_ep::{RdmEp, RdmOpen};
use super::sink::{Dir, Sink};
use super::transport::Transport;
use crate::bindings as b;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// The data path of one endpoint. An RDM endpoint is `RdmOpen` until
/// fi_enable creates its protocol engine (`Rdm`).
pub enum Engine {
    Dgram(Box<Dgram>),
    RdmOpen(Box<RdmOpen>),
    Rdm(Box<RdmEp>),
    /// Only while fi_enable moves an endpoint from `RdmOpen` to `Rdm`.
    Moving,
}

/// Mutable state behind the endpoint's lock.
pub struct State {
    pub enabled: bool,
    pub av: Option<Arc<Av>>,
    pub sink: Sink,
    pub tx_flags: u64,
    pub rx_flags: u64,
    pub min_multi_recv: usize,
    pub engine: Engine,
}

/// An endpoint (fi_endpoint).
pub struct Endpoint {
    pub domain: Arc<Domain>,
    pub ep_type: u32,
    pub caps: u64,
    pub iov_limit: usize,
    name: EpAddr,
    weak: Weak<Endpoint>,
    /// Progress rounds so far (the keepalive thread steps in only when
    /// this did not move for a whole interval; a counter, so a progress
    /// round reads no clock for it).
    rounds: AtomicU64,
    st: Mutex<State>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("ep_type", &self.ep_type)
            .finish_non_exhaustive()
    }
}

/// Host identity: the same value on every endpoint of this host and network
/// namespace (boot id and the namespace's inode). Endpoints in different
/// network namespaces are treated as different hosts, so they talk over the
/// network they are given rather than through shared memory.
pub fn host_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let mut text =
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        if let Ok(ns) = std::fs::read_link("/proc/self/ns/net") {
            text.push_str(&ns.to_string_lossy());
        }
        // FNV-1a over the boot id: stable for the host, differs across hosts.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for c in text.trim().bytes() {
            h ^= u64::from(c);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    })
}

/// A random 64-bit value from the kernel.
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_le_bytes(b)
    } else {
        u64::from(std::process::id()).rotate_left(32) ^ host_id()
    }
}

impl Endpoint {
    /// Opens an endpoint of `info`'s type on `domain` (sockets are bound now,
    /// so fi_getname works before fi_enable).
    pub fn open(domain: Arc<Domain>, info: &Info) -> Result<Arc<Endpoint>> {
        let ep_attr = info.ep.as_ref().ok_or(Error::Inval)?;
        let ep_type = ep_attr.ep_type;
        let params = domain.params.clone();
        let payload = offer::payload_limit(&domain.iface, &params);
        // A source address in info (fi_getinfo with FI_SOURCE and a
        // service) picks the port peers send to.
        let port = info
            .src_addr
            .as_deref()
            .and_then(|a| EpAddr::decode(info.addr_format, a))
            .map_or(0, |a| a.sock.port());
        let local = std::net::SocketAddrV4::new(domain.iface.addr, port);
        let tx_size = info
            .tx
            .as_ref()
            .map_or(offer::RDM_TX_SIZE, |t| t.size.max(1));
        let rx_size = info
            .rx
            .as_ref()
            .map_or(offer::RDM_RX_SIZE, |r| r.size.max(1));
        let iov_limit = info
            .tx
            .as_ref()
            .map_or(offer::IOV_LIMIT, |t| t.iov_limit.max(1));
        let caps = if info.caps != 0 {
            info.caps
        } else {
            offer::RDM_CAPS & !b::FI_SOURCE_ERR
        };
        let engine = match ep_type {
            t if t == b::FI_EP_DGRAM => {
                let prefix = if info.mode & b::FI_MSG_PREFIX != 0 {
                    offer::UD_PREFIX
                } else {
                    0
                };
                let t = Transport::open(local, payload, &params, |c| {
                    c.sq_depth = u32::try_from(tx_size).unwrap_or(1024);
                    c.rq_depth = u32::try_from(rx_size).unwrap_or(1024);
                })?;
                Engine::Dgram(Box::new(Dgram::open(
                    t,
                    prefix,
                    payload.saturating_sub(offer::DGRAM_HEADER_RESERVE),
                    tx_size.min(offer::DGRAM_QUEUE),
                    rx_size.min(offer::DGRAM_QUEUE),
                    host_id(),
                    random_u64(),
                )?))
            }
            t if t == b::FI_EP_RDM => Engine::RdmOpen(Box::new(RdmOpen::open(
                &domain, port, payload, &params, tx_size, rx_size,
            )?)),
            _ => return Err(Error::Inval),
        };
        let tx_flags = info.tx.as_ref().map_or(b::FI_COMPLETION, |t| t.op_flags);
        let rx_flags = info.rx.as_ref().map_or(b::FI_COMPLETION, |r| r.op_flags);
        let interval = params.progress_interval_ms;
        let name = match &engine {
            Engine::Dgram(d) => d.name(),
            Engine::RdmOpen(r) => r.name(),
            Engine::Rdm(r) => r.name(),
            Engine::Moving => return Err(Error::OpBadState),
        };
        let ep = Arc::new_cyclic(|weak| Endpoint {
            domain,
            ep_type,
            caps,
            iov_limit,
            name,
            weak: weak.clone(),
            rounds: AtomicU64::new(0),
            st: Mutex::new(State {
                enabled: false,
                av: None,
                sink: Sink {
                    source_err: caps & b::FI_SOURCE_ERR != 0,
                    ..Sink::default()
                },
                tx_flags,
                rx_flags,
                min_multi_recv: 16384,
                engine,
            }),
        });
        if interval > 0 && ep_type == b::FI_EP_RDM {
            start_keepalive(Arc::downgrade(&ep), Duration::from_millis(interval));
        }
        Ok(ep)
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn as_progress(&self) -> Weak<dyn Progress> {
        self.weak.clone() as Weak<dyn Progress>
    }

    /// fi_ep_bind of an AV.
    pub fn bind_av(&self, av: Arc<Av>) -> Result<()> {
        let mut st = self.lock();
        if st.enabled || st.av.is_some() {
            return Err(Error::Inval);
        }
        st.av = Some(av);
        Ok(())
    }

    /// fi_ep_bind of a CQ with FI_TRANSMIT / FI_RECV / FI_SELECTIVE_COMPLETION.
    pub fn bind_cq(&self, cq: Arc<Cq>, flags: u64) -> Result<()> {
        let known = b::FI_TRANSMIT | b::FI_RECV | b::FI_SELECTIVE_COMPLETION;
        if flags & known != flags || flags & (b::FI_TRANSMIT | b::FI_RECV) == 0 {
            return Err(Error::Inval);
        }
        let mut st = self.lock();
        if st.enabled {
            return Err(Error::Inval);
        }
        let sel = flags & b::FI_SELECTIVE_COMPLETION != 0;
        if flags & b::FI_TRANSMIT != 0 {
            if st.sink.tx_cq.is_some() {
                return Err(Error::Inval);
            }
            st.sink.tx_cq = Some(cq.clone());
            st.sink.tx_selective = sel;
        }
        if flags & b::FI_RECV != 0 {
            if st.sink.rx_cq.is_some() {
                return Err(Error::Inval);
            }
            st.sink.rx_cq = Some(cq.clone());
            st.sink.rx_selective = sel;
        }
        let fds = wait_fds_of(&st.engine);
        cq.attach(self.as_progress(), &fds);
        Ok(())
    }

    /// fi_ep_bind of a counter with FI_SEND / FI_RECV, FI_READ / FI_WRITE
    /// and (FI_RMA_EVENT) FI_REMOTE_READ / FI_REMOTE_WRITE.
    pub fn bind_cntr(&self, c: Arc<Cntr>, flags: u64) -> Result<()> {
        let rma = b::FI_READ | b::FI_WRITE | b::FI_REMOTE_READ | b::FI_REMOTE_WRITE;
        let known = b::FI_SEND | b::FI_RECV | rma;
        if flags == 0 || flags & !known != 0 {
            return Err(Error::Inval);
        }
        if flags & rma != 0 && self.ep_type != b::FI_EP_RDM {
            return Err(Error::NoSys);
        }
        // Counting peers' accesses to our memory is FI_RMA_EVENT's
        // (fi_endpoint(3)); entries from fi_getinfo carry it.
        let remote = b::FI_REMOTE_READ | b::FI_REMOTE_WRITE;
        if flags & remote != 0 && self.caps & b::FI_RMA_EVENT == 0 {
            return Err(Error::Inval);
        }
        let mut st = self.lock();
        let sink = &mut st.sink;
        for (bit, slot) in [
            (b::FI_SEND, &mut sink.send_cntr),
            (b::FI_RECV, &mut sink.recv_cntr),
            (b::FI_READ, &mut sink.read_cntr),
            (b::FI_WRITE, &mut sink.write_cntr),
            (b::FI_REMOTE_READ, &mut sink.remote_read_cntr),
            (b::FI_REMOTE_WRITE, &mut sink.remote_write_cntr),
        ] {
            if flags & bit != 0 {
                *slot = Some(c.clone());
            }
        }
        let fds = wait_fds_of(&st.engine);
        c.attach(self.as_progress(), &fds);
        Ok(())
    }

    /// fi_enable: needs an AV, and CQs or counters for both directions.
    pub fn enable(&self) -> Result<()> {
        let mut st = self.lock();
        if st.av.is_none() {
            return Err(Error::Os(b::FI_ENOAV as i32));
        }
        let tx_ok = st.sink.tx_cq.is_some() || st.sink.send_cntr.is_some();
        let rx_ok = st.sink.rx_cq.is_some() || st.sink.recv_cntr.is_some();
        if !tx_ok && self.caps & b::FI_SEND != 0 || !rx_ok && self.caps & b::FI_RECV != 0 {
            return Err(Error::Os(b::FI_ENOCQ as i32));
        }
        st.enabled = true;
        let State {
            engine,
            sink,
            min_multi_recv,
            ..
        } = &mut *st;
        if let Engine::RdmOpen(_) = engine
            && let Engine::RdmOpen(mut r) = std::mem::replace(engine, Engine::Moving)
        {
            let refused = r.observe(self.domain.clone());
            let target = crate::fi::mr_target::MrTarget {
                refused,
                domain: self.domain.clone(),
                virt_addr: self.domain.mr_mode() & b::FI_MR_VIRT_ADDR as i32 != 0
                    || self.domain.mr_mode() == b::FI_MR_BASIC as i32,
            };
            *engine = Engine::Rdm(Box::new(r.enable(sink, *min_multi_recv, Box::new(target))));
        }
        Ok(())
    }

    /// The endpoint's address: fixed when it opens (sockets bound, ring
    /// created).
    pub fn name(&self) -> EpAddr {
        self.name
    }

    /// A data call's flags and completion verdict after `mode` (one lock
    /// for calls that post nothing, e.g. RMA, which resolve first).
    pub fn resolve_flags(&self, dir: Dir, flags: u64, mode: FlagMode) -> Result<(u64, bool)> {
        resolve(&self.lock(), dir, flags, mode)
    }

    /// fi_send and its forms: `op.flags` as the call gave them, resolved
    /// with `mode` under the same lock as the post (`op.report` is set
    /// here).
    pub fn send(&self, mut op: SendOp, mode: FlagMode) -> Result<()> {
        let mut st = self.lock();
        (op.flags, op.report) = resolve(&st, Dir::Tx, op.flags, mode)?;
        if op.flags & b::FI_INJECT != 0
            && op.iov.len() > offer::RDM_INJECT
            && self.ep_type == b::FI_EP_RDM
        {
            return Err(Error::MsgSize);
        }
        if !st.enabled {
            return Err(Error::OpBadState);
        }
        let State {
            av, engine, sink, ..
        } = &mut *st;
        let av = av.as_ref().ok_or(Error::OpBadState)?;
        match engine {
            Engine::Dgram(d) => {
                if op.tagged {
                    return Err(Error::NoSys);
                }
                d.send(av, op)
            }
            Engine::Rdm(r) => r.send(sink, av, op),
            Engine::RdmOpen(_) | Engine::Moving => Err(Error::OpBadState),
        }
    }

    /// fi_recv and its forms, resolved as `send`.
    pub fn recv(&self, mut op: RecvOp, mode: FlagMode) -> Result<()> {
        let mut st = self.lock();
        (op.flags, op.report) = resolve(&st, Dir::Rx, op.flags, mode)?;
        if !st.enabled {
            return Err(Error::OpBadState);
        }
        let State {
            av, engine, sink, ..
        } = &mut *st;
        match engine {
            Engine::Dgram(d) => {
                if op.tagged || op.flags & (b::FI_MULTI_RECV | b::FI_PEEK | b::FI_CLAIM) != 0 {
                    return Err(Error::NoSys);
                }
                d.recv(op)
            }
            Engine::Rdm(r) => {
                let av = av.as_ref().ok_or(Error::OpBadState)?;
                r.recv(sink, av, op)
            }
            Engine::RdmOpen(_) | Engine::Moving => Err(Error::OpBadState),
        }
    }

    /// fi_cancel: true when something was canceled.
    pub fn cancel(&self, context: usize) -> bool {
        let mut st = self.lock();
        let State { engine, sink, .. } = &mut *st;
        match engine {
            Engine::Dgram(d) => d.cancel(sink, context),
            Engine::Rdm(r) => r.cancel(sink, context),
            Engine::RdmOpen(_) | Engine::Moving => false,
        }
    }

    pub fn size_left(&self, tx: bool) -> Result<usize> {
        let st = self.lock();
        if !st.enabled {
            return Err(Error::OpBadState);
        }
        Ok(match (&st.engine, tx) {
            (Engine::Dgram(d), true) => d.tx_room(),
            (Engine::Dgram(d), false) => d.rx_room(),
            (Engine::Rdm(r), true) => r.tx_room(),
            (Engine::Rdm(r), false) => r.rx_room(),
            (Engine::RdmOpen(_) | Engine::Moving, _) => return Err(Error::OpBadState),
        })
    }

    /// fi_read / fi_write family.
    pub fn rma(&self, op: super::ops::RmaOp) -> Result<()> {
        self.rdm_op(|r, sink, av| r.rma(sink, av, op))
    }

    /// fi_atomic family.
    pub fn atomic(&self, a: super::ops::AtomicReq) -> Result<()> {
        self.rdm_op(|r, sink, av| r.atomic(sink, av, a))
    }

    /// An operation only RDM endpoints have (RMA, atomics): on an enabled
    /// endpoint with an AV; -FI_ENOSYS on DGRAM.
    fn rdm_op(&self, f: impl FnOnce(&mut RdmEp, &Sink, &Arc<Av>) -> Result<()>) -> Result<()> {
        let mut st = self.lock();
        if !st.enabled {
            return Err(Error::OpBadState);
        }
        let State {
            av, engine, sink, ..
        } = &mut *st;
        let av = av.as_ref().ok_or(Error::OpBadState)?;
        match engine {
            Engine::Rdm(r) => f(r, sink, av),
            Engine::Dgram(_) => Err(Error::NoSys),
            Engine::RdmOpen(_) | Engine::Moving => Err(Error::OpBadState),
        }
    }

    /// fi_atomicvalid family: the largest count, or None if unsupported.
    pub fn atomic_valid(
        &self,
        op: crate::rdm::AtomicOp,
        dt: crate::rdm::Datatype,
        kind: crate::rdm::AtomicKind,
    ) -> Option<usize> {
        match &self.lock().engine {
            Engine::Rdm(r) => r.atomic_valid(op, dt, kind),
            Engine::RdmOpen(r) => r.atomic_valid(op, dt, kind),
            Engine::Dgram(_) | Engine::Moving => None,
        }
    }

    /// Waits briefly for network input (blocking CQ and counter reads).
    pub fn wait(&self, d: Duration) {
        let st = self.lock();
        match &st.engine {
            Engine::Dgram(e) => e.wait(d),
            Engine::Rdm(e) => e.wait(d),
            Engine::RdmOpen(e) => e.wait(d),
            Engine::Moving => {}
        }
    }
}

/// Keeps an endpoint answering the network while the application is busy
/// elsewhere: a software device acknowledges only when it runs, and a peer
/// that went unacknowledged for the retry budget would see its sends fail.
/// The thread only steps in when no progress happened for `every`, takes the
/// endpoint lock without waiting, and ends with the endpoint.
fn start_keepalive(ep: Weak<Endpoint>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("srd-keepalive".into())
        .spawn(move || {
            let mut seen = u64::MAX;
            loop {
                std::thread::sleep(every);
                let Some(ep) = ep.upgrade() else { return };
                // No round since the last look, a whole interval ago.
                let rounds = ep.rounds.load(Ordering::Relaxed);
                let idle = rounds == seen;
                seen = rounds;
                if idle && let Ok(mut st) = ep.st.try_lock() {
                    ep.progress_locked(&mut st);
                    seen = ep.rounds.load(Ordering::Relaxed);
                }
            }
        });
    if spawned.is_err() {
        crate::srd_log!(
            Warn,
            EpCtrl,
            "no keepalive thread: peers may time out while the application computes"
        );
    }
}

impl Endpoint {
    fn progress_locked(&self, st: &mut State) {
        // Under the endpoint lock: a plain load and store, no atomic RMW.
        let n = self.rounds.load(Ordering::Relaxed);
        self.rounds.store(n.wrapping_add(1), Ordering::Relaxed);
        if !st.enabled {
            return;
        }
        let State {
            av, engine, sink, ..
        } = st;
        match engine {
            Engine::Dgram(d) => d.progress(sink, av.as_ref()),
            Engine::Rdm(r) => r.progress(sink, av.as_ref()),
            Engine::RdmOpen(_) | Engine::Moving => {}
        }
    }
}

/// Flags in force for a data call and whether its success is reported:
/// `fi_send`-style calls take the endpoint's default op_flags, `*msg`
/// calls exactly the flags given, inject calls never complete.
fn resolve(st: &State, dir: Dir, flags: u64, mode: FlagMode) -> Result<(u64, bool)> {
    let defaults = match dir {
        Dir::Tx => st.tx_flags,
        Dir::Rx => st.rx_flags,
    };
    Ok(match mode {
        FlagMode::Default => {
            let f = defaults | flags;
            (f, st.sink.reports(dir, f))
        }
        FlagMode::Msg => (flags, st.sink.reports(dir, flags)),
        FlagMode::Inject if dir == Dir::Tx => (flags | b::FI_INJECT, false),
        FlagMode::Inject => return Err(Error::Inval),
    })
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let st = self.st.get_mut().unwrap_or_else(|e| e.into_inner());
        // Our descriptors close with us: out of the CQs' and counters' sets.
        let fds = wait_fds_of(&st.engine);
        let s = &st.sink;
        for cq in [&s.tx_cq, &s.rx_cq].into_iter().flatten() {
            cq.wait.remove_fds(&fds);
        }
        for c in [
            &s.send_cntr,
            &s.recv_cntr,
            &s.read_cntr,
            &s.write_cntr,
            &s.remote_read_cntr,
            &s.remote_write_cntr,
        ]
        .into_iter()
        .flatten()
        {
            c.wait.remove_fds(&fds);
        }
        if !st.enabled {
            return;
        }
        let State {
            av, engine, sink, ..
        } = st;
        if let Engine::Rdm(r) = engine {
            r.linger(sink, av.as_ref(), Duration::from_millis(100));
            if self.domain.params.stats {
                // One write: eprintln! may split the line and its newline
                // into two, and ranks sharing a pipe (mpirun) interleave.
                let mut line = r.stats_line();
                line.push('\n');
                let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
            }
            if self.domain.params.dump {
                eprint!("{}", r.dump());
            }
        }
    }
}

impl Progress for Endpoint {
    fn progress(&self) {
        let mut st = self.lock();
        // The application reads again: a doorbell armed by fi_trywait (or
        // a reader that slept) is no longer needed; senders stop ringing.
        if let Engine::Rdm(r) = &mut st.engine {
            r.disarm();
        }
        self.progress_locked(&mut st);
    }

    fn wait_fds(&self, out: &mut Vec<i32>) {
        out.extend(wait_fds_of(&self.lock().engine));
    }

    fn arm(&self) -> bool {
        match &mut self.lock().engine {
            Engine::Rdm(r) => r.arm(),
            Engine::Dgram(_) | Engine::RdmOpen(_) | Engine::Moving => true,
        }
    }

    fn disarm(&self) {
        if let Engine::Rdm(r) = &mut self.lock().engine {
            r.disarm();
        }
    }

    fn next_timer(&self) -> Option<Duration> {
        match &self.lock().engine {
            Engine::Dgram(d) => d.next_timer(),
            Engine::Rdm(r) => r.next_timer(),
            Engine::RdmOpen(_) | Engine::Moving => None,
        }
    }
}

/// The descriptors a reader blocked on this endpoint's CQs polls.
fn wait_fds_of(e: &Engine) -> Vec<i32> {
    let mut v = Vec::new();
    match e {
        Engine::Dgram(d) => d.fds(&mut v),
        Engine::Rdm(r) => r.fds(&mut v),
        Engine::RdmOpen(r) => r.fds(&mut v),
        Engine::Moving => {}
    }
    v
}
