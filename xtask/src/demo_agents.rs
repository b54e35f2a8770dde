//! The second part of `cargo xtask demo`: two real `tr7 agent` processes on a shared
//! segment (a bridge in a namespace) with a client, IPv4 documentation addresses only.
//! Active-Active: node-a owns 192.0.2.10, node-b 192.0.2.20; the client sees who answers
//! ARP for each; node-a is killed with SIGKILL and both VIPs move to node-b while the
//! client's ping continues. The lab, the agents and the pins go at the end, also when a
//! step fails.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::run;

const SW: &str = "tr7demo-sw";
const NODE_A: &str = "tr7demo-a";
const NODE_B: &str = "tr7demo-b";
const CLIENT: &str = "tr7demo-c";
const NAMESPACES: [&str; 4] = [SW, NODE_A, NODE_B, CLIENT];
const PINS: [&str; 2] = ["/sys/fs/bpf/tr7-demo-a", "/sys/fs/bpf/tr7-demo-b"];

const CLUSTER: &str = "\
name: demo
nodes: [{name: node-a}, {name: node-b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24]
      node-b: [192.0.2.3/24]
    vrrp:
      unicast: {node-a: [192.0.2.2], node-b: [192.0.2.3]}
      advert_interval: 100ms
    vips:
      master: [{address: 192.0.2.10}]
      backup: [{address: 192.0.2.20}]
";

struct Lab {
    agents: Vec<(&'static str, Child)>,
    dir: PathBuf,
}

impl Lab {
    fn create() -> anyhow::Result<Self> {
        Self::remove(); // leftovers of an interrupted run
        let dir = std::env::temp_dir().join("tr7demo-agents");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let lab = Lab {
            agents: Vec::new(),
            dir,
        };
        for ns in NAMESPACES {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&["-n", SW, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", SW, "link", "set", "br0", "up"])?;
        for (ns, port) in [(NODE_A, "pa"), (NODE_B, "pb"), (CLIENT, "pc")] {
            ip(&[
                "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", port, "netns",
                SW,
            ])?;
            ip(&["-n", SW, "link", "set", port, "master", "br0"])?;
            ip(&["-n", SW, "link", "set", port, "up"])?;
            ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        }
        ip(&["-n", CLIENT, "addr", "add", "192.0.2.1/24", "dev", "eth0"])?;
        Ok(lab)
    }

    fn start(
        &mut self,
        bin: &Path,
        node: &'static str,
        ns: &str,
        pins: &str,
    ) -> anyhow::Result<()> {
        let file = self.dir.join("cluster.yaml");
        std::fs::write(&file, CLUSTER).context("write the cluster file")?;
        let log = File::create(self.dir.join(format!("{node}.log"))).context("create log")?;
        let child = Command::new(bin)
            .args(["agent", "--config"])
            .arg(&file)
            .args(["--node", node, "--netns", ns, "--pin-dir", pins])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start tr7 agent")?;
        self.agents.push((node, child));
        Ok(())
    }

    fn kill(&mut self, node: &str) {
        if let Some(i) = self.agents.iter().position(|(n, _)| *n == node) {
            let (_, mut child) = self.agents.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{node}.log"))).unwrap_or_default()
    }

    fn remove() {
        for ns in NAMESPACES.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for p in PINS {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, mut child) in self.agents.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        Lab::remove();
        println!(
            "\nagents stopped, lab removed (namespaces {}; pins {}); agent logs in {}",
            NAMESPACES.join(", "),
            PINS.join(", "),
            self.dir.display()
        );
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run::output(Command::new("ip").args(args)).map(|_| ())
}

fn mac(ns: &str) -> String {
    Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/sys/class/net/eth0/address"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_lowercase())
        .unwrap_or_default()
}

/// The node whose MAC answers one broadcast ARP request from the client, if any.
fn who_answers(vip: &str, macs: &[(&'static str, String)]) -> Option<&'static str> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", CLIENT, "arping", "-b", "-c", "1", "-w", "1",
        ])
        .args(["-I", "eth0", vip])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let line = text.lines().find(|l| l.contains("reply from"))?;
    macs.iter()
        .find(|(_, m)| line.contains(m.as_str()))
        .map(|(n, _)| *n)
}

/// Waits (bounded) until `vip` is answered by `node`; says who answered.
fn expect_owner(
    vip: &str,
    node: &'static str,
    macs: &[(&'static str, String)],
    limit: Duration,
) -> bool {
    let start = Instant::now();
    loop {
        let who = who_answers(vip, macs);
        if who == Some(node) {
            println!("  [ok ] ARP who-has {vip:<12} answered by {node}");
            return true;
        }
        if start.elapsed() > limit {
            println!(
                "  [BAD] ARP who-has {vip:<12} answered by {}, expected {node}",
                who.unwrap_or("nobody")
            );
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run(bin: &Path) -> anyhow::Result<()> {
    println!("\nPart 2: two agents (node-a, node-b) and a client on one bridge, one cluster file");
    let mut lab = Lab::create()?;
    let macs = [("node-a", mac(NODE_A)), ("node-b", mac(NODE_B))];
    println!(
        "  node-a eth0 192.0.2.2 ({}), node-b eth0 192.0.2.3 ({}), client 192.0.2.1",
        macs[0].1, macs[1].1
    );
    println!(
        "  VRRP unicast, advert interval 100 ms; master list 192.0.2.10 (node-a prefers it), backup list 192.0.2.20 (node-b)"
    );

    println!("\n6. start `tr7 agent` on both nodes; each owns its preferred list");
    lab.start(bin, "node-a", NODE_A, PINS[0])?;
    lab.start(bin, "node-b", NODE_B, PINS[1])?;
    let mut ok = expect_owner("192.0.2.10", "node-a", &macs, Duration::from_secs(10))
        & expect_owner("192.0.2.20", "node-b", &macs, Duration::from_secs(10));

    println!(
        "\n7. the client pings 192.0.2.10 every 10 ms; kill -9 node-a's agent: its data plane\n   stops claiming (liveness fence) as node-b takes over (master-down interval) and announces"
    );
    // 150 pings 10 ms apart: every lost reply is about 10 ms of outage.
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", CLIENT, "ping", "-q", "-i", "0.01", "-c", "150", "-W", "1",
        ])
        .arg("192.0.2.10")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start ping")?;
    std::thread::sleep(Duration::from_millis(200));
    lab.kill("node-a");
    let out = pinger.wait_with_output().context("wait for ping")?;
    let summary = String::from_utf8_lossy(&out.stdout);
    let counts: Vec<u32> = summary
        .lines()
        .find(|l| l.contains("transmitted"))
        .map(|l| {
            l.split(',')
                .filter_map(|f| f.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match counts[..] {
        // Bounded: more than 60 lost (600 ms) would be a failed takeover.
        [sent, received, ..] if received > 0 && received + 60 >= sent => println!(
            "  [ok ] {received} of {sent} pings answered: about {} ms without replies",
            (sent - received) * 10
        ),
        _ => {
            println!("  [BAD] ping: {}", summary.trim());
            ok = false;
        }
    }
    ok &= expect_owner("192.0.2.10", "node-b", &macs, Duration::from_secs(2))
        & expect_owner("192.0.2.20", "node-b", &macs, Duration::from_secs(2));
    println!("\n  node-b's ownership log (startup, then the takeover):");
    for line in lab
        .log("node-b")
        .lines()
        .filter(|l| l.contains("VIPs owned") || l.contains("VIPs announced"))
    {
        println!("    {line}");
    }
    if !ok {
        bail!(
            "the agents did not behave as expected; logs in {}",
            lab.dir.display()
        );
    }
    println!("\nagents passed: the VIPs followed VRRP, and the client's traffic followed the VIPs");
    Ok(())
}
