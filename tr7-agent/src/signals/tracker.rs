//! The pure part of signal tracking: rise/fall counting, flap damping, the link combination
//! rules and the verdict of each virtual router. Sans-IO like `vrrp/state.rs`: inputs carry
//! `now`, outputs are [`Change`]s and one [`Board::poll_timeout`] deadline, so every rule is
//! tested with a fake clock.
//!
//! Why damping on top of rise/fall: rise/fall filters single lost probes, but a port that
//! bounces every few seconds would still move the VIPs on every bounce. A signal that fails
//! again soon after it recovered has its next recovery held back, twice as long each time,
//! up to a maximum; a quiet period resets it.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The state of one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No observation yet: counts as failed (a node does not claim VIPs it cannot vouch for).
    Unknown,
    /// Working.
    Up,
    /// Failed.
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        })
    }
}

/// Rise/fall counting of probe results: `rise` successes in a row make a down signal up,
/// `fall` failures in a row make an up signal down. The first result decides at once, so a
/// starting agent knows its gateway after one probe rather than after `rise` of them.
#[derive(Clone, Debug)]
pub struct Debounce {
    rise: u8,
    fall: u8,
    state: Health,
    /// Results in a row that disagree with `state`.
    run: u8,
}

impl Debounce {
    /// `rise` and `fall` are at least 1 (the file's validation guarantees it; 0 is taken as 1).
    pub fn new(rise: u8, fall: u8) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            run: 0,
        }
    }

    pub fn state(&self) -> Health {
        self.state
    }

    /// One probe result; the new state when it changed.
    pub fn observe(&mut self, ok: bool) -> Option<Health> {
        let want = if ok { Health::Up } else { Health::Down };
        if self.state == want {
            self.run = 0;
            return None;
        }
        if self.state == Health::Unknown {
            self.state = want;
            self.run = 0;
            return Some(want);
        }
        self.run = self.run.saturating_add(1);
        let needed = if ok { self.rise } else { self.fall };
        if self.run >= needed {
            self.state = want;
            self.run = 0;
            Some(want)
        } else {
            None
        }
    }
}

/// Flap damping settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damping {
    /// The hold after the first failure that follows a recent one; doubled on each further one.
    pub step: Duration,
    /// The longest hold.
    pub max: Duration,
    /// A failure more than this after the previous failure starts again without hold.
    pub decay: Duration,
}

impl Default for Damping {
    /// No hold for an isolated failure; 100 ms, 200 ms, ... up to 5 s for failures less
    /// than 10 s apart.
    fn default() -> Self {
        Self {
            step: Duration::from_millis(100),
            max: Duration::from_secs(5),
            decay: Duration::from_secs(10),
        }
    }
}

/// Flap damping of one signal: a failure passes at once; a recovery passes once the input
/// has been up for the current hold.
#[derive(Clone, Debug)]
pub struct Damper {
    cfg: Damping,
    hold: Duration,
    input: Health,
    output: Health,
    /// When the input last turned up while the output is not up yet.
    pending_since: Option<Instant>,
    last_failure: Option<Instant>,
}

impl Damper {
    pub fn new(cfg: Damping) -> Self {
        Self {
            cfg,
            hold: Duration::ZERO,
            input: Health::Unknown,
            output: Health::Unknown,
            pending_since: None,
            last_failure: None,
        }
    }

    pub fn output(&self) -> Health {
        self.output
    }

    /// The hold a recovery must wait out now.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The input changed (or was observed again); the new output when it changed.
    pub fn input(&mut self, now: Instant, input: Health) -> Option<Health> {
        if input == self.input {
            return self.handle_timeout(now);
        }
        self.input = input;
        match input {
            Health::Up => {
                self.pending_since = Some(now);
                self.handle_timeout(now)
            }
            Health::Down | Health::Unknown => {
                self.pending_since = None;
                if input == Health::Down {
                    let recent = self
                        .last_failure
                        .is_some_and(|t| now.saturating_duration_since(t) < self.cfg.decay);
                    self.hold = if recent {
                        (self.hold * 2).max(self.cfg.step).min(self.cfg.max)
                    } else {
                        Duration::ZERO
                    };
                    self.last_failure = Some(now);
                }
                self.set_output(input)
            }
        }
    }

    /// When a pending recovery passes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_since.map(|t| t + self.hold)
    }

    /// Lets a pending recovery pass once its hold is over.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Health> {
        match self.pending_since {
            Some(t) if now >= t + self.hold => {
                self.pending_since = None;
                self.set_output(Health::Up)
            }
            _ => None,
        }
    }

    fn set_output(&mut self, h: Health) -> Option<Health> {
        (self.output != h).then(|| {
            self.output = h;
            h
        })
    }
}

/// How one interface's carrier combines with what is beneath it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkNode {
    /// Its own carrier only (ethernet, veth, veth-peer).
    Plain,
    /// Its carrier and its parent's link.
    Vlan { parent: String },
    /// Active-backup bond: up while at least one member is up (the kernel's own carrier
    /// follows only after its MII monitor interval).
    Bond { members: Vec<String> },
    /// 802.3ad: up while at least `min_links` members are up and distributing.
    Lacp {
        members: Vec<String>,
        min_links: u16,
    },
    /// Bridge: up while every declared port is up (ports added at run time do not count;
    /// the kernel keeps a bridge up while any port is).
    Bridge { ports: Vec<String> },
}

/// What the kernel says about one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortObs {
    /// IFF_LOWER_UP / IFLA_CARRIER (and the interface administratively up).
    pub carrier: bool,
    /// For an 802.3ad bond member: the actor's port state has Distributing.
    pub distributing: Option<bool>,
}

/// Why a link is down: the interface that failed and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkFault {
    pub iface: String,
    pub why: String,
}

impl fmt::Display for LinkFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.iface, self.why)
    }
}

/// The interfaces of one namespace and how each combines with those beneath it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkTree {
    pub nodes: BTreeMap<String, LinkNode>,
}

impl LinkTree {
    /// Every interface `root` depends on, itself included (for the poll's interest list).
    pub fn closure(&self, root: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(root, &mut out, 0);
        out
    }

    fn walk(&self, name: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 16 || out.iter().any(|n| n == name) {
            return;
        }
        out.push(name.to_owned());
        match self.nodes.get(name) {
            Some(LinkNode::Vlan { parent }) => self.walk(parent, out, depth + 1),
            Some(LinkNode::Bond { members } | LinkNode::Lacp { members, .. }) => {
                members.iter().for_each(|m| self.walk(m, out, depth + 1));
            }
            Some(LinkNode::Bridge { ports }) => {
                ports.iter().for_each(|m| self.walk(m, out, depth + 1));
            }
            Some(LinkNode::Plain) | None => {}
        }
    }

    /// Whether `root` is up given the kernel's view `obs`; the first fault found otherwise.
    pub fn evaluate(&self, root: &str, obs: &BTreeMap<String, PortObs>) -> Result<(), LinkFault> {
        self.eval(root, obs, 0)
    }

    fn eval(
        &self,
        name: &str,
        obs: &BTreeMap<String, PortObs>,
        depth: usize,
    ) -> Result<(), LinkFault> {
        let fault = |why: String| LinkFault {
            iface: name.to_owned(),
            why,
        };
        if depth > 16 {
            return Err(fault("is nested too deep".into()));
        }
        let Some(o) = obs.get(name) else {
            return Err(fault("does not exist".into()));
        };
        match self.nodes.get(name).unwrap_or(&LinkNode::Plain) {
            LinkNode::Plain => {}
            LinkNode::Vlan { parent } => self.eval(parent, obs, depth + 1)?,
            LinkNode::Bond { members } => {
                if !members.iter().any(|m| self.eval(m, obs, depth + 1).is_ok()) {
                    return Err(fault(format!(
                        "has no active member (of {})",
                        members.join(", ")
                    )));
                }
            }
            LinkNode::Lacp { members, min_links } => {
                let up = members
                    .iter()
                    .filter(|m| {
                        self.eval(m, obs, depth + 1).is_ok()
                            && obs.get(m.as_str()).and_then(|o| o.distributing) != Some(false)
                    })
                    .count();
                if up < usize::from(*min_links) {
                    return Err(fault(format!(
                        "has {up} member(s) distributing, below min_links {min_links}"
                    )));
                }
            }
            LinkNode::Bridge { ports } => {
                for p in ports {
                    self.eval(p, obs, depth + 1)
                        .map_err(|inner| fault(format!("lost declared port {inner}")))?;
                }
            }
        }
        if !o.carrier {
            return Err(fault("has no carrier".into()));
        }
        Ok(())
    }
}

/// Index of a signal on a [`Board`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalId(pub usize);

/// Index of a router on a [`Board`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterId(pub usize);

/// A router's verdict changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub router: RouterId,
    /// Whether one of its signals is failed.
    pub faulted: bool,
    /// The signal that caused the change (the one that failed, or the last to recover).
    pub signal: String,
    /// What the signal says (`` `eth1` has no carrier ``, `3 probes unanswered`, ...).
    pub detail: String,
}

struct Signal {
    name: String,
    mechanism: String,
    debounce: Option<Debounce>,
    damper: Damper,
    detail: String,
    last_change: Option<Instant>,
    transitions: u64,
}

struct Router {
    signals: Vec<SignalId>,
    faulted: bool,
}

/// Snapshot of one signal for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignalSnapshot {
    pub name: String,
    pub state: Health,
    pub mechanism: String,
    /// How long ago the state last changed (`None`: never).
    pub since_change: Option<Duration>,
    pub detail: String,
    pub transitions: u64,
}

/// Every signal of the agent and the routers that depend on them.
#[derive(Default)]
pub struct Board {
    signals: Vec<Signal>,
    routers: Vec<Router>,
    changes: VecDeque<Change>,
}

impl Board {
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal set from outside (link): [`Board::set`].
    pub fn add_level(
        &mut self,
        name: impl Into<String>,
        mechanism: impl Into<String>,
        damping: Damping,
    ) -> SignalId {
        self.push(name.into(), mechanism.into(), None, damping)
    }

    /// A signal fed with probe results (gateway): [`Board::probe`].
    pub fn add_probe(
        &mut self,
        name: impl Into<String>,
        mechanism: impl Into<String>,
        rise: u8,
        fall: u8,
        damping: Damping,
    ) -> SignalId {
        self.push(
            name.into(),
            mechanism.into(),
            Some(Debounce::new(rise, fall)),
            damping,
        )
    }

    fn push(
        &mut self,
        name: String,
        mechanism: String,
        debounce: Option<Debounce>,
        damping: Damping,
    ) -> SignalId {
        self.signals.push(Signal {
            name,
            mechanism,
            debounce,
            damper: Damper::new(damping),
            detail: "not observed yet".into(),
            last_change: None,
            transitions: 0,
        });
        SignalId(self.signals.len() - 1)
    }

    /// A router that is faulted while any of `signals` is not up. It starts faulted when it
    /// has signals (they are unknown).
    pub fn add_router(&mut self, signals: Vec<SignalId>) -> RouterId {
        let faulted = !signals.is_empty();
        self.routers.push(Router { signals, faulted });
        RouterId(self.routers.len() - 1)
    }

    /// The signals a router depends on.
    pub fn signals_of(&self, r: RouterId) -> &[SignalId] {
        &self.routers[r.0].signals
    }

    /// Whether the router depends on any signal.
    pub fn tracks(&self, r: RouterId) -> bool {
        !self.routers[r.0].signals.is_empty()
    }

    pub fn faulted(&self, r: RouterId) -> bool {
        self.routers[r.0].faulted
    }

    pub fn health(&self, s: SignalId) -> Health {
        self.signals[s.0].damper.output()
    }

    pub fn name(&self, s: SignalId) -> &str {
        &self.signals[s.0].name
    }

    /// Replaces the mechanism shown in status (the link watcher's probe picks it at run time).
    pub fn set_mechanism(&mut self, s: SignalId, mechanism: impl Into<String>) {
        self.signals[s.0].mechanism = mechanism.into();
    }

    /// The current level of a level signal; `Err` carries why it is down.
    pub fn set(&mut self, now: Instant, s: SignalId, level: Result<(), String>) {
        let h = match &level {
            Ok(()) => Health::Up,
            Err(_) => Health::Down,
        };
        let detail = level.err().unwrap_or_else(|| "up".into());
        self.input(now, s, h, detail);
    }

    /// One probe result of a probe signal; `detail` says what happened.
    pub fn probe(&mut self, now: Instant, s: SignalId, ok: bool, detail: impl Into<String>) {
        let sig = &mut self.signals[s.0];
        let Some(d) = sig.debounce.as_mut() else {
            return;
        };
        d.observe(ok);
        let h = d.state();
        self.input(now, s, h, detail.into());
    }

    fn input(&mut self, now: Instant, s: SignalId, h: Health, detail: String) {
        let sig = &mut self.signals[s.0];
        // Keep the reason of the failure that took the signal down, not of each probe after.
        if h != Health::Up && sig.damper.output() != Health::Down {
            sig.detail = detail;
        }
        if let Some(out) = sig.damper.input(now, h) {
            self.output_changed(now, s, out);
        }
    }

    /// The earliest pending recovery.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.signals
            .iter()
            .filter_map(|s| s.damper.poll_timeout())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.signals.len() {
            if let Some(out) = self.signals[i].damper.handle_timeout(now) {
                self.output_changed(now, SignalId(i), out);
            }
        }
    }

    fn output_changed(&mut self, now: Instant, s: SignalId, out: Health) {
        let sig = &mut self.signals[s.0];
        sig.last_change = Some(now);
        sig.transitions += 1;
        if out == Health::Up {
            sig.detail = "up".into();
        }
        let (name, detail) = (sig.name.clone(), sig.detail.clone());
        for (i, r) in self.routers.iter_mut().enumerate() {
            if !r.signals.contains(&s) {
                continue;
            }
            let faulted = r
                .signals
                .iter()
                .any(|x| self.signals[x.0].damper.output() != Health::Up);
            if faulted != r.faulted {
                r.faulted = faulted;
                self.changes.push_back(Change {
                    router: RouterId(i),
                    faulted,
                    signal: name.clone(),
                    detail: detail.clone(),
                });
            }
        }
    }

    /// The next verdict change, in order.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// Every signal's state, for `tr7 status` and metrics.
    pub fn snapshot(&self, now: Instant) -> Vec<SignalSnapshot> {
        self.signals
            .iter()
            .map(|s| SignalSnapshot {
                name: s.name.clone(),
                state: s.damper.output(),
                mechanism: s.mechanism.clone(),
                since_change: s.last_change.map(|t| now.saturating_duration_since(t)),
                detail: s.detail.clone(),
                transitions: s.transitions,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake clock: instants are milliseconds from one base.
    struct Clock(Instant);

    impl Clock {
        fn new() -> Self {
            Clock(Instant::now())
        }
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn no_damping() -> Damping {
        Damping {
            step: Duration::ZERO,
            max: Duration::ZERO,
            decay: Duration::ZERO,
        }
    }

    // Proves rise/fall: the first result decides, then `fall` failures in a row take an up
    // signal down, `rise` successes in a row bring it back, and an interrupted run restarts.
    #[test]
    fn debounce_counts_rise_and_fall_in_a_row() {
        let mut d = Debounce::new(2, 3);
        assert_eq!(d.state(), Health::Unknown);
        assert_eq!(d.observe(true), Some(Health::Up));
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(true), None, "a success resets the failure run");
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(false), Some(Health::Down));
        assert_eq!(d.observe(false), None);
        assert_eq!(d.observe(true), None);
        assert_eq!(d.observe(false), None, "a failure resets the success run");
        assert_eq!(d.observe(true), None);
        assert_eq!(d.observe(true), Some(Health::Up));
        let mut first_down = Debounce::new(2, 3);
        assert_eq!(first_down.observe(false), Some(Health::Down));
    }

    // Proves flap damping: an isolated failure recovers at once; failures closer together
    // than `decay` hold the recovery for step, 2 step, 4 step ... up to max; a quiet period
    // longer than `decay` starts again without hold.
    #[test]
    fn damper_holds_recovery_of_a_flapping_signal() {
        let c = Clock::new();
        let mut d = Damper::new(Damping {
            step: Duration::from_millis(100),
            max: Duration::from_millis(300),
            decay: Duration::from_secs(10),
        });
        assert_eq!(d.input(c.at(0), Health::Up), Some(Health::Up));
        assert_eq!(d.input(c.at(1000), Health::Down), Some(Health::Down));
        assert_eq!(
            d.input(c.at(1010), Health::Up),
            Some(Health::Up),
            "isolated: no hold"
        );
        // Second failure within decay: hold 100 ms.
        assert_eq!(d.input(c.at(2000), Health::Down), Some(Health::Down));
        assert_eq!(d.input(c.at(2010), Health::Up), None);
        assert_eq!(d.poll_timeout(), Some(c.at(2110)));
        assert_eq!(d.handle_timeout(c.at(2109)), None);
        assert_eq!(d.handle_timeout(c.at(2110)), Some(Health::Up));
        // Third: 200 ms; a bounce during the hold restarts it.
        assert_eq!(d.input(c.at(3000), Health::Down), Some(Health::Down));
        assert_eq!(d.hold(), Duration::from_millis(200));
        assert_eq!(d.input(c.at(3010), Health::Up), None);
        assert_eq!(d.input(c.at(3050), Health::Down), None, "already down");
        assert_eq!(d.hold(), Duration::from_millis(300), "capped at max");
        assert_eq!(d.input(c.at(3060), Health::Up), None);
        assert_eq!(d.handle_timeout(c.at(3300)), None);
        assert_eq!(d.handle_timeout(c.at(3360)), Some(Health::Up));
        // Quiet for longer than decay: no hold.
        assert_eq!(d.input(c.at(20_000), Health::Down), Some(Health::Down));
        assert_eq!(d.hold(), Duration::ZERO);
        assert_eq!(d.input(c.at(20_001), Health::Up), Some(Health::Up));
    }

    fn obs(list: &[(&str, bool)]) -> BTreeMap<String, PortObs> {
        list.iter()
            .map(|(n, c)| {
                (
                    (*n).to_owned(),
                    PortObs {
                        carrier: *c,
                        distributing: None,
                    },
                )
            })
            .collect()
    }

    fn tree() -> LinkTree {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        LinkTree {
            nodes: [
                (
                    "bond0.100".to_owned(),
                    LinkNode::Vlan {
                        parent: "bond0".into(),
                    },
                ),
                (
                    "bond0".to_owned(),
                    LinkNode::Bond {
                        members: s(&["eth0", "eth1"]),
                    },
                ),
                (
                    "lacp0".to_owned(),
                    LinkNode::Lacp {
                        members: s(&["eno1", "eno2", "eno3"]),
                        min_links: 2,
                    },
                ),
                (
                    "br0".to_owned(),
                    LinkNode::Bridge {
                        ports: s(&["up0", "veth-red"]),
                    },
                ),
                (
                    "lacp0.7".to_owned(),
                    LinkNode::Vlan {
                        parent: "lacp0".into(),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    // Proves the combination rules: a VLAN is down when anything beneath it is; an
    // active-backup bond is up while one member has carrier, whatever the kernel's (MII
    // delayed) carrier of the bond says; an LACP bond needs min_links members up and
    // distributing; a bridge needs every declared port, not just one.
    #[test]
    fn link_tree_combines_carrier_with_what_is_beneath() {
        let t = tree();
        let mut o = obs(&[
            ("bond0.100", true),
            ("bond0", true),
            ("eth0", true),
            ("eth1", true),
        ]);
        assert_eq!(t.evaluate("bond0.100", &o), Ok(()));
        o.get_mut("eth0").unwrap().carrier = false;
        assert_eq!(t.evaluate("bond0.100", &o), Ok(()), "one member is enough");
        o.get_mut("eth1").unwrap().carrier = false;
        let f = t.evaluate("bond0.100", &o).unwrap_err();
        assert_eq!(f.iface, "bond0", "the bond, not the VLAN, is named: {f}");
        assert!(f.why.contains("no active member"), "{f}");
        o.get_mut("eth1").unwrap().carrier = true;
        o.get_mut("bond0.100").unwrap().carrier = false;
        assert_eq!(t.evaluate("bond0.100", &o).unwrap_err().iface, "bond0.100");
        o.remove("bond0");
        assert!(
            t.evaluate("bond0.100", &o)
                .unwrap_err()
                .why
                .contains("does not exist")
        );
        assert_eq!(
            t.closure("bond0.100"),
            ["bond0.100", "bond0", "eth0", "eth1"].map(String::from)
        );

        let mut l = obs(&[
            ("lacp0.7", true),
            ("lacp0", true),
            ("eno1", true),
            ("eno2", true),
            ("eno3", true),
        ]);
        l.get_mut("eno1").unwrap().distributing = Some(true);
        l.get_mut("eno2").unwrap().distributing = Some(false);
        l.get_mut("eno3").unwrap().distributing = Some(true);
        assert_eq!(t.evaluate("lacp0.7", &l), Ok(()));
        l.get_mut("eno3").unwrap().carrier = false;
        let f = t.evaluate("lacp0.7", &l).unwrap_err();
        assert_eq!(f.iface, "lacp0");
        assert!(
            f.why
                .contains("1 member(s) distributing, below min_links 2"),
            "{f}"
        );
        l.get_mut("eno2").unwrap().distributing = Some(true);
        assert_eq!(t.evaluate("lacp0.7", &l), Ok(()));

        let mut b = obs(&[("br0", true), ("up0", true), ("veth-red", true)]);
        assert_eq!(t.evaluate("br0", &b), Ok(()));
        b.get_mut("up0").unwrap().carrier = false;
        let f = t.evaluate("br0", &b).unwrap_err();
        assert_eq!(f.iface, "br0");
        assert!(f.why.contains("`up0` has no carrier"), "{f}");
        assert_eq!(t.evaluate("eth9", &obs(&[("eth9", true)])), Ok(()));
        assert!(t.evaluate("eth9", &obs(&[("eth9", false)])).is_err());
    }

    // Proves the verdicts: a router starts faulted until all its signals are up; it faults on
    // the first of its signals to fail, naming it; a router without that signal is untouched;
    // per-family gateway signals only touch their family's routers.
    #[test]
    fn board_verdicts_name_the_signal() {
        let c = Clock::new();
        let mut b = Board::new();
        let link = b.add_level("link eth0", "netlink", no_damping());
        let gw4 = b.add_probe("gateway eth0 IPv4", "arp", 2, 2, no_damping());
        let gw6 = b.add_probe("gateway eth0 IPv6", "ndp", 2, 2, no_damping());
        let r_vrrp = b.add_router(vec![]);
        let r_link = b.add_router(vec![link]);
        let r_v4 = b.add_router(vec![link, gw4]);
        let r_v6 = b.add_router(vec![gw6]);
        assert!(!b.faulted(r_vrrp));
        assert!(b.faulted(r_link) && b.faulted(r_v4) && b.faulted(r_v6));
        b.set(c.at(0), link, Ok(()));
        assert_eq!(
            b.poll_change().map(|x| (x.router, x.faulted)),
            Some((r_link, false))
        );
        assert_eq!(b.poll_change(), None, "r_v4 still waits for its gateway");
        b.probe(c.at(0), gw4, true, "answered");
        b.probe(c.at(0), gw6, true, "answered");
        let ch: Vec<_> = std::iter::from_fn(|| b.poll_change())
            .map(|x| x.router)
            .collect();
        assert_eq!(ch, [r_v4, r_v6]);
        // IPv4 gateway fails twice: only r_v4.
        b.probe(c.at(10), gw4, false, "no answer within 5ms");
        assert_eq!(b.poll_change(), None, "fall 2");
        b.probe(c.at(20), gw4, false, "no answer within 5ms");
        let x = b.poll_change().unwrap();
        assert_eq!((x.router, x.faulted), (r_v4, true));
        assert_eq!(x.signal, "gateway eth0 IPv4");
        assert_eq!(x.detail, "no answer within 5ms");
        assert_eq!(b.poll_change(), None);
        // The link fails: r_link; r_v4 is already faulted, so no change for it.
        b.set(c.at(30), link, Err("`eth0` has no carrier".into()));
        let x = b.poll_change().unwrap();
        assert_eq!(
            (x.router, x.faulted, x.signal.as_str()),
            (r_link, true, "link eth0")
        );
        assert_eq!(b.poll_change(), None);
        b.set(c.at(40), link, Ok(()));
        assert_eq!(b.poll_change().map(|x| x.router), Some(r_link));
        assert_eq!(b.poll_change(), None, "r_v4 still has a failed gateway");
        b.probe(c.at(50), gw4, true, "answered");
        b.probe(c.at(60), gw4, true, "answered");
        let x = b.poll_change().unwrap();
        assert_eq!(
            (x.router, x.faulted, x.signal.as_str()),
            (r_v4, false, "gateway eth0 IPv4")
        );
        let snap = b.snapshot(c.at(100));
        assert_eq!(snap[1].state, Health::Up);
        assert_eq!(snap[1].since_change, Some(Duration::from_millis(40)));
        assert_eq!(snap[1].transitions, 3);
    }

    // Proves that a damped recovery reaches the router only when the hold is over, through
    // poll_timeout and handle_timeout.
    #[test]
    fn board_applies_damping_to_routers() {
        let c = Clock::new();
        let mut b = Board::new();
        let link = b.add_level("link eth0", "poll", Damping::default());
        let r = b.add_router(vec![link]);
        b.set(c.at(0), link, Ok(()));
        b.set(c.at(100), link, Err("`eth0` has no carrier".into()));
        b.set(c.at(110), link, Ok(()));
        b.set(c.at(200), link, Err("`eth0` has no carrier".into()));
        b.set(c.at(210), link, Ok(()));
        let ch: Vec<_> = std::iter::from_fn(|| b.poll_change())
            .map(|x| x.faulted)
            .collect();
        assert_eq!(ch, [false, true, false, true]);
        assert!(b.faulted(r));
        assert_eq!(b.poll_timeout(), Some(c.at(310)));
        b.handle_timeout(c.at(300));
        assert!(b.faulted(r));
        b.handle_timeout(c.at(310));
        assert!(!b.faulted(r));
    }
}
