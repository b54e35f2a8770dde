//! `cargo xtask demo`: TR7's main job on a built-in default. With no real network given, a
//! lab of network namespaces stands in: a client and a node joined by a veth pair, with
//! documentation addresses only. The node carries four VIPs; the data plane makes it answer
//! for the ones it owns and stay silent for the others, and a single map write moves one.
//! The lab and the pins are removed at the end, also when a step fails. The second part
//! (`demo_agents.rs`) runs two real agents and moves VIPs between them.

use std::{path::Path, process::Command};

use anyhow::bail;

use crate::{build, run, setup};

const CLIENT: &str = "tr7demo-client";
const NODE: &str = "tr7demo-node";
const PINS: &str = "/sys/fs/bpf/tr7-demo";

struct Lab;

impl Lab {
    fn create() -> anyhow::Result<Self> {
        Self::remove(); // leftovers of an interrupted run
        let lab = Lab;
        for ns in [CLIENT, NODE] {
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "link", "add", "va", "netns", CLIENT, "type", "veth", "peer", "name", "vb", "netns",
            NODE,
        ])?;
        for (ns, dev, addrs) in [
            (CLIENT, "va", &["192.0.2.1/24", "2001:db8::1/64"][..]),
            (
                NODE,
                "vb",
                &[
                    "192.0.2.2/24",
                    "2001:db8::2/64",
                    "192.0.2.10/32",
                    "192.0.2.11/32",
                    "2001:db8::10/128",
                    "2001:db8::11/128",
                ][..],
            ),
        ] {
            for a in addrs {
                let mut args = vec!["-n", ns, "addr", "add", a, "dev", dev];
                if a.contains(':') {
                    args.push("nodad");
                }
                ip(&args)?;
            }
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        // A fresh link's IPv6 link-local address is tentative for about a second (DAD), and
        // the first IPv6 exchange fails until it is not: wait for that, bounded.
        for _ in 0..50 {
            let tentative = [(CLIENT, "va"), (NODE, "vb")].iter().any(|(ns, dev)| {
                Command::new("ip")
                    .args(["-n", ns, "-6", "addr", "show", "dev", dev, "tentative"])
                    .output()
                    .is_ok_and(|o| !o.stdout.is_empty())
            });
            if !tentative {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(lab)
    }

    fn remove() {
        for ns in [CLIENT, NODE] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(PINS);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        Lab::remove();
        println!("\nlab removed (namespaces {CLIENT}, {NODE}; pins {PINS})");
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run::output(Command::new("ip").args(args)).map(|_| ())
}

fn tr7(bin: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new(bin);
    cmd.args(["dataplane", "--pin-dir", PINS]).args(args);
    let out = run::output(&mut cmd)?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("    {line}");
    }
    Ok(())
}

/// Runs a probe from the client and compares its success with what the data plane should
/// make of it.
fn expect(what: &str, cmd: &[&str], should_succeed: bool, failures: &mut Vec<String>) {
    let ok = Command::new("ip")
        .args(["netns", "exec", CLIENT])
        .args(cmd)
        .output()
        .is_ok_and(|o| o.status.success());
    let verdict = if ok { "answered" } else { "no answer" };
    let mark = if ok == should_succeed { "ok " } else { "BAD" };
    println!("  [{mark}] {what:<44} {verdict}");
    if ok != should_succeed {
        failures.push(what.to_owned());
    }
}

pub fn run() -> anyhow::Result<()> {
    setup::ensure()?;
    let bin = build::release()?;
    println!("\nTR7 demo: a client and a node in network namespaces, joined by a veth pair");
    let _lab = Lab::create()?;
    println!("  client {CLIENT}: va 192.0.2.1/24 2001:db8::1/64");
    println!(
        "  node   {NODE}:   vb 192.0.2.2/24 2001:db8::2/64, VIPs 192.0.2.10 192.0.2.11 2001:db8::10 2001:db8::11"
    );

    println!("\n1. attach the gate (XDP ingress) and guard (TC egress) to the node's vb");
    tr7(
        &bin,
        &["attach", "--iface", "vb", "--netns", NODE, "--scope", "1"],
    )?;
    println!(
        "\n2. this node owns 192.0.2.10 and 2001:db8::10; 192.0.2.11 and 2001:db8::11 belong to a peer"
    );
    for (vip, flag) in [
        ("192.0.2.10", "--own"),
        ("2001:db8::10", "--own"),
        ("192.0.2.11", "--disown"),
        ("2001:db8::11", "--disown"),
    ] {
        tr7(&bin, &["vip", vip, "--scope", "1", flag])?;
    }

    let mut failures = Vec::new();
    let ping = |a: &'static str| -> Vec<&'static str> { vec!["ping", "-c", "1", "-W", "1", a] };
    let arping = |a: &'static str| -> Vec<&'static str> {
        vec!["arping", "-c", "1", "-w", "1", "-I", "va", a]
    };
    println!("\n3. the client probes every VIP");
    expect(
        "ping 192.0.2.10 (owned)",
        &ping("192.0.2.10"),
        true,
        &mut failures,
    );
    expect(
        "ping 2001:db8::10 (owned)",
        &ping("2001:db8::10"),
        true,
        &mut failures,
    );
    expect(
        "ARP who-has 192.0.2.10 (owned)",
        &arping("192.0.2.10"),
        true,
        &mut failures,
    );
    expect(
        "ping 192.0.2.11 (peer's)",
        &ping("192.0.2.11"),
        false,
        &mut failures,
    );
    expect(
        "ping 2001:db8::11 (peer's)",
        &ping("2001:db8::11"),
        false,
        &mut failures,
    );
    expect(
        "ARP who-has 192.0.2.11 (peer's)",
        &arping("192.0.2.11"),
        false,
        &mut failures,
    );

    println!("\n4. takeover of 192.0.2.11: one map write, no re-attach, no netlink");
    tr7(&bin, &["vip", "192.0.2.11", "--scope", "1", "--own"])?;
    expect(
        "ARP who-has 192.0.2.11 (now owned)",
        &arping("192.0.2.11"),
        true,
        &mut failures,
    );
    expect(
        "ping 192.0.2.11 (now owned)",
        &ping("192.0.2.11"),
        true,
        &mut failures,
    );

    println!("\n5. counters, read from the per-CPU maps");
    tr7(&bin, &["show"])?;
    tr7(&bin, &["detach", "--iface", "vb", "--netns", NODE])?;
    if !failures.is_empty() {
        bail!(
            "the data plane did not behave as expected: {}",
            failures.join("; ")
        );
    }
    println!("\ndata plane passed: the node answered exactly for the VIPs it owns");
    crate::demo_agents::run(&bin)?;
    println!("\ndemo passed");
    Ok(())
}
