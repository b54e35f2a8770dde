//! The VRRPv3 state machine of one virtual router (RFC 9568 section 6), sans-IO: one
//! instance per (interface, slot, address family). Inputs are `handle_*(now, ..)` calls,
//! outputs are [`Action`] values taken with [`Vrrp::poll_action`] and the next deadline
//! from [`Vrrp::poll_timeout`]. There is no clock, socket or task in here: the shell
//! passes `now`, sends the adverts, writes the ownership map and emits the announcements.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::packet::{AdvertError, Advertisement, Family};
use super::timers::{self, centiseconds};

/// RFC 9568 6.1: the priority of the router that owns the virtual addresses.
pub const OWNER_PRIORITY: u8 = 255;
/// RFC 9568 6.1: the default priority of a backup.
pub const DEFAULT_PRIORITY: u8 = 100;
/// RFC 9568 6.1: the default Advertisement_Interval, 1 s.
pub const DEFAULT_ADVERT_INTERVAL_CS: u16 = 100;
/// The priority a router advertises while a tracked signal has failed: the lowest a
/// live router can have, so every healthy router preempts it and it preempts no one.
pub const FAULT_PRIORITY: u8 = 1;

/// The configuration of one virtual router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// RFC 9568 6.1 VRID, 1-255.
    pub vrid: u8,
    /// RFC 9568 6.1 Priority: 1-254 for a backup, 255 for the address owner.
    pub priority: u8,
    /// RFC 9568 6.1 Advertisement_Interval in centiseconds, 1-4095.
    pub advert_interval_cs: u16,
    /// RFC 9568 6.1 Preempt_Mode: a higher-priority backup takes over from a
    /// lower-priority master. The address owner (priority 255) preempts regardless.
    pub preempt: bool,
    /// How long a backup keeps a lower-priority master before preempting it, counted
    /// from the first lower-priority advertisement it hears (keepalived's
    /// `preempt_delay`; not in RFC 9568). Zero preempts as the RFC says.
    pub preempt_delay: Duration,
    /// RFC 9568 6.1 Accept_Mode: whether the master accepts packets addressed to the
    /// virtual addresses. Not used by the machine; reported to the shell.
    pub accept_mode: bool,
    /// Our primary address on the interface, the IP source of our adverts (the IPv6
    /// link-local address, or `unicast_src_ip`). Breaks ties between equal priorities
    /// (RFC 9568 6.4.3) and recognises our own adverts looped back.
    pub primary_address: IpAddr,
    /// The virtual addresses (RFC 9568 6.1 IPvX_Addresses), all of one family.
    pub addresses: Vec<IpAddr>,
    /// Unicast peers. When not empty, adverts from any other source are dropped.
    pub unicast_peers: Vec<IpAddr>,
    /// With exactly one unicast peer, a backup that hears priority 0 becomes master at
    /// once instead of after Skew_Time. Skew_Time exists so that several backups do not
    /// all claim mastership at the same instant (RFC 9568 6.4.2); with one configured
    /// peer there is no other backup to race, and the waiting is pure outage. Has no
    /// effect with zero or several peers (multicast, or unicast to many).
    pub fast_takeover_on_priority_zero: bool,
}

impl Config {
    /// A configuration with the RFC 9568 6.1 defaults: 1 s interval, preempt on,
    /// accept mode off, no preempt delay, multicast, and fast takeover on (it only acts
    /// once exactly one unicast peer is added).
    pub fn new(vrid: u8, priority: u8, primary_address: IpAddr, addresses: Vec<IpAddr>) -> Self {
        Self {
            vrid,
            priority,
            advert_interval_cs: DEFAULT_ADVERT_INTERVAL_CS,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            primary_address,
            addresses,
            unicast_peers: Vec::new(),
            fast_takeover_on_priority_zero: true,
        }
    }

    pub fn family(&self) -> Family {
        Family::of(self.primary_address)
    }

    /// Whether the unicast fast takeover applies: asked for and exactly one peer.
    pub fn fast_takeover(&self) -> bool {
        self.fast_takeover_on_priority_zero && self.unicast_peers.len() == 1
    }

    /// The advert this config produces. Building it checks the VRID, interval and
    /// address rules in one place.
    fn template(&self) -> Result<Advertisement, ConfigError> {
        Advertisement::new(
            self.vrid,
            self.priority,
            self.advert_interval_cs,
            self.addresses.clone(),
        )
        .map_err(|source| ConfigError::Advert {
            vrid: self.vrid,
            source,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.priority == 0 {
            return Err(ConfigError::PriorityZero { vrid: self.vrid });
        }
        self.template()?;
        let family = self.family();
        if let Some(&addr) = self
            .addresses
            .iter()
            .chain(&self.unicast_peers)
            .find(|a| Family::of(**a) != family)
        {
            return Err(ConfigError::FamilyMismatch {
                vrid: self.vrid,
                primary: self.primary_address,
                addr,
            });
        }
        if self.unicast_peers.contains(&self.primary_address) {
            return Err(ConfigError::PeerIsSelf {
                vrid: self.vrid,
                addr: self.primary_address,
            });
        }
        Ok(())
    }
}

/// Why a virtual router's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("VRID {vrid}: priority 0 is reserved for the shutdown advertisement; use 1-255")]
    PriorityZero { vrid: u8 },
    #[error("VRID {vrid}: {source}")]
    Advert { vrid: u8, source: AdvertError },
    #[error("VRID {vrid}: `{addr}` is not of the family of the primary address `{primary}`")]
    FamilyMismatch {
        vrid: u8,
        primary: IpAddr,
        addr: IpAddr,
    },
    #[error("VRID {vrid}: unicast peer `{addr}` is our own primary address")]
    PeerIsSelf { vrid: u8, addr: IpAddr },
}

/// RFC 9568 6.2-6.4 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    /// The RFC 9568 "Active" router (RFC 5798's "Master").
    Master,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
        })
    }
}

/// Why a transition happened, for the log line and the status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// RFC 9568 6.4.1: startup with priority 255.
    StartupAsOwner,
    /// RFC 9568 6.4.1: startup with priority below 255.
    Startup,
    /// Beyond RFC 9568: a restarted agent (or a reloaded virtual router) found this
    /// router's addresses still owned by this node and its liveness fence still fresh, so
    /// it carries on as master instead of starting over from Initialize.
    Resumed,
    /// RFC 9568 6.4.2: the Master_Down_Timer fired.
    MasterDown,
    /// Unicast fast takeover: the single peer sent priority 0.
    PeerReleased { from: IpAddr },
    /// RFC 9568 6.4.3: an advert with a higher priority arrived.
    HigherPriority { from: IpAddr, priority: u8 },
    /// RFC 9568 6.4.3: equal priority from a larger primary address.
    EqualPriorityHigherAddress { from: IpAddr, priority: u8 },
    /// A tracked signal failed: the master gives up (issue 6).
    Fault,
    /// RFC 9568 6.4.2 / 6.4.3: Shutdown event.
    Shutdown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::StartupAsOwner => write!(f, "startup as address owner (priority 255)"),
            Reason::Startup => write!(f, "startup"),
            Reason::Resumed => write!(f, "resumed mastership still held by this node"),
            Reason::MasterDown => write!(f, "master down timer expired"),
            Reason::PeerReleased { from } => {
                write!(f, "unicast peer {from} released mastership (priority 0)")
            }
            Reason::HigherPriority { from, priority } => {
                write!(f, "advert from {from} with higher priority {priority}")
            }
            Reason::EqualPriorityHigherAddress { from, priority } => write!(
                f,
                "advert from {from} with equal priority {priority} and higher address"
            ),
            Reason::Fault => write!(f, "tracked signal failed"),
            Reason::Shutdown => write!(f, "shutdown"),
        }
    }
}

/// Why the master announces its addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceReason {
    /// RFC 9568 6.4.1 / 6.4.2: gratuitous ARP / unsolicited NA on becoming master.
    BecameMaster,
    /// A lower-priority router also claims mastership (a healed partition): clients and
    /// switches may have learned its MAC, so the addresses are announced again.
    LowerPriorityMaster { from: IpAddr, priority: u8 },
}

/// A side effect for the shell to carry out, in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority (0: we stop being master) and our own
    /// Advertisement_Interval, to the group or to every unicast peer.
    SendAdvert { priority: u8 },
    /// Own the virtual addresses (write the ownership map).
    BecomeMaster {
        from: State,
        reason: Reason,
        /// RFC 9568 6.1 Accept_Mode, always true for the address owner.
        accept_mode: bool,
    },
    /// Release the virtual addresses (if owned) and listen as backup.
    BecomeBackup { from: State, reason: Reason },
    /// Release the virtual addresses (if owned) and stop.
    BecomeInitialize { from: State, reason: Reason },
    /// Send the gratuitous ARP / unsolicited NA burst for every virtual address.
    Announce { reason: AnnounceReason },
}

/// Why an advertisement was dropped before the state machine looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DropReason {
    #[error("not running (Initialize state)")]
    NotRunning,
    #[error("VRID {got} is not ours")]
    VridMismatch { got: u8 },
    #[error("address family differs from the virtual router's")]
    FamilyMismatch,
    #[error("our own advertisement")]
    OwnAdvert,
    #[error("source {src} is not a configured unicast peer")]
    NotUnicastPeer { src: IpAddr },
}

impl DropReason {
    /// A short stable label, for counters and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DropReason::NotRunning => "not_running",
            DropReason::VridMismatch { .. } => "vrid_mismatch",
            DropReason::FamilyMismatch => "family_mismatch",
            DropReason::OwnAdvert => "own_advert",
            DropReason::NotUnicastPeer { .. } => "not_unicast_peer",
        }
    }
}

/// Advertisements dropped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub not_running: u64,
    pub vrid_mismatch: u64,
    pub family_mismatch: u64,
    pub own_advert: u64,
    pub not_unicast_peer: u64,
}

/// What the machine has seen and done since it was created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Adverts that passed the filters and were processed.
    pub adverts_received: u64,
    pub priority_zero_received: u64,
    pub adverts_sent: u64,
    pub priority_zero_sent: u64,
    pub dropped: DropCounters,
    /// Adverts whose address list differs from ours (RFC 9568 7.1: log, not drop).
    pub address_list_mismatch: u64,
    /// Lower-priority adverts a preempting backup discarded (RFC 9568 6.4.2).
    pub lower_priority_discarded: u64,
    pub became_master: u64,
    pub became_backup: u64,
    pub became_initialize: u64,
    pub announces: u64,
}

/// One VRRPv3 virtual router.
#[derive(Debug)]
pub struct Vrrp {
    config: Config,
    /// Our advertisement, validated once; only the priority varies.
    template: Advertisement,
    state: State,
    state_since: Instant,
    /// Adver_Timer in Master, Master_Down_Timer in Backup, none in Initialize.
    timer: Option<Instant>,
    /// RFC 9568 6.1 Master_Adver_Interval: ours in Master, the master's in Backup.
    master_adver_interval_cs: u16,
    faulted: bool,
    /// When the last advert heard from another router was priority 0 (it left or gave up)
    /// with none since: for a Master_Down_Interval after it, no router is known that
    /// could take over in better health.
    peer_left: Option<Instant>,
    /// The master a backup follows, with its priority, for status.
    master: Option<(IpAddr, u8)>,
    /// When a preempting backup first heard the current lower-priority master.
    lower_priority_since: Option<Instant>,
    last_announce: Option<Instant>,
    actions: VecDeque<Action>,
    counters: Counters,
}

impl Vrrp {
    pub fn new(config: Config, now: Instant) -> Result<Self, ConfigError> {
        config.validate()?;
        let template = config.template()?;
        Ok(Self {
            template,
            master_adver_interval_cs: config.advert_interval_cs,
            config,
            state: State::Initialize,
            state_since: now,
            timer: None,
            faulted: false,
            peer_left: None,
            master: None,
            lower_priority_since: None,
            last_announce: None,
            actions: VecDeque::new(),
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn state_since(&self) -> Instant {
        self.state_since
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn is_faulted(&self) -> bool {
        self.faulted
    }

    /// The priority we advertise and compare with: [`FAULT_PRIORITY`] while a tracked
    /// signal is down, the configured one otherwise.
    pub fn effective_priority(&self) -> u8 {
        if self.faulted {
            FAULT_PRIORITY
        } else {
            self.config.priority
        }
    }

    /// RFC 9568 6.1: the owner (priority 255) always accepts packets to its addresses.
    pub fn accept_mode(&self) -> bool {
        self.config.accept_mode || self.config.priority == OWNER_PRIORITY
    }

    /// The master a backup follows and its advertised priority; `None` when we are
    /// master, stopped, or have not heard one since the last priority 0.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        self.master
    }

    pub fn master_adver_interval_cs(&self) -> u16 {
        self.master_adver_interval_cs
    }

    /// RFC 9568 6.1 Skew_Time for our effective priority and the current
    /// Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        timers::skew_time(self.effective_priority(), self.master_adver_interval_cs)
    }

    /// RFC 9568 6.1 Master_Down_Interval for our effective priority and the current
    /// Master_Adver_Interval. The agent derives the liveness fence from the peer's value
    /// (`tr7::agent::heartbeat::fence`).
    pub fn master_down_interval(&self) -> Duration {
        timers::master_down_interval(self.effective_priority(), self.master_adver_interval_cs)
    }

    /// The advertisement we send with `priority`, for the shell to pre-encode.
    pub fn advertisement(&self, priority: u8) -> Advertisement {
        self.template.with_priority(priority)
    }

    /// The instant of the next [`Vrrp::handle_timeout`] call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// The next side effect to carry out, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// RFC 9568 6.4.1: Startup event in Initialize.
    pub fn handle_startup(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if self.effective_priority() == OWNER_PRIORITY {
            // RFC 9568 6.4.1: the owner sends an advert, announces, and is Active.
            self.become_master(now, Reason::StartupAsOwner);
        } else {
            // RFC 9568 6.4.1: otherwise Master_Adver_Interval = Advertisement_Interval,
            // Master_Down_Timer = Master_Down_Interval, and Backup.
            self.become_backup(now, Reason::Startup, self.config.advert_interval_cs);
        }
    }

    /// Startup of a router that was master a moment ago, in the previous agent process or
    /// in the router this one replaces on reload: the addresses are still owned and the
    /// clients' neighbour entries still point here. Beyond RFC 9568, which knows only
    /// Startup: the advert goes out at once (it resets the backups' Master_Down_Timer before
    /// it fires) and the router is Active, without the announcement burst, since nothing
    /// moved. A higher-priority router that is master meanwhile makes this one Backup at
    /// its next advert, as any other master (RFC 9568 6.4.3).
    pub fn handle_resume(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        self.enter_master(now, Reason::Resumed);
    }

    /// RFC 9568 6.4.2 / 6.4.3: Shutdown event.
    pub fn handle_shutdown(&mut self, now: Instant) {
        match self.state {
            State::Initialize => {}
            State::Backup => {
                // RFC 9568 6.4.2: cancel the Master_Down_Timer, go to Initialize.
                self.become_initialize(now, Reason::Shutdown);
            }
            State::Master => {
                // RFC 9568 6.4.3: cancel the Adver_Timer, send an advert with priority 0
                // so a backup takes over after Skew_Time instead of Master_Down_Interval.
                self.send_advert(0);
                self.become_initialize(now, Reason::Shutdown);
            }
        }
    }

    /// Fires the timer if it is due at `now`; an early call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(deadline) if deadline <= now => {}
            _ => return,
        }
        match self.state {
            State::Initialize => self.timer = None,
            State::Backup => {
                // RFC 9568 6.4.2: Master_Down_Timer fired: send an advert, announce,
                // and become Active.
                self.become_master(now, Reason::MasterDown);
            }
            State::Master => {
                // RFC 9568 6.4.3: Adver_Timer fired: send an advert, re-arm the timer.
                self.send_advert(self.effective_priority());
                self.arm_advert_timer(now);
            }
        }
    }

    /// An advertisement that passed [`check_ip_header`](super::packet::check_ip_header)
    /// and [`Advertisement::decode`], received from IP source `src`.
    pub fn handle_advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        advert: &Advertisement,
    ) -> Result<(), DropReason> {
        if let Err(reason) = self.filter(src, advert) {
            let d = &mut self.counters.dropped;
            match reason {
                DropReason::NotRunning => d.not_running += 1,
                DropReason::VridMismatch { .. } => d.vrid_mismatch += 1,
                DropReason::FamilyMismatch => d.family_mismatch += 1,
                DropReason::OwnAdvert => d.own_advert += 1,
                DropReason::NotUnicastPeer { .. } => d.not_unicast_peer += 1,
            }
            return Err(reason);
        }
        self.counters.adverts_received += 1;
        if advert.priority() == 0 {
            self.counters.priority_zero_received += 1;
            self.peer_left = Some(now);
        } else {
            self.peer_left = None;
        }
        if !same_addresses(advert.addresses(), &self.config.addresses) {
            // RFC 9568 7.1: a differing address list MAY be logged; it is not a reason
            // to ignore the master, or a misconfigured pair would have two masters.
            self.counters.address_list_mismatch += 1;
        }
        match self.state {
            State::Initialize => {}
            State::Backup => self.advert_in_backup(now, src, advert),
            State::Master => self.advert_in_master(now, src, advert),
        }
        Ok(())
    }

    /// Changes the configured priority (1-255). A master advertises the new value at
    /// once so that backups can preempt it without waiting an interval.
    pub fn set_priority(&mut self, now: Instant, priority: u8) -> Result<(), ConfigError> {
        if priority == 0 {
            return Err(ConfigError::PriorityZero {
                vrid: self.config.vrid,
            });
        }
        let before = self.effective_priority();
        self.config.priority = priority;
        if self.state == State::Master && self.effective_priority() != before {
            self.send_advert(self.effective_priority());
            self.arm_advert_timer(now);
        }
        Ok(())
    }

    /// A tracked signal (link, gateway) failed (`true`) or recovered (`false`).
    ///
    /// On failure a master gives up: it sends priority 0 so the peer takes over at once
    /// (or after Skew_Time) and becomes backup. While failed the router advertises and
    /// compares with [`FAULT_PRIORITY`] and never preempts; it still takes over when no
    /// master is heard for Master_Down_Interval, because a degraded master beats none.
    /// The give-up happens only on the failure edge, so two failed routers settle on
    /// one master (the higher address at equal fault priority) and do not flap. A master
    /// whose last word from the other router, less than a Master_Down_Interval ago, was
    /// priority 0 (that router left or gave up itself, and has said nothing since) does
    /// not give up: no one is known to be healthier, and handing back would move the VIPs
    /// twice between two broken nodes whose signals failed milliseconds apart. It
    /// advertises its fault priority at once, so a healthy router preempts it.
    pub fn set_fault(&mut self, now: Instant, faulted: bool) {
        if self.faulted == faulted {
            return;
        }
        self.faulted = faulted;
        self.lower_priority_since = None;
        if self.state != State::Master {
            return;
        }
        let peer_just_left = self
            .peer_left
            .is_some_and(|t| now.saturating_duration_since(t) < self.master_down_interval());
        if faulted && peer_just_left {
            self.send_advert(self.effective_priority());
            self.arm_advert_timer(now);
        } else if faulted {
            self.send_advert(0);
            self.become_backup(now, Reason::Fault, self.config.advert_interval_cs);
        } else {
            // Recovered while master (as last resort): tell the peers our real priority
            // now rather than at the next interval.
            self.send_advert(self.effective_priority());
            self.arm_advert_timer(now);
        }
    }

    fn filter(&self, src: IpAddr, advert: &Advertisement) -> Result<(), DropReason> {
        if self.state == State::Initialize {
            // RFC 9568 6.4.1: Initialize only waits for Startup.
            return Err(DropReason::NotRunning);
        }
        let family = self.config.family();
        if Family::of(src) != family || advert.family() != family {
            return Err(DropReason::FamilyMismatch);
        }
        if advert.vrid() != self.config.vrid {
            return Err(DropReason::VridMismatch { got: advert.vrid() });
        }
        if src == self.config.primary_address {
            // Multicast loopback or a reflected unicast: not a second router.
            return Err(DropReason::OwnAdvert);
        }
        if !self.config.unicast_peers.is_empty() && !self.config.unicast_peers.contains(&src) {
            // Unicast mode trusts only its configured peers.
            return Err(DropReason::NotUnicastPeer { src });
        }
        Ok(())
    }

    fn advert_in_backup(&mut self, now: Instant, src: IpAddr, advert: &Advertisement) {
        let local = self.effective_priority();
        if advert.priority() == 0 {
            self.master = None;
            self.lower_priority_since = None;
            if self.config.fast_takeover() && !self.faulted {
                // Unicast fast takeover: the only other router just left, so there is
                // no backup to race and Skew_Time would only add outage. A failed
                // router does not hurry: it is master of last resort only.
                self.become_master(now, Reason::PeerReleased { from: src });
            } else {
                // RFC 9568 6.4.2: priority 0 received: Master_Down_Timer = Skew_Time.
                self.timer = Some(now + self.skew_time());
            }
            return;
        }
        let lower = advert.priority() < local;
        // RFC 9568 6.1: the address owner always preempts, whatever Preempt_Mode says.
        let preempt = self.config.preempt || self.config.priority == OWNER_PRIORITY;
        if lower && preempt && !self.faulted && !self.preempt_delay_running(now) {
            // RFC 9568 6.4.2: Preempt_Mode and a lower priority: discard the advert, so
            // the Master_Down_Timer fires and we take over.
            self.counters.lower_priority_discarded += 1;
            return;
        }
        if !lower {
            self.lower_priority_since = None;
        }
        // RFC 9568 6.4.2: Preempt_Mode false, or priority >= ours (or, beyond the RFC,
        // a preempt delay still running, or a failed signal): follow this master, adopt
        // its interval, recompute Skew_Time and Master_Down_Interval, reset the timer.
        self.master = Some((src, advert.priority()));
        self.master_adver_interval_cs = advert.max_advert_interval_cs();
        self.timer = Some(now + self.master_down_interval());
    }

    /// Whether a preempting backup should still keep a lower-priority master because
    /// the preempt delay, counted from the first such advert, has not yet run out.
    fn preempt_delay_running(&mut self, now: Instant) -> bool {
        if self.config.preempt_delay.is_zero() {
            return false;
        }
        let since = *self.lower_priority_since.get_or_insert(now);
        now.saturating_duration_since(since) < self.config.preempt_delay
    }

    fn advert_in_master(&mut self, now: Instant, src: IpAddr, advert: &Advertisement) {
        let local = self.effective_priority();
        let theirs = advert.priority();
        if theirs == 0 {
            // RFC 9568 6.4.3: priority 0 received: send an advert, reset the Adver_Timer,
            // so a backup that also heard it sees us before its Skew_Time runs out.
            self.send_advert(local);
            self.arm_advert_timer(now);
            return;
        }
        // RFC 9568 6.4.3: a higher priority, or an equal one from a larger primary
        // address, wins: adopt its interval, arm the Master_Down_Timer, go Backup.
        // Both addresses are of one family here (filtered), so IpAddr's order is the
        // numeric order the RFC asks for.
        let reason = if theirs > local {
            Some(Reason::HigherPriority {
                from: src,
                priority: theirs,
            })
        } else if theirs == local && src > self.config.primary_address {
            Some(Reason::EqualPriorityHigherAddress {
                from: src,
                priority: theirs,
            })
        } else {
            None
        };
        if let Some(reason) = reason {
            // Beyond RFC 9568 6.4.3, which sends nothing here: one last advert with our
            // priority tells the winner that a second master existed. After a healed
            // partition the winner's advert may be the first to cross, and without this
            // it would never learn that clients followed us, and would not re-announce.
            // RFC routers discard a lower-priority advert, so this costs them nothing.
            self.send_advert(local);
            self.become_backup(now, reason, advert.max_advert_interval_cs());
            self.master = Some((src, theirs));
            return;
        }
        // RFC 9568 6.4.3 says discard. We answer at once instead: another router
        // believes it is master (a healed partition), and until it hears us, clients and
        // switches that learned its MAC send to it. Our advert makes it go Backup now
        // rather than at our next interval, and the re-announcement moves the clients
        // back within one exchange. The announcement is rate-limited to once per
        // Master_Down_Interval so a peer that cannot hear us does not turn every one of
        // its adverts into an ARP storm (keepalived: higher_prio_send_advert,
        // garp_lower_prio_repeat).
        self.send_advert(local);
        self.arm_advert_timer(now);
        let holdoff = self.master_down_interval();
        if self
            .last_announce
            .is_none_or(|t| now.saturating_duration_since(t) >= holdoff)
        {
            self.announce(
                now,
                AnnounceReason::LowerPriorityMaster {
                    from: src,
                    priority: theirs,
                },
            );
        }
    }

    fn become_master(&mut self, now: Instant, reason: Reason) {
        self.enter_master(now, reason);
        self.announce(now, AnnounceReason::BecameMaster);
    }

    /// Advert, Master state, timers, ownership: everything of becoming master except the
    /// announcement.
    fn enter_master(&mut self, now: Instant, reason: Reason) {
        let from = self.state;
        // RFC 9568 6.4.1 / 6.4.2: send an advert first, then own and announce: the
        // advert stops the other routers' timers as early as possible.
        self.send_advert(self.effective_priority());
        self.state = State::Master;
        self.state_since = now;
        self.master = None;
        self.lower_priority_since = None;
        self.master_adver_interval_cs = self.config.advert_interval_cs;
        self.arm_advert_timer(now);
        self.counters.became_master += 1;
        self.actions.push_back(Action::BecomeMaster {
            from,
            reason,
            accept_mode: self.accept_mode(),
        });
    }

    fn become_backup(&mut self, now: Instant, reason: Reason, master_adver_interval_cs: u16) {
        let from = self.state;
        self.state = State::Backup;
        self.state_since = now;
        self.master = None;
        self.lower_priority_since = None;
        self.master_adver_interval_cs = master_adver_interval_cs;
        self.timer = Some(now + self.master_down_interval());
        self.counters.became_backup += 1;
        self.actions
            .push_back(Action::BecomeBackup { from, reason });
    }

    fn become_initialize(&mut self, now: Instant, reason: Reason) {
        let from = self.state;
        self.state = State::Initialize;
        self.state_since = now;
        self.timer = None;
        self.master = None;
        self.lower_priority_since = None;
        self.counters.became_initialize += 1;
        self.actions
            .push_back(Action::BecomeInitialize { from, reason });
    }

    fn send_advert(&mut self, priority: u8) {
        self.counters.adverts_sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
        self.actions.push_back(Action::SendAdvert { priority });
    }

    fn announce(&mut self, now: Instant, reason: AnnounceReason) {
        self.last_announce = Some(now);
        self.counters.announces += 1;
        self.actions.push_back(Action::Announce { reason });
    }

    fn arm_advert_timer(&mut self, now: Instant) {
        self.timer = Some(now + centiseconds(u32::from(self.config.advert_interval_cs)));
    }
}

/// Whether two address lists hold the same addresses, in any order.
fn same_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}
