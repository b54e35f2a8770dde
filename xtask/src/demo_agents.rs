//! The second part of `cargo xtask demo`: two real `tr7 agent` processes on a shared
//! segment (a bridge in a namespace) with a client, IPv4 documentation addresses only.
//! Active-Active: node-a owns 192.0.2.10, node-b 192.0.2.20; the client sees who answers
//! ARP for each, and `tr7 status` of each node (the real binary on the agent's control
//! socket) must name the same owners; node-a is killed with SIGKILL and both VIPs move to
//! node-b while the client's ping continues, and node-b's status must say it owns both.
//! The lab, the agents and the pins go at the end, also when a step fails.

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

/// `tr7 status --netns NS` (human format): the agent's default control socket for that
/// namespace, as a user would ask it.
fn status(bin: &Path, ns: &str) -> Result<String, String> {
    let out = Command::new(bin)
        .args(["status", "--netns", ns])
        .output()
        .map_err(|e| format!("cannot run `tr7 status --netns {ns}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`tr7 status --netns {ns}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `owned` and `owner` fields of `vip`'s line in a human `tr7 status`
/// (`    192.0.2.10    zone default: owned, owner this node, passed ...`).
fn vip_fields<'a>(text: &'a str, vip: &str) -> Option<(&'a str, &'a str)> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(vip))?;
    let (_, rest) = line.split_once(": ")?;
    let (owned, rest) = rest.split_once(", owner ")?;
    Some((owned, rest.split(", ").next()?))
}

/// What is wrong with `text` against `expected` (VIP, owner: `this node` or the owner's
/// address); empty when each VIP names its owner, and is `owned` exactly where the owner
/// is this node.
fn status_mismatches(text: &str, expected: &[(&str, &str)]) -> Vec<String> {
    expected
        .iter()
        .filter_map(|&(vip, owner)| {
            let want_owned = if owner == "this node" { "owned" } else { "not owned" };
            match vip_fields(text, vip) {
                Some((owned, seen)) if owned == want_owned && seen == owner => None,
                Some((owned, seen)) => Some(format!(
                    "{vip}: status says `{owned}, owner {seen}`, expected `{want_owned}, owner {owner}`"
                )),
                None => Some(format!("{vip}: no line for it in the status")),
            }
        })
        .collect()
}

/// Prints `tr7 status` of `node` and checks the owners it names (asked again for up to
/// 3 s, so a status taken just before the last advert is not a failure); the error says
/// which VIP shows which owner.
fn show_status(bin: &Path, node: &str, ns: &str, expected: &[(&str, &str)]) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let result = status(bin, ns).map(|text| {
            let wrong = status_mismatches(&text, expected);
            (text, wrong)
        });
        let done = start.elapsed() > Duration::from_secs(3);
        match result {
            Ok((text, wrong)) if wrong.is_empty() || done => {
                println!(
                    "
  $ tr7 status --netns {ns}    # {node}"
                );
                for line in text.lines() {
                    if line.is_empty() {
                        println!();
                    } else {
                        println!("    {line}");
                    }
                }
                if wrong.is_empty() {
                    println!("  [ok ] {node}'s status names the expected owners");
                    return Ok(());
                }
                let why = format!("{node}'s `tr7 status`: {}", wrong.join("; "));
                println!("  [BAD] {why}");
                return Err(why);
            }
            Err(why) if done => {
                println!("  [BAD] {node}: {why}");
                return Err(format!("{node}: {why}"));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
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
    // Each node names the other by its VRRP source address.
    let mut status_failures: Vec<String> = [
        show_status(
            bin,
            "node-a",
            NODE_A,
            &[("192.0.2.10", "this node"), ("192.0.2.20", "192.0.2.3")],
        ),
        show_status(
            bin,
            "node-b",
            NODE_B,
            &[("192.0.2.10", "192.0.2.2"), ("192.0.2.20", "this node")],
        ),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();

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
    status_failures.extend(
        show_status(
            bin,
            "node-b",
            NODE_B,
            &[("192.0.2.10", "this node"), ("192.0.2.20", "this node")],
        )
        .err(),
    );
    println!("\n  node-b's ownership log (startup, then the takeover):");
    for line in lab
        .log("node-b")
        .lines()
        .filter(|l| l.contains("VIPs owned") || l.contains("VIPs announced"))
    {
        println!("    {line}");
    }
    if !status_failures.is_empty() {
        bail!(
            "`tr7 status` does not show the expected owners: {}; logs in {}",
            status_failures.join("; "),
            lab.dir.display()
        );
    }
    if !ok {
        bail!(
            "the agents did not behave as expected; logs in {}",
            lab.dir.display()
        );
    }
    println!(
        "\nagents passed: the VIPs followed VRRP, the client's traffic followed the VIPs, and `tr7 status` said so"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as `tr7 status` prints them (tr7-agent/src/agent/status.rs, human format).
    const STATUS: &str = "\
eth0 (netns tr7demo-a) slot master IPv4 VRID 27: MASTER since 2026-11-25 18:24:22.717 UTC (2.1 s ago)
  VIPs:
    192.0.2.10                   zone default: owned, owner this node, passed 2 pkts, dropped 3, guarded 0
eth0 (netns tr7demo-a) slot backup IPv4 VRID 180: BACKUP since 2026-11-25 18:24:22.396 UTC (2.4 s ago)
  VIPs:
    192.0.2.20                   zone default: not owned, owner 192.0.2.3, passed 0 pkts, dropped 5, guarded 0
";

    // Proves the owner check reads both fields of a VIP line, and names the VIP, what the
    // status says and what was expected when they differ.
    #[test]
    fn status_owner_check() {
        let right = [("192.0.2.10", "this node"), ("192.0.2.20", "192.0.2.3")];
        assert!(status_mismatches(STATUS, &right).is_empty());
        let wrong = status_mismatches(
            STATUS,
            &[("192.0.2.20", "this node"), ("192.0.2.30", "this node")],
        );
        assert_eq!(
            wrong,
            [
                "192.0.2.20: status says `not owned, owner 192.0.2.3`, expected `owned, owner this node`",
                "192.0.2.30: no line for it in the status",
            ]
        );
    }
}
