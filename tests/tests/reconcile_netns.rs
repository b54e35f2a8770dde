//! `tr7 plan` / `tr7 apply` against the real kernel, inside namespaces each test creates and
//! removes: a namespace stands in for the node's host namespace (`--netns`), a veth end
//! plays the ethernet port, and the tenant namespace is created by TR7 itself.

use tr7::netlink::cli::{ApplyArgs, Format, PlanArgs, apply_blocking, apply_report, make_plan};
use tr7::netlink::{Step, Target};
use tr7_tests::{cluster_lab::BridgeLab, lab::ip};

/// The shared bridge lab ([`BridgeLab`]), with this file's helpers.
struct Setup(BridgeLab);

impl std::ops::Deref for Setup {
    type Target = BridgeLab;
    fn deref(&self) -> &BridgeLab {
        &self.0
    }
}

fn setup(tag: &str) -> Setup {
    let b = BridgeLab::new(tag, false);
    // An up port: enslaving it must take it down first.
    ip(&["-n", &b.host, "link", "set", "eth1", "up"]);
    Setup(b)
}

impl Setup {
    fn plan_args(&self, remove_foreign: bool) -> PlanArgs {
        PlanArgs {
            file: self.file.clone(),
            node: Some("a".into()),
            netns: Some(self.host.clone()),
            remove_foreign,
            format: Format::Human,
        }
    }

    fn apply(&self, remove_foreign: bool) -> (u8, String) {
        apply_report(&ApplyArgs {
            plan: self.plan_args(remove_foreign),
        })
        .expect("apply runs")
    }

    fn ip_json(&self, ns: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-j", "-n", ns];
        all.extend_from_slice(args);
        serde_json::from_slice(&ip(&all).stdout).expect("ip -j output")
    }

    fn link(&self, ns: &str, dev: &str) -> serde_json::Value {
        self.ip_json(ns, &["-d", "link", "show", "dev", dev])[0].clone()
    }

    fn addresses(&self, ns: &str, dev: &str) -> Vec<String> {
        let v = self.ip_json(ns, &["addr", "show", "dev", dev]);
        v[0]["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default()
    }
}

// Proves apply builds the whole tree (tenant namespace included), raises MTU on ports before
// their bridge, adds addresses and VIPs (VIPs without DAD), and that a second apply has
// nothing to do.
#[test]
fn apply_creates_everything_then_nothing_to_do() {
    let s = setup("rc");
    let (_, plan) = make_plan(&s.plan_args(false)).expect("plan");
    let text = plan.to_string();
    let pos = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("`{needle}` not in plan:\n{text}"))
    };
    assert!(pos("set MTU of eth1 1500 → 9000") < pos("set MTU of br0 1500 → 9000"));
    assert!(pos("create namespace") < pos("create veth veth-red"));
    assert!(pos("set eth1 down") < pos("make eth1 a port of br0"));

    let (code, out) = s.apply(false);
    assert_eq!(code, 0, "{out}");
    let br = s.link(&s.host, "br0");
    assert_eq!(br["mtu"], 9000);
    assert_eq!(br["linkinfo"]["info_kind"], "bridge", "{br}");
    for port in ["eth1", "veth-red"] {
        let l = s.link(&s.host, port);
        assert_eq!(l["master"], "br0", "{l}");
        assert_eq!(l["mtu"], 9000, "{l}");
        assert!(
            l["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&"UP".into()))
        );
    }
    let peer = s.link(&s.red, "eth0");
    assert_eq!(peer["mtu"], 9000);
    let br_addrs = s.addresses(&s.host, "br0");
    for a in [
        "192.0.2.2/24",
        "2001:db8::2/64",
        "192.0.2.10/32",
        "2001:db8::10/128",
    ] {
        assert!(
            br_addrs.contains(&a.to_owned()),
            "{a} missing: {br_addrs:?}"
        );
    }
    let red_addrs = s.addresses(&s.red, "eth0");
    assert!(
        red_addrs.contains(&"198.51.100.2/24".to_owned()),
        "{red_addrs:?}"
    );
    assert!(
        red_addrs.contains(&"2001:db8:1::2/64".to_owned()),
        "{red_addrs:?}"
    );
    let vip6 = s.ip_json(&s.host, &["-6", "addr", "show", "dev", "br0"]);
    let nodad = vip6[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .find(|i| i["local"] == "2001:db8::10")
        .expect("IPv6 VIP");
    assert_eq!(nodad["nodad"], true, "{nodad}");
    // The tenant namespace is a real `ip netns` namespace.
    let list = String::from_utf8_lossy(&ip(&["netns", "list"]).stdout).into_owned();
    assert!(list.contains(&s.red), "{list}");

    let (code, out) = s.apply(false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to do"), "{out}");
    // The undeclared end of the port's veth was never touched.
    assert_eq!(s.link(&s.host, "wire")["mtu"], 1500);
}

// Proves a foreign address on a declared link is reported and left alone, and removed only
// with --remove-foreign.
#[test]
fn foreign_address_reported_and_left_alone() {
    let s = setup("rf");
    assert_eq!(s.apply(false).0, 0);
    ip(&["-n", &s.host, "addr", "add", "203.0.113.9/24", "dev", "br0"]);
    ip(&[
        "-n",
        &s.host,
        "addr",
        "add",
        "203.0.113.77/24",
        "dev",
        "wire",
    ]);

    let (_, plan) = make_plan(&s.plan_args(false)).expect("plan");
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(plan.conflicts.len(), 1, "{plan}");
    assert!(
        plan.conflicts[0].message.contains("203.0.113.9/24"),
        "{plan}"
    );
    let (code, out) = s.apply(false);
    assert_eq!(code, 0);
    assert!(
        out.contains("nothing to do") && out.contains("203.0.113.9/24"),
        "{out}"
    );
    assert!(
        s.addresses(&s.host, "br0")
            .contains(&"203.0.113.9/24".to_owned())
    );

    let (code, out) = s.apply(true);
    assert_eq!(code, 0, "{out}");
    assert!(
        !s.addresses(&s.host, "br0")
            .contains(&"203.0.113.9/24".to_owned())
    );
    // An address on an undeclared link is never touched, even with --remove-foreign.
    assert!(
        s.addresses(&s.host, "wire")
            .contains(&"203.0.113.77/24".to_owned())
    );
}

// Proves a failure stops the run at that action with the kernel's answer, and reports what
// had been applied: a bridge named like the planned veth appears between plan and apply.
#[test]
fn partial_failure_stops_and_reports() {
    let s = setup("pf");
    let (_, plan) = make_plan(&s.plan_args(false)).expect("plan");
    ip(&["-n", &s.host, "link", "add", "veth-red", "type", "bridge"]);
    let target = Target {
        root: Some(s.host.clone()),
    };
    let err = apply_blocking(&plan, &target)
        .expect("runtime")
        .expect_err("the veth cannot be created");
    assert!(
        matches!(&err.failed.step, Step::CreateLink { link, .. } if link.name == "veth-red"),
        "{err}"
    );
    assert!(err.kernel.contains("File exists"), "{err}");
    assert!(err.kernel.contains("bridge link named veth-red"), "{err}");
    assert_eq!(err.applied.len(), err.number - 1);
    assert!(
        err.applied
            .iter()
            .any(|a| matches!(a.step, Step::CreateNamespace { .. })),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("create veth veth-red"), "{text}");
    // The foreign bridge is untouched, and a fresh plan reports it instead of acting.
    assert_eq!(
        s.link(&s.host, "veth-red")["linkinfo"]["info_kind"],
        "bridge"
    );
    let (_, again) = make_plan(&s.plan_args(false)).expect("plan");
    assert!(
        again
            .conflicts
            .iter()
            .any(|c| c.message.contains("declared as a veth")),
        "{again}"
    );
}
