//! Two real `tr7 agent` processes in a namespace lab: node-a and node-b on a bridge with a
//! client, one cluster file, unicast VRRP for IPv4 and IPv6 (from the file's global sources),
//! advert interval 100 ms, Active-Active (node-a prefers the master list, node-b the backup
//! list). Only documentation addresses.
//!
//! Which binary: the tests run `target/<profile>/tr7`, found next to this test's own
//! executable, after `cargo build -p tr7-agent --bin tr7` for that profile and target
//! directory, run once per test process (`tr7_tests::agents::tr7_binary`). Cargo gives
//! `CARGO_BIN_EXE_tr7` only to tests of the binary's own package, and a binary left over
//! from an earlier build would test old code; building is a no-op when it is current.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tr7::agent::StatusReport;
use tr7::agent::heartbeat::monotonic_ns;
use tr7::agent::metrics::Sample;
use tr7::agent::status::{AddressFamily, Owner, RouterState, RouterStatus};
use tr7::dataplane::Maps;
use tr7_tests::capture::{AdvertCapture, FrameCapture, Seen, spans, worst_overlap};
use tr7_tests::keepalived::{Keepalived, KeepalivedConfig};
use tr7_tests::{
    agents::{Agent, Segment},
    lab::Lab,
};

const MASTER_VIPS: [&str; 2] = ["192.0.2.10", "2001:db8::10"];
const BACKUP_VIPS: [&str; 2] = ["192.0.2.20", "2001:db8::20"];
const INTERVAL: Duration = Duration::from_millis(100);

/// Master_Down_Interval of a backup at `priority` following a 100 ms master (RFC 9568 6.1).
fn master_down(priority: u8) -> Duration {
    3 * INTERVAL + INTERVAL * (256 - u32::from(priority)) / 256
}

struct Setup {
    // Dropped first: agents are killed before their namespaces and pins go.
    a: Agent,
    b: Agent,
    lab: Lab,
    client: String,
    node_a: String,
    node_b: String,
    file: PathBuf,
    _dir: TempDir,
}

/// A directory for the cluster file and the logs; removed on drop unless a test failed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn setup(tag: &str) -> Setup {
    let Segment {
        lab,
        node_a,
        node_b,
        client,
        ..
    } = Segment::new(tag);
    let dir = std::env::temp_dir().join(format!("{node_a}-agent"));
    std::fs::create_dir_all(&dir).expect("create test directory");
    let file = dir.join("cluster.yaml");
    std::fs::write(&file, CLUSTER).expect("write cluster file");
    let a = Agent::start("node-a", &node_a, &file, &dir);
    let b = Agent::start("node-b", &node_b, &file, &dir);
    Setup {
        a,
        b,
        lab,
        client,
        node_a,
        node_b,
        file,
        _dir: TempDir(dir),
    }
}

/// The lab's cluster file.
const CLUSTER: &str = "\
name: lab
nodes: [{name: node-a}, {name: node-b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24, 2001:db8::2/64]
      node-b: [192.0.2.3/24, 2001:db8::3/64]
    vrrp:
      unicast:
        node-a: [192.0.2.2, 2001:db8::2]
        node-b: [192.0.2.3, 2001:db8::3]
      advert_interval: 100ms
    vips:
      master: [{address: 192.0.2.10, zone: dmz}, {address: 2001:db8::10}]
      backup: [{address: 192.0.2.20}, {address: 2001:db8::20}]
";

/// Polls `cond` every 2 ms until it holds or `limit` passes; returns the time it took.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

impl Setup {
    /// Both agents running, each owning its preferred list and not the other's.
    fn wait_for_election(&self) -> Duration {
        wait_for(Duration::from_secs(10), "Active-Active election", || {
            self.a.owns_all(&MASTER_VIPS)
                && self.a.owns_none(&BACKUP_VIPS)
                && self.b.owns_all(&BACKUP_VIPS)
                && self.b.owns_none(&MASTER_VIPS)
        })
    }

    /// The client's neighbour cache: the MAC it has for `vip`, if any.
    fn neighbour(&self, vip: &str) -> Option<String> {
        let out = self
            .lab
            .exec(&self.client, &["ip", "neigh", "show", vip, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_lowercase)
    }

    fn ping(&self, vip: &str) -> bool {
        self.lab
            .exec(&self.client, &["ping", "-c", "1", "-W", "1", vip])
            .status
            .success()
    }

    /// Broadcast ARP requests from the client for `vip` (two, 1 s apart, `-b` so the
    /// second is not sent unicast to the first replier): the MACs of every reply.
    fn arp_replies(&self, vip: &str) -> (Vec<String>, String) {
        let out = self.lab.exec(
            &self.client,
            &["arping", "-b", "-c", "2", "-I", "eth0", vip],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let macs = text
            .lines()
            .filter(|l| l.contains("reply from"))
            .filter_map(|l| Some(l.split('[').nth(1)?.split(']').next()?.to_lowercase()))
            .collect();
        (macs, text)
    }

    /// Every IPv4 VIP answered ARP exactly twice (once per request), from `owner(vip)`'s MAC.
    fn assert_arp_from(&self, owners: &[(&str, &str)]) {
        std::thread::scope(|s| {
            let handles: Vec<_> = owners
                .iter()
                .map(|&(vip, ns)| {
                    let mac = self.lab.mac(ns, "eth0");
                    (vip, mac, s.spawn(move || self.arp_replies(vip)))
                })
                .collect();
            for (vip, mac, h) in handles {
                let (replies, text) = h.join().expect("arping thread");
                assert_eq!(
                    replies,
                    vec![mac.clone(), mac.clone()],
                    "ARP for {vip}: expected exactly one reply per request, from {mac}; arping said:\n{text}"
                );
            }
        });
    }
}

// Proves the Active-Active election (node-a owns the master list, node-b the backup list),
// that the client reaches every VIP (IPv4 and IPv6 ping), that only the owner answers ARP
// for a VIP, and that after kill -9 of node-a's agent node-b owns every VIP within the
// Master_Down_Interval (+ tolerance), node-a's data plane stops claiming the master list
// (its map still says owned: the liveness fence does it), and the client's ping to a
// master-list VIP resumes.
#[test]
fn election_reachability_and_kill_9_takeover() {
    let mut s = setup("agk");
    let took = s.wait_for_election();
    eprintln!("election settled {took:?} after the agents started");
    for vip in MASTER_VIPS.iter().chain(&BACKUP_VIPS) {
        assert!(s.ping(vip), "client cannot ping {vip}");
    }
    s.assert_arp_from(&[
        (MASTER_VIPS[0], s.node_a.as_str()),
        (BACKUP_VIPS[0], s.node_b.as_str()),
    ]);

    // node-b follows the master slot at priority 100.
    let limit = master_down(100) + Duration::from_millis(250);
    let killed = Instant::now();
    let killed_ns = monotonic_ns();
    s.a.kill9();
    wait_for(
        limit,
        "node-b owns every VIP after kill -9 of node-a",
        || s.b.owns_all(&MASTER_VIPS) && s.b.owns_all(&BACKUP_VIPS),
    );
    // From the signal, not from the reaping: a dying agent takes tens of milliseconds to
    // close its sockets.
    let takeover = killed.elapsed();
    eprintln!(
        "kill -9: node-b owned every VIP after {takeover:?} (Master_Down_Interval {:?})",
        master_down(100)
    );
    // The announcement moved the client: its neighbour entries for the master list point
    // at node-b within 200 ms (without the gratuitous ARP / unsolicited NA the entry
    // would keep node-a's MAC until it went stale, tens of seconds).
    let mac_b = s.lab.mac(&s.node_b, "eth0");
    for vip in MASTER_VIPS {
        let moved = wait_for(
            Duration::from_millis(200),
            "the client's neighbour entry follows the announcement",
            || s.neighbour(vip).is_some_and(|m| m == mac_b),
        );
        eprintln!(
            "kill -9: client's neighbour entry for {vip} on node-b's MAC {moved:?} after the takeover was seen"
        );
    }
    wait_for(
        Duration::from_secs(5),
        "ping to the master VIP resumes",
        || s.ping(MASTER_VIPS[0]),
    );
    eprintln!(
        "kill -9: ping to {} answered {:?} after the kill",
        MASTER_VIPS[0],
        killed.elapsed()
    );
    assert!(
        s.ping(MASTER_VIPS[1]),
        "client cannot ping {} after takeover",
        MASTER_VIPS[1]
    );
    // The dead agent's map still says node-a owns the master list: only the fence keeps
    // node-a's data plane from answering.
    assert!(
        s.a.owns_all(&MASTER_VIPS),
        "node-a's map changed after its death"
    );
    // When node-a's fence withdrew its claim, from the last heartbeat it wrote: the ARP
    // check below must run after it, and the distance to node-b's takeover is the window
    // in which both nodes claimed the master list.
    let fence = Maps::open(&s.a.pins.path)
        .and_then(|m| m.fence())
        .expect("read node-a's fence");
    let fenced_ns = fence.heartbeat_ns + fence.interval_ns;
    let fenced_after = Duration::from_nanos(fenced_ns.saturating_sub(killed_ns));
    let now_ns = monotonic_ns();
    if fenced_ns > now_ns {
        std::thread::sleep(Duration::from_nanos(fenced_ns - now_ns + 1_000_000));
    }
    eprintln!(
        "kill -9: node-a's data plane fenced {fenced_after:?} after the kill (fence {:?}); \
         both claimed for {:?}, neither for {:?} (takeover seen by polling, up to 2 ms late)",
        Duration::from_nanos(fence.interval_ns),
        fenced_after.saturating_sub(takeover),
        takeover.saturating_sub(fenced_after)
    );
    s.assert_arp_from(&[
        (MASTER_VIPS[0], s.node_b.as_str()),
        (BACKUP_VIPS[0], s.node_b.as_str()),
    ]);
}

// Proves SIGTERM of node-b's agent hands the backup list to node-a at once (priority 0
// advert; unicast fast takeover for IPv4 and IPv6, no Skew_Time), that
// node-b exits 0 with nothing owned, and that the client then reaches the backup VIPs on
// node-a.
#[test]
fn sigterm_hands_over_at_once() {
    let mut s = setup("ags");
    s.wait_for_election();
    let stopped = Instant::now();
    s.b.sigterm();
    // Both measured from the signal.
    wait_for(
        Duration::from_millis(200),
        "node-a owns the IPv4 backup VIP",
        || s.a.owns(BACKUP_VIPS[0]),
    );
    let v4 = stopped.elapsed();
    wait_for(
        Duration::from_millis(200),
        "node-a owns the IPv6 backup VIP",
        || s.a.owns(BACKUP_VIPS[1]),
    );
    let v6 = stopped.elapsed();
    let status = s.b.wait_exit();
    eprintln!(
        "SIGTERM: node-a owned {} {v4:?} and {} {v6:?} after the signal; node-b exited after {:?}",
        BACKUP_VIPS[0],
        BACKUP_VIPS[1],
        stopped.elapsed()
    );
    assert!(status.success(), "node-b exited with {status}");
    assert!(s.b.owns_none(&MASTER_VIPS) && s.b.owns_none(&BACKUP_VIPS));
    assert!(
        !s.b.socket.exists(),
        "a clean stop removes the control socket"
    );
    let log = s.b.log_text();
    assert!(
        log.contains("agent stopped"),
        "node-b's log lacks the clean stop:\n{log}"
    );
    for vip in BACKUP_VIPS {
        wait_for(
            Duration::from_secs(3),
            "client reaches the backup VIP on node-a",
            || s.ping(vip),
        );
    }
}

/// The value of the one sample of `name` whose labels include `want`.
fn sample(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.label(k) == Some(v)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one sample {name} {want:?}, found {found:?}"
    );
    found[0].value
}

fn router<'a>(report: &'a StatusReport, slot: &str, family: AddressFamily) -> &'a RouterStatus {
    report
        .routers
        .iter()
        .find(|r| r.slot == slot && r.family == family)
        .unwrap_or_else(|| panic!("{}: no router for slot {slot} {family:?}", report.node))
}

/// Both nodes' reports agree with the Active-Active election: `me` is master of `mine`
/// and backup of the other slot, hearing the peer (`peer_v4`) at the priority the peer
/// reports for itself.
fn election_in_status(me: &StatusReport, peer: &StatusReport, mine: &str, peer_v4: &str) -> bool {
    let theirs = if mine == "master" { "backup" } else { "master" };
    [AddressFamily::Ipv4, AddressFamily::Ipv6].iter().all(|&f| {
        let (own, other) = (router(me, mine, f), router(me, theirs, f));
        let heard = other.master.is_some_and(|m| {
            m.priority == router(peer, theirs, f).effective_priority
                && (f == AddressFamily::Ipv6 || m.address.to_string() == peer_v4)
        });
        own.state == RouterState::Master
            && other.state == RouterState::Backup
            && heard
            && own
                .vips
                .iter()
                .all(|v| v.owned == Some(true) && v.owner == Owner::ThisNode)
            && other.vips.iter().all(|v| {
                v.owned == Some(false)
                    && match v.owner {
                        Owner::Peer { address } => {
                            f == AddressFamily::Ipv6 || address.to_string() == peer_v4
                        }
                        _ => false,
                    }
            })
    })
}

// Proves `tr7 status --format json` against both agents (each on its own control socket)
// names the elected master and backup of every slot and family, the master each backup
// hears at the priority that master reports, and VIP ownership that is what the data plane
// does: only the node whose status says it owns an IPv4 VIP answers ARP for it. Also: the
// socket is 0600 in a 0700 directory the agent made; the human form; /metrics, scraped
// inside each node's namespace at the same default address, parses as Prometheus text,
// shows the router states, and counts the client's pings to a VIP as passed packets on
// the owner; bad HTTP requests get 405/404; after kill -9 `tr7 status` fails naming the
// socket, and the next agent replaces the stale socket and answers.
#[test]
fn status_and_metrics_match_the_data_plane() {
    let mut s = setup("agm");
    s.wait_for_election();
    // Status comes from the drivers, the map from their ownership writes: wait until the
    // published state has caught up with the map (microseconds apart).
    let mut reports = None;
    wait_for(
        Duration::from_secs(3),
        "both status reports show the election",
        || {
            let (Ok(a), Ok(b)) = (s.a.status(), s.b.status()) else {
                return false;
            };
            let ok = election_in_status(&a, &b, "master", "192.0.2.3")
                && election_in_status(&b, &a, "backup", "192.0.2.2");
            reports = Some((a, b));
            ok
        },
    );
    let (ra, rb) = reports.expect("reports");
    for (r, node) in [(&ra, "node-a"), (&rb, "node-b")] {
        assert_eq!(r.node, node);
        assert_eq!(r.routers.len(), 4, "{node}: 2 slots x 2 families");
        assert!(
            r.dataplane.error.is_none() && !r.dataplane.fenced,
            "{node}: {:?}",
            r.dataplane
        );
        for router in &r.routers {
            assert!(router.signals.is_empty(), "signals are issue 6's");
            if router.state == RouterState::Master {
                assert!(router.counters.adverts_sent > 0, "{node}: {router:?}");
            } else {
                assert!(router.counters.adverts_received > 0, "{node}: {router:?}");
            }
        }
    }
    // Who answers ARP is who the status says owns the VIP.
    let owner_ns = |vip: &str| {
        let vip: IpAddr = vip.parse().unwrap();
        let says_owned = |r: &StatusReport| {
            r.routers
                .iter()
                .flat_map(|x| &x.vips)
                .any(|v| v.address == vip && v.owner == Owner::ThisNode)
        };
        match (says_owned(&ra), says_owned(&rb)) {
            (true, false) => s.node_a.as_str(),
            (false, true) => s.node_b.as_str(),
            other => panic!("{vip}: owned by (a, b) = {other:?}"),
        }
    };
    s.assert_arp_from(&[
        (MASTER_VIPS[0], owner_ns(MASTER_VIPS[0])),
        (BACKUP_VIPS[0], owner_ns(BACKUP_VIPS[0])),
    ]);

    for agent in [&s.a, &s.b] {
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&agent.socket), 0o600, "{}: socket mode", agent.name);
        assert_eq!(
            mode(agent.socket.parent().unwrap()),
            0o700,
            "{}: directory mode",
            agent.name
        );
    }
    let human = s.a.status_command(false);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.status.success(),
        "{}",
        String::from_utf8_lossy(&human.stderr)
    );
    eprintln!("tr7 status (node-a):\n{text}");
    assert!(text.contains("node node-a (cluster lab)"), "{text}");
    assert!(text.contains("slot master IPv4 VRID"), "{text}");
    assert!(text.contains("master: 192.0.2.3 priority"), "{text}");
    assert!(text.contains("owned, owner this node"), "{text}");

    // /metrics at the default address in both namespaces. What a request costs, for
    // docs/agent.md (printed, not asserted).
    let t = Instant::now();
    let ma = s.a.scrape();
    let scrape_took = t.elapsed();
    let t = Instant::now();
    s.a.status().expect("status");
    eprintln!(
        "one /metrics scrape ({} samples) {scrape_took:?}; one `tr7 status --format json` process {:?}",
        ma.len(),
        t.elapsed()
    );
    let mb = s.b.scrape();
    let state = [("slot", "master"), ("family", "ipv4"), ("iface", "eth0")];
    let with = |extra: (&'static str, &'static str)| [state.as_slice(), &[extra]].concat();
    assert_eq!(
        sample(&ma, "tr7_vrrp_state", &with(("state", "master"))),
        1.0
    );
    assert_eq!(
        sample(&mb, "tr7_vrrp_state", &with(("state", "backup"))),
        1.0
    );
    assert_eq!(
        sample(&mb, "tr7_vrrp_state", &with(("state", "master"))),
        0.0
    );
    let passed = [
        ("vip", MASTER_VIPS[0]),
        ("iface", "eth0"),
        ("slot", "master"),
        ("zone", "dmz"),
        ("verdict", "passed"),
    ];
    let before = sample(&ma, "tr7_vip_packets_total", &passed);
    assert_eq!(sample(&ma, "tr7_vip_owned", &passed[..4]), 1.0);
    assert_eq!(sample(&mb, "tr7_vip_owned", &passed[..4]), 0.0);
    let out = s.lab.exec(
        &s.client,
        &["ping", "-c", "3", "-i", "0.2", "-W", "1", MASTER_VIPS[0]],
    );
    assert!(out.status.success(), "client pings {}", MASTER_VIPS[0]);
    let after = sample(&s.a.scrape(), "tr7_vip_packets_total", &passed);
    eprintln!(
        "tr7_vip_packets_total{{vip=\"{}\",verdict=\"passed\"}} on node-a: {before} -> {after} over 3 pings",
        MASTER_VIPS[0]
    );
    assert!(after >= before + 3.0, "3 pings: {before} -> {after}");
    assert!(
        sample(
            &s.a.scrape(),
            "tr7_dataplane_packets_total",
            &[("iface", "eth0"), ("reason", "passed_owned")]
        ) >= 3.0
    );
    let post = s.a.http("POST /metrics HTTP/1.1\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let other = s.a.http("GET /status HTTP/1.1\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");

    // A crashed agent leaves its socket; `tr7 status` says nobody listens; the next agent
    // replaces it.
    s.a.kill9();
    assert!(s.a.socket.exists(), "kill -9 leaves the socket file");
    let err = s.a.status().expect_err("status of a dead agent fails");
    assert!(
        err.contains("no agent is running") && err.contains(&s.a.socket.display().to_string()),
        "{err}"
    );
    s.a.spawn();
    wait_for(
        Duration::from_secs(10),
        "the restarted agent answers on its socket",
        || s.a.status().is_ok_and(|r| r.node == "node-a"),
    );
    assert!(s.a.log_text().contains("removing a stale control socket"));
}

/// Pings `vip` from the client `count` times, 10 ms apart: (sent, received).
fn ping_flood(lab: &Lab, client: &str, vip: &str, count: u32) -> (u32, u32) {
    let out = lab.exec(
        client,
        &[
            "ping",
            "-n",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "0.01",
            "-W",
            "1",
            vip,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary:\n{text}"));
    let number = |word: &str| -> u32 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| w.trim_end_matches(',') == word)
            .unwrap_or_else(|| panic!("no `{word}` in `{line}`"));
        words[at - 1].parse().expect("a count")
    };
    (number("packets"), number("received"))
}

// Proves that SIGQUIT is an exit for restart that moves no VIP: node-a's agent (master of
// the master list) exits without priority 0 and is started again at once; the new agent
// finds its VIPs still owned in the pinned map and its heartbeat within the fence, resumes
// as master without a transition through Backup, node-b never owns a master-list VIP
// (polled all along, and its log has no transition), and the client's pings to
// 192.0.2.10 across the restart are all answered.
#[test]
fn sigquit_restart_moves_no_vip() {
    restart_moves_no_vip("agq", Stop::Quit);
}

// Proves the same for a crash restarted at once (kill -9, then a new agent, as systemd's
// Restart= does): nothing released the VIPs, the fence still holds them, the new agent
// resumes and node-b never takes over.
#[test]
fn kill_9_and_fast_restart_moves_no_vip() {
    restart_moves_no_vip("agr", Stop::Kill9);
}

/// How the restart test ends node-a's first agent.
#[derive(Clone, Copy, Debug)]
enum Stop {
    Quit,
    Kill9,
}

fn restart_moves_no_vip(tag: &str, stop_how: Stop) {
    let mut s = setup(tag);
    s.wait_for_election();
    let mark_a = s.a.log_len();
    let mark_b = s.b.log_len();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (sent, received, b_owned_master) = std::thread::scope(|scope| {
        let pings = scope.spawn(|| ping_flood(&s.lab, &s.client, MASTER_VIPS[0], 150));
        let watch = scope.spawn(|| {
            let mut seen = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen |= MASTER_VIPS.iter().any(|v| s.b.owns(v));
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(400));
        let stopped = Instant::now();
        match stop_how {
            Stop::Quit => {
                s.a.signal("QUIT");
                let status = s.a.wait_exit();
                assert!(status.success(), "node-a exited with {status} on SIGQUIT");
            }
            Stop::Kill9 => s.a.kill9(),
        }
        s.a.spawn();
        let resumed =
            stopped.elapsed() + s.a.wait_log(mark_a, "VIPs kept", Duration::from_secs(10));
        s.a.wait_log(mark_a, "agent running", Duration::from_secs(10));
        let log = s.a.log_since(mark_a);
        let at = |what: &str| log_time(&log, what);
        let limits = format!(
            "limits: node-b's Master_Down_Interval {:?} after node-a's last advert, node-a's \
             fence {:?} after its last heartbeat",
            master_down(100),
            fence_of(&s.a)
        );
        match stop_how {
            Stop::Quit => {
                let since = |t: f64| Duration::from_secs_f64((t - at("SIGQUIT: exiting")).max(0.0));
                eprintln!(
                    "SIGQUIT restart (node-a's log clock, from the signal): old agent gone \
                     {:?}, new agent started {:?}, mastership resumed {:?}, startup done \
                     {:?}; {limits}",
                    since(at("agent exited for restart")),
                    since(at("agent starting")),
                    since(at("VIPs kept")),
                    since(at("agent running")),
                );
            }
            Stop::Kill9 => {
                let heartbeat = log
                    .lines()
                    .find(|l| l.contains("previous liveness heartbeat"))
                    .unwrap_or_default();
                eprintln!(
                    "kill -9 restart: mastership resumed about {resumed:?} after the SIGKILL \
                     (seen by polling the log); {limits}; the new agent read: {heartbeat}"
                );
            }
        }
        let (sent, received) = pings.join().expect("ping thread");
        // Watch a little longer: a late takeover would show up within Master_Down_Interval.
        std::thread::sleep(master_down(100));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (sent, received, watch.join().expect("watch thread"))
    });
    eprintln!(
        "{stop_how:?} restart: client's pings to {}: {received} of {sent} answered",
        MASTER_VIPS[0]
    );
    let log_a = s.a.log_since(mark_a);
    let log_b = s.b.log_since(mark_b);
    assert!(
        !b_owned_master,
        "node-b owned a master-list VIP during node-a's restart:\n{log_b}"
    );
    assert!(
        !log_b.contains("VRRP transition") && !log_b.contains("VIPs owned"),
        "node-b changed state during node-a's restart:\n{log_b}"
    );
    assert!(
        log_a.contains("resume as master"),
        "node-a's log lacks the resume:\n{log_a}"
    );
    if let Stop::Quit = stop_how {
        assert!(
            log_a.contains("agent exited for restart") && !log_a.contains("priority 0"),
            "node-a's log lacks the exit for restart:\n{log_a}"
        );
    }
    for family in ["IPv4", "IPv6"] {
        let lines = router_events(&log_a, "master", family, &["VIPs owned", "VIPs released"]);
        assert!(
            lines.is_empty(),
            "node-a's master {family} router did not simply resume: {lines:?}"
        );
    }
    assert!(s.a.owns_all(&MASTER_VIPS) && s.b.owns_all(&BACKUP_VIPS));
    assert_eq!(
        received, sent,
        "the client lost pings to {} during the restart",
        MASTER_VIPS[0]
    );
}

/// The time of day, in seconds, of the last line of `log` that contains `what` (the
/// agent's log lines start with an RFC 3339 UTC timestamp).
fn log_time(log: &str, what: &str) -> f64 {
    let line = log
        .lines()
        .rfind(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no `{what}` in the log:\n{log}"));
    let clock = line
        .split_whitespace()
        .next()
        .and_then(|t| t.split('T').nth(1))
        .map(|t| t.trim_end_matches('Z'))
        .unwrap_or_else(|| panic!("no timestamp on `{line}`"));
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse().expect("a number"))
        .collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// The fence node-a's agent wrote.
fn fence_of(agent: &Agent) -> Duration {
    Maps::open(&agent.pins.path)
        .and_then(|m| m.fence())
        .map(|f| Duration::from_nanos(f.interval_ns))
        .unwrap_or_default()
}

/// The lab file with the backup list's IPv6 VIP removed and 192.0.2.11 added to the
/// master list.
fn changed_cluster() -> String {
    let mut out = CLUSTER.to_owned();
    for (from, to) in [
        (
            "master: [{address: 192.0.2.10, zone: dmz}, {address: 2001:db8::10}]",
            "master: [{address: 192.0.2.10, zone: dmz}, {address: 192.0.2.11}, {address: 2001:db8::10}]",
        ),
        (
            "backup: [{address: 192.0.2.20}, {address: 2001:db8::20}]",
            "backup: [{address: 192.0.2.20}]",
        ),
    ] {
        assert!(
            out.contains(from),
            "the lab's cluster file no longer has `{from}`"
        );
        out = out.replace(from, to);
    }
    out
}

/// The lines of `log` that name this router (`slot=master` in ownership lines,
/// `slot="master"` in start lines) and one of `events`.
fn router_events(log: &str, slot: &str, family: &str, events: &[&str]) -> Vec<String> {
    let slots = [format!("slot={slot} "), format!("slot=\"{slot}\" ")];
    let family = format!("family={family} ");
    log.lines()
        .filter(|l| slots.iter().any(|s| l.contains(s.as_str())) && l.contains(&family))
        .filter(|l| events.iter().any(|e| l.contains(e)))
        .map(str::to_owned)
        .collect()
}

// Proves SIGHUP reload: (a) an invalid file is refused with an error naming the problem,
// and nothing changes (ownership, routers, no transition); (b) a file that adds 192.0.2.11
// to the master list and removes 2001:db8::20 from the backup list is applied as a
// difference: the routers that did not change (master IPv6, backup IPv4) neither
// transition nor announce nor write the map, on either node; node-a's master IPv4 router
// is replaced and resumes as master, owning the new VIP, which the client then reaches
// and which only node-a answers ARP for; the removed VIP's router stops, its address is
// gone from both nodes and its map entry is gone; (c) a priority-only change is made in
// place (no restart, no transition) and shortens the peer's fence.
#[test]
fn sighup_reload_applies_only_differences() {
    let s = setup("agh");
    s.wait_for_election();
    let unchanged = [("master", "IPv6"), ("backup", "IPv4")];
    let events = [
        "VIPs owned",
        "VIPs released",
        "VIPs announced",
        "VIPs kept",
        "starting virtual router",
    ];

    // (a) An invalid file: a VIP outside every subnet of its interface.
    let mark_a = s.a.log_len();
    std::fs::write(
        &s.file,
        CLUSTER.replace("{address: 192.0.2.20}", "{address: 203.0.113.20}"),
    )
    .expect("write invalid file");
    s.a.signal("HUP");
    s.a.wait_log(mark_a, "reload refused", Duration::from_secs(5));
    let log = s.a.log_since(mark_a);
    eprintln!("SIGHUP with an invalid file, node-a's log:\n{log}");
    assert!(
        log.contains("203.0.113.20"),
        "the error does not name the problem:\n{log}"
    );
    assert!(
        !log.contains("VRRP transition") && !log.contains("reload done"),
        "{log}"
    );
    assert!(s.a.owns_all(&MASTER_VIPS) && s.a.owns_none(&BACKUP_VIPS));
    assert!(!s.a.has_entry("203.0.113.20"));

    // (b) Add one VIP, remove another. The node that is backup for the removed VIP
    // reloads first, so the master's priority-0 advert finds no router to take over.
    std::fs::write(&s.file, changed_cluster()).expect("write changed file");
    let mark_a = s.a.log_len();
    let mark_b = s.b.log_len();
    let reloaded = Instant::now();
    s.a.signal("HUP");
    s.a.wait_log(mark_a, "reload done", Duration::from_secs(5));
    s.b.signal("HUP");
    s.b.wait_log(mark_b, "reload done", Duration::from_secs(5));
    eprintln!("SIGHUP: both nodes reloaded after {:?}", reloaded.elapsed());
    wait_for(Duration::from_secs(3), "node-a owns the added VIP", || {
        s.a.owns("192.0.2.11")
    });
    for vip in ["192.0.2.11", "192.0.2.10"] {
        wait_for(Duration::from_secs(3), "client reaches the VIP", || {
            s.ping(vip)
        });
    }
    s.assert_arp_from(&[("192.0.2.11", s.node_a.as_str())]);
    // Give a wrong takeover time to show up before looking at the logs.
    std::thread::sleep(master_down(100));
    let (log_a, log_b) = (s.a.log_since(mark_a), s.b.log_since(mark_b));
    eprintln!("SIGHUP: node-a's log:\n{log_a}\nnode-b's log:\n{log_b}");
    for (name, log) in [("node-a", &log_a), ("node-b", &log_b)] {
        for (slot, family) in unchanged {
            let lines = router_events(log, slot, family, &events);
            assert!(
                lines.is_empty(),
                "{name}: unchanged router {slot} {family} was disturbed: {lines:?}"
            );
        }
        assert!(log.contains("reload done"), "{name}: no reload summary");
    }
    assert!(
        router_events(&log_a, "master", "IPv4", &["VIPs kept"])
            .iter()
            .any(|l| l.contains("192.0.2.11")),
        "node-a's master IPv4 router did not resume with the new VIP:\n{log_a}"
    );
    assert_eq!(
        router_events(&log_a, "master", "IPv4", &["starting virtual router"]).len(),
        1,
        "node-a's master IPv4 router was not replaced exactly once:\n{log_a}"
    );
    assert!(
        router_events(&log_a, "master", "IPv4", &["VIPs released"]).is_empty(),
        "node-a released its master IPv4 VIPs on reload:\n{log_a}"
    );
    assert!(s.a.owns_all(&MASTER_VIPS) && s.b.owns(BACKUP_VIPS[0]));
    assert!(s.a.owns_none(&BACKUP_VIPS) && s.b.owns_none(&MASTER_VIPS));
    for (agent, ns) in [(&s.a, &s.node_a), (&s.b, &s.node_b)] {
        assert!(
            !agent.has_entry(BACKUP_VIPS[1]),
            "{}: map entry for {} left",
            agent.name,
            BACKUP_VIPS[1]
        );
        let out = s.lab.exec(ns, &["ip", "-6", "addr", "show", "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("2001:db8::20/"),
            "{}: address {} still on eth0:\n{text}",
            agent.name,
            BACKUP_VIPS[1]
        );
    }
    let out = s
        .lab
        .exec(&s.node_b, &["ip", "-4", "addr", "show", "dev", "eth0"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("192.0.2.11/32"),
        "node-b lacks the new VIP's address"
    );

    // (c) A priority change only: node-a's master slot goes from 200 to 250. On node-a the
    // routers are updated in place (no restart, no transition); node-b's routers do not
    // change (its own priorities are the same), but its fence does: its peer on the master
    // slot now takes over sooner (Master_Down_Interval(250) - 100 ms = 202.3 ms).
    std::fs::write(
        &s.file,
        changed_cluster().replace(
            "      advert_interval: 100ms\n",
            "      advert_interval: 100ms\n      master: {priority: {node-a: 250, node-b: 100}}\n",
        ),
    )
    .expect("write file with a new priority");
    let mark_a = s.a.log_len();
    let mark_b = s.b.log_len();
    s.a.signal("HUP");
    s.a.wait_log(mark_a, "reload done", Duration::from_secs(5));
    s.b.signal("HUP");
    s.b.wait_log(mark_b, "reload done", Duration::from_secs(5));
    std::thread::sleep(master_down(100));
    let (log_a, log_b) = (s.a.log_since(mark_a), s.b.log_since(mark_b));
    eprintln!("SIGHUP (priority): node-a's log:\n{log_a}\nnode-b's log:\n{log_b}");
    assert!(
        log_a.contains("priority eth0 master IPv4: 200 -> 250")
            && log_a.contains("priority eth0 master IPv6: 200 -> 250"),
        "node-a did not change the priority in place:\n{log_a}"
    );
    for (name, log) in [("node-a", &log_a), ("node-b", &log_b)] {
        assert!(
            !log.contains("VRRP transition") && !log.contains("starting virtual router"),
            "{name}: a priority change restarted or moved a router:\n{log}"
        );
    }
    assert!(
        log_b.contains("fence changed") && log_b.contains("new_ms=402.34"),
        "node-b did not shorten its fence:\n{log_b}"
    );
    assert!(fence_of(&s.b) < fence_of(&s.a));
    assert!(s.a.owns_all(&MASTER_VIPS) && s.b.owns(BACKUP_VIPS[0]));
}

/// Which side of a keepalived lab is master: the agent at 200 and keepalived at 100, or
/// keepalived at 200 and the agent at 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Higher {
    Agent,
    Keepalived,
}

/// The keepalived labs: node-a runs `tr7 agent`, node-b runs keepalived (one IPv4 and one
/// IPv6 unicast instance, VRID 10, `unicast_src_ip` = node-b's addresses in the file,
/// TR7's as the peer, the strict checksum settings of `tr7_tests::keepalived`), and a
/// client; all on one bridge. The VIPs are the master list's 192.0.2.10 and 2001:db8::10.
struct KeepalivedLab {
    // Dropped first: the processes before their namespaces.
    a: Agent,
    k4: Keepalived,
    k6: Keepalived,
    /// On node-a's bridge port: unicast frames are switched, not delivered to br0 itself.
    adverts: AdvertCapture,
    /// Every frame on the client's eth0: who answers its ARP and neighbour solicitations.
    client_frames: FrameCapture,
    lab: Lab,
    client: String,
    node_a: String,
    node_b: String,
    _dir: TempDir,
}

fn keepalived_lab(tag: &str, higher: Higher) -> KeepalivedLab {
    let Segment {
        lab,
        sw,
        node_a,
        node_b,
        client,
    } = Segment::new(tag);
    // keepalived does not configure node-b's own addresses: the lab does.
    lab.addr(&node_b, "eth0", "192.0.2.3/24");
    lab.addr(&node_b, "eth0", "2001:db8::3/64");
    lab.wait_ipv6_ready(&node_b, "eth0");
    let dir = std::env::temp_dir().join(format!("{node_a}-agent-keepalived"));
    std::fs::create_dir_all(&dir).expect("create test directory");
    let file = dir.join("cluster.yaml");
    let (slot, keepalived_priority) = match higher {
        Higher::Agent => ("{vrid: 10}", 100),
        Higher::Keepalived => ("{vrid: 10, preferred: node-b}", 200),
    };
    std::fs::write(
        &file,
        format!(
            "\
name: lab
nodes: [{{name: node-a}}, {{name: node-b}}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24, 2001:db8::2/64]
      node-b: [192.0.2.3/24, 2001:db8::3/64]
    vrrp:
      advert_interval: 100ms
      master: {slot}
    vips:
      master: [{{address: 192.0.2.10}}, {{address: 2001:db8::10}}]
"
        ),
    )
    .expect("write cluster file");
    let adverts = AdvertCapture::start(&sw, "pa");
    let client_frames = FrameCapture::start(&client, "eth0");
    let keepalived = |src: &str, peer: &str, vip: &str, tag: &str| {
        Keepalived::start(
            &node_b,
            tag,
            KeepalivedConfig {
                iface: "eth0".into(),
                vrid: 10,
                priority: keepalived_priority,
                interval_cs: 10,
                unicast_src: Some(src.parse().unwrap()),
                unicast_peers: vec![peer.parse().unwrap()],
                vip: vip.parse().unwrap(),
                default_unicast_ttl: false,
            },
        )
    };
    let k4 = keepalived("192.0.2.3", "192.0.2.2", MASTER_VIPS[0], "k4");
    let k6 = keepalived("2001:db8::3", "2001:db8::2", MASTER_VIPS[1], "k6");
    let a = Agent::start("node-a", &node_a, &file, &dir);
    KeepalivedLab {
        a,
        k4,
        k6,
        adverts,
        client_frames,
        lab,
        client,
        node_a,
        node_b,
        _dir: TempDir(dir),
    }
}

/// Polls every 2 ms until `v4` and `v6` both hold, failing after `limit` from `since`;
/// the time from `since` at which each first held.
fn per_family(
    since: Instant,
    limit: Duration,
    what: &str,
    mut v4: impl FnMut() -> bool,
    mut v6: impl FnMut() -> bool,
) -> (Duration, Duration) {
    let (mut t4, mut t6) = (None, None);
    loop {
        if t4.is_none() && v4() {
            t4 = Some(since.elapsed());
        }
        if t6.is_none() && v6() {
            t6 = Some(since.elapsed());
        }
        if let (Some(a), Some(b)) = (t4, t6) {
            return (a, b);
        }
        assert!(
            since.elapsed() < limit,
            "not within {limit:?}: {what} (IPv4 after {t4:?}, IPv6 after {t6:?})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `frame` answers for `vip`: an ARP reply with `vip` as sender, or a neighbour
/// advertisement with `vip` as target.
fn answers_for(frame: &[u8], vip: IpAddr) -> bool {
    let ethertype = frame.get(12..14);
    match vip {
        // ARP from byte 14: op at 6, sender protocol address at 14.
        IpAddr::V4(v4) => {
            ethertype == Some(&[0x08, 0x06])
                && frame.get(20..22) == Some(&[0, 2])
                && frame.get(28..32) == Some(&v4.octets()[..])
        }
        // IPv6 header from 14 (next header at 6), ICMPv6 from 54: type 136, target at 8.
        IpAddr::V6(v6) => {
            ethertype == Some(&[0x86, 0xdd])
                && frame.get(20) == Some(&58)
                && frame.get(54) == Some(&136)
                && frame.get(62..78) == Some(&v6.octets()[..])
        }
    }
}

impl KeepalivedLab {
    /// The agent owns both VIPs and keepalived holds neither, and still does 5 intervals
    /// later.
    fn wait_for_agent_master(&self) {
        wait_for(
            Duration::from_secs(10),
            "the agent owns both VIPs, keepalived neither",
            || self.a.owns_all(&MASTER_VIPS) && !self.k4.is_master() && !self.k6.is_master(),
        );
        std::thread::sleep(5 * INTERVAL);
        assert!(
            self.a.owns_all(&MASTER_VIPS) && !self.k4.is_master() && !self.k6.is_master(),
            "the agent's mastership did not hold"
        );
    }

    /// The source MACs of the answers the client got to a solicitation for `vip`: ARP
    /// replies to two broadcast requests (`arping -b`), or neighbour advertisements to the
    /// multicast solicitation of a ping (the client's neighbour cache flushed first).
    fn answering_macs(&self, vip: &str) -> Vec<String> {
        let addr: IpAddr = vip.parse().unwrap();
        let mark = self.client_frames.frames().len();
        if addr.is_ipv4() {
            self.lab.exec(
                &self.client,
                &["arping", "-b", "-c", "2", "-I", "eth0", vip],
            );
        } else {
            self.lab
                .exec(&self.client, &["ip", "-6", "neigh", "flush", "dev", "eth0"]);
            self.lab
                .exec(&self.client, &["ping", "-6", "-c", "1", "-W", "1", vip]);
        }
        // The capture thread may still be reading the last answer.
        std::thread::sleep(Duration::from_millis(50));
        self.client_frames.frames()[mark..]
            .iter()
            .filter(|f| answers_for(&f.bytes, addr))
            .filter_map(|f| f.src_mac())
            .map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .collect()
    }

    /// For each VIP, the client's solicitation is answered from `yes`'s MAC and not from
    /// `no`'s (namespaces).
    fn assert_answered_by(&self, yes: &str, no: Option<&str>, when: &str) {
        let yes_mac = self.lab.mac(yes, "eth0");
        let no_mac = no.map(|ns| self.lab.mac(ns, "eth0"));
        for vip in MASTER_VIPS {
            let macs = self.answering_macs(vip);
            eprintln!("{when}: {vip} answered from {macs:?}");
            assert!(
                macs.contains(&yes_mac),
                "{when}: no answer for {vip} from {yes} ({yes_mac}): {macs:?}"
            );
            if let Some(no_mac) = &no_mac {
                assert!(
                    !macs.contains(no_mac),
                    "{when}: {vip} answered from {no_mac} too: {macs:?}"
                );
            }
        }
    }

    /// Per family, from the captured adverts: both routers were master at some time (so
    /// the check below looked at a handover), and two were never master at once for
    /// longer than one advert interval.
    fn assert_overlap_within_one_interval(&self, what: &str) {
        let adverts = self.adverts.adverts();
        for (family, v4, peers) in [
            ("IPv4", true, ["192.0.2.2", "192.0.2.3"]),
            ("IPv6", false, ["2001:db8::2", "2001:db8::3"]),
        ] {
            let ours: Vec<Seen> = adverts
                .iter()
                .copied()
                .filter(|s| s.src.is_ipv4() == v4)
                .collect();
            assert!(ours.len() > 10, "{what}: {family}: only {ours:?}");
            let masters = spans(&ours, 10, INTERVAL);
            for peer in peers {
                let peer: IpAddr = peer.parse().unwrap();
                assert!(
                    masters.iter().any(|s| s.src == peer),
                    "{what}: {family}: {peer} never advertised as master: {masters:?}"
                );
            }
            let o = worst_overlap(&ours, 10, INTERVAL);
            // Times from the capture's first advert of the family.
            let start = ours[0].at;
            let shown: Vec<String> = masters
                .iter()
                .map(|s| {
                    format!(
                        "{} {:?}..{:?} ({} adverts)",
                        s.src,
                        s.first - start,
                        s.last - start,
                        s.adverts
                    )
                })
                .collect();
            eprintln!(
                "{what}: {family}: {} adverts, mastership spans {shown:?}; worst overlap of two masters {:?} ({} adverts)",
                ours.len(),
                o.length,
                o.adverts
            );
            assert!(
                o.length <= INTERVAL,
                "{what}: {family}: two masters for {o:?}"
            );
        }
    }
}

// Proves the real agent interoperates with keepalived in both families at once: node-a
// runs `tr7 agent` (priority 200), node-b runs keepalived (priority 100, one unicast
// instance per family). The agent's IPv6 router runs unicast from the file's address, and
// keepalived follows it: the agent owns both VIPs and keepalived holds neither. SIGTERM
// of the agent hands both VIPs to keepalived; the captured adverts show, per family,
// both as master in turn and never two masters for longer than one interval; and no
// advert failed to go out while the agent's own IPv6 address was still tentative.
#[test]
fn agent_against_keepalived_ipv4_and_ipv6_unicast() {
    let mut k = keepalived_lab("agk6", Higher::Agent);
    k.wait_for_agent_master();
    let log = k.a.log_text();
    assert!(
        log.lines().any(|l| l.contains("starting virtual router")
            && l.contains("IPv6")
            && l.contains("unicast")),
        "the IPv6 router should run unicast:\n{log}"
    );
    // The agent's own IPv6 address is tentative for a second or two after the topology
    // adds it (duplicate address detection); the router waits for it rather than fail
    // to send (EINVAL) while keepalived, hearing nothing, would be master too.
    assert!(
        !log.contains("VRRP send error"),
        "the agent failed to send adverts:\n{log}"
    );

    let stopped = Instant::now();
    k.a.sigterm();
    let took = wait_for(
        Duration::from_secs(2),
        "keepalived holds both VIPs after the agent's SIGTERM",
        || k.k4.is_master() && k.k6.is_master(),
    );
    assert!(k.a.wait_exit().success());
    eprintln!(
        "agent SIGTERM: keepalived held both VIPs {took:?} after the signal ({:?} now)",
        stopped.elapsed()
    );
    std::thread::sleep(3 * INTERVAL);
    k.assert_overlap_within_one_interval("agent SIGTERM");
}

// Proves kill -9 of the real agent against keepalived, both families: node-a's agent (200)
// is master, keepalived (100) backup, and the client's ARP and neighbour solicitations for
// the VIPs are answered by node-a only. After SIGKILL of the agent keepalived holds both
// VIPs within its Master_Down_Interval + 250 ms; node-a's map still says owned, yet once
// its fence has passed node-a answers neither ARP nor neighbour solicitation for the VIPs
// while node-b does (the liveness fence); per family the captured adverts show both as
// master in turn and never two masters for longer than one interval.
#[test]
fn agent_against_keepalived_kill_9_of_the_agent() {
    let mut k = keepalived_lab("agk9a", Higher::Agent);
    k.wait_for_agent_master();
    k.assert_answered_by(&k.node_a, Some(&k.node_b), "before the agent's kill -9");

    // keepalived (100) follows the agent's 100 ms adverts.
    let limit = master_down(100) + Duration::from_millis(250);
    let killed = Instant::now();
    let killed_ns = monotonic_ns();
    k.a.kill9();
    let (v4, v6) = per_family(
        killed,
        limit,
        "keepalived holds the VIP after kill -9 of the agent",
        || k.k4.is_master(),
        || k.k6.is_master(),
    );
    eprintln!(
        "agent kill -9: keepalived held {} {v4:?} and {} {v6:?} after the SIGKILL \
         (Master_Down_Interval {:?} from the agent's last advert, up to one interval before the kill)",
        MASTER_VIPS[0],
        MASTER_VIPS[1],
        master_down(100)
    );
    assert!(
        k.a.owns_all(&MASTER_VIPS),
        "node-a's map changed after its death"
    );
    // Only the fence keeps node-a's data plane from answering: wait until it has passed,
    // from the last heartbeat the agent wrote.
    let fence = Maps::open(&k.a.pins.path)
        .and_then(|m| m.fence())
        .expect("read node-a's fence");
    let fenced_ns = fence.heartbeat_ns + fence.interval_ns;
    let fenced_after = Duration::from_nanos(fenced_ns.saturating_sub(killed_ns));
    let now_ns = monotonic_ns();
    if fenced_ns > now_ns {
        std::thread::sleep(Duration::from_nanos(fenced_ns - now_ns + 1_000_000));
    }
    eprintln!(
        "agent kill -9: node-a's data plane fenced {fenced_after:?} after the SIGKILL (fence {:?} \
         from its last heartbeat): both nodes claimed {} for {:?} and {} for {:?}, neither for {:?} / {:?} \
         (keepalived's takeover seen by polling `ip addr`, a few ms late)",
        Duration::from_nanos(fence.interval_ns),
        MASTER_VIPS[0],
        fenced_after.saturating_sub(v4),
        MASTER_VIPS[1],
        fenced_after.saturating_sub(v6),
        v4.saturating_sub(fenced_after),
        v6.saturating_sub(fenced_after),
    );
    k.assert_answered_by(&k.node_b, Some(&k.node_a), "after the agent's fence");
    std::thread::sleep(3 * INTERVAL);
    k.assert_overlap_within_one_interval("agent kill -9");
}

/// Both of the agent's routers are backup and hear keepalived (node-b's address of the
/// family) at priority 200.
fn backup_under_keepalived(report: &StatusReport) -> bool {
    report.routers.len() == 2
        && report.routers.iter().all(|r| {
            let peer: IpAddr = if r.source.is_ipv4() {
                "192.0.2.3"
            } else {
                "2001:db8::3"
            }
            .parse()
            .unwrap();
            r.state == RouterState::Backup
                && r.master
                    .as_ref()
                    .is_some_and(|m| m.address == peer && m.priority == 200)
        })
}

// Proves kill -9 of keepalived against the real agent, both families: keepalived (200) is
// master and node-a's agent (100) backup, its status hearing keepalived at 200 per
// family. SIGKILL of keepalived's process group leaves no keepalived process (parent and
// VRRP child, both seen before); the agent owns both VIPs in its map within
// Master_Down_Interval + 250 ms, by its master down timer (logged once per family), and
// node-a answers the client's ARP and neighbour solicitations for them; per family the
// captured adverts show both as master in turn and never two masters for longer than one
// interval.
#[test]
fn agent_against_keepalived_kill_9_of_keepalived() {
    let mut k = keepalived_lab("agk9k", Higher::Keepalived);
    wait_for(
        Duration::from_secs(10),
        "keepalived holds both VIPs, the agent owns neither",
        || k.k4.is_master() && k.k6.is_master() && k.a.owns_none(&MASTER_VIPS),
    );
    wait_for(
        Duration::from_secs(5),
        "the agent's status shows both routers backup under keepalived at 200",
        || k.a.status().is_ok_and(|r| backup_under_keepalived(&r)),
    );
    std::thread::sleep(5 * INTERVAL);
    assert!(
        k.k4.is_master() && k.k6.is_master() && k.a.owns_none(&MASTER_VIPS),
        "keepalived's mastership did not hold"
    );
    for (family, instance) in [("IPv4", &k.k4), ("IPv6", &k.k6)] {
        let pids = instance.processes();
        assert!(
            pids.len() >= 2,
            "{family} keepalived: expected the parent and its VRRP child, found {pids:?}"
        );
    }

    // The agent (100) follows keepalived's 100 ms adverts.
    let limit = master_down(100) + Duration::from_millis(250);
    let mark = k.a.log_len();
    let killed = Instant::now();
    k.k4.kill9();
    k.k6.kill9();
    let (v4, v6) = per_family(
        killed,
        limit,
        "the agent owns the VIP after kill -9 of keepalived",
        || k.a.owns(MASTER_VIPS[0]),
        || k.a.owns(MASTER_VIPS[1]),
    );
    eprintln!(
        "keepalived kill -9: the agent owned {} {v4:?} and {} {v6:?} after the SIGKILL \
         (Master_Down_Interval {:?} from keepalived's last advert, up to one interval before the kill)",
        MASTER_VIPS[0],
        MASTER_VIPS[1],
        master_down(100)
    );
    wait_for(
        Duration::from_secs(1),
        "no keepalived process left after kill -9 of its process group",
        || k.k4.processes().is_empty() && k.k6.processes().is_empty(),
    );
    let log = k.a.log_since(mark);
    let by_timer = log
        .lines()
        .filter(|l| {
            l.contains("VRRP transition")
                && l.contains("to=\"master\"")
                && l.contains("master down timer expired")
        })
        .count();
    assert_eq!(
        by_timer, 2,
        "expected one takeover by the master down timer per family:\n{log}"
    );
    // A killed keepalived leaves its addresses on node-b, whose kernel keeps answering
    // for them; node-a must answer too.
    eprintln!(
        "keepalived kill -9: its addresses still on node-b: IPv4 {}, IPv6 {}",
        k.k4.is_master(),
        k.k6.is_master()
    );
    k.assert_answered_by(&k.node_a, None, "after keepalived's kill -9");
    std::thread::sleep(3 * INTERVAL);
    k.assert_overlap_within_one_interval("keepalived kill -9");
    // keepalived started first and sent to addresses the agent added later; the agent's
    // routers announce their own source address at start, so node-b's kernel resolves
    // it at once and the adverts that waited in its neighbour queue go out: the agent's
    // routers never became master beside keepalived (before the fix, 4 runs in 5 had one
    // such transition; docs/agent.md).
    let log = k.a.log_text();
    let before = log
        .get(..mark)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("VRRP transition") && l.contains("to=\"master\""))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        before.is_empty(),
        "the agent's routers became master beside keepalived before the kill: {before:#?}"
    );
}
