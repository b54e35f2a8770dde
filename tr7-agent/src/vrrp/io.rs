//! The I/O shell of one virtual router: a [`Driver`] runs one sans-IO [`Vrrp`] against
//! a [`VrrpSocket`] and the system clock on its own thread, and carries out the actions
//! (adverts on the wire; ownership and announcements through the caller's
//! [`Ownership`]).
//!
//! Why a thread and `poll(2)` rather than a tokio task: the loop is "wait for a packet,
//! a command or the machine's next deadline, whichever comes first", which is exactly
//! one `poll` with the deadline as its timeout. A dedicated thread keeps advert timing
//! independent of how busy the agent's async runtime is (a 10 ms advert interval must
//! not wait behind a netlink dump), and the socket must be made inside the interface's
//! namespace anyway. Commands (shutdown, priority, fault) arrive on a channel whose
//! sender also writes one byte to a socket pair that the `poll` watches.

use std::collections::BTreeMap;
use std::io::{self, Read as _, Write as _};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use thiserror::Error;
use tracing::{debug, info, warn};

use super::checksum::ChecksumMode;
use super::packet::{Advertisement, Family, Transport, check_ip_header};
use super::socket::{RECV_BUFFER, SocketError, VrrpSocket};
use super::state::{Action, AnnounceReason, Config, ConfigError, Counters, Reason, State, Vrrp};

/// What the shell does on a transition. The agent writes the BPF ownership map
/// (`tr7::dataplane::Maps::set_vip`) and sends the announcement burst; tests record.
/// Called on the driver's thread, in the order the machine gives: on becoming master
/// the advert is already on the wire when [`Ownership::own`] runs, and
/// [`Ownership::announce`] follows it.
pub trait Ownership: Send + 'static {
    /// Own the virtual addresses (`Action::BecomeMaster`).
    fn own(&mut self, from: State, reason: Reason, accept_mode: bool);
    /// Release the virtual addresses if owned (`Action::BecomeBackup` with `to` =
    /// Backup, `Action::BecomeInitialize` with `to` = Initialize).
    fn release(&mut self, from: State, to: State, reason: Reason);
    /// Send the gratuitous ARP / unsolicited NA burst (`Action::Announce`).
    fn announce(&mut self, reason: AnnounceReason);
}

/// One virtual router on one interface.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The `ip netns` name of the interface's namespace; `None`: the caller's.
    pub netns: Option<String>,
    pub interface: String,
    /// The machine's configuration. `primary_address` is the source of our adverts:
    /// `unicast_src_ip` or the interface's address for IPv4; for IPv6 the interface's
    /// link-local address over multicast ([`link_local_v6`](super::socket::link_local_v6)),
    /// the node's unicast source with unicast peers (docs/vrrp.md, "IPv6 unicast").
    pub vrrp: Config,
    /// The IPv4 checksum we send (IPv6 has only one).
    pub checksum: ChecksumMode,
}

/// Why a driver did not start.
#[derive(Debug, Error)]
pub enum DriverError {
    #[error("interface `{iface}`: {source}")]
    Config { iface: String, source: ConfigError },
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("interface `{iface}`: cannot {step}: {source}")]
    Thread {
        iface: String,
        step: &'static str,
        source: io::Error,
    },
}

/// What the shell saw on the wire, beyond the machine's own [`Counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Packets read from the socket, before any check.
    pub packets_received: u64,
    /// Adverts put on the wire (one per destination).
    pub packets_sent: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    /// Packets that failed `check_ip_header`, by [`IpCheckError::reason`](super::IpCheckError::reason).
    pub ip_check_dropped: BTreeMap<&'static str, u64>,
    /// Packets that failed `Advertisement::decode`, by [`DecodeError::reason`](super::DecodeError::reason).
    pub decode_dropped: BTreeMap<&'static str, u64>,
    /// Decoded IPv4 adverts by the checksum form the sender used.
    pub checksum_pseudo_header: u64,
    pub checksum_message_only: u64,
}

/// A snapshot of a running driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// When the machine entered `state`, on the monotonic clock and on the wall clock
    /// (for `tr7 status`; computed once per transition, so it does not jitter).
    pub state_since: Instant,
    pub state_since_wall: SystemTime,
    /// The configured priority (as changed by [`Driver::set_priority`]).
    pub priority: u8,
    /// The priority advertised and compared with (the fault priority while faulted).
    pub effective_priority: u8,
    pub faulted: bool,
    /// RFC 9568 6.1 Master_Adver_Interval: ours in Master, the master's in Backup.
    pub master_adver_interval_cs: u16,
    /// The master a backup follows, and its priority.
    pub master: Option<(IpAddr, u8)>,
    pub vrrp: Counters,
    pub io: IoCounters,
    /// The thread has ended (shutdown, abandon, or the command channel closed).
    pub stopped: bool,
}

enum Command {
    Shutdown,
    Abandon,
    SetPriority(u8),
    /// The fault, and the signal that caused the change (for the transition's log line).
    SetFault(bool, Option<String>),
}

/// A running virtual router. Dropping it is [`Driver::shutdown`].
pub struct Driver {
    iface: String,
    config: DriverConfig,
    commands: mpsc::Sender<Command>,
    wake: UnixStream,
    status: Arc<Mutex<Status>>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Opens the socket in the interface's namespace, starts the thread and sends the
    /// Startup event (RFC 9568 6.4.1).
    pub fn start(config: DriverConfig, ownership: impl Ownership) -> Result<Self, DriverError> {
        Self::spawn(config, ownership, false)
    }

    /// As [`Driver::start`], but the thread sends the resume event
    /// ([`Vrrp::handle_resume`]): Master at once, for a router whose addresses this node
    /// still owns (an agent restart, a reloaded router that was master).
    pub fn resume(config: DriverConfig, ownership: impl Ownership) -> Result<Self, DriverError> {
        Self::spawn(config, ownership, true)
    }

    fn spawn(
        config: DriverConfig,
        ownership: impl Ownership,
        resume: bool,
    ) -> Result<Self, DriverError> {
        let iface = config.interface.clone();
        let now = Instant::now();
        let vrrp = Vrrp::new(config.vrrp.clone(), now).map_err(|source| DriverError::Config {
            iface: iface.clone(),
            source,
        })?;
        let socket = VrrpSocket::open(
            config.netns.as_deref(),
            &config.interface,
            vrrp.config().family(),
            vrrp.config().unicast_peers.is_empty(),
        )?;
        let thread_err = |step| {
            let iface = iface.clone();
            move |source| DriverError::Thread {
                iface,
                step,
                source,
            }
        };
        let (wake, wake_rx) = UnixStream::pair().map_err(thread_err("create a socket pair"))?;
        // Both ends non-blocking: the handle must never wait on a stuck thread, and
        // the thread drains the doorbell until it is empty.
        for end in [&wake, &wake_rx] {
            end.set_nonblocking(true)
                .map_err(thread_err("set the socket pair non-blocking"))?;
        }
        let (commands, commands_rx) = mpsc::channel();
        let status = Arc::new(Mutex::new(Status {
            state: vrrp.state(),
            state_since: vrrp.state_since(),
            state_since_wall: wall_clock(vrrp.state_since()),
            priority: vrrp.config().priority,
            effective_priority: vrrp.effective_priority(),
            faulted: vrrp.is_faulted(),
            master_adver_interval_cs: vrrp.master_adver_interval_cs(),
            master: None,
            vrrp: vrrp.counters().clone(),
            io: IoCounters::default(),
            stopped: false,
        }));
        let (destinations, transport) = if vrrp.config().unicast_peers.is_empty() {
            (
                vec![vrrp.config().family().multicast_group()],
                Transport::Multicast,
            )
        } else {
            (vrrp.config().unicast_peers.clone(), Transport::Unicast)
        };
        let shell = Shell {
            vrrp,
            socket,
            ownership,
            checksum: config.checksum,
            destinations,
            transport,
            commands: commands_rx,
            wake: wake_rx,
            status: status.clone(),
            io: IoCounters::default(),
            resume,
            signal: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("vrrp-{}", config.interface))
            .spawn(move || shell.run())
            .map_err(thread_err("spawn the driver thread"))?;
        Ok(Self {
            iface,
            config,
            commands,
            wake,
            status,
            thread: Some(thread),
        })
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    pub fn state(&self) -> State {
        lock(&self.status).state
    }

    /// The configuration the driver was started with (the priority may have changed
    /// since: [`Status::priority`] has the current one).
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Changes the configured priority (1-255); a zero is refused by the machine and
    /// logged.
    pub fn set_priority(&self, priority: u8) {
        self.command(Command::SetPriority(priority));
    }

    /// A tracked signal failed (`true`) or recovered (`false`).
    pub fn set_fault(&self, faulted: bool) {
        self.command(Command::SetFault(faulted, None));
    }

    /// A handle that sets the fault from another thread (the signal monitor), without
    /// owning the driver.
    pub fn fault_handle(&self) -> io::Result<FaultHandle> {
        Ok(FaultHandle {
            iface: self.iface.clone(),
            commands: self.commands.clone(),
            wake: self.wake.try_clone()?,
        })
    }

    /// RFC 9568 6.4.2 / 6.4.3 Shutdown: a master sends priority 0 and releases; then the
    /// thread ends. Returns the final status.
    pub fn shutdown(mut self) -> Status {
        self.stop(Command::Shutdown)
    }

    /// Ends the thread without the Shutdown event: no priority-0 advert and no
    /// release, as if the process died. An agent restart that means to keep its VIPs
    /// (the pinned ownership map holds them meanwhile) stops this way; tests use it to
    /// model `kill -9`. Returns the final status.
    pub fn abandon(mut self) -> Status {
        self.stop(Command::Abandon)
    }

    fn command(&self, command: Command) {
        if self.commands.send(command).is_err() {
            warn!(iface = %self.iface, "VRRP driver thread has ended; command ignored");
            return;
        }
        // A full pipe already holds a wake-up; the byte is only a doorbell.
        if let Err(error) = (&self.wake).write(&[1])
            && error.kind() != io::ErrorKind::WouldBlock
        {
            warn!(iface = %self.iface, %error, "cannot wake the VRRP driver thread");
        }
    }

    fn stop(&mut self, command: Command) -> Status {
        if let Some(thread) = self.thread.take() {
            self.command(command);
            if thread.join().is_err() {
                warn!(iface = %self.iface, "VRRP driver thread panicked");
            }
        }
        let mut status = lock(&self.status);
        status.stopped = true;
        status.clone()
    }
}

/// Sets a driver's fault from another thread: [`Driver::fault_handle`]. Once the driver has
/// ended, a command is logged and ignored.
pub struct FaultHandle {
    iface: String,
    commands: mpsc::Sender<Command>,
    wake: UnixStream,
}

impl FaultHandle {
    /// A tracked signal failed (`true`) or recovered (`false`); `signal` names it in the
    /// log line of the transition that follows.
    pub fn set_fault(&self, faulted: bool, signal: &str) {
        let command = Command::SetFault(faulted, Some(signal.to_owned()));
        if self.commands.send(command).is_err() {
            debug!(iface = %self.iface, "VRRP driver thread has ended; fault ignored");
            return;
        }
        if let Err(error) = (&self.wake).write(&[1])
            && error.kind() != io::ErrorKind::WouldBlock
        {
            warn!(iface = %self.iface, %error, "cannot wake the VRRP driver thread");
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop(Command::Shutdown);
    }
}

fn lock(status: &Mutex<Status>) -> MutexGuard<'_, Status> {
    // A poisoned lock only means a panic elsewhere; the snapshot is still usable.
    status.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adverts drained per wake-up, so a flood cannot starve the timer.
const RECV_BATCH: usize = 64;

struct Shell<O> {
    vrrp: Vrrp,
    socket: VrrpSocket,
    ownership: O,
    checksum: ChecksumMode,
    destinations: Vec<IpAddr>,
    transport: Transport,
    commands: mpsc::Receiver<Command>,
    wake: UnixStream,
    status: Arc<Mutex<Status>>,
    io: IoCounters,
    /// Start with the resume event instead of Startup.
    resume: bool,
    /// The tracked signal of the last fault change, named in transition log lines.
    signal: Option<String>,
}

enum Flow {
    Continue,
    Stop,
}

impl<O: Ownership> Shell<O> {
    fn run(mut self) {
        let iface = self.socket.interface().to_owned();
        info!(
            %iface,
            vrid = self.vrrp.config().vrid,
            family = %self.vrrp.config().family(),
            priority = self.vrrp.config().priority,
            source = %self.vrrp.config().primary_address,
            destinations = ?self.destinations,
            resume = self.resume,
            "VRRP virtual router starting"
        );
        if self.resume {
            self.vrrp.handle_resume(Instant::now());
        } else {
            self.vrrp.handle_startup(Instant::now());
        }
        self.execute();
        self.publish(false);
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            let timeout = poll_timeout(self.vrrp.poll_timeout(), Instant::now());
            let (packets, wake) = {
                let mut fds = [
                    PollFd::new(self.socket.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
                ];
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) => (ready(&fds[0]), ready(&fds[1])),
                    Err(nix::Error::EINTR) => (false, false),
                    Err(error) => {
                        // Not expected with valid descriptors; back off rather than spin.
                        warn!(%iface, %error, "poll failed");
                        std::thread::sleep(Duration::from_millis(10));
                        (false, false)
                    }
                }
            };
            if wake && let Flow::Stop = self.commands() {
                self.publish(true);
                return;
            }
            if packets {
                self.receive(&mut buf);
            }
            self.vrrp.handle_timeout(Instant::now());
            self.execute();
            self.publish(false);
        }
    }

    fn commands(&mut self) -> Flow {
        let mut doorbell = [0u8; 64];
        while matches!((&self.wake).read(&mut doorbell), Ok(n) if n > 0) {}
        loop {
            let command = match self.commands.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => return Flow::Continue,
                // The handle is gone without saying how to stop: the safe default is
                // the RFC's Shutdown, which releases.
                Err(mpsc::TryRecvError::Disconnected) => Command::Shutdown,
            };
            let now = Instant::now();
            match command {
                Command::Shutdown => {
                    self.vrrp.handle_shutdown(now);
                    self.execute();
                    info!(iface = %self.socket.interface(), "VRRP virtual router stopped");
                    return Flow::Stop;
                }
                Command::Abandon => {
                    info!(
                        iface = %self.socket.interface(),
                        state = %self.vrrp.state(),
                        "VRRP virtual router abandoned without shutdown"
                    );
                    return Flow::Stop;
                }
                Command::SetPriority(p) => {
                    if let Err(error) = self.vrrp.set_priority(now, p) {
                        warn!(iface = %self.socket.interface(), %error, "priority not changed");
                    }
                }
                Command::SetFault(f, signal) => {
                    self.signal = signal;
                    self.vrrp.set_fault(now, f);
                }
            }
            self.execute();
        }
    }

    fn receive(&mut self, buf: &mut [u8]) {
        let iface = self.socket.interface().to_owned();
        for _ in 0..RECV_BATCH {
            let received = match self.socket.recv(buf) {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(error) => {
                    self.io.recv_errors += 1;
                    warn!(%iface, %error, reason = error.reason(), "VRRP receive error");
                    if matches!(error, SocketError::Recv { .. }) {
                        // A socket error may repeat at once; wait for the next poll.
                        return;
                    }
                    continue;
                }
            };
            self.io.packets_received += 1;
            let (src, dst) = (received.src, received.dst);
            if let Err(error) =
                check_ip_header(received.ttl, received.protocol, src, dst, self.transport)
            {
                *self.io.ip_check_dropped.entry(error.reason()).or_default() += 1;
                debug!(%iface, %src, %dst, %error, "VRRP packet dropped");
                continue;
            }
            let (advert, mode) = match Advertisement::decode(received.payload, src, dst) {
                Ok(decoded) => decoded,
                Err(error) => {
                    *self.io.decode_dropped.entry(error.reason()).or_default() += 1;
                    debug!(%iface, %src, %dst, %error, "VRRP advert dropped");
                    continue;
                }
            };
            if advert.family() == Family::V4 {
                match mode {
                    ChecksumMode::PseudoHeader => self.io.checksum_pseudo_header += 1,
                    ChecksumMode::MessageOnly => self.io.checksum_message_only += 1,
                }
                if mode != self.checksum {
                    debug!(%iface, %src, theirs = ?mode, ours = ?self.checksum,
                        "peer uses the other IPv4 checksum form");
                }
            }
            if let Err(reason) = self.vrrp.handle_advert(Instant::now(), src, &advert) {
                debug!(%iface, %src, vrid = advert.vrid(), %reason, reason_label = reason.reason(),
                    "VRRP advert ignored");
            }
            self.execute();
        }
    }

    fn execute(&mut self) {
        while let Some(action) = self.vrrp.poll_action() {
            let iface = self.socket.interface().to_owned();
            let vrid = self.vrrp.config().vrid;
            match action {
                Action::SendAdvert { priority } => self.send_advert(priority),
                Action::BecomeMaster {
                    from,
                    reason,
                    accept_mode,
                } => {
                    info!(%iface, vrid, ?from, to = "master", %reason, signal = self.signal.as_deref().unwrap_or("-"), "VRRP transition");
                    self.ownership.own(from, reason, accept_mode);
                }
                Action::BecomeBackup { from, reason } => {
                    info!(%iface, vrid, ?from, to = "backup", %reason, signal = self.signal.as_deref().unwrap_or("-"), "VRRP transition");
                    self.ownership.release(from, State::Backup, reason);
                }
                Action::BecomeInitialize { from, reason } => {
                    info!(%iface, vrid, ?from, to = "initialize", %reason, signal = self.signal.as_deref().unwrap_or("-"), "VRRP transition");
                    self.ownership.release(from, State::Initialize, reason);
                }
                Action::Announce { reason } => {
                    debug!(%iface, vrid, ?reason, "VRRP announce");
                    self.ownership.announce(reason);
                }
            }
        }
    }

    fn send_advert(&mut self, priority: u8) {
        let advert = self.vrrp.advertisement(priority);
        let src = self.vrrp.config().primary_address;
        for &dst in &self.destinations {
            // The checksum covers the destination, so each peer gets its own encoding.
            let result = advert
                .encode(src, dst, self.checksum)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    self.socket
                        .send(&bytes, src, dst)
                        .map_err(|e| format!("{e} ({})", e.reason()))
                });
            match result {
                Ok(()) => self.io.packets_sent += 1,
                Err(error) => {
                    self.io.send_errors += 1;
                    warn!(iface = %self.socket.interface(), %src, %dst, priority, %error,
                        "VRRP send error");
                }
            }
        }
    }

    fn publish(&self, stopped: bool) {
        let mut status = lock(&self.status);
        status.state = self.vrrp.state();
        if status.state_since != self.vrrp.state_since() {
            status.state_since = self.vrrp.state_since();
            status.state_since_wall = wall_clock(status.state_since);
        }
        status.priority = self.vrrp.config().priority;
        status.effective_priority = self.vrrp.effective_priority();
        status.faulted = self.vrrp.is_faulted();
        status.master_adver_interval_cs = self.vrrp.master_adver_interval_cs();
        status.master = self.vrrp.master();
        status.vrrp = self.vrrp.counters().clone();
        status.io = self.io.clone();
        status.stopped = stopped;
    }
}

/// The wall-clock time of a monotonic instant in the past.
fn wall_clock(at: Instant) -> SystemTime {
    let ago = Instant::now().saturating_duration_since(at);
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn ready(fd: &PollFd<'_>) -> bool {
    fd.revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// The `poll` timeout until `deadline`, rounded up to whole milliseconds: rounding
/// down would wake before the deadline, find nothing due and spin.
fn poll_timeout(deadline: Option<Instant>, now: Instant) -> PollTimeout {
    let Some(deadline) = deadline else {
        return PollTimeout::NONE;
    };
    let micros = deadline.saturating_duration_since(now).as_micros();
    let millis = micros.div_ceil(1000);
    PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the poll timeout never wakes the loop before the machine's deadline, and
    // waits forever when there is none.
    #[test]
    fn poll_timeout_rounds_up() {
        let now = Instant::now();
        assert_eq!(poll_timeout(None, now), PollTimeout::NONE);
        assert_eq!(poll_timeout(Some(now), now), PollTimeout::ZERO);
        assert_eq!(
            poll_timeout(Some(now + Duration::from_micros(1)), now),
            PollTimeout::try_from(1u32).unwrap()
        );
        assert_eq!(
            poll_timeout(Some(now + Duration::from_micros(2001)), now),
            PollTimeout::try_from(3u32).unwrap()
        );
        // A deadline in the past fires at once.
        assert_eq!(
            poll_timeout(Some(now), now + Duration::from_secs(1)),
            PollTimeout::ZERO
        );
    }
}
