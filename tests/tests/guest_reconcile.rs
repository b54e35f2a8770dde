//! `tr7 apply` and `tr7 diag` on VLANs, bonds and LACP, in the guest kernel that has them
//! (`cargo xtask vm-test`): the real code path (file → plan → rtnetlink apply → observe →
//! diagnose), with namespaces standing in for the nodes' host namespaces (`--netns`) and
//! veth ends playing their ethernet ports. What the kernel did is read back from the kernel
//! (rtnetlink, `ip`), and traffic crosses what TR7 built.
//!
//! On the host every test is ignored, with the reason; in the guest a missing feature is a
//! failure (see tests/tests/guest_vlan.rs for the same rules).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tr7::config::InterfaceKind;
use tr7::netlink::cli::{
    ApplyArgs, DiagArgs, Format, PlanArgs, apply_report, diag_outcome, make_plan, observe_blocking,
};
use tr7::netlink::{LinkKind, ObservedNamespace, Plan, Target};
use tr7_tests::lab::{Lab, ip};

/// A cluster file written for one test, removed on drop.
struct File(PathBuf);

impl File {
    fn new(lab_tag: &str, yaml: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "tr7g-{lab_tag}-{}-{}.yaml",
            std::process::id(),
            FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, yaml).expect("write cluster file");
        Self(path)
    }
}

static FILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn plan_args(file: &Path, node: &str, ns: &str) -> PlanArgs {
    PlanArgs {
        file: file.to_owned(),
        node: Some(node.to_owned()),
        netns: Some(ns.to_owned()),
        remove_foreign: false,
        format: Format::Human,
    }
}

/// `tr7 plan FILE --node NODE --netns NS`.
fn plan(file: &Path, node: &str, ns: &str) -> Plan {
    make_plan(&plan_args(file, node, ns)).expect("plan").1
}

/// `tr7 apply FILE --node NODE --netns NS`, which must succeed; its output.
fn apply(file: &Path, node: &str, ns: &str) -> String {
    let (code, out) = apply_report(&ApplyArgs {
        plan: plan_args(file, node, ns),
    })
    .expect("apply runs");
    assert_eq!(code, 0, "tr7 apply --node {node} failed:\n{out}");
    eprintln!("{out}");
    out
}

/// Applies, then proves the second apply has nothing to do and the plan is empty.
fn apply_twice(file: &Path, node: &str, ns: &str) {
    apply(file, node, ns);
    let again = plan(file, node, ns);
    assert!(
        again.is_empty(),
        "re-plan of node {node} is not empty:\n{again}"
    );
    assert!(again.conflicts.is_empty(), "{again}");
    let out = apply(file, node, ns);
    assert!(out.contains("nothing to do"), "{out}");
}

/// `tr7 diag FILE --node NODE --netns NS --format json`: exit status and (code, link name)
/// of every finding.
fn diag(file: &Path, node: &str, ns: &str) -> (u8, Vec<(String, String)>, String) {
    let (code, out, err) = diag_outcome(&DiagArgs {
        file: file.to_owned(),
        vip: None,
        node: Some(node.to_owned()),
        netns: Some(ns.to_owned()),
        format: Format::Json,
    });
    assert_ne!(code, 2, "tr7 diag made no diagnosis: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("diag json");
    let findings = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap_or_default().to_owned(),
                f["link"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (code, findings, out)
}

/// Polls `tr7 diag` (at most `limit`) until `done` holds for its result; returns the last.
fn diag_until(
    file: &Path,
    node: &str,
    ns: &str,
    limit: Duration,
    done: impl Fn(u8, &[(String, String)]) -> bool,
) -> (u8, Vec<(String, String)>, String) {
    let start = Instant::now();
    loop {
        let r = diag(file, node, ns);
        if done(r.0, &r.1) || start.elapsed() > limit {
            return r;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn has(findings: &[(String, String)], code: &str, link: &str) -> bool {
    findings.iter().any(|(c, l)| c == code && l == link)
}

/// The namespace `ns` as TR7 observes it (rtnetlink).
fn observe(ns: &str) -> ObservedNamespace {
    let target = Target {
        root: Some(ns.to_owned()),
    };
    let mut o = observe_blocking(&target, &[None]).expect("observe");
    o.namespaces.remove(0)
}

/// The settings docs/reconcile.md recommends for VIP interfaces, so a clean diagnosis has
/// no warning either.
fn vip_sysctls(lab: &Lab, ns: &str) {
    lab.proc_sys(ns, "net/ipv4/conf/all/arp_ignore", "1");
    lab.proc_sys(ns, "net/ipv4/conf/all/arp_announce", "2");
}

fn ping(lab: &Lab, ns: &str, dst: &str) {
    let ok = (0..3).any(|_| {
        lab.exec(ns, &["ping", "-c", "1", "-W", "1", dst])
            .status
            .success()
    });
    assert!(ok, "ping {dst} from {ns} failed");
}

/// A bond port's name, and whether it is collecting and distributing.
type PortState = (String, bool, bool);

/// Waits (at most 20 s) until every port of `bond` in each namespace is collecting and
/// distributing, as the kernel reports it (IFLA_BOND_SLAVE_AD_ACTOR_OPER_PORT_STATE).
fn wait_lacp(namespaces: &[&str], bond: &str, ports: usize) {
    let start = Instant::now();
    loop {
        let states: Vec<(String, Vec<PortState>)> = namespaces
            .iter()
            .map(|ns| {
                let o = observe(ns);
                let b = o.link(bond).unwrap_or_else(|| panic!("no {bond} in {ns}"));
                let p = o
                    .ports_of(b.ifindex)
                    .map(|l| {
                        let s = l.bond_port.unwrap_or_default();
                        (l.name.clone(), s.collecting, s.distributing)
                    })
                    .collect();
                ((*ns).to_owned(), p)
            })
            .collect();
        let ready = states
            .iter()
            .all(|(_, p)| p.len() == ports && p.iter().all(|(_, c, d)| *c && *d));
        if ready {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "LACP not collecting and distributing on every port after 20 s: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// Proves `tr7 apply` creates an 802.1Q VLAN on an ethernet port with its MTU, addresses and
// VIPs (traffic crosses it), re-applies with nothing to do and diagnoses clean; then a VLAN
// of the same name with another id is reported by the plan as a conflict left alone, and by
// `tr7 diag` as vlan-id-differs (exit 1).
#[test]
#[ignore = tr7_tests::guest_only!()]
fn apply_vlan_on_ethernet_then_wrong_vlan_id_is_diagnosed() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("gvl");
    let h = lab.netns("h");
    let sw = lab.netns("sw");
    lab.veth(&h, "eth0", &sw, "sw0");
    let file = File::new(
        "vl",
        "\
name: vl
nodes: [{name: a}, {name: b}]
interfaces:
  - {name: eth0, type: ethernet, mtu: 9000}
  - name: eth0.100
    type: vlan
    parent: eth0
    id: 100
    mtu: 9000
    addresses:
      a: [192.0.2.2/24, 2001:db8::2/64]
      b: [192.0.2.3/24, 2001:db8::3/64]
    vips:
      master: [{address: 192.0.2.10}, {address: 2001:db8::10}]
",
    );
    apply_twice(&file.0, "a", &h);

    let o = observe(&h);
    let eth0 = o.link("eth0").expect("eth0");
    let vlan = o.link("eth0.100").expect("eth0.100 created");
    assert_eq!(vlan.kind, LinkKind::Vlan);
    assert_eq!(vlan.vlan.map(|v| v.id), Some(100), "{vlan:?}");
    assert_eq!(vlan.link, Some(eth0.ifindex), "parent: {vlan:?}");
    assert_eq!((eth0.mtu, vlan.mtu), (9000, 9000));
    assert!(vlan.up && vlan.carrier, "{vlan:?}");

    // The switch side: VLAN 100 on the other end.
    ip(&[
        "-n", &sw, "link", "add", "link", "sw0", "name", "sw0.100", "type", "vlan", "id", "100",
    ]);
    ip(&["-n", &sw, "link", "set", "sw0.100", "up"]);
    lab.addr(&sw, "sw0.100", "192.0.2.1/24");
    lab.addr(&sw, "sw0.100", "2001:db8::1/64");
    lab.wait_ipv6_ready(&h, "eth0.100");
    lab.wait_ipv6_ready(&sw, "sw0.100");
    for dst in ["192.0.2.2", "192.0.2.10", "2001:db8::2", "2001:db8::10"] {
        ping(&lab, &sw, dst);
    }
    vip_sysctls(&lab, &h);
    let (code, findings, out) = diag(&file.0, "a", &h);
    assert_eq!((code, findings.len()), (0, 0), "{out}");

    // Someone recreates the VLAN with id 101.
    ip(&["-n", &h, "link", "del", "eth0.100"]);
    ip(&[
        "-n", &h, "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "101",
    ]);
    ip(&["-n", &h, "link", "set", "eth0.100", "up"]);
    let (code, findings, out) = diag(&file.0, "a", &h);
    assert_eq!(code, 1, "{out}");
    assert!(has(&findings, "vlan-id-differs", "eth0.100"), "{out}");
    let p = plan(&file.0, "a", &h);
    assert!(
        p.conflicts
            .iter()
            .any(|c| c.link.name == "eth0.100" && c.message.contains("101")),
        "{p}"
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| a.step.to_string().contains("eth0.100")),
        "TR7 must not touch the VLAN in conflict:\n{p}"
    );
    apply(&file.0, "a", &h);
    assert_eq!(
        observe(&h)
            .link("eth0.100")
            .and_then(|l| l.vlan)
            .map(|v| v.id),
        Some(101)
    );
}

/// The bond file of the active-backup test: `primary` and the MII interval vary.
fn active_backup_file(primary: &str, miimon: &str) -> String {
    format!(
        "\
name: ab
nodes: [{{name: a}}, {{name: b}}]
interfaces:
  - {{name: eth0, type: ethernet}}
  - {{name: eth1, type: ethernet}}
  - name: bond0
    type: bond
    members: [eth0, eth1]
    primary: {primary}
    mii_monitor_interval: {miimon}
    addresses:
      a: [192.0.2.2/24, 2001:db8::2/64]
      b: [192.0.2.3/24, 2001:db8::3/64]
    vips:
      master: [{{address: 192.0.2.10}}]
"
    )
}

/// The active member of `bond0` in `ns`, read through rtnetlink (IFLA_BOND_ACTIVE_SLAVE).
fn active_member(ns: &str) -> Option<String> {
    let o = observe(ns);
    let active = o.link("bond0")?.bond.as_ref()?.active_port?;
    o.link_by_index(active).map(|l| l.name.clone())
}

fn wait_active(ns: &str, want: &str) {
    let start = Instant::now();
    while active_member(ns).as_deref() != Some(want) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "bond0 in {ns}: active member is {:?}, not {want}, after 5 s",
            active_member(ns)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Proves `tr7 apply` builds an active-backup bond (members enslaved while down, primary set
// once they are ports, MII interval), traffic reaches its VIP through a switch; changing
// primary and MII interval in the file changes them in place (one set-bond action), the
// active member follows the primary; the active member's link failing moves traffic to the
// other one, and `tr7 diag` names the failed member.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn apply_bond_active_backup_changes_options_and_fails_over() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("gab");
    let h = lab.netns("h");
    let sw = lab.netns("sw");
    lab.veth(&h, "eth0", &sw, "sw0");
    lab.veth(&h, "eth1", &sw, "sw1");
    lab.bridge(&sw, "br0");
    for p in ["sw0", "sw1"] {
        ip(&["-n", &sw, "link", "set", p, "master", "br0"]);
    }
    lab.addr(&sw, "br0", "192.0.2.1/24");

    let v1 = File::new("ab1", &active_backup_file("eth0", "50ms"));
    apply_twice(&v1.0, "a", &h);
    let o = observe(&h);
    let bond = o.link("bond0").expect("bond0");
    let info = bond.bond.clone().expect("bond attributes");
    assert_eq!(info.mode, "active-backup");
    assert_eq!(info.miimon_ms, Some(50));
    let eth0 = o.link("eth0").expect("eth0").ifindex;
    assert_eq!(info.primary, Some(eth0), "{info:?}");
    for m in ["eth0", "eth1"] {
        assert_eq!(
            o.link(m).and_then(|l| l.controller),
            Some(bond.ifindex),
            "{m}"
        );
    }
    wait_active(&h, "eth0");
    ping(&lab, &sw, "192.0.2.10");

    let v2 = File::new("ab2", &active_backup_file("eth1", "100ms"));
    let p = plan(&v2.0, "a", &h);
    let steps: Vec<String> = p.actions.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(
        steps,
        ["set bond options of bond0: miimon 100 ms, primary eth1"],
        "{p}"
    );
    apply_twice(&v2.0, "a", &h);
    let info = observe(&h)
        .link("bond0")
        .and_then(|b| b.bond.clone())
        .expect("bond");
    assert_eq!(info.miimon_ms, Some(100));
    wait_active(&h, "eth1");
    ping(&lab, &sw, "192.0.2.10");

    // The active member's switch port fails: its carrier goes, eth0 takes over.
    ip(&["-n", &sw, "link", "set", "sw1", "down"]);
    wait_active(&h, "eth0");
    ping(&lab, &sw, "192.0.2.10");
    vip_sysctls(&lab, &h);
    let (code, findings, out) = diag(&v2.0, "a", &h);
    assert_eq!(code, 1, "{out}");
    assert!(has(&findings, "member-down", "eth1"), "{out}");
    ip(&["-n", &sw, "link", "set", "sw1", "up"]);
    let (code, _, out) = diag_until(&v2.0, "a", &h, Duration::from_secs(5), |c, _| c == 0);
    assert_eq!(code, 0, "{out}");
}

/// The LACP file of two nodes: bond0 over eth0 and eth1, VLAN 100 over it with IPv4, IPv6
/// and VIPs; the bond options vary.
fn lacp_file(min_links: u16, hash: &str, rate: &str) -> String {
    format!(
        "\
name: lacp
nodes: [{{name: a}}, {{name: b}}]
interfaces:
  - {{name: eth0, type: ethernet, mtu: 9000}}
  - {{name: eth1, type: ethernet, mtu: 9000}}
  - name: bond0
    type: lacp
    members: [eth0, eth1]
    mtu: 9000
    lacp_rate: {rate}
    transmit_hash_policy: {hash}
    min_links: {min_links}
  - name: bond0.100
    type: vlan
    parent: bond0
    id: 100
    mtu: 9000
    addresses:
      a: [198.51.100.2/24, 2001:db8:100::2/64]
      b: [198.51.100.3/24, 2001:db8:100::3/64]
    vips:
      master: [{{address: 198.51.100.10}}, {{address: 2001:db8:100::10}}]
"
    )
}

// Proves LACP between two nodes, each built by `tr7 apply` from one file: both ends
// collecting and distributing on both ports (read from the kernel), VLAN 100 over the bond
// carries IPv4 and IPv6, re-apply has nothing to do, diagnosis is clean. Then each cause is
// provoked and named: a member's MTU below the bond's (mtu-above-parent, mtu-differs;
// `tr7 apply` repairs it), the far end leaving the aggregation (lacp-not-aggregating), and
// min_links raised in the file (applied in place; lacp-below-min-links). `tr7 apply` on the
// far end puts its member back and the diagnosis is clean again. Last, lacp_rate changes,
// which the kernel takes only while the bond is down: the plan sets it down and up around it.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn apply_lacp_between_two_nodes_negotiates_carries_a_vlan_and_is_diagnosed() {
    tr7_tests::require_guest();
    let mut lab = Lab::new("glacp");
    let na = lab.netns("a");
    let nb = lab.netns("b");
    lab.veth(&na, "eth0", &nb, "eth0");
    lab.veth(&na, "eth1", &nb, "eth1");
    let v1 = File::new("lacp1", &lacp_file(1, "layer3+4", "fast"));
    apply_twice(&v1.0, "a", &na);
    apply_twice(&v1.0, "b", &nb);
    wait_lacp(&[&na, &nb], "bond0", 2);

    let o = observe(&na);
    let bond = o.link("bond0").expect("bond0");
    let info = bond.bond.clone().expect("bond attributes");
    assert_eq!(info.mode, "802.3ad");
    assert_eq!(info.min_links, Some(1));
    let vlan = o.link("bond0.100").expect("bond0.100");
    assert_eq!(vlan.vlan.map(|v| v.id), Some(100));
    assert_eq!(vlan.link, Some(bond.ifindex));
    assert_eq!((bond.mtu, vlan.mtu), (9000, 9000));

    lab.wait_ipv6_ready(&na, "bond0.100");
    lab.wait_ipv6_ready(&nb, "bond0.100");
    for dst in ["198.51.100.3", "2001:db8:100::3"] {
        let out = lab.exec(&na, &["ping", "-c", "3", "-i", "0.2", "-W", "1", dst]);
        assert!(
            out.status.success(),
            "ping {dst} over VLAN 100 on the LACP bond: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            state_of(&lab, &[&na, &nb])
        );
    }
    for ns in [&na, &nb] {
        vip_sysctls(&lab, ns);
    }
    for (node, ns) in [("a", &na), ("b", &nb)] {
        let (code, findings, out) = diag(&v1.0, node, ns);
        assert_eq!((code, findings.len()), (0, 0), "node {node}: {out}");
    }

    // MTU mismatch: a member below its bond.
    ip(&["-n", &na, "link", "set", "eth0", "mtu", "1500"]);
    let (code, findings, out) = diag(&v1.0, "a", &na);
    assert_eq!(code, 1, "{out}");
    assert!(has(&findings, "mtu-above-parent", "bond0"), "{out}");
    assert!(has(&findings, "mtu-differs", "eth0"), "{out}");
    let out = apply(&v1.0, "a", &na);
    assert!(out.contains("set MTU of eth0 1500 → 9000"), "{out}");
    let (_, findings, out) = diag(&v1.0, "a", &na);
    assert!(!findings.iter().any(|(c, _)| c.starts_with("mtu")), "{out}");

    // The far end's eth1 leaves its bond and comes back up as a plain port: a's eth1 has
    // carrier but no LACP partner.
    ip(&["-n", &nb, "link", "set", "eth1", "nomaster"]);
    ip(&["-n", &nb, "link", "set", "eth1", "up"]);
    let (code, findings, out) = diag_until(&v1.0, "a", &na, Duration::from_secs(15), |_, f| {
        has(f, "lacp-not-aggregating", "eth1")
    });
    assert_eq!(code, 1, "{out}");
    assert!(has(&findings, "lacp-not-aggregating", "eth1"), "{out}");
    assert!(!has(&findings, "lacp-below-min-links", "bond0"), "{out}");

    // min_links 2 and another hash policy: changed in place, one action.
    let v2 = File::new("lacp2", &lacp_file(2, "layer2+3", "fast"));
    let p = plan(&v2.0, "a", &na);
    let steps: Vec<String> = p.actions.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(
        steps,
        ["set bond options of bond0: transmit_hash_policy layer2+3, min_links 2"],
        "{p}"
    );
    apply_twice(&v2.0, "a", &na);
    let info = observe(&na)
        .link("bond0")
        .and_then(|b| b.bond.clone())
        .expect("bond");
    assert_eq!(info.min_links, Some(2));
    assert_eq!(
        info.transmit_hash_policy,
        Some(tr7::config::HashPolicy::Layer23)
    );
    let (code, findings, out) = diag(&v2.0, "a", &na);
    assert_eq!(code, 1, "{out}");
    assert!(has(&findings, "lacp-below-min-links", "bond0"), "{out}");

    // `tr7 apply` on the far end enslaves eth1 again (down, port, up); LACP recovers.
    let out = apply(&v1.0, "b", &nb);
    assert!(out.contains("make eth1 a port of bond0"), "{out}");
    let (code, findings, out) = diag_until(&v2.0, "a", &na, Duration::from_secs(20), |c, _| c == 0);
    assert_eq!((code, findings.len()), (0, 0), "{out}");

    // lacp_rate: only while the bond is down.
    let v3 = File::new("lacp3", &lacp_file(2, "layer2+3", "slow"));
    let p = plan(&v3.0, "a", &na);
    let steps: Vec<String> = p.actions.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(
        steps,
        [
            "set bond0 down",
            "set bond options of bond0: lacp_rate slow",
            "set bond0 up",
            // Down flushes the IPv6 addresses of the bond's VLAN (the kernel takes it down
            // and up with its parent).
            "add 2001:db8:100::2/64 to bond0.100",
            "add 2001:db8:100::10/128 to bond0.100 (nodad)",
        ],
        "{p}"
    );
    apply_twice(&v3.0, "a", &na);
    let o = observe(&na);
    let bond = o.link("bond0").expect("bond0");
    assert!(bond.up);
    assert_eq!(
        bond.bond.as_ref().and_then(|b| b.lacp_rate),
        Some(tr7::config::LacpRate::Slow)
    );
}

/// What `ip` shows of namespaces `ns`, for failure messages.
fn state_of(lab: &Lab, namespaces: &[&str]) -> String {
    let mut out = String::new();
    for ns in namespaces {
        for cmd in [
            &["ip", "-d", "link"][..],
            &["ip", "addr"],
            &["ip", "-6", "route"],
            &["ip", "neigh"],
            &["ip", "maddr"],
            &["cat", "/proc/net/bonding/bond0"],
        ] {
            let o = lab.exec(ns, cmd);
            out.push_str(&format!(
                "--- {ns}: {}\n{}{}",
                cmd.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    out
}

/// Two namespaces, one per node of `file`, wired port to port: every ethernet port of the
/// file's host namespace is a veth pair with the same name on both ends.
fn two_nodes(lab: &mut Lab, file: &Path) -> (String, String) {
    let cluster = tr7::config::load(file).expect("valid example");
    let na = lab.netns("n0");
    let nb = lab.netns("n1");
    for iface in &cluster.interfaces {
        if matches!(iface.kind, InterfaceKind::Ethernet) && iface.id.namespace.is_none() {
            lab.veth(&na, &iface.id.name, &nb, &iface.id.name);
        }
    }
    (na, nb)
}

/// The example files, built into the test binary: the guest has no source tree.
const EXAMPLES: &[(&str, &str)] = &[
    ("minimal.yaml", include_str!("../../examples/minimal.yaml")),
    (
        "active-active.yaml",
        include_str!("../../examples/active-active.yaml"),
    ),
    (
        "multi-tenant.yaml",
        include_str!("../../examples/multi-tenant.yaml"),
    ),
    (
        "production-lacp.yaml",
        include_str!("../../examples/production-lacp.yaml"),
    ),
    (
        "telecom-trunk.yaml",
        include_str!("../../examples/telecom-trunk.yaml"),
    ),
];

/// examples/`name`, written to a file of its own.
fn example(name: &str) -> File {
    let (_, text) = EXAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no example {name}"));
    File::new(name.trim_end_matches(".yaml"), text)
}

/// Applies example `name` on both of its nodes (each in its own namespace, wired port to
/// port), re-applies with nothing to do, and waits (bounded) until both diagnose clean.
/// Returns the lab and (node, namespace) pairs.
fn two_node_example(name: &str, tag: &str) -> (Lab, [(String, String); 2]) {
    let example = example(name);
    let file = example.0.clone();
    let cluster = tr7::config::load(&file).expect("valid example");
    let mut lab = Lab::new(tag);
    let (na, nb) = two_nodes(&mut lab, &file);
    let nodes = [
        (cluster.nodes[0].clone(), na),
        (cluster.nodes[1].clone(), nb),
    ];
    for (node, ns) in &nodes {
        vip_sysctls(&lab, ns);
        let start = Instant::now();
        apply_twice(&file, node, ns);
        eprintln!(
            "{name}: node {node} applied, re-planned and re-applied in {:?}",
            start.elapsed()
        );
    }
    for (node, ns) in &nodes {
        let (code, findings, out) = diag_until(&file, node, ns, Duration::from_secs(20), |c, f| {
            c == 0 && f.is_empty()
        });
        assert_eq!((code, findings.len()), (0, 0), "{name}, node {node}: {out}");
    }
    (lab, nodes)
}

// Proves examples/minimal.yaml applies on both nodes, re-applies with nothing to do and
// diagnoses clean.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn example_minimal_applies_and_diagnoses_clean() {
    tr7_tests::require_guest();
    let _ = two_node_example("minimal.yaml", "exmin");
}

// Proves the same for examples/active-active.yaml (two ports, IPv4 and IPv6, both VIP lists).
#[test]
#[ignore = tr7_tests::guest_only!()]
fn example_active_active_applies_and_diagnoses_clean() {
    tr7_tests::require_guest();
    let _ = two_node_example("active-active.yaml", "exaa");
}

// Proves the same for examples/production-lacp.yaml: the two nodes' bonds negotiate LACP
// with each other, so the diagnosis (members collecting and distributing) is clean.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn example_production_lacp_applies_and_diagnoses_clean() {
    tr7_tests::require_guest();
    let _ = two_node_example("production-lacp.yaml", "exlacp");
}

// Proves the same for examples/telecom-trunk.yaml, generate::trunk(200): 200 VLANs over an
// LACP bond on both nodes; the second apply has nothing to do; both nodes diagnose clean.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn example_telecom_trunk_applies_re_applies_and_diagnoses_clean() {
    tr7_tests::require_guest();
    // The file is the generator's (tr7-agent/tests/config_examples.rs checks it).
    let (_lab, nodes) = two_node_example("telecom-trunk.yaml", "extrunk");
    for (node, ns) in &nodes {
        let o = observe(ns);
        let vlans = o.links.iter().filter(|l| l.kind == LinkKind::Vlan).count();
        assert_eq!(vlans, 200, "node {node}");
    }
}

/// Named namespaces of examples/multi-tenant.yaml (`red`, `blue`): fixed names, which only
/// the guest (one test at a time, nothing else running) may use. Removed on drop.
struct FixedNamespaces(&'static [&'static str]);

impl Drop for FixedNamespaces {
    fn drop(&mut self) {
        for ns in self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

// Proves examples/multi-tenant.yaml applies on node-a (a bridge over the uplink and two
// tenants' veths, whose peers TR7 moves into the namespaces `red` and `blue` it creates),
// re-applies with nothing to do and diagnoses clean. Node-b is not applied beside it: both
// nodes name the same tenant namespaces.
#[test]
#[ignore = tr7_tests::guest_only!()]
fn example_multi_tenant_applies_and_diagnoses_clean() {
    tr7_tests::require_guest();
    let _fixed = FixedNamespaces(&["red", "blue"]);
    let example = example("multi-tenant.yaml");
    let file = example.0.clone();
    let mut lab = Lab::new("exmt");
    let h = lab.netns("h");
    let sw = lab.netns("sw");
    lab.veth(&h, "eth1", &sw, "uplink");
    apply_twice(&file, "node-a", &h);
    for ns in [h.as_str(), "red", "blue"] {
        vip_sysctls(&lab, ns);
    }
    assert!(observe("red").link("eth0").is_some_and(|l| l.up));
    let (code, findings, out) = diag_until(&file, "node-a", &h, Duration::from_secs(10), |c, f| {
        c == 0 && f.is_empty()
    });
    assert_eq!((code, findings.len()), (0, 0), "{out}");
}
