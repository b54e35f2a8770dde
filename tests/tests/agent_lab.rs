//! Two real `tr7 agent` processes in a namespace lab: node-a and node-b on a bridge with a
//! client, one cluster file, unicast VRRP for IPv4 and IPv6 (from the file's global sources),
//! advert interval 100 ms, Active-Active (node-a prefers the master list, node-b the backup
//! list). Only documentation addresses.
//!
//! Which binary: the tests run `target/<profile>/tr7`, found next to this test's own
//! executable (`target/<profile>/deps/agent_lab-*`), after `cargo build -p tr7-agent --bin
//! tr7` for that profile and target directory, run once per test process. Cargo gives
//! `CARGO_BIN_EXE_tr7` only to tests of the binary's own package, and a binary left over
//! from an earlier build would test old code; building is a no-op when it is current.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tr7::agent::heartbeat::monotonic_ns;
use tr7::dataplane::Maps;
use tr7_tests::{bpf::PinDir, lab::Lab};

const MASTER_VIPS: [&str; 2] = ["192.0.2.10", "2001:db8::10"];
const BACKUP_VIPS: [&str; 2] = ["192.0.2.20", "2001:db8::20"];
const INTERVAL: Duration = Duration::from_millis(100);

/// Master_Down_Interval of a backup at `priority` following a 100 ms master (RFC 9568 6.1).
fn master_down(priority: u8) -> Duration {
    3 * INTERVAL + INTERVAL * (256 - u32::from(priority)) / 256
}

fn tr7_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/agent_lab-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "tr7-agent", "--bin", "tr7"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for the tr7 binary");
        assert!(
            status.success(),
            "cargo build -p tr7-agent --bin tr7 failed"
        );
        let bin = profile_dir.join("tr7");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// One agent process; killed (SIGKILL) and reaped on drop, also when the test panics.
struct Agent {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
    pins: PinDir,
}

impl Agent {
    fn start(name: &'static str, netns: &str, file: &Path, dir: &Path) -> Self {
        let pins = PinDir::new(&format!("agent-{name}"));
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create agent log");
        let child = Command::new(tr7_binary())
            .args(["agent", "--config"])
            .arg(file)
            .args(["--node", name, "--netns", netns, "--pin-dir"])
            .arg(&pins.path)
            .env("TR7_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn tr7 agent");
        Self {
            name,
            child: Some(child),
            log,
            pins,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Whether this node's ownership map says it owns `vip` (the agent's view; the fence
    /// may still withdraw it in the data plane).
    fn owns(&self, vip: &str) -> bool {
        let vip: IpAddr = vip.parse().unwrap();
        Maps::open(&self.pins.path)
            .ok()
            .and_then(|m| m.vips().ok())
            .is_some_and(|v| v.iter().any(|e| e.addr == vip && e.owned))
    }

    fn owns_all(&self, vips: &[&str]) -> bool {
        vips.iter().all(|v| self.owns(v))
    }

    fn owns_none(&self, vips: &[&str]) -> bool {
        vips.iter().all(|v| !self.owns(v))
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM; the caller then waits with [`Agent::wait_exit`].
    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (at most 5 s) for the exit status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("agent running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for agent") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{} did not exit within 5 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- {} agent log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

struct Setup {
    // Dropped first: agents are killed before their namespaces and pins go.
    a: Agent,
    b: Agent,
    lab: Lab,
    client: String,
    node_a: String,
    node_b: String,
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
    let mut lab = Lab::new(tag);
    let sw = lab.netns("sw");
    let node_a = lab.netns("a");
    let node_b = lab.netns("b");
    let client = lab.netns("client");
    lab.bridge(&sw, "br0");
    lab.veth_to_bridge(&node_a, "eth0", &sw, "pa", "br0");
    lab.veth_to_bridge(&node_b, "eth0", &sw, "pb", "br0");
    lab.veth_to_bridge(&client, "eth0", &sw, "pc", "br0");
    lab.addr(&client, "eth0", "192.0.2.1/24");
    lab.addr(&client, "eth0", "2001:db8::1/64");
    for ns in [&node_a, &node_b, &client] {
        lab.wait_ipv6_ready(ns, "eth0");
    }
    let dir = std::env::temp_dir().join(format!("{node_a}-agent"));
    std::fs::create_dir_all(&dir).expect("create test directory");
    let file = dir.join("cluster.yaml");
    std::fs::write(
        &file,
        "\
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
      master: [{address: 192.0.2.10}, {address: 2001:db8::10}]
      backup: [{address: 192.0.2.20}, {address: 2001:db8::20}]
",
    )
    .expect("write cluster file");
    let a = Agent::start("node-a", &node_a, &file, &dir);
    let b = Agent::start("node-b", &node_b, &file, &dir);
    Setup {
        a,
        b,
        lab,
        client,
        node_a,
        node_b,
        _dir: TempDir(dir),
    }
}

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
         both claimed for {:?}",
        Duration::from_nanos(fence.interval_ns),
        fenced_after.saturating_sub(takeover)
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

// Proves the real agent interoperates with keepalived in both families at once: node-a
// runs `tr7 agent` (priority 200), node-b runs keepalived (priority 100; one IPv4 and one
// IPv6 unicast instance, `unicast_src_ip` = node-b's addresses in the file, TR7's as the
// peer). The agent's IPv6 router runs unicast from the file's address, and keepalived
// follows it: the agent owns both VIPs and keepalived holds neither. SIGTERM of the agent
// hands both VIPs to keepalived; the captured adverts show, per family, never two
// masters for longer than one interval; and no advert failed to go out while the
// agent's own IPv6 address was still tentative.
#[test]
fn agent_against_keepalived_ipv4_and_ipv6_unicast() {
    use tr7_tests::capture::{AdvertCapture, Seen, worst_overlap};
    use tr7_tests::keepalived::{Keepalived, KeepalivedConfig};

    let mut lab = Lab::new("agk6");
    let sw = lab.netns("sw");
    let node_a = lab.netns("a");
    let node_b = lab.netns("b");
    lab.bridge(&sw, "br0");
    lab.veth_to_bridge(&node_a, "eth0", &sw, "pa", "br0");
    lab.veth_to_bridge(&node_b, "eth0", &sw, "pb", "br0");
    lab.addr(&node_b, "eth0", "192.0.2.3/24");
    lab.addr(&node_b, "eth0", "2001:db8::3/64");
    for ns in [&node_a, &node_b] {
        lab.wait_ipv6_ready(ns, "eth0");
    }
    let dir = std::env::temp_dir().join(format!("{node_a}-agent-keepalived"));
    std::fs::create_dir_all(&dir).expect("create test directory");
    let _dir = TempDir(dir.clone());
    let file = dir.join("cluster.yaml");
    std::fs::write(
        &file,
        "\
name: lab
nodes: [{name: node-a}, {name: node-b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24, 2001:db8::2/64]
      node-b: [192.0.2.3/24, 2001:db8::3/64]
    vrrp:
      advert_interval: 100ms
      master: {vrid: 10}
    vips:
      master: [{address: 192.0.2.10}, {address: 2001:db8::10}]
",
    )
    .expect("write cluster file");
    // On node-a's bridge port: unicast frames are switched, not delivered to br0 itself.
    let capture = AdvertCapture::start(&sw, "pa");
    let keepalived = |src: &str, peer: &str, vip: &str, tag: &str| {
        Keepalived::start(
            &node_b,
            tag,
            KeepalivedConfig {
                iface: "eth0".into(),
                vrid: 10,
                priority: 100,
                interval_cs: 10,
                unicast_src: Some(src.parse().unwrap()),
                unicast_peers: vec![peer.parse().unwrap()],
                vip: vip.parse().unwrap(),
                default_unicast_ttl: false,
            },
        )
    };
    let k4 = keepalived("192.0.2.3", "192.0.2.2", "192.0.2.10", "k4");
    let k6 = keepalived("2001:db8::3", "2001:db8::2", "2001:db8::10", "k6");
    let mut a = Agent::start("node-a", &node_a, &file, &dir);
    wait_for(
        Duration::from_secs(10),
        "the agent owns both VIPs, keepalived neither",
        || a.owns_all(&MASTER_VIPS) && !k4.is_master() && !k6.is_master(),
    );
    std::thread::sleep(5 * INTERVAL);
    assert!(a.owns_all(&MASTER_VIPS) && !k4.is_master() && !k6.is_master());
    let log = a.log_text();
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
    a.sigterm();
    let took = wait_for(
        Duration::from_secs(2),
        "keepalived holds both VIPs after the agent's SIGTERM",
        || k4.is_master() && k6.is_master(),
    );
    assert!(a.wait_exit().success());
    eprintln!(
        "agent SIGTERM: keepalived held both VIPs {took:?} after the signal ({:?} now)",
        stopped.elapsed()
    );
    std::thread::sleep(3 * INTERVAL);
    let adverts = capture.adverts();
    for (family, v4) in [("IPv4", true), ("IPv6", false)] {
        let ours: Vec<Seen> = adverts
            .iter()
            .copied()
            .filter(|s| s.src.is_ipv4() == v4)
            .collect();
        assert!(ours.len() > 10, "{family}: only {ours:?}");
        let o = worst_overlap(&ours, 10, INTERVAL);
        eprintln!(
            "{family}: {} adverts; worst overlap of two masters {:?} ({} adverts)",
            ours.len(),
            o.length,
            o.adverts
        );
        assert!(o.length <= INTERVAL, "{family}: two masters for {o:?}");
    }
}
