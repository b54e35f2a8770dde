//! `tr7-bench failover`: how long a client loses the VIP when its master fails, for TR7
//! with TR7 (two real `tr7 agent` processes) and keepalived with keepalived under the same
//! settings, measured in the same run.
//!
//! The lab: namespaces node-a, node-b and client on a bridge (192.0.2.2, .3 and .1), one
//! IPv4 VIP 192.0.2.10, unicast VRRPv3 between the nodes, node-a priority 200, node-b 100,
//! preemption on. The client sends an ICMP echo request to the VIP every millisecond from
//! a raw socket (one process, 32-bit sequence numbers, not a forked ping per packet) and
//! notes which requests were answered. The outage of one failure is the longest gap
//! between replies from just before the fault until replies flow from the new master,
//! counted in the requests' send times and only across lost requests: when the busy
//! machine does not schedule the client for 20 ms, it sends nothing, loses nothing, and
//! that pause is reported as the stall (noise floor) of the run, not as outage.
//!
//! Faults ([`Fault`]) are done to the master, node-a, which then recovers ([`recover`]:
//! restarted, or the cause undone) and preempts again before the next one.
//!
//! Besides the process faults (kill -9, SIGTERM), issue 6's faults keep the process
//! running and take away what the node needs upstream. So the VIP interface of each node
//! is a bridge `br0` over the segment port `eth0` and two uplinks to an `up` namespace:
//! `up0` is a veth whose ifindex equals its peer's (the kernel's slow, linkwatch-batched
//! carrier path of a physical NIC, ../shared/MACHINE.md), `up1` one with different
//! ifindexes (the urgent path). A gateway namespace (192.0.2.254) sits on the segment.
//! TR7's VIP has method `link-and-gateway` (docs/signals.md: the bridge's declared ports
//! and an ARP check of the gateway every 10 ms, fall 3); keepalived tracks `up0` and
//! `up1` (`track_interface`) and runs a `track_script` pinging the gateway at its
//! smallest interval, 1 s, fall 1. The faults: `ip link set` of the uplink's far end down
//! (on a quiet host, and 100 ms after another slow-path link event, which makes
//! linkwatch wait out the rest of its one-second rate limit), and an nftables drop of
//! node-a's ARP and IP in the gateway namespace.

use std::fs::File;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    self as sock, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockProtocol, SockType,
    SockaddrIn, SockaddrStorage, sockopt,
};
use nix::sys::time::TimeVal;

use crate::bpf::PinDir;
use crate::keepalived::{Keepalived, KeepalivedConfig, PingScript, Tracking};
use crate::lab::{Lab, ip, nft};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NODE_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const NODE_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
const VRID: u8 = 51;
/// The gateway of the segment, in its own namespace (issue 6's gateway loss).
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// TR7's gateway check interval (and timeout); fall and rise are 3.
const PROBE_MS: u32 = 10;

/// Which VRRP implementation runs on both nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Impl {
    Tr7,
    Keepalived,
}

impl Impl {
    pub fn name(self) -> &'static str {
        match self {
            Impl::Tr7 => "TR7",
            Impl::Keepalived => "keepalived",
        }
    }
}

/// What happens to the master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL: no priority 0. TR7's data plane keeps the claim until the liveness fence;
    /// keepalived's VIP stays on the interface (nobody removes it).
    Kill9,
    /// SIGTERM: priority 0, VIPs released, clean exit.
    Sigterm,
    /// node-a's uplink `up0` loses carrier on the kernel's slow path (equal ifindexes),
    /// on a host without other link events in the last second.
    CarrierSlow,
    /// The same, 100 ms after another slow-path carrier change on the host (a spare veth
    /// pair in the uplink namespace): linkwatch then holds the event back until a second
    /// has passed since its previous run.
    CarrierSlowBusy,
    /// node-a's uplink `up1` loses carrier on the fast path (different ifindexes).
    CarrierFast,
    /// The gateway stops answering node-a: nftables drops its ARP and IP there.
    Gateway,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill9 => "kill -9",
            Fault::Sigterm => "SIGTERM",
            Fault::CarrierSlow => "carrier slow",
            Fault::CarrierSlowBusy => "carrier slow+event",
            Fault::CarrierFast => "carrier fast",
            Fault::Gateway => "gateway",
        }
    }

    /// The name on the command line (`--faults`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "kill9" => Fault::Kill9,
            "sigterm" => Fault::Sigterm,
            "carrier-slow" => Fault::CarrierSlow,
            "carrier-slow-busy" => Fault::CarrierSlowBusy,
            "carrier-fast" => Fault::CarrierFast,
            "gateway" => Fault::Gateway,
            _ => return None,
        })
    }

    pub const KNOWN: &str =
        "kill9, sigterm, carrier-slow, carrier-slow-busy, carrier-fast, gateway";

    fn is_carrier(self) -> bool {
        matches!(
            self,
            Fault::CarrierSlow | Fault::CarrierSlowBusy | Fault::CarrierFast
        )
    }
}

pub struct Opts {
    pub rounds: usize,
    pub intervals: Vec<Duration>,
    pub faults: Vec<Fault>,
    pub impls: Vec<Impl>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            rounds: 3,
            // Issue 6's intervals; 1 s (issue 5's table) on request.
            intervals: [100, 10].map(Duration::from_millis).to_vec(),
            faults: vec![
                Fault::Kill9,
                Fault::Sigterm,
                Fault::CarrierSlow,
                Fault::CarrierSlowBusy,
                Fault::CarrierFast,
                Fault::Gateway,
            ],
            impls: vec![Impl::Tr7, Impl::Keepalived],
        }
    }
}

/// One measured failure.
#[derive(Clone, Copy, Debug)]
struct Outage {
    /// Longest gap between answered requests across lost ones, or to the end of the
    /// window when replies never came back.
    gap: Duration,
    recovered: bool,
    /// The client's longest pause between two requests in the second before the fault:
    /// how much this machine stalls a 1 ms sender (not counted in `gap`).
    noise: Duration,
    /// From just before the fault was done until node-b owned the VIP (polled every
    /// 2 ms); `None` when it never did within the window.
    takeover: Option<Duration>,
}

/// Runs every (interval, implementation, fault) `rounds` times and prints the table.
pub fn run(opts: &Opts, tr7: &Path) {
    println!(
        "failover: outage = longest gap between the client's answered 1 ms echo requests to \
         the VIP, across lost ones; {} round(s); load {}",
        opts.rounds,
        loadavg()
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for &interval in &opts.intervals {
        let mut results: Vec<(Impl, Fault, Vec<Outage>)> = Vec::new();
        for &which in &opts.impls {
            let per_fault = measure(which, interval, opts, tr7);
            for (fault, outages) in per_fault {
                results.push((which, fault, outages));
            }
        }
        for &fault in &opts.faults {
            let get = |w: Impl| {
                results
                    .iter()
                    .find(|(i, f, _)| *i == w && *f == fault)
                    .map(|(_, _, o)| o.clone())
            };
            rows.push((interval, fault, get(Impl::Tr7), get(Impl::Keepalived)));
        }
    }
    println!();
    println!(
        "outage: the segment client's loss; takeover: fault to node-b owning the VIP (what a \
         client behind the failed uplink or gateway loses); median / max ms"
    );
    println!(
        "{:>8}  {:<18}  {:>16}  {:>16}  {:>16}  {:>16}  {:>8}",
        "interval",
        "fault",
        "TR7 outage",
        "TR7 takeover",
        "keepalived outage",
        "ka takeover",
        "stall ms"
    );
    let mut sigterm_ok = true;
    let mut carrier_ok = true;
    let mut gateway_ok = true;
    let mut not_worse = true;
    for (interval, fault, t, k) in &rows {
        let cell = |o: &Option<Vec<Outage>>| match o {
            None => "-".to_owned(),
            Some(v) => {
                let (med, max, all) = summary(v);
                format!(
                    "{:.1} / {:.1}{}",
                    ms(med),
                    ms(max),
                    if all { "" } else { " (no recovery)" }
                )
            }
        };
        let take = |o: &Option<Vec<Outage>>| match o {
            None => "-".to_owned(),
            Some(v) => {
                let (med, max, all) = takeover_summary(v);
                format!(
                    "{:.1} / {:.1}{}",
                    ms(med),
                    ms(max),
                    if all { "" } else { " (none)" }
                )
            }
        };
        let noise = t
            .iter()
            .chain(k.iter())
            .flatten()
            .map(|o| o.noise)
            .max()
            .unwrap_or_default();
        println!(
            "{:>8}  {:<18}  {:>16}  {:>16}  {:>16}  {:>16}  {:>8.1}",
            format!("{}ms", interval.as_millis()),
            fault.name(),
            cell(t),
            take(t),
            cell(k),
            take(k),
            ms(noise)
        );
        if let Some(t) = t {
            let (med, max, all) = summary(t);
            if *fault == Fault::Sigterm && (max >= Duration::from_millis(10) || !all) {
                sigterm_ok = false;
            }
            // Judged on the takeover: the segment client keeps reaching node-a until then,
            // a client behind the failed uplink or gateway does not.
            let (_, tmax, tall) = takeover_summary(t);
            if fault.is_carrier() && (tmax >= Duration::from_millis(20) || !tall || !all) {
                carrier_ok = false;
            }
            if *fault == Fault::Gateway && (tmax >= Duration::from_millis(100) || !tall || !all) {
                gateway_ok = false;
            }
            if let Some(k) = k {
                let (kmed, _, _) = summary(k);
                if med > kmed || !all {
                    not_worse = false;
                }
            }
        }
    }
    println!();
    if opts.impls.contains(&Impl::Tr7) && opts.faults.contains(&Fault::Sigterm) {
        println!(
            "target: SIGTERM hand-over under 10 ms at every interval (TR7, every round): {}",
            if sigterm_ok { "met" } else { "NOT met" }
        );
    }
    if opts.impls.contains(&Impl::Tr7) && opts.faults.iter().any(|f| f.is_carrier()) {
        println!(
            "target: carrier-loss outage (takeover) under 20 ms on both paths (TR7, every round): {}",
            if carrier_ok { "met" } else { "NOT met" }
        );
    }
    if opts.impls.contains(&Impl::Tr7) && opts.faults.contains(&Fault::Gateway) {
        println!(
            "target: gateway-loss takeover under 100 ms at a {PROBE_MS} ms probe interval \
             (TR7, every round): {}",
            if gateway_ok { "met" } else { "NOT met" }
        );
    }
    if opts.impls.len() == 2 {
        println!(
            "target: TR7 never worse than keepalived (median per row): {}",
            if not_worse { "met" } else { "NOT met" }
        );
    }
    println!(
        "took {:.0} s; load {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

fn summary(v: &[Outage]) -> (Duration, Duration, bool) {
    let mut gaps: Vec<Duration> = v.iter().map(|o| o.gap).collect();
    gaps.sort();
    (
        gaps[gaps.len() / 2],
        *gaps.last().unwrap(),
        v.iter().all(|o| o.recovered),
    )
}

/// Median and max takeover, and whether node-b took over in every round (a round without
/// takeover counts as its window, so it shows in the max).
fn takeover_summary(v: &[Outage]) -> (Duration, Duration, bool) {
    let mut t: Vec<Duration> = v
        .iter()
        .map(|o| o.takeover.unwrap_or(Duration::from_secs(3600)))
        .collect();
    t.sort();
    (
        t[t.len() / 2],
        *t.last().unwrap(),
        v.iter().all(|o| o.takeover.is_some()),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Master_Down_Interval at `priority` (RFC 9568 6.1).
fn master_down(interval: Duration, priority: u8) -> Duration {
    3 * interval + interval * (256 - u32::from(priority)) / 256
}

/// One lab for one implementation and interval; every fault `rounds` times.
fn measure(which: Impl, interval: Duration, opts: &Opts, tr7: &Path) -> Vec<(Fault, Vec<Outage>)> {
    let mut lab = Lab::new("fo");
    let sw = lab.netns("sw");
    let ns_a = lab.netns("a");
    let ns_b = lab.netns("b");
    let client = lab.netns("client");
    lab.bridge(&sw, "br0");
    lab.veth_to_bridge(&ns_a, "eth0", &sw, "pa", "br0");
    lab.veth_to_bridge(&ns_b, "eth0", &sw, "pb", "br0");
    lab.veth_to_bridge(&client, "eth0", &sw, "pc", "br0");
    lab.addr(&client, "eth0", "192.0.2.1/24");
    let gw = lab.netns("gw");
    lab.veth_to_bridge(&gw, "eth0", &sw, "pg", "br0");
    lab.addr(&gw, "eth0", &format!("{GATEWAY}/24"));
    // Uplinks: up0 with equal ifindexes (slow path), up1 with different ones (fast path);
    // x0 (up) / x1 (sw) a spare slow-path pair whose carrier change primes linkwatch.
    let up = lab.netns("up");
    veth_indexed(&ns_a, "up0", 40, &up, "ua0", 40);
    veth_indexed(&ns_a, "up1", 41, &up, "ua1", 51);
    veth_indexed(&ns_b, "up0", 42, &up, "ub0", 42);
    veth_indexed(&ns_b, "up1", 43, &up, "ub1", 53);
    veth_indexed(&up, "x0", 60, &sw, "x1", 60);
    let env = Env {
        up: up.clone(),
        gw: gw.clone(),
    };
    let dir = std::env::temp_dir().join(format!("{ns_a}-failover"));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let file = dir.join("cluster.yaml");
    if which == Impl::Tr7 {
        std::fs::write(&file, cluster_file(interval)).expect("write the cluster file");
    } else {
        for (ns, addr) in [(&ns_a, NODE_A), (&ns_b, NODE_B)] {
            ip(&["-n", ns, "link", "add", "br0", "type", "bridge"]);
            for port in ["eth0", "up0", "up1"] {
                ip(&["-n", ns, "link", "set", port, "master", "br0"]);
            }
            ip(&["-n", ns, "link", "set", "br0", "up"]);
            lab.addr(ns, "br0", &format!("{addr}/24"));
        }
    }
    // Dropped after the nodes (declared before them): the directories go last.
    let pins = [PinDir::new("failover-a"), PinDir::new("failover-b")];
    let spec = |name: &'static str, ns: &str, pins: &PinDir| NodeSpec {
        which,
        name,
        ns: ns.to_owned(),
        interval,
        tr7: tr7.to_owned(),
        file: file.clone(),
        dir: dir.clone(),
        pins: pins.path.clone(),
    };
    let (spec_a, spec_b) = (
        spec("node-a", &ns_a, &pins[0]),
        spec("node-b", &ns_b, &pins[1]),
    );
    let mut starts = 0;
    let b = Node::start(&spec_b, &mut starts);
    let mut a = Node::start(&spec_a, &mut starts);
    // Long enough for re-preemption after a recovered signal, whose flap damping holds
    // the recovery back by up to 5 s after repeated failures (docs/signals.md).
    let settle = master_down(interval, 100) + Duration::from_secs(8);
    wait(settle, || a.is_master() && !b.is_master())
        .unwrap_or_else(|| panic!("{}: node-a never became master alone", which.name()));
    let pinger = Pinger::start(&client, VIP);
    let mut out: Vec<(Fault, Vec<Outage>)> = opts.faults.iter().map(|f| (*f, Vec::new())).collect();
    for round in 0..opts.rounds {
        for (fault, outages) in &mut out {
            // Steady state: node-a master, replies flowing, and a quiet second to measure
            // the noise floor.
            wait(settle, || {
                a.is_master() && !b.is_master() && pinger.flowing()
            })
            .unwrap_or_else(|| panic!("{}: no steady state before round {round}", which.name()));
            std::thread::sleep(Duration::from_secs(1).max(2 * interval));
            if *fault == Fault::CarrierSlowBusy {
                // Another slow-path link event 100 ms before the fault.
                ip(&["-n", &env.up, "link", "set", "x0", "down"]);
                std::thread::sleep(Duration::from_millis(100));
            }
            let t0 = now();
            env.inflict(&mut a, *fault);
            // Replies from the new master: node-b master and replies flowing again, or
            // the window closes (no recovery).
            let window = master_down(interval, 100) + Duration::from_secs(2);
            // From t0, not from the end of `inflict` (which includes running `ip`, `nft`
            // or waiting for the killed process).
            let takeover = wait(window, || b.is_master()).map(|_| now().saturating_sub(t0));
            let recovered = wait(window, || b.is_master() && pinger.flowing()).is_some();
            std::thread::sleep(Duration::from_millis(20));
            let end = now();
            let mut outage = pinger.outage(t0, end, recovered);
            outage.takeover = takeover;
            // A killed keepalived leaves its VIP on the interface: the dead node keeps
            // answering for it next to the new master (TR7's fence withdraws it).
            let stale = which == Impl::Keepalived && *fault == Fault::Kill9 && a.is_master();
            eprintln!(
                "{} {}ms {} round {}: takeover {}, outage {:.1} ms{} (client stall {:.1} ms){}",
                which.name(),
                interval.as_millis(),
                fault.name(),
                round + 1,
                takeover.map_or("none".into(), |t| format!("{:.1} ms", ms(t))),
                ms(outage.gap),
                if recovered { "" } else { ", no recovery" },
                ms(outage.noise),
                if stale {
                    "; the killed node still holds the VIP"
                } else {
                    ""
                }
            );
            outages.push(outage);
            recover(&env, &mut a, *fault, &spec_a, &mut starts);
        }
    }
    wait(settle, || a.is_master() && !b.is_master());
    drop(pinger);
    drop(a);
    drop(b);
    drop(pins);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Undoes `fault` on node-a so that it can preempt again: a killed or stopped node is
/// started again (it adopts its pins). A fault that leaves the process running (carrier
/// or gateway loss, issue 6) undoes its cause instead.
fn recover(env: &Env, a: &mut Node, fault: Fault, spec: &NodeSpec, starts: &mut u32) {
    match fault {
        Fault::Kill9 | Fault::Sigterm => *a = Node::start(spec, starts),
        Fault::CarrierSlow => {
            ip(&["-n", &env.up, "link", "set", "ua0", "up"]);
        }
        Fault::CarrierSlowBusy => {
            ip(&["-n", &env.up, "link", "set", "ua0", "up"]);
            ip(&["-n", &env.up, "link", "set", "x0", "up"]);
        }
        Fault::CarrierFast => {
            ip(&["-n", &env.up, "link", "set", "ua1", "up"]);
        }
        Fault::Gateway => nft(&env.gw, "flush ruleset\n"),
    }
}

/// The namespaces issue 6's faults act in.
struct Env {
    /// The far ends of the uplinks (`ua0`, `ua1` of node-a) and the spare pair `x0`/`x1`.
    up: String,
    /// The gateway.
    gw: String,
}

impl Env {
    /// Does `fault` to node-a; returns once it is done.
    fn inflict(&self, a: &mut Node, fault: Fault) {
        match fault {
            Fault::Kill9 | Fault::Sigterm => a.inflict(fault),
            Fault::CarrierSlow | Fault::CarrierSlowBusy => {
                ip(&["-n", &self.up, "link", "set", "ua0", "down"]);
            }
            Fault::CarrierFast => {
                ip(&["-n", &self.up, "link", "set", "ua1", "down"]);
            }
            Fault::Gateway => nft(
                &self.gw,
                &format!(
                    "table arp failbench {{\n chain c {{\n type filter hook input priority 0;\n \
                     arp saddr ip {{ {NODE_A}, {VIP} }} drop\n }}\n}}\n\
                     table ip failbench {{\n chain c {{\n type filter hook input priority 0;\n \
                     ip saddr {{ {NODE_A}, {VIP} }} drop\n }}\n}}\n"
                ),
            ),
        }
    }
}

/// A veth between `a_ns/a` and `b_ns/b` with chosen ifindexes, both ends up: equal ones
/// take the kernel's slow (linkwatch-batched) carrier path, different ones the urgent one.
fn veth_indexed(a_ns: &str, a: &str, a_index: u32, b_ns: &str, b: &str, b_index: u32) {
    let (ai, bi) = (a_index.to_string(), b_index.to_string());
    ip(&[
        "link", "add", a, "index", &ai, "netns", a_ns, "type", "veth", "peer", "name", b, "index",
        &bi, "netns", b_ns,
    ]);
    ip(&["-n", a_ns, "link", "set", a, "up"]);
    ip(&["-n", b_ns, "link", "set", b, "up"]);
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Polls `cond` every 2 ms for at most `limit`; the time it took.
fn wait(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn cluster_file(interval: Duration) -> String {
    format!(
        "\
name: failover
nodes: [{{name: node-a}}, {{name: node-b}}]
interfaces:
  - {{name: eth0, type: ethernet}}
  - {{name: up0, type: ethernet}}
  - {{name: up1, type: ethernet}}
  - name: br0
    type: bridge
    members: [eth0, up0, up1]
    addresses:
      node-a: [{NODE_A}/24]
      node-b: [{NODE_B}/24]
    gateway:
      ipv4: {{target: {GATEWAY}, interval: {PROBE_MS}ms, timeout: {PROBE_MS}ms, rise: 3, fall: 3}}
    vrrp:
      unicast:
        node-a: [{NODE_A}]
        node-b: [{NODE_B}]
      advert_interval: {}ms
      master: {{preferred: node-a, vrid: {VRID}, priority: {{node-a: 200, node-b: 100}}}}
    vips:
      master: [{{address: {VIP}, method: link-and-gateway}}]
",
        interval.as_millis()
    )
}

struct NodeSpec {
    which: Impl,
    name: &'static str,
    ns: String,
    interval: Duration,
    tr7: PathBuf,
    file: PathBuf,
    dir: PathBuf,
    pins: PathBuf,
}

/// One node: a `tr7 agent` process with its pin directory, or keepalived.
enum Node {
    Tr7 {
        child: Option<Child>,
        pins: PathBuf,
        log: PathBuf,
    },
    Keepalived(Keepalived),
}

impl Node {
    fn start(spec: &NodeSpec, starts: &mut u32) -> Self {
        *starts += 1;
        match spec.which {
            Impl::Tr7 => {
                let log = spec.dir.join(format!("{}-{starts}.log", spec.name));
                let out = File::create(&log).expect("create the agent log");
                let child = Command::new(&spec.tr7)
                    .args(["agent", "--config"])
                    .arg(&spec.file)
                    .args(["--node", spec.name, "--netns", &spec.ns, "--pin-dir"])
                    // A restarted agent adopts its pins: the same directory every time.
                    .arg(&spec.pins)
                    .env("TR7_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(out.try_clone().expect("dup log"))
                    .stderr(out)
                    .spawn()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", spec.tr7.display()));
                Node::Tr7 {
                    child: Some(child),
                    pins: spec.pins.clone(),
                    log,
                }
            }
            Impl::Keepalived => {
                let (src, peer, priority) = if spec.name == "node-a" {
                    (NODE_A, NODE_B, 200)
                } else {
                    (NODE_B, NODE_A, 100)
                };
                Node::Keepalived(Keepalived::start_tracked(
                    &spec.ns,
                    &format!("{}-{starts}", spec.name),
                    KeepalivedConfig {
                        iface: "br0".into(),
                        vrid: VRID,
                        priority,
                        interval_cs: u16::try_from(spec.interval.as_millis() / 10).unwrap_or(100),
                        unicast_src: Some(IpAddr::V4(src)),
                        unicast_peers: vec![IpAddr::V4(peer)],
                        vip: IpAddr::V4(VIP),
                        default_unicast_ttl: false,
                    },
                    &Tracking {
                        interfaces: vec!["up0".into(), "up1".into()],
                        ping: Some(PingScript {
                            target: IpAddr::V4(GATEWAY),
                            interval_s: 1,
                            fall: 1,
                            rise: 1,
                        }),
                    },
                ))
            }
        }
    }

    /// Whether this node claims the VIP: TR7's ownership map, keepalived's address.
    fn is_master(&self) -> bool {
        match self {
            Node::Tr7 { pins, .. } => tr7::dataplane::Maps::open(pins)
                .ok()
                .and_then(|m| m.vips().ok())
                .is_some_and(|v| v.iter().any(|e| e.addr == IpAddr::V4(VIP) && e.owned)),
            Node::Keepalived(k) => k.is_master(),
        }
    }

    /// Does `fault` to this node; returns once it is done (a stopped process has exited).
    fn inflict(&mut self, fault: Fault) {
        match (self, fault) {
            (Node::Tr7 { child, log, .. }, f) => {
                let Some(mut c) = child.take() else { return };
                match f {
                    Fault::Kill9 => {
                        let _ = c.kill();
                    }
                    Fault::Sigterm => {
                        crate::keepalived::signal(&c.id().to_string(), "TERM");
                    }
                    other => unreachable!("{other:?} is not done to the process"),
                }
                let status = c.wait().expect("wait for the agent");
                if f == Fault::Sigterm && !status.success() {
                    panic!(
                        "agent exited with {status} after SIGTERM; log {}",
                        log.display()
                    );
                }
            }
            (Node::Keepalived(k), Fault::Kill9) => k.kill9(),
            (Node::Keepalived(k), Fault::Sigterm) => k.terminate(),
            (_, f) => unreachable!("{f:?} is not done to the process"),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Node::Tr7 { child, .. } = self
            && let Some(mut c) = child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The client: an ICMP echo request to the VIP every millisecond, each with a 32-bit
/// sequence number in its data, and which of them were answered.
struct Pinger {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<PingLog>>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct PingLog {
    /// When request `n` was sent (CLOCK_REALTIME, taken by the sender before `sendto`).
    sent: Vec<Duration>,
    answered: Vec<bool>,
    /// The kernel timestamp of the latest reply.
    last_reply: Option<Duration>,
}

impl Pinger {
    fn start(ns: &str, dst: Ipv4Addr) -> Self {
        let fd = tr7::netns::within(Some(ns), || -> nix::Result<OwnedFd> {
            let fd = sock::socket(
                AddressFamily::Inet,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::Icmp,
            )?;
            sock::setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
            sock::setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 50_000))?;
            Ok(fd)
        })
        .unwrap_or_else(|e| panic!("enter {ns}: {e}"))
        .unwrap_or_else(|e| panic!("ICMP socket in {ns}: {e}"));
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(PingLog::default()));
        let id = (std::process::id() & 0xffff) as u16;
        let sender = {
            let (fd, stop, log) = (fd.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || send_loop(&fd, &stop, &log, dst, id))
        };
        let receiver = {
            let (fd, stop, log) = (fd.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || recv_loop(&fd, &stop, &log, id))
        };
        Self {
            stop,
            log,
            threads: vec![sender, receiver],
        }
    }

    /// A reply arrived in the last 20 ms.
    fn flowing(&self) -> bool {
        let last = self.log.lock().unwrap().last_reply;
        last.is_some_and(|t| now().saturating_sub(t) < Duration::from_millis(20))
    }

    /// The outage around a fault at `t0`: the longest gap between two answered requests
    /// with lost ones between them, from the last answered before the fault, in the
    /// requests' send times. A client that was not scheduled sent nothing and lost
    /// nothing, so its own stalls are not counted as outage (they show as `noise`).
    /// Without recovery, the gap runs to `end`.
    fn outage(&self, t0: Duration, end: Duration, recovered: bool) -> Outage {
        let log = self.log.lock().unwrap();
        let n = log.sent.len();
        // Requests sent in the last 10 ms may still be on their way.
        let settled = |i: usize| log.sent[i] + Duration::from_millis(10) <= end;
        let first = (0..n)
            .rev()
            .find(|&i| log.sent[i] <= t0 && log.answered[i])
            .unwrap_or(0);
        let mut last_ok = log.sent[first];
        let mut lost_since = 0usize;
        let mut gap = Duration::ZERO;
        for i in first + 1..n {
            if !settled(i) {
                break;
            }
            if log.answered[i] {
                if lost_since > 0 {
                    gap = gap.max(log.sent[i] - last_ok);
                }
                last_ok = log.sent[i];
                lost_since = 0;
            } else {
                lost_since += 1;
            }
        }
        if !recovered || lost_since > 0 {
            gap = gap.max(end.saturating_sub(last_ok));
        }
        let before: Vec<Duration> = log
            .sent
            .iter()
            .copied()
            .filter(|t| *t + Duration::from_secs(1) >= t0 && *t <= t0)
            .collect();
        let noise = before
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        Outage {
            gap,
            recovered,
            noise,
            takeover: None,
        }
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn send_loop(fd: &OwnedFd, stop: &AtomicBool, log: &Mutex<PingLog>, dst: Ipv4Addr, id: u16) {
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let seq = {
            let mut log = log.lock().unwrap();
            log.sent.push(now());
            log.answered.push(false);
            (log.sent.len() - 1) as u32
        };
        let mut msg = [0u8; 16];
        msg[0] = 8; // echo request
        msg[4..6].copy_from_slice(&id.to_be_bytes());
        msg[6..8].copy_from_slice(&(seq as u16).to_be_bytes());
        msg[8..12].copy_from_slice(&seq.to_be_bytes());
        let sum = checksum(&msg);
        msg[2..4].copy_from_slice(&sum.to_be_bytes());
        // Errors (no neighbour yet, a full queue) are losses like any other.
        let _ = sock::sendto(fd.as_raw_fd(), &msg, &to, MsgFlags::MSG_DONTWAIT);
        next += Duration::from_millis(1);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(50) {
            // Far behind (the machine stalled us): do not send a burst to catch up.
            next = now;
        }
    }
}

fn recv_loop(fd: &OwnedFd, stop: &AtomicBool, log: &Mutex<PingLog>, id: u16) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let (len, at) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match sock::recvmsg::<SockaddrStorage>(
                fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let at = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmTimestampns(t) => Some(Duration::from(t)),
                            _ => None,
                        })
                    });
                    (msg.bytes, at)
                }
                Err(_) => continue,
            }
        };
        let packet = &buf[..len];
        let Some(&first) = packet.first() else {
            continue;
        };
        let ihl = usize::from(first & 0x0f) * 4;
        let Some(icmp) = packet.get(ihl..ihl + 12) else {
            continue;
        };
        if icmp[0] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == id {
            let seq = u32::from_be_bytes([icmp[8], icmp[9], icmp[10], icmp[11]]) as usize;
            let mut log = log.lock().unwrap();
            if let Some(a) = log.answered.get_mut(seq) {
                *a = true;
            }
            log.last_reply = Some(at.unwrap_or_else(now));
        }
    }
}

/// RFC 1071 checksum of an ICMP message.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the ICMP checksum against a known echo request (id 1, seq 1, no data):
    // 0xf7fd, as any RFC 1071 implementation computes it.
    #[test]
    fn icmp_checksum() {
        let msg = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(checksum(&msg), 0xf7fd);
    }

    // Proves that every fault named in `--faults`' help parses, to a distinct fault whose
    // table name is distinct, and that an unknown name is refused.
    #[test]
    fn fault_names_parse() {
        let faults: Vec<Fault> = Fault::KNOWN
            .split(", ")
            .map(|n| Fault::parse(n).unwrap_or_else(|| panic!("`{n}` does not parse")))
            .collect();
        assert_eq!(faults.len(), 6);
        for (i, f) in faults.iter().enumerate() {
            for g in &faults[i + 1..] {
                assert!(f != g && f.name() != g.name(), "{f:?} and {g:?}");
            }
        }
        assert_eq!(Fault::parse("carrier"), None);
    }
}
