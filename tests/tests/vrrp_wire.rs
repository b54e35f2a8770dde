//! VRRPv3 on the wire: `tr7::vrrp::Driver` against real raw sockets in namespaces this
//! file creates, TR7 against TR7 and TR7 against keepalived. Advert interval 10 cs, so
//! Master_Down_Interval is 3 x 100 ms + Skew_Time (21.9 ms at priority 200, 60.9 ms at
//! 100) and every wait is a few hundred milliseconds. Only documentation addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tr7::vrrp::packet::Family;
use tr7::vrrp::state::{AnnounceReason, Reason};
use tr7::vrrp::{
    Advertisement, ChecksumMode, Config, Driver, DriverConfig, Ownership, State, Status,
    VrrpSocket, link_local_v6,
};
use tr7_tests::capture::{AdvertCapture, worst_overlap};
use tr7_tests::keepalived::{Keepalived, KeepalivedConfig};
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
struct Recorder(
    Arc<Mutex<Vec<(Instant, Event)>>>,
    Arc<Mutex<Vec<(Instant, Reason)>>>,
);

impl Recorder {
    fn events(&self) -> Vec<(Instant, Event)> {
        self.0.lock().unwrap().clone()
    }

    /// The first `own` at or after `since`, with the reason the machine gave.
    fn owned_since(&self, since: Instant) -> Option<(Instant, Reason)> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .find(|(t, _)| *t >= since)
            .copied()
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
    fn own(&mut self, _from: State, reason: Reason, _accept_mode: bool) {
        let now = Instant::now();
        self.0.lock().unwrap().push((now, Event::Own));
        self.1.lock().unwrap().push((now, reason));
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
// keepalived (tr7_tests::keepalived: VRRPv3, `old_unicast_checksum never`, in unicast
// mode `check_unicast_src` and `unicast_ttl 255`)

/// TR7 in namespace `t` (vt), keepalived in `k` (vk), one veth: 192.0.2.1 / 192.0.2.2
/// and 2001:db8::1 / 2001:db8::2, IPv6 ready (link-locals past DAD).
fn keepalived_pair(tag: &str) -> (Lab, String, String) {
    let (lab, t, k) = two_on_a_veth(tag, ("t", "vt"), ("k", "vk"));
    lab.addr(&t, "vt", "2001:db8::1/64");
    lab.addr(&k, "vk", "2001:db8::2/64");
    lab.wait_ipv6_ready(&t, "vt");
    lab.wait_ipv6_ready(&k, "vk");
    (lab, t, k)
}

/// Addresses of one interop lab in one family: each side's unicast source and the VIP.
#[derive(Clone, Copy)]
struct Sides {
    tr7: IpAddr,
    keepalived: IpAddr,
    vip: IpAddr,
}

fn sides(family: Family) -> Sides {
    match family {
        Family::V4 => Sides {
            tr7: v4(1),
            keepalived: v4(2),
            vip: IpAddr::V4(VIP4),
        },
        Family::V6 => Sides {
            tr7: "2001:db8::1".parse().unwrap(),
            keepalived: "2001:db8::2".parse().unwrap(),
            vip: IpAddr::V6(VIP6),
        },
    }
}

fn keepalived_unicast(s: Sides, priority: u8) -> KeepalivedConfig {
    KeepalivedConfig {
        iface: "vk".into(),
        vrid: VRID,
        priority,
        interval_cs: INTERVAL_CS,
        unicast_src: Some(s.keepalived),
        unicast_peers: vec![s.tr7],
        vip: s.vip,
        default_unicast_ttl: false,
    }
}

/// Asserts, from every advert captured on TR7's link, that TR7 and keepalived were never
/// both advertising as master for longer than one advert interval.
fn assert_never_two_masters(capture: &AdvertCapture, what: &str) {
    let adverts = capture.adverts();
    assert!(adverts.len() > 10, "{what}: captured only {adverts:?}");
    let o = worst_overlap(&adverts, VRID, INTERVAL);
    eprintln!(
        "{what}: {} adverts captured; worst overlap of two masters {:?} ({:.2} intervals, {} adverts in it)",
        adverts.len(),
        o.length,
        o.length.as_secs_f64() / INTERVAL.as_secs_f64(),
        o.adverts
    );
    assert!(
        o.length <= INTERVAL,
        "{what}: two masters for {:?}, more than one advert interval",
        o.length
    );
}

/// Proves, against keepalived as the other node (VRRPv3, unicast, strict checksum), with
/// TR7 at the higher priority: TR7 preempts a keepalived master; TR7's stop (priority 0)
/// hands over to keepalived; a returning TR7 preempts again; TR7's death (no word) hands
/// over to keepalived after its Master_Down_Interval; and from the captured adverts,
/// never two masters for longer than one interval.
fn interop_tr7_higher(family: Family, tag: &str) {
    let (lab, t, k) = keepalived_pair(tag);
    let s = sides(family);
    let capture = AdvertCapture::start(&t, "vt");
    let keepalived = Keepalived::start(&k, "k1", keepalived_unicast(s, 100));
    wait_for(Duration::from_secs(5), "keepalived master alone", || {
        keepalived.is_master()
    });
    let tr7_config = config(200, s.tr7, s.vip, &[s.keepalived]);
    let tr7 = start(&t, "vt", tr7_config.clone(), ChecksumMode::PseudoHeader);
    wait_for(
        Duration::from_secs(3),
        "TR7 (200) preempts keepalived",
        || tr7.driver.state() == State::Master && !keepalived.is_master(),
    );
    holds_for(5 * INTERVAL, "TR7 alone is master", || {
        tr7.driver.state() == State::Master && !keepalived.is_master()
    });
    assert_eq!(tr7.driver.status().master, None);

    let stop = Instant::now();
    let last = tr7.driver.shutdown();
    assert_eq!(last.vrrp.priority_zero_sent, 1, "{last:?}");
    assert_clean_wire(&last);
    wait_for(
        Duration::from_secs(2),
        "keepalived master after TR7's priority 0",
        || keepalived.is_master(),
    );
    eprintln!(
        "{family}: keepalived took over from TR7's stop in {:?}",
        stop.elapsed()
    );

    let tr7 = start(&t, "vt", tr7_config, ChecksumMode::PseudoHeader);
    wait_for(Duration::from_secs(3), "TR7 preempts again", || {
        tr7.driver.state() == State::Master && !keepalived.is_master()
    });
    std::thread::sleep(3 * INTERVAL);
    let kill = Instant::now();
    let gone = tr7.driver.abandon();
    assert_clean_wire(&gone);
    wait_for(
        Duration::from_secs(2),
        "keepalived master after TR7 died",
        || keepalived.is_master(),
    );
    eprintln!(
        "{family}: keepalived took over from TR7's death in {:?}",
        kill.elapsed()
    );
    assert!(
        !keepalived.log().contains("Invalid"),
        "keepalived rejected something:\n{}",
        keepalived.log()
    );
    std::thread::sleep(3 * INTERVAL);
    assert_never_two_masters(&capture, &format!("{family} TR7 higher"));
    drop(lab);
}

/// Proves, with keepalived at the higher priority: keepalived preempts a TR7 master and
/// TR7 follows it (its adverts pass our checks: hop limit 255, the peer filter, the
/// checksum); keepalived's SIGTERM (priority 0) makes TR7 master at once (unicast fast
/// takeover, one peer); a returning keepalived preempts; keepalived's kill -9 makes TR7
/// master by its Master_Down_Timer; never two masters for longer than one interval.
fn interop_keepalived_higher(family: Family, tag: &str) {
    let (_lab, t, k) = keepalived_pair(tag);
    let s = sides(family);
    let capture = AdvertCapture::start(&t, "vt");
    let tr7 = start(
        &t,
        "vt",
        config(100, s.tr7, s.vip, &[s.keepalived]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(2), "TR7 master alone", || {
        tr7.driver.state() == State::Master
    });
    let mut keepalived = Keepalived::start(&k, "k1", keepalived_unicast(s, 200));
    wait_for(
        Duration::from_secs(5),
        "keepalived (200) preempts TR7",
        || keepalived.is_master() && tr7.driver.status().master == Some((s.keepalived, 200)),
    );
    holds_for(5 * INTERVAL, "keepalived master, TR7 backup", || {
        keepalived.is_master() && tr7.driver.state() == State::Backup
    });

    let term = Instant::now();
    keepalived.terminate();
    wait_for(
        Duration::from_secs(1),
        "TR7 master after keepalived's SIGTERM",
        || tr7.events.owned_since(term).is_some(),
    );
    let (at, reason) = tr7.events.owned_since(term).unwrap();
    eprintln!(
        "{family}: TR7 took over from keepalived's SIGTERM in {:?} ({reason})",
        at - term
    );
    assert_eq!(reason, Reason::PeerReleased { from: s.keepalived });

    let mut keepalived = Keepalived::start(&k, "k2", keepalived_unicast(s, 200));
    wait_for(Duration::from_secs(5), "keepalived preempts again", || {
        keepalived.is_master() && tr7.driver.state() == State::Backup
    });
    std::thread::sleep(3 * INTERVAL);
    let kill = Instant::now();
    keepalived.kill9();
    wait_for(
        Duration::from_secs(2),
        "TR7 master after keepalived died",
        || tr7.events.owned_since(kill).is_some(),
    );
    let (at, reason) = tr7.events.owned_since(kill).unwrap();
    let took = at - kill;
    eprintln!("{family}: TR7 took over from keepalived's kill -9 in {took:?} ({reason})");
    assert_eq!(reason, Reason::MasterDown);
    // Master_Down_Interval runs from keepalived's last advert, up to one interval before
    // the kill.
    assert!(
        took >= master_down(100) - INTERVAL - Duration::from_millis(10),
        "{took:?}"
    );
    let st = tr7.driver.status();
    assert!(st.vrrp.adverts_received > 10, "{st:?}");
    assert_eq!(st.vrrp.dropped.not_unicast_peer, 0, "{st:?}");
    if family == Family::V4 {
        assert!(
            st.io.checksum_pseudo_header > 0 && st.io.checksum_message_only == 0,
            "{st:?}"
        );
    }
    assert_clean_wire(&st);
    std::thread::sleep(3 * INTERVAL);
    assert_never_two_masters(&capture, &format!("{family} keepalived higher"));
}

#[test]
fn keepalived_interop_ipv4_unicast_tr7_higher() {
    interop_tr7_higher(Family::V4, "k4t");
}

#[test]
fn keepalived_interop_ipv4_unicast_keepalived_higher() {
    interop_keepalived_higher(Family::V4, "k4k");
}

#[test]
fn keepalived_interop_ipv6_unicast_tr7_higher() {
    interop_tr7_higher(Family::V6, "k6t");
}

#[test]
fn keepalived_interop_ipv6_unicast_keepalived_higher() {
    interop_keepalived_higher(Family::V6, "k6k");
}

#[test]
fn keepalived_interop_ipv6_unicast_from_a_non_peer_is_dropped() {
    // Proves that with unicast peers an IPv6 advert from any other source is dropped and
    // counted: keepalived speaks from 2001:db8::2 while TR7's only peer is 2001:db8::3
    // (keepalived's link-local is not it either). TR7 hears nothing, counts every
    // advert as `not_unicast_peer`, and stays master.
    let (_lab, t, k) = keepalived_pair("k6n");
    let s = sides(Family::V6);
    let stranger: IpAddr = "2001:db8::3".parse().unwrap();
    let keepalived = Keepalived::start(&k, "k1", keepalived_unicast(s, 200));
    let tr7 = start(
        &t,
        "vt",
        config(100, s.tr7, s.vip, &[stranger]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(5), "keepalived master", || {
        keepalived.is_master()
    });
    wait_for(
        Duration::from_secs(2),
        "TR7 counts keepalived's adverts",
        || tr7.driver.status().vrrp.dropped.not_unicast_peer >= 5,
    );
    let st = tr7.driver.status();
    assert_eq!(st.state, State::Master, "{st:?}");
    assert_eq!(st.master, None, "{st:?}");
    assert_eq!(st.vrrp.adverts_received, 0, "{st:?}");
    assert_clean_wire(&st);
}

/// Proves multicast interop (224.0.0.18 or ff02::12; for IPv6 link-local sources on
/// both sides): keepalived (200) preempts TR7 (100), TR7 follows keepalived's address,
/// keepalived's SIGTERM makes TR7 master after Skew_Time (multicast: no fast takeover),
/// and never two masters for longer than one interval.
fn interop_multicast(family: Family, tag: &str) {
    let (_lab, t, k) = keepalived_pair(tag);
    let (ours, theirs, vip) = match family {
        Family::V4 => (v4(1), v4(2), IpAddr::V4(VIP4)),
        Family::V6 => (
            IpAddr::V6(link_local_v6(Some(&t), "vt").unwrap()),
            IpAddr::V6(link_local_v6(Some(&k), "vk").unwrap()),
            IpAddr::V6(VIP6),
        ),
    };
    let capture = AdvertCapture::start(&t, "vt");
    let tr7 = start(
        &t,
        "vt",
        config(100, ours, vip, &[]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(2), "TR7 master alone", || {
        tr7.driver.state() == State::Master
    });
    let mut keepalived = Keepalived::start(
        &k,
        "k1",
        KeepalivedConfig {
            iface: "vk".into(),
            vrid: VRID,
            priority: 200,
            interval_cs: INTERVAL_CS,
            unicast_src: None,
            unicast_peers: Vec::new(),
            vip,
            default_unicast_ttl: false,
        },
    );
    wait_for(Duration::from_secs(5), "keepalived preempts TR7", || {
        keepalived.is_master() && tr7.driver.status().master == Some((theirs, 200))
    });
    holds_for(5 * INTERVAL, "keepalived master, TR7 backup", || {
        keepalived.is_master() && tr7.driver.state() == State::Backup
    });
    let term = Instant::now();
    keepalived.terminate();
    wait_for(
        Duration::from_secs(1),
        "TR7 master after keepalived's SIGTERM",
        || tr7.events.owned_since(term).is_some(),
    );
    let (at, reason) = tr7.events.owned_since(term).unwrap();
    eprintln!(
        "multicast {family}: TR7 took over from keepalived's SIGTERM in {:?} ({reason})",
        at - term
    );
    assert_eq!(reason, Reason::MasterDown, "multicast waits Skew_Time");
    let st = tr7.driver.status();
    assert_eq!(st.vrrp.priority_zero_received, 1, "{st:?}");
    assert_clean_wire(&st);
    std::thread::sleep(3 * INTERVAL);
    assert_never_two_masters(&capture, &format!("{family} multicast keepalived higher"));
}

#[test]
fn keepalived_interop_ipv4_multicast() {
    interop_multicast(Family::V4, "k4m");
}

#[test]
fn keepalived_interop_ipv6_multicast() {
    interop_multicast(Family::V6, "k6m");
}

#[test]
fn keepalived_ipv6_unicast_needs_unicast_ttl_255() {
    // Proves why the interop setup gives keepalived `unicast_ttl 255`: without it
    // keepalived 2.2.7 sends IPv6 unicast adverts with hop limit 64, which RFC 9568
    // 5.1.2.2 makes receivers drop. TR7 drops and counts every one (`bad_ttl`), hears
    // no master, and becomes master itself next to keepalived.
    let (_lab, t, k) = keepalived_pair("k6h");
    let s = sides(Family::V6);
    let keepalived = Keepalived::start(
        &k,
        "k1",
        KeepalivedConfig {
            default_unicast_ttl: true,
            ..keepalived_unicast(s, 200)
        },
    );
    let tr7 = start(
        &t,
        "vt",
        config(100, s.tr7, s.vip, &[s.keepalived]),
        ChecksumMode::PseudoHeader,
    );
    wait_for(Duration::from_secs(5), "keepalived master", || {
        keepalived.is_master()
    });
    wait_for(
        Duration::from_secs(2),
        "TR7 drops keepalived's adverts",
        || {
            tr7.driver
                .status()
                .io
                .ip_check_dropped
                .get("bad_ttl")
                .copied()
                .unwrap_or(0)
                >= 5
        },
    );
    wait_for(Duration::from_secs(2), "TR7 master as well", || {
        tr7.driver.state() == State::Master
    });
    let st = tr7.driver.status();
    assert_eq!(st.vrrp.adverts_received, 0, "{st:?}");
    assert_eq!(st.master, None, "{st:?}");
}

#[test]
fn keepalived_and_the_rfc_9568_message_only_checksum() {
    // Proves why TR7 sends the IPv4 pseudo-header checksum by default: keepalived
    // 2.2.7 (VRRPv3, strict checksum) rejects RFC 9568's message-only form, so against
    // a TR7 master that sends it, keepalived never hears a master and becomes a second
    // one. TR7 still hears keepalived (we accept both forms) and keeps its own claim
    // because its priority is higher.
    let (_lab, t, k) = keepalived_pair("kc");
    let s = sides(Family::V4);
    let keepalived = Keepalived::start(&k, "k1", keepalived_unicast(s, 100));
    let tr7 = start(
        &t,
        "vt",
        config(200, s.tr7, s.vip, &[s.keepalived]),
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
    let st = tr7.driver.status();
    eprintln!("TR7 (message-only) against keepalived: {st:?}");
    let log = keepalived.log();
    assert!(
        log.contains("Invalid VRRPv3 checksum"),
        "keepalived log:\n{log}"
    );
    assert!(st.io.checksum_pseudo_header > 0, "{st:?}");
    assert_clean_wire(&st);
}

#[test]
fn the_capture_sees_two_masters() {
    // Proves that `assert_never_two_masters` can fail: B drops every VRRP packet it
    // receives (nftables input rule in its namespace), so B becomes master next to A,
    // and the capture on A's link shows two overlapping mastership spans far longer
    // than one interval.
    let (lab, a, b) = pair("cap");
    let nft = lab.exec(
        &b,
        &[
            "nft",
            "add table inet t; add chain inet t in { type filter hook input priority 0; }; \
             add rule inet t in meta l4proto 112 drop",
        ],
    );
    assert!(
        nft.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&nft.stderr)
    );
    let capture = AdvertCapture::start(&a, "va");
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
    wait_for(Duration::from_secs(3), "two masters", || {
        high.driver.state() == State::Master && low.driver.state() == State::Master
    });
    std::thread::sleep(10 * INTERVAL);
    let o = worst_overlap(&capture.adverts(), VRID, INTERVAL);
    eprintln!("two masters, as the capture sees them: {o:?}");
    assert!(o.length >= 5 * INTERVAL && o.adverts >= 10, "{o:?}");
}
