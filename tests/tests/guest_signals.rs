//! Guest-only tests of the link signal on kernel objects this machine's kernel lacks (run by
//! `cargo xtask vm-test`): the carrier watcher and the combination rules on a real
//! active-backup bond under a VLAN, and on an LACP bond with min_links 2 whose members
//! negotiate with a partner bond; the eBPF carrier hook (fexit on netif_carrier_off/on)
//! chosen by the kernel probe and waking the watcher when a bond member loses carrier; VRRP
//! takeover when a node's LACP bond falls below min_links (the agent's signal monitor bound
//! to the library's VRRP driver, in process). On
//! the host every test is ignored with the reason.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tr7::signals::hook::Wake;
use tr7::signals::link::{self, LinkSnapshot};
use tr7::signals::{Health, LinkNode, LinkTree, Monitor, PortObs, RouterKey, plan};
use tr7::vrrp::state::{AnnounceReason, Reason};
use tr7::vrrp::{ChecksumMode, Config, Driver, DriverConfig, Ownership, State};
use tr7_tests::lab::{Lab, ip};

fn bond(ns: &str, options: &[&str], members: &[&str]) {
    bond_named(ns, "bond0", options, members);
}

fn bond_named(ns: &str, name: &str, options: &[&str], members: &[&str]) {
    let mut args = vec!["-n", ns, "link", "add", name, "type", "bond"];
    args.extend_from_slice(options);
    ip(&args);
    for m in members {
        ip(&["-n", ns, "link", "set", m, "down"]);
        ip(&["-n", ns, "link", "set", m, "master", name]);
        ip(&["-n", ns, "link", "set", m, "up"]);
    }
    ip(&["-n", ns, "link", "set", name, "up"]);
}

fn vlan(ns: &str) {
    tr7_tests::lab::vlan_link(ns, "bond0", 100);
}

/// Watches `names` in `ns` and evaluates `root` through `tree` on every snapshot.
struct Watch {
    rx: mpsc::Receiver<LinkSnapshot>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    last: BTreeMap<String, PortObs>,
}

impl Watch {
    fn start(ns: &str, names: Vec<String>) -> Self {
        Self::start_with(ns, names, link::DEFAULT_POLL, None)
    }

    fn start_with(ns: &str, names: Vec<String>, poll: Duration, wake: Option<Wake>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = link::spawn_with(
            Some(ns.to_owned()),
            names,
            poll,
            wake,
            move |s| tx.send(s).is_ok(),
            stop.clone(),
        )
        .expect("start the carrier watcher");
        Self {
            rx,
            stop,
            thread: Some(thread),
            last: BTreeMap::new(),
        }
    }

    /// Snapshots until `root` evaluates as `want` (Ok or a fault whose text contains it),
    /// at most `limit`; the fault text, if any.
    fn until(
        &mut self,
        tree: &LinkTree,
        root: &str,
        want: Result<(), &str>,
        limit: Duration,
    ) -> String {
        let start = Instant::now();
        loop {
            let got = tree.evaluate(root, &self.last).map_err(|f| f.to_string());
            match (&want, &got) {
                (Ok(()), Ok(())) => return String::new(),
                (Err(w), Err(g)) if g.contains(w) => return g.clone(),
                _ => {}
            }
            let left = limit.saturating_sub(start.elapsed());
            match self.rx.recv_timeout(left) {
                Ok(s) => self.last = s.links,
                Err(_) => panic!(
                    "{root} not {want:?} within {limit:?}; last verdict {got:?}, links {:?}",
                    self.last
                ),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

// Proves the link of a VLAN over an active-backup bond stays up while one member has
// carrier and fails, naming the bond, when the last member loses it; and comes back.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn link_of_vlan_over_bond_follows_the_members() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("gsb");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    bond(
        &a,
        &["mode", "active-backup", "miimon", "100"],
        &["a1", "a2"],
    );
    vlan(&a);
    let tree = LinkTree {
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
                    members: s(&["a1", "a2"]),
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let mut w = Watch::start(&a, tree.closure("bond0.100"));
    let limit = Duration::from_secs(5);
    w.until(&tree, "bond0.100", Ok(()), limit);
    ip(&["-n", &b, "link", "set", "b1", "down"]);
    // One member left: still up (give the watcher time to see a1 go).
    std::thread::sleep(Duration::from_millis(100));
    w.until(&tree, "bond0.100", Ok(()), limit);
    let cut = Instant::now();
    ip(&["-n", &b, "link", "set", "b2", "down"]);
    let fault = w.until(
        &tree,
        "bond0.100",
        Err("`bond0` has no active member"),
        limit,
    );
    eprintln!(
        "bond without members: `{fault}` seen {:?} after the last member's peer went down",
        cut.elapsed()
    );
    ip(&["-n", &b, "link", "set", "b2", "up"]);
    w.until(&tree, "bond0.100", Ok(()), limit);
}

// Proves the LACP rule on a real 802.3ad bond with min_links 2 negotiating with a partner:
// up once both members are distributing; when one member's peer goes down, the link fails
// naming the bond and min_links (the member's carrier or its distributing bit, whichever
// the watcher sees first); up again after renegotiation.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn link_of_lacp_bond_fails_below_min_links() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("gsl");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    let options = [
        "mode",
        "802.3ad",
        "lacp_rate",
        "fast",
        "miimon",
        "50",
        "min_links",
        "2",
    ];
    bond(&a, &options, &["a1", "a2"]);
    bond(&b, &options, &["b1", "b2"]);
    vlan(&a);
    let tree = LinkTree {
        nodes: [
            (
                "bond0.100".to_owned(),
                LinkNode::Vlan {
                    parent: "bond0".into(),
                },
            ),
            (
                "bond0".to_owned(),
                LinkNode::Lacp {
                    members: s(&["a1", "a2"]),
                    min_links: 2,
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let mut w = Watch::start(&a, tree.closure("bond0.100"));
    // Fast LACPDUs go every second; negotiation takes a few.
    w.until(&tree, "bond0.100", Ok(()), Duration::from_secs(15));
    assert!(
        w.last.get("a1").and_then(|o| o.distributing) == Some(true),
        "the watcher reads the actor's distributing bit: {:?}",
        w.last
    );
    let cut = Instant::now();
    ip(&["-n", &b, "link", "set", "b2", "down"]);
    let fault = w.until(
        &tree,
        "bond0.100",
        Err("below min_links 2"),
        Duration::from_secs(5),
    );
    eprintln!(
        "LACP below min_links: `{fault}` seen {:?} after a member's peer went down",
        cut.elapsed()
    );
    ip(&["-n", &b, "link", "set", "b2", "up"]);
    w.until(&tree, "bond0.100", Ok(()), Duration::from_secs(15));
}

/// The first snapshot of `w` in which `member`'s carrier is `carrier`: its source and when.
fn first_with(
    w: &mut Watch,
    member: &str,
    carrier: bool,
    limit: Duration,
) -> (&'static str, Instant) {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        let snap = w.rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "{member} carrier not {carrier} within {limit:?}; links {:?}",
                w.last
            )
        });
        w.last = snap.links;
        if w.last.get(member).is_some_and(|o| o.carrier == carrier) {
            return (snap.source, snap.at);
        }
    }
}

fn ifindex(ns: &str, dev: &str) -> u32 {
    let out = ip(&["-n", ns, "-o", "link", "show", dev]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ifindex in `{text}`"))
}

// Proves the kernel probe chooses the eBPF carrier hook on the guest kernel (fexit on
// netif_carrier_off/netif_carrier_on loads and attaches, net_device.ifindex found in BTF),
// that the hook reports a bond member's carrier loss and return with the member's real
// ifindex (so the BTF offset is right), that the hook wakes its subscribers, and that the
// watcher subscribed to it sees the member without carrier from a wake-up, not its poll (set
// to 1 s). That watcher also listens to netlink link events, and which of the two wakes it
// first is a race (the hook's ring buffer wakes its reader through irq_work; under emulation
// the event sometimes comes first), so its source may be `ebpf` or `event`; a subscriber of
// its own proves the hook's wake-up. Beside it, a watcher without the hook (netlink events +
// 10 ms poll) sees the same loss; both delays and sources are printed (no timed assertion).
#[test]
#[ignore = tr7_tests::guest_only!()]
fn fexit_carrier_hook_is_chosen_and_sees_a_bond_member_lose_carrier() {
    tr7_tests::require_guest();
    let (mechanism, hook) = link::choose(link::DEFAULT_POLL);
    eprintln!(
        "carrier mechanism chosen: {} ({})",
        mechanism.name, mechanism.why
    );
    let hook =
        hook.unwrap_or_else(|| panic!("the guest kernel must take the hook: {}", mechanism.why));
    assert!(
        mechanism.name.starts_with("ebpf-fexit-carrier+"),
        "{}",
        mechanism.name
    );
    let mut lab = Lab::new("gsf");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    bond(
        &a,
        &["mode", "active-backup", "miimon", "100"],
        &["a1", "a2"],
    );
    let a1 = ifindex(&a, "a1");
    let tree = LinkTree {
        nodes: [(
            "bond0".to_owned(),
            LinkNode::Bond {
                members: s(&["a1", "a2"]),
            },
        )]
        .into_iter()
        .collect(),
    };
    let names = tree.closure("bond0");
    let wake = hook.subscribe().expect("subscribe to the carrier hook");
    let mut fast = Watch::start_with(&a, names.clone(), Duration::from_secs(1), Some(wake));
    let mut plain = Watch::start(&a, names);
    let limit = Duration::from_secs(5);
    fast.until(&tree, "bond0", Ok(()), limit);
    plain.until(&tree, "bond0", Ok(()), limit);
    // Let the 1 s poll pass its first rounds, so a poll right after the loss is unlikely
    // and the source is the hook's by design, not by luck of timing.
    std::thread::sleep(Duration::from_millis(200));
    while fast.rx.try_recv().is_ok() {}
    let probe = hook
        .subscribe()
        .expect("subscribe a probe to the carrier hook");
    let cut = Instant::now();
    ip(&["-n", &b, "link", "set", "b1", "down"]);
    let (fast_source, fast_at) = first_with(&mut fast, "a1", false, limit);
    let (plain_source, plain_at) = first_with(&mut plain, "a1", false, limit);
    eprintln!(
        "bond member a1 lost carrier: hook watcher saw it {:?} after `ip link set b1 down` started (source {fast_source}); netlink+10ms-poll watcher {:?} (source {plain_source})",
        fast_at.saturating_duration_since(cut),
        plain_at.saturating_duration_since(cut)
    );
    assert!(
        fast_source == "ebpf" || fast_source == "event",
        "the watcher saw the loss from its {fast_source}, not from a wake-up"
    );
    probe.0.set_nonblocking(false).unwrap();
    probe.0.set_read_timeout(Some(limit)).unwrap();
    assert!(
        probe.0.recv(&mut [0u8; 64]).is_ok(),
        "the hook woke no subscriber within {limit:?} of the carrier loss"
    );
    let events = hook.events();
    assert!(
        events.iter().any(|e| e.ifindex == a1 && e.carrier == 0),
        "no carrier-off event for a1 (ifindex {a1}) in {events:?}"
    );
    // One member left: the bond is still up.
    fast.until(&tree, "bond0", Ok(()), limit);
    ip(&["-n", &b, "link", "set", "b1", "up"]);
    let (on_source, _) = first_with(&mut fast, "a1", true, limit);
    let events = hook.events();
    assert!(
        events.iter().any(|e| e.ifindex == a1 && e.carrier == 1),
        "no carrier-on event for a1 (ifindex {a1}) in {events:?}"
    );
    eprintln!("a1 carrier back, seen by {on_source}; hook events: {events:?}");
}

/// Records every ownership call, as the test's stand-in for the BPF ownership map.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, String)>>>);

impl Recorder {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push((Instant::now(), what));
    }

    /// The calls at or after `since`.
    fn since(&self, since: Instant) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, w)| w.clone())
            .collect()
    }
}

impl Ownership for Recorder {
    fn own(&mut self, from: State, reason: Reason, _accept_mode: bool) {
        self.push(format!("own from {from} ({reason:?})"));
    }
    fn release(&mut self, from: State, to: State, reason: Reason) {
        self.push(format!("release {from} -> {to} ({reason:?})"));
    }
    fn announce(&mut self, _reason: AnnounceReason) {}
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; panics with `what()`.
fn wait_for(limit: Duration, what: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {}", what());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn has_carrier(ns: &str, dev: &str) -> bool {
    let out = ip(&["-n", ns, "-o", "link", "show", dev]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.contains("LOWER_UP") && !text.contains("NO-CARRIER")
}

const TAKEOVER_FILE: &str = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
  - name: eth1
    type: ethernet
  - name: bond0
    type: lacp
    members: [eth0, eth1]
    lacp_rate: fast
    min_links: 2
    addresses: {a: [192.0.2.1/24], b: [192.0.2.2/24]}
    vips:
      master: [{address: 192.0.2.100, method: link}]
";

// Proves issue 6's takeover on LACP: node-a and node-b each have an 802.3ad bond (min_links
// 2) of two members negotiating with a partner bond in a switch namespace (the two switch
// bonds bridged), and run VRRP on it (the library's driver, advert 50 cs, node-a at 200 and
// node-b at 100); node-a's driver is bound to the agent's signal monitor planned from a
// cluster file whose VIP has the method `link`. When the switch's end of one of node-a's
// members goes down, the monitor reports node-a's link down below min_links 2, node-a
// releases and node-b becomes master; when it comes back and LACP renegotiates, the link is
// up again and node-a preempts back.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn lacp_bond_below_min_links_hands_the_vip_to_the_peer() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("gst");
    let a = lab.netns("node-a");
    let b = lab.netns("node-b");
    let sw = lab.netns("sw");
    lab.veth(&a, "eth0", &sw, "sa0");
    lab.veth(&a, "eth1", &sw, "sa1");
    lab.veth(&b, "eth0", &sw, "sb0");
    lab.veth(&b, "eth1", &sw, "sb1");
    let options = [
        "mode",
        "802.3ad",
        "lacp_rate",
        "fast",
        "miimon",
        "50",
        "min_links",
        "2",
    ];
    bond(&a, &options, &["eth0", "eth1"]);
    bond(&b, &options, &["eth0", "eth1"]);
    bond_named(&sw, "bonda", &options, &["sa0", "sa1"]);
    bond_named(&sw, "bondb", &options, &["sb0", "sb1"]);
    lab.bridge(&sw, "br0");
    for p in ["bonda", "bondb"] {
        ip(&["-n", &sw, "link", "set", p, "master", "br0"]);
    }
    lab.addr(&a, "bond0", "192.0.2.1/24");
    lab.addr(&b, "bond0", "192.0.2.2/24");
    // Fast LACPDUs go every second; negotiation takes a few.
    let negotiated = || {
        has_carrier(&a, "bond0")
            && has_carrier(&b, "bond0")
            && has_carrier(&sw, "bonda")
            && has_carrier(&sw, "bondb")
    };
    wait_for(
        Duration::from_secs(20),
        || "the four LACP bonds up".into(),
        negotiated,
    );

    let cluster = tr7::config::parse(TAKEOVER_FILE, "t.yaml").expect("valid file");
    let view = cluster.node_view("a").expect("node a");
    let ns = a.clone();
    let monitor = Monitor::start(plan(&view, move |_| Some(ns.clone()), link::DEFAULT_POLL))
        .expect("start the monitor");
    let key = RouterKey {
        iface: "bond0".into(),
        slot: tr7::config::SlotName::Master,
        family: tr7::vrrp::Family::V4,
    };
    let link_is = |want: Health| {
        let st = monitor.router_status(&key);
        st.len() == 1 && st[0].state == want
    };
    wait_for(
        Duration::from_secs(5),
        || format!("link bond0 up on node-a: {:?}", monitor.router_status(&key)),
        || link_is(Health::Up),
    );

    let vip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));
    let start = |ns: &str, priority: u8, src: IpAddr, rec: &Recorder| {
        let mut c = Config::new(51, priority, src, vec![vip]);
        c.advert_interval_cs = 50;
        Driver::start(
            DriverConfig {
                netns: Some(ns.to_owned()),
                interface: "bond0".into(),
                vrrp: c,
                checksum: ChecksumMode::PseudoHeader,
            },
            rec.clone(),
        )
        .unwrap_or_else(|e| panic!("start VRRP in {ns}: {}", tr7_tests::error_chain(&e)))
    };
    let (rec_a, rec_b) = (Recorder::default(), Recorder::default());
    let t0 = Instant::now();
    let src_a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let node_a = start(&a, 200, src_a, &rec_a);
    monitor.bind(&key, &node_a).expect("bind node-a's driver");
    let node_b = start(&b, 100, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), &rec_b);
    let states = || {
        format!(
            "node-a {} {:?}, node-b {} {:?}; signals {:?}",
            node_a.state(),
            rec_a.since(t0),
            node_b.state(),
            rec_b.since(t0),
            monitor.router_status(&key)
        )
    };
    wait_for(Duration::from_secs(10), states, || {
        node_a.state() == State::Master && node_b.status().master == Some((src_a, 200))
    });

    // The switch's end of node-a's eth1 goes down: node-a's bond has one member left.
    let cut = Instant::now();
    ip(&["-n", &sw, "link", "set", "sa1", "down"]);
    wait_for(Duration::from_secs(10), states, || {
        node_a.state() != State::Master && node_b.state() == State::Master
    });
    eprintln!(
        "LACP bond below min_links: node-b master {:?} after the member's far end went down",
        cut.elapsed()
    );
    let down = monitor.router_status(&key);
    assert!(
        down[0].state == Health::Down && down[0].detail.contains("below min_links 2"),
        "node-a's link signal names the rule: {down:?}"
    );
    assert!(
        rec_a
            .since(cut)
            .iter()
            .any(|e| e.starts_with("release master")),
        "node-a released the VIP: {:?}",
        rec_a.since(cut)
    );
    assert!(
        rec_b.since(cut).iter().any(|e| e.starts_with("own")),
        "node-b owned the VIP: {:?}",
        rec_b.since(cut)
    );

    // The member returns; once LACP renegotiates node-a's link is up and it preempts.
    let back = Instant::now();
    ip(&["-n", &sw, "link", "set", "sa1", "up"]);
    wait_for(Duration::from_secs(30), states, || {
        node_a.state() == State::Master && node_b.state() == State::Backup
    });
    eprintln!(
        "member back: node-a master again {:?} after the far end came up",
        back.elapsed()
    );
    assert!(link_is(Health::Up), "{:?}", monitor.router_status(&key));
    assert!(
        rec_a.since(back).iter().any(|e| e.starts_with("own")),
        "node-a owned the VIP again: {:?}",
        rec_a.since(back)
    );
    let after_b = rec_b.since(back);
    assert!(
        after_b.iter().any(|e| e.starts_with("release")),
        "node-b released the VIP: {after_b:?}"
    );
    node_a.shutdown();
    node_b.shutdown();
    monitor.stop();
}
