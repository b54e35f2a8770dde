//! VRRPv3 on the wire: `tr7::vrrp::Driver` against real raw sockets in namespaces this
//! file creates, TR7 against TR7 and TR7 against keepalived. Advert interval 10 cs, so
//! Master_Down_Interval is 3 x 100 ms + Skew_Time (21.9 ms at priority 200, 60.9 ms at
//! 100) and every wait is a few hundred milliseconds. Only documentation addresses.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tr7::vrrp::packet::Family;
use tr7::vrrp::state::{AnnounceReason, Reason};
use tr7::vrrp::{
    Advertisement, ChecksumMode, Config, Driver, DriverConfig, Ownership, State, Status,
    VrrpSocket, link_local_v6,
};
use tr7_tests::lab::Lab;

const VRID: u8 = 51;
const INTERVAL_CS: u16 = 10;
const INTERVAL: Duration = Duration::from_millis(100);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// Master_Down_Interval of a backup at `priority` following a 10 cs master.
fn master_down(priority: u8) -> Duration {
    3 * INTERVAL + INTERVAL * (256 - u32::from(priority)) / 256
}

/// Skew_Time of a backup at `priority` following a 10 cs master.
fn skew(priority: u8) -> Duration {
    INTERVAL * (256 - u32::from(priority)) / 256
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Own,
    Release(State),
    Announce,
}

/// Records every ownership call with its instant, as the test's stand-in for the BPF
/// ownership map.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, Event)>>>);

impl Recorder {
    fn events(&self) -> Vec<(Instant, Event)> {
        self.0.lock().unwrap().clone()
    }

    /// The instant of the first `event` at or after `since`.
    fn first_since(&self, event: Event, since: Instant) -> Option<Instant> {
        self.events()
            .into_iter()
            .find(|(t, e)| *e == event && *t >= since)
            .map(|(t, _)| t)
    }
}

impl Ownership for Recorder {
    fn own(&mut self, _from: State, _reason: Reason, _accept_mode: bool) {
        self.0.lock().unwrap().push((Instant::now(), Event::Own));
    }
    fn release(&mut self, _from: State, to: State, _reason: Reason) {
        self.0
            .lock()
            .unwrap()
            .push((Instant::now(), Event::Release(to)));
    }
    fn announce(&mut self, _reason: AnnounceReason) {
        self.0
            .lock()
            .unwrap()
            .push((Instant::now(), Event::Announce));
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; panics with `what`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts `cond` holds at every 10 ms sample for `span`.
fn holds_for(span: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < span {
        assert!(
            cond(),
            "stopped holding after {:?}: {what}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Node {
    driver: Driver,
    events: Recorder,
}

fn start(ns: &str, iface: &str, config: Config, checksum: ChecksumMode) -> Node {
    let events = Recorder::default();
    let driver = Driver::start(
        DriverConfig {
            netns: Some(ns.to_owned()),
            interface: iface.to_owned(),
            vrrp: config,
            checksum,
        },
        events.clone(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "start VRRP on {iface} in {ns}: {}",
            tr7_tests::error_chain(&e)
        )
    });
    Node { driver, events }
}

fn config(priority: u8, src: IpAddr, vip: IpAddr, peers: &[IpAddr]) -> Config {
    let mut c = Config::new(VRID, priority, src, vec![vip]);
    c.advert_interval_cs = INTERVAL_CS;
    c.unicast_peers = peers.to_vec();
    c
}

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn assert_clean_wire(status: &Status) {
    let io = &status.io;
    assert_eq!(io.send_errors, 0, "{status:?}");
    assert_eq!(io.recv_errors, 0, "{status:?}");
    assert!(io.ip_check_dropped.is_empty(), "{status:?}");
    assert!(io.decode_dropped.is_empty(), "{status:?}");
}

/// Two namespaces `a` and `b` on a veth (`va`, `vb`), addresses .1 and .2 (and their
/// link-locals).
fn pair(tag: &str) -> (Lab, String, String) {
    two_on_a_veth(tag, ("a", "va"), ("b", "vb"))
}

/// Two namespaces joined by a veth whose ends carry 192.0.2.1 and 192.0.2.2.
fn two_on_a_veth(tag: &str, one: (&str, &str), two: (&str, &str)) -> (Lab, String, String) {
    let mut lab = Lab::new(tag);
    let a = lab.netns(one.0);
    let b = lab.netns(two.0);
    lab.veth(&a, one.1, &b, two.1);
    lab.addr(&a, one.1, "192.0.2.1/24");
    lab.addr(&b, two.1, "192.0.2.2/24");
    (lab, a, b)
}

#[test]
fn ipv4_multicast_election_and_priority_zero_release() {
    // Proves, over 224.0.0.18 with TTL 255: the higher priority wins the election and
    // the other follows it; our pseudo-header adverts pass our own receive checks; a
    // master's shutdown (priority 0) hands over after Skew_Time, well before
    // Master_Down_Interval (multicast has no fast takeover: other backups may listen).
    let (_lab, a, b) = pair("m4");
    let vip = IpAddr::V4(VIP4);
    let high = start(
        &a,
        "va",
        config(200, v4(1), vip, &[]),
        ChecksumMode::PseudoHeader,
    );
    let low = start(
        &b,
        "vb",
        config(100, v4(2), vip, &[]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(3), "A master, B following A", || {
        high.driver.state() == State::Master && low.driver.status().master == Some((v4(1), 200))
    });
    holds_for(3 * INTERVAL, "B stays backup", || {
        low.driver.state() == State::Backup
    });

    let stop = Instant::now();
    let last = high.driver.shutdown();
    assert_eq!(last.state, State::Initialize);
    assert_eq!(last.vrrp.priority_zero_sent, 1);
    wait_for(
        Duration::from_secs(1),
        "B master after A's priority 0",
        || low.events.first_since(Event::Own, stop).is_some(),
    );
    let took = low.events.first_since(Event::Own, stop).unwrap() - stop;
    eprintln!(
        "multicast IPv4 priority-0 takeover: {took:?} (skew {:?})",
        skew(100)
    );
    assert!(took >= skew(100) - Duration::from_millis(15), "{took:?}");
    assert!(took < master_down(100) - INTERVAL, "{took:?}");
    let s = low.driver.status();
    assert_eq!(s.vrrp.priority_zero_received, 1);
    assert!(s.io.checksum_pseudo_header > 0);
    assert_clean_wire(&s);
    assert_clean_wire(&last);
}

#[test]
fn ipv6_multicast_election_from_link_local() {
    // Proves, over ff02::12 with hop limit 255 from the link-local address: the higher
    // priority wins (here the second node), hop limit and destination come through
    // IPV6_RECVHOPLIMIT / IPV6_RECVPKTINFO and pass the checks, and the shutdown of the
    // master hands over after Skew_Time.
    let (lab, a, b) = pair("m6");
    lab.wait_ipv6_ready(&a, "va");
    lab.wait_ipv6_ready(&b, "vb");
    let la = IpAddr::V6(link_local_v6(Some(&a), "va").unwrap());
    let lb = IpAddr::V6(link_local_v6(Some(&b), "vb").unwrap());
    let vip = IpAddr::V6(VIP6);
    let low = start(
        &a,
        "va",
        config(100, la, vip, &[]),
        ChecksumMode::PseudoHeader,
    );
    let high = start(
        &b,
        "vb",
        config(200, lb, vip, &[]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(3), "B master, A following B", || {
        high.driver.state() == State::Master && low.driver.status().master == Some((lb, 200))
    });
    holds_for(3 * INTERVAL, "A stays backup", || {
        low.driver.state() == State::Backup
    });

    let stop = Instant::now();
    let last = high.driver.shutdown();
    wait_for(
        Duration::from_secs(1),
        "A master after B's priority 0",
        || low.events.first_since(Event::Own, stop).is_some(),
    );
    let took = low.events.first_since(Event::Own, stop).unwrap() - stop;
    eprintln!(
        "multicast IPv6 priority-0 takeover: {took:?} (skew {:?})",
        skew(100)
    );
    assert!(took < master_down(100) - INTERVAL, "{took:?}");
    let s = low.driver.status();
    assert_eq!(s.vrrp.priority_zero_received, 1);
    assert_clean_wire(&s);
    assert_clean_wire(&last);
}

#[test]
fn ipv4_unicast_fast_takeover_preemption_and_kill() {
    // Proves, in unicast mode with one peer each: shutdown of the master (priority 0)
    // makes the backup master at once, without Skew_Time; a returning higher priority
    // preempts; and a master that dies without a word (no priority 0) is replaced after
    // the backup's Master_Down_Interval, within one advert interval of tolerance.
    let (_lab, a, b) = pair("u4");
    let vip = IpAddr::V4(VIP4);
    let cfg_a = config(200, v4(1), vip, &[v4(2)]);
    let high = start(&a, "va", cfg_a.clone(), ChecksumMode::PseudoHeader);
    let low = start(
        &b,
        "vb",
        config(100, v4(2), vip, &[v4(1)]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(3), "A master, B following A", || {
        high.driver.state() == State::Master && low.driver.status().master == Some((v4(1), 200))
    });

    // Shutdown: fast takeover.
    let stop = Instant::now();
    high.driver.shutdown();
    wait_for(
        Duration::from_secs(1),
        "B master after A's priority 0",
        || low.events.first_since(Event::Own, stop).is_some(),
    );
    let took = low.events.first_since(Event::Own, stop).unwrap() - stop;
    eprintln!(
        "unicast fast takeover on priority 0: {took:?} (skew would be {:?})",
        skew(100)
    );
    assert!(took < skew(100) / 2, "{took:?}");

    // A comes back and preempts after its Master_Down_Interval.
    let back = Instant::now();
    let high = start(&a, "va", cfg_a, ChecksumMode::PseudoHeader);
    wait_for(Duration::from_secs(3), "A preempts B", || {
        high.driver.state() == State::Master && low.driver.state() == State::Backup
    });
    eprintln!(
        "preemption by the returning higher priority: {:?}",
        back.elapsed()
    );

    // Kill: no priority 0, B waits its Master_Down_Interval from A's last advert.
    std::thread::sleep(2 * INTERVAL);
    let kill = Instant::now();
    let last = high.driver.abandon();
    assert_eq!(
        last.state,
        State::Master,
        "abandon sends nothing and releases nothing"
    );
    wait_for(Duration::from_secs(2), "B master after A died", || {
        low.events.first_since(Event::Own, kill).is_some()
    });
    let took = low.events.first_since(Event::Own, kill).unwrap() - kill;
    eprintln!(
        "takeover after a silent death: {took:?} (Master_Down_Interval {:?})",
        master_down(100)
    );
    assert!(
        took >= master_down(100) - INTERVAL - Duration::from_millis(10),
        "{took:?}"
    );
    assert!(took <= master_down(100) + INTERVAL, "{took:?}");
    assert_clean_wire(&low.driver.status());
    assert!(
        high.events
            .events()
            .iter()
            .all(|(_, e)| *e != Event::Release(State::Initialize))
    );
}

#[test]
fn ipv4_unicast_advert_from_non_peer_is_dropped() {
    // Proves that in unicast mode an advert from an address that is not a configured
    // peer is dropped and counted, even with a higher priority and a valid checksum
    // sent straight to the master: three namespaces on a bridge, the third forging.
    let mut lab = Lab::new("fg");
    let a = lab.netns("a");
    let b = lab.netns("b");
    let c = lab.netns("c");
    let sw = lab.netns("sw");
    lab.bridge(&sw, "br0");
    lab.veth_to_bridge(&a, "va", &sw, "pa", "br0");
    lab.veth_to_bridge(&b, "vb", &sw, "pb", "br0");
    lab.veth_to_bridge(&c, "vc", &sw, "pc", "br0");
    lab.addr(&a, "va", "192.0.2.1/24");
    lab.addr(&b, "vb", "192.0.2.2/24");
    lab.addr(&c, "vc", "192.0.2.99/24");
    let vip = IpAddr::V4(VIP4);
    let high = start(
        &a,
        "va",
        config(200, v4(1), vip, &[v4(2)]),
        ChecksumMode::PseudoHeader,
    );
    let low = start(
        &b,
        "vb",
        config(100, v4(2), vip, &[v4(1)]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(3), "A master, B following A", || {
        high.driver.state() == State::Master && low.driver.status().master == Some((v4(1), 200))
    });

    let forger = VrrpSocket::open(Some(&c), "vc", Family::V4, false).unwrap();
    let forged = Advertisement::new(VRID, 254, INTERVAL_CS, vec![vip]).unwrap();
    for dst in [v4(1), v4(2)] {
        let bytes = forged
            .encode(v4(99), dst, ChecksumMode::PseudoHeader)
            .unwrap();
        for _ in 0..5 {
            forger.send(&bytes, v4(99), dst).unwrap();
        }
    }
    wait_for(
        Duration::from_secs(1),
        "both count 5 forged adverts",
        || {
            high.driver.status().vrrp.dropped.not_unicast_peer == 5
                && low.driver.status().vrrp.dropped.not_unicast_peer == 5
        },
    );
    holds_for(2 * INTERVAL, "nothing changes", || {
        high.driver.state() == State::Master && low.driver.status().master == Some((v4(1), 200))
    });
    assert_eq!(
        high.driver.status().vrrp.became_backup,
        1,
        "only the startup transition"
    );
    assert_clean_wire(&high.driver.status());
}

// ---------------------------------------------------------------------------------
// keepalived

/// keepalived in the foreground in a namespace, in its own process group; killed (the
/// whole group) when dropped, also on panic.
struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
    ns: String,
    iface: String,
}

impl Keepalived {
    fn start(ns: &str, iface: &str, priority: u8, src: &str, peer: &str) -> Self {
        assert!(
            Command::new("keepalived").arg("--version").output().is_ok(),
            "keepalived is not installed: run `cargo xtask setup`"
        );
        let dir = std::env::temp_dir().join(format!("{ns}-keepalived"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("keepalived.conf");
        // VRRPv3, unicast, and `old_unicast_checksum never`: the strict checksum
        // setting, no auto-detection of the pre-1.3.6 unicast checksum.
        fs::write(
            &conf,
            format!(
                "global_defs {{
    router_id tr7-test
    vrrp_version 3
    script_user root
}}
vrrp_instance tr7 {{
    state BACKUP
    interface {iface}
    virtual_router_id {VRID}
    priority {priority}
    advert_int 0.1
    unicast_src_ip {src}
    unicast_peer {{
        {peer}
    }}
    old_unicast_checksum never
    virtual_ipaddress {{
        {VIP4}/32
    }}
}}
"
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
            ])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group, so the VRRP child dies with it in Drop.
            .process_group(0)
            .spawn()
            .expect("spawn keepalived");
        Self {
            child: Some(child),
            dir,
            ns: ns.to_owned(),
            iface: iface.to_owned(),
        }
    }

    /// Whether keepalived is master: the VIP is on its interface.
    fn is_master(&self) -> bool {
        let out = Command::new("ip")
            .args([
                "-n",
                &self.ns,
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                &self.iface,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP4}/32"))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGTERM to the parent, then wait (at most 5 s) for it to exit.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&format!("{}", child.id()), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
        panic!(
            "keepalived did not exit within 5 s of SIGTERM:\n{}",
            self.log()
        );
    }
}

/// `kill -SIG TARGET`, with the procps `kill` (a negative target is a process group).
fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// TR7 in namespace `t` (192.0.2.1 on vt), keepalived in `k` (192.0.2.2 on vk).
fn keepalived_pair(tag: &str) -> (Lab, String, String) {
    two_on_a_veth(tag, ("t", "vt"), ("k", "vk"))
}

#[test]
fn keepalived_interop_ipv4_unicast() {
    // Proves interop with keepalived (VRRPv3, unicast, strict checksum): TR7 with the
    // higher priority wins and keepalived accepts our default (pseudo-header) adverts
    // and stays backup; TR7's shutdown hands over to keepalived; TR7 with the lower
    // priority follows keepalived, whose adverts pass our checks (and we record their
    // checksum form); keepalived's SIGTERM (priority 0) hands over to TR7 at once.
    let (_lab, t, k) = keepalived_pair("ka");
    let vip = IpAddr::V4(VIP4);
    let mut keepalived = Keepalived::start(&k, "vk", 100, "192.0.2.2", "192.0.2.1");
    let tr7 = start(
        &t,
        "vt",
        config(200, v4(1), vip, &[v4(2)]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(5), "TR7 master", || {
        tr7.driver.state() == State::Master
    });
    wait_for(Duration::from_secs(2), "keepalived backup", || {
        !keepalived.is_master()
    });
    holds_for(5 * INTERVAL, "TR7 alone is master", || {
        tr7.driver.state() == State::Master && !keepalived.is_master()
    });

    let stop = Instant::now();
    let last = tr7.driver.shutdown();
    wait_for(
        Duration::from_secs(2),
        "keepalived master after TR7's priority 0",
        || keepalived.is_master(),
    );
    eprintln!(
        "keepalived took over from TR7's shutdown in {:?}",
        stop.elapsed()
    );
    assert_clean_wire(&last);

    let tr7 = start(
        &t,
        "vt",
        config(50, v4(1), vip, &[v4(2)]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(2), "TR7 follows keepalived", || {
        tr7.driver.status().master == Some((v4(2), 100))
    });
    holds_for(5 * INTERVAL, "keepalived stays master, TR7 backup", || {
        tr7.driver.state() == State::Backup && keepalived.is_master()
    });
    let s = tr7.driver.status();
    eprintln!(
        "keepalived's IPv4 VRRPv3 checksum: pseudo-header {}, message-only {}",
        s.io.checksum_pseudo_header, s.io.checksum_message_only
    );
    assert!(
        s.io.checksum_pseudo_header > 0 && s.io.checksum_message_only == 0,
        "{s:?}"
    );
    assert_clean_wire(&s);

    let term = Instant::now();
    keepalived.terminate();
    wait_for(
        Duration::from_secs(1),
        "TR7 master after keepalived's SIGTERM",
        || tr7.events.first_since(Event::Own, term).is_some(),
    );
    let took = tr7.events.first_since(Event::Own, term).unwrap() - term;
    let s = tr7.driver.status();
    eprintln!("TR7 took over from keepalived's SIGTERM in {took:?}");
    assert_eq!(s.vrrp.priority_zero_received, 1, "{s:?}");
    assert!(took < master_down(50), "{took:?}");
}

#[test]
fn keepalived_interop_keepalived_wins_with_higher_priority() {
    // Proves the other direction of the election: keepalived with the higher priority
    // stays master against a TR7 that starts first, and when keepalived is killed
    // without a word (SIGKILL of its process group) TR7 takes over after its
    // Master_Down_Interval.
    let (_lab, t, k) = keepalived_pair("kb");
    let vip = IpAddr::V4(VIP4);
    let tr7 = start(
        &t,
        "vt",
        config(100, v4(1), vip, &[v4(2)]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(2), "TR7 master alone", || {
        tr7.driver.state() == State::Master
    });
    let keepalived = Keepalived::start(&k, "vk", 200, "192.0.2.2", "192.0.2.1");
    wait_for(Duration::from_secs(5), "keepalived preempts TR7", || {
        keepalived.is_master() && tr7.driver.status().master == Some((v4(2), 200))
    });
    holds_for(5 * INTERVAL, "keepalived master, TR7 backup", || {
        keepalived.is_master() && tr7.driver.state() == State::Backup
    });

    let kill = Instant::now();
    drop(keepalived);
    wait_for(
        Duration::from_secs(2),
        "TR7 master after keepalived died",
        || tr7.events.first_since(Event::Own, kill).is_some(),
    );
    let took = tr7.events.first_since(Event::Own, kill).unwrap() - kill;
    eprintln!("TR7 took over from a killed keepalived in {took:?}");
    assert!(
        took >= master_down(100) - INTERVAL - Duration::from_millis(10),
        "{took:?}"
    );
    assert!(took <= master_down(100) + INTERVAL, "{took:?}");
    assert_clean_wire(&tr7.driver.status());
}

#[test]
fn keepalived_and_the_rfc_9568_message_only_checksum() {
    // Proves why TR7 sends the IPv4 pseudo-header checksum by default: keepalived
    // 2.2.7 (VRRPv3, strict checksum) rejects RFC 9568's message-only form, so against
    // a TR7 master that sends it, keepalived never hears a master and becomes a second
    // one. TR7 still hears keepalived (we accept both forms) and keeps its own claim
    // because its priority is higher.
    let (_lab, t, k) = keepalived_pair("kc");
    let vip = IpAddr::V4(VIP4);
    let keepalived = Keepalived::start(&k, "vk", 100, "192.0.2.2", "192.0.2.1");
    let tr7 = start(
        &t,
        "vt",
        config(200, v4(1), vip, &[v4(2)]),
        ChecksumMode::MessageOnly,
    );
    wait_for(Duration::from_secs(5), "TR7 master", || {
        tr7.driver.state() == State::Master
    });
    wait_for(Duration::from_secs(3), "keepalived master as well", || {
        keepalived.is_master()
    });
    holds_for(5 * INTERVAL, "two masters", || {
        keepalived.is_master() && tr7.driver.state() == State::Master
    });
    let s = tr7.driver.status();
    eprintln!("TR7 (message-only) against keepalived: {s:?}");
    let log = keepalived.log();
    assert!(
        log.contains("Invalid VRRPv3 checksum"),
        "keepalived log:\n{log}"
    );
    assert!(s.io.checksum_pseudo_header > 0, "{s:?}");
    assert_clean_wire(&s);
}
