//! The signal mechanisms on their own, in namespaces, without agents: the carrier watcher
//! (netlink events + RTM_GETLINK poll) on the kernel's slow and fast carrier paths, and every
//! gateway probe (ARP, neighbour solicitation, ICMP and ICMPv6 echo) against a real gateway
//! namespace that answers, then drops (nftables), then answers again.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tr7::config::ProbeMethod;
use tr7::signals::link::{self, LinkSnapshot};
use tr7::signals::probe::{self, ProbeResult, ProbeSpec};
use tr7_tests::lab::{Lab, ip, nft};

/// Results until `n` in a row have `ok`, at most `limit`; the number of results read.
fn until_in_a_row(
    rx: &mpsc::Receiver<ProbeResult>,
    ok: bool,
    n: usize,
    limit: Duration,
    what: &str,
) -> usize {
    let start = Instant::now();
    let (mut run, mut total) = (0, 0);
    let mut last = String::new();
    while run < n {
        let left = limit.saturating_sub(start.elapsed());
        let r = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("{what}: not {n} results with ok={ok} in a row within {limit:?}; last: {last}")
        });
        total += 1;
        run = if r.ok == ok { run + 1 } else { 0 };
        last = r.detail;
    }
    total
}

// Proves each probe method gets the gateway's answer, sees the gateway go silent when its
// namespace drops the probes, and sees it answer again: ARP and ICMP for IPv4, neighbour
// solicitation and ICMPv6 echo for IPv6, 20 ms apart with a 20 ms timeout.
#[test]
fn gateway_probes_see_answers_and_silence() {
    let mut lab = Lab::new("sgp");
    let node = lab.netns("n");
    let gw = lab.netns("gw");
    lab.veth(&node, "eth0", &gw, "eth0");
    lab.addr(&node, "eth0", "192.0.2.2/24");
    lab.addr(&node, "eth0", "2001:db8::2/64");
    lab.addr(&gw, "eth0", "192.0.2.1/24");
    lab.addr(&gw, "eth0", "2001:db8::1/64");
    lab.wait_ipv6_ready(&node, "eth0");
    lab.wait_ipv6_ready(&gw, "eth0");
    let cases: [(ProbeMethod, &str, &str); 4] = [
        (
            ProbeMethod::Arp,
            "192.0.2.1",
            "table arp t {\n chain c {\n type filter hook input priority 0; policy drop\n }\n}\n",
        ),
        (
            ProbeMethod::Icmp,
            "192.0.2.1",
            "table ip t {\n chain c {\n type filter hook input priority 0\n icmp type echo-request drop\n }\n}\n",
        ),
        (
            ProbeMethod::Ndp,
            "2001:db8::1",
            "table ip6 t {\n chain c {\n type filter hook input priority 0\n icmpv6 type nd-neighbor-solicit drop\n }\n}\n",
        ),
        (
            ProbeMethod::Icmp,
            "2001:db8::1",
            "table ip6 t {\n chain c {\n type filter hook input priority 0\n icmpv6 type echo-request drop\n }\n}\n",
        ),
    ];
    for (key, (method, target, drop)) in cases.into_iter().enumerate() {
        let what = format!("{method} to {target}");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let spec = ProbeSpec {
            netns: Some(node.clone()),
            iface: "eth0".into(),
            target: target.parse::<IpAddr>().unwrap(),
            method,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(20),
            source_v4: Some("192.0.2.2".parse().unwrap()),
        };
        let thread = probe::spawn(spec, key, move |_, r| tx.send(r).is_ok(), stop.clone())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        until_in_a_row(
            &rx,
            true,
            5,
            Duration::from_secs(5),
            &format!("{what}, answering"),
        );
        nft(&gw, drop);
        let n = until_in_a_row(
            &rx,
            false,
            5,
            Duration::from_secs(5),
            &format!("{what}, dropped"),
        );
        eprintln!("{what}: 5 failures in a row after {n} results since the drop");
        nft(&gw, "flush ruleset");
        until_in_a_row(
            &rx,
            true,
            5,
            Duration::from_secs(5),
            &format!("{what}, answering again"),
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        thread.join().expect("probe thread");
    }
}

/// Snapshots until `dev` shows `carrier` (and `also` has carrier), at most 3 s; the snapshot.
fn until_carrier(
    rx: &mpsc::Receiver<LinkSnapshot>,
    dev: &str,
    carrier: bool,
    also: &str,
) -> LinkSnapshot {
    let start = Instant::now();
    loop {
        let left = Duration::from_secs(3).saturating_sub(start.elapsed());
        let s = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{dev} never showed carrier={carrier} within 3 s"));
        if s.links.get(dev).is_some_and(|o| o.carrier == carrier)
            && s.links.get(also).is_some_and(|o| o.carrier)
        {
            return s;
        }
    }
}

// Proves the carrier watcher sees a veth lose and regain carrier on the kernel's slow path
// (equal ifindexes: linkwatch batches the change) and on the fast path (different
// ifindexes), naming the interface and leaving the other one up; prints how long each took
// and whether the event or the poll saw it first.
#[test]
fn carrier_watcher_sees_slow_and_fast_paths() {
    let mut lab = Lab::new("sgc");
    let node = lab.netns("n");
    let up = lab.netns("up");
    ip(&[
        "link", "add", "up0", "index", "40", "netns", &node, "type", "veth", "peer", "name", "p0",
        "index", "40", "netns", &up,
    ]);
    ip(&[
        "link", "add", "up1", "index", "41", "netns", &node, "type", "veth", "peer", "name", "p1",
        "index", "51", "netns", &up,
    ]);
    for (ns, dev) in [(&node, "up0"), (&node, "up1"), (&up, "p0"), (&up, "p1")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let thread = link::spawn(
        Some(node.clone()),
        vec!["up0".into(), "up1".into()],
        link::DEFAULT_POLL,
        move |s| tx.send(s).is_ok(),
        stop.clone(),
    )
    .expect("start the carrier watcher");
    until_carrier(&rx, "up0", true, "up1");
    for (dev, peer, path) in [("up0", "p0", "slow"), ("up1", "p1", "fast")] {
        let cut = Instant::now();
        ip(&["-n", &up, "link", "set", peer, "down"]);
        let other = if dev == "up0" { "up1" } else { "up0" };
        // The other uplink keeps its carrier in the same snapshot.
        let s = until_carrier(&rx, dev, false, other);
        assert!(
            !s.links.contains_key("lo"),
            "only the tracked links are decoded"
        );
        eprintln!(
            "{path} path: {dev} without carrier seen {:?} after `ip link set {peer} down` returned (by {})",
            s.at.saturating_duration_since(cut),
            s.source
        );
        ip(&["-n", &up, "link", "set", peer, "up"]);
        until_carrier(&rx, dev, true, other);
    }
    // What the watcher costs while nothing changes: this process's CPU time over 2 s, in
    // which only the watcher (a dump every 10 ms) runs. Printed, not asserted.
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let ticks = cpu_ticks() - before;
    eprintln!(
        "carrier watcher, 3 links in the namespace, idle: {} ms CPU per second (10 ms ticks)",
        ticks * 10 / 2
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    thread.join().expect("watcher thread");
}

/// utime + stime of this process, in clock ticks (/proc/self/stat fields 14 and 15).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 11 and 12 after the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

// Proves the agent's monitor end to end without VRRP: planned from a cluster file
// (link-and-gateway on eth0), it reports per router the link and IPv4 gateway signals with
// their mechanisms, up once observed, and both down, with the reason, the time of the change
// and the transition count, when the gateway's end of the link goes down.
#[test]
fn monitor_reports_signals_per_router() {
    use tr7::signals::{Health, Monitor, RouterKey, plan};
    let mut lab = Lab::new("sgm");
    let node = lab.netns("n");
    let gw = lab.netns("gw");
    lab.veth(&node, "eth0", &gw, "eth0");
    lab.addr(&node, "eth0", "192.0.2.2/24");
    lab.addr(&gw, "eth0", "192.0.2.1/24");
    let cluster = tr7::config::parse(
        "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses: {a: [192.0.2.2/24], b: [192.0.2.3/24]}
    gateway:
      ipv4: {target: 192.0.2.1, interval: 20ms, timeout: 20ms, rise: 2, fall: 2}
    vips:
      master: [{address: 192.0.2.10, method: link-and-gateway}]
",
        "t.yaml",
    )
    .expect("valid file");
    let view = cluster.node_view("a").unwrap();
    let ns = node.clone();
    let monitor = Monitor::start(plan(&view, move |_| Some(ns.clone()), link::DEFAULT_POLL))
        .expect("start the monitor");
    let key = RouterKey {
        iface: "eth0".into(),
        slot: tr7::config::SlotName::Master,
        family: tr7::vrrp::Family::V4,
    };
    let wait = |want: Health, what: &str| {
        let start = Instant::now();
        loop {
            let st = monitor.router_status(&key);
            if st.len() == 2 && st.iter().all(|s| s.state == want) {
                return st;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{what}: {st:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let up = wait(Health::Up, "both signals up");
    assert_eq!(up[0].name, "link eth0");
    assert!(
        up[0].mechanism.starts_with("netlink-events+poll"),
        "{:?}",
        up[0]
    );
    assert_eq!(up[1].name, "gateway eth0 IPv4");
    assert!(
        up[1].mechanism.starts_with("arp to 192.0.2.1"),
        "{:?}",
        up[1]
    );
    ip(&["-n", &gw, "link", "set", "eth0", "down"]);
    let down = wait(Health::Down, "both signals down");
    assert_eq!(down[0].detail, "`eth0` has no carrier");
    // Without carrier the probe cannot even leave (ENOBUFS): the detail says so.
    assert!(
        down[1].detail.contains("did not answer arp") || down[1].detail.contains("probe not sent"),
        "{:?}",
        down[1]
    );
    assert!(
        down.iter()
            .all(|s| s.last_change_unix_ms.is_some() && s.transitions == 2)
    );
    monitor.stop();
}
