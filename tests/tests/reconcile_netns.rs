//! `tr7 plan` / `tr7 apply` against the real kernel, inside namespaces each test creates and
//! removes: a namespace stands in for the node's host namespace (`--netns`), a veth end
//! plays the ethernet port, and the tenant namespace is created by TR7 itself.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tr7::netlink::cli::{
    ApplyArgs, Format, PlanArgs, apply_blocking, apply_report, make_plan, observe_blocking,
};
use tr7::netlink::{Observed, Step, Target, Watch};
use tr7_tests::{
    cluster_lab::BridgeLab,
    lab::{Lab, ip},
};

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

// Proves the address phase, sent many at a time, still stops on the first refusal with the
// kernel's answer, and that the error's `applied` lists the later additions the kernel
// accepted: IPv6 is disabled on br0, so its IPv6 additions fail while the IPv4 VIP between
// them is added.
#[test]
fn address_failure_names_the_first_and_lists_what_was_added() {
    let s = setup("af");
    assert_eq!(s.apply(false).0, 0);
    ip(&["-n", &s.host, "addr", "del", "192.0.2.10/32", "dev", "br0"]);
    s.lab
        .proc_sys(&s.host, "net/ipv6/conf/br0/disable_ipv6", "1");
    let (_, plan) = make_plan(&s.plan_args(false)).expect("plan");
    let steps: Vec<String> = plan.actions.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(
        steps,
        [
            "add 2001:db8::2/64 to br0",
            "add 192.0.2.10/32 to br0 (nodad)",
            "add 2001:db8::10/128 to br0 (nodad)",
        ]
    );
    let target = Target {
        root: Some(s.host.clone()),
    };
    let err = apply_blocking(&plan, &target)
        .expect("runtime")
        .expect_err("IPv6 is disabled on br0");
    assert_eq!(err.number, 1, "{err}");
    assert_eq!(err.failed.step.to_string(), "add 2001:db8::2/64 to br0");
    let applied: Vec<String> = err.applied.iter().map(|a| a.step.to_string()).collect();
    assert_eq!(applied, ["add 192.0.2.10/32 to br0 (nodad)"], "{err}");
    assert!(
        s.addresses(&s.host, "br0")
            .contains(&"192.0.2.10/32".to_owned())
    );
}

/// (name, MTU, up) of every link and (link name, address) of every address.
type Summary = (BTreeSet<(String, u32, bool)>, BTreeSet<(String, String)>);

/// The [`Summary`] of the first namespace: what a watch and a fresh dump must agree on.
fn summary(o: &Observed) -> Summary {
    let ns = &o.namespaces[0];
    let links = ns
        .links
        .iter()
        .map(|l| (l.name.clone(), l.mtu, l.up))
        .collect();
    let addrs = ns
        .addresses
        .iter()
        .map(|a| {
            let on = ns
                .link_by_index(a.ifindex)
                .map_or(format!("#{}", a.ifindex), |l| l.name.clone());
            (on, a.cidr.to_string())
        })
        .collect();
    (links, addrs)
}

// Proves the watch misses nothing around its dump: `ip -batch` adds links and addresses
// while the watch subscribes and dumps, and once the changes stop the watch equals a fresh
// dump; then each later change (address added and removed, MTU, link deleted) shows up
// from its event alone.
#[test]
fn watch_follows_events_during_and_after_the_dump() {
    let mut lab = Lab::new("wt");
    let ns = lab.netns("h");
    // Something to dump: 100 veth pairs, 4 addresses each.
    let mut batch = String::new();
    for i in 0..100 {
        batch.push_str(&format!("link add w{i} type veth peer name x{i}\n"));
        for n in 0..4 {
            batch.push_str(&format!("addr add 2001:db8:{i:x}::{n}/64 dev w{i} nodad\n"));
        }
    }
    let pre = std::env::temp_dir().join(format!("{ns}-pre.batch"));
    std::fs::write(&pre, &batch).expect("write batch");
    ip(&["-n", &ns, "-batch", &pre.display().to_string()]);
    // Changes racing the watch's start.
    let mut racing = String::new();
    for i in 0..100 {
        racing.push_str(&format!("link set w{i} up\n"));
        racing.push_str(&format!("addr add 198.51.100.{}/32 dev w{i}\n", i + 1));
        racing.push_str(&format!("addr del 2001:db8:{i:x}::0/64 dev w{i}\n"));
    }
    let race = std::env::temp_dir().join(format!("{ns}-race.batch"));
    std::fs::write(&race, &racing).expect("write batch");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = Target {
        root: Some(ns.clone()),
    };
    let ns2 = ns.clone();
    let race_path = race.display().to_string();
    let racer = std::thread::spawn(move || ip(&["-n", &ns2, "-batch", &race_path]));
    let mut watch = rt
        .block_on(Watch::start(&target, &[None], false))
        .expect("watch starts");
    // The watch is read while the changes go on, as a running agent's would be.
    while !racer.is_finished() {
        rt.block_on(watch.wait(Duration::from_millis(50)));
    }
    racer.join().expect("racing batch");
    // Drain until quiet (bounded).
    let start = Instant::now();
    while rt.block_on(watch.wait(Duration::from_millis(300))) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "events never stop"
        );
    }
    let fresh = observe_blocking(&target, &[None]).expect("dump");
    assert_eq!(summary(&watch.observed()), summary(&fresh));
    assert!(
        summary(&fresh)
            .1
            .contains(&("w99".to_owned(), "198.51.100.100/32".to_owned()))
    );

    // Later changes, each from its event.
    let wait_for = |watch: &mut Watch, what: &str, ok: &dyn Fn(&Observed) -> bool| {
        let start = Instant::now();
        while !ok(&watch.observed()) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{what}: no event in 5 s"
            );
            rt.block_on(watch.wait(Duration::from_millis(200)));
        }
    };
    ip(&["-n", &ns, "addr", "add", "203.0.113.7/24", "dev", "w5"]);
    wait_for(&mut watch, "address added", &|o| {
        summary(o)
            .1
            .contains(&("w5".to_owned(), "203.0.113.7/24".to_owned()))
    });
    ip(&["-n", &ns, "link", "set", "w5", "mtu", "1400"]);
    wait_for(&mut watch, "MTU", &|o| {
        o.namespaces[0].link("w5").is_some_and(|l| l.mtu == 1400)
    });
    ip(&["-n", &ns, "addr", "del", "203.0.113.7/24", "dev", "w5"]);
    wait_for(&mut watch, "address removed", &|o| {
        !summary(o)
            .1
            .contains(&("w5".to_owned(), "203.0.113.7/24".to_owned()))
    });
    ip(&["-n", &ns, "link", "del", "w7"]);
    wait_for(&mut watch, "link deleted", &|o| {
        o.namespaces[0].link("w7").is_none() && o.namespaces[0].link("x7").is_none()
    });
    assert_eq!(
        summary(&watch.observed()),
        summary(&observe_blocking(&target, &[None]).expect("dump"))
    );
    let _ = std::fs::remove_file(&pre);
    let _ = std::fs::remove_file(&race);
}
