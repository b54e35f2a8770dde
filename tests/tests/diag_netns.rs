//! `tr7 diag` against the real kernel, inside namespaces each test creates and removes: after
//! `tr7 apply` the diagnosis is clean, then each cause this kernel can produce (no VLAN or
//! bond here) is provoked by hand and must be named with its exact code and exit status 1.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tr7::netlink::cli::{ApplyArgs, DiagArgs, Format, PlanArgs, apply_report, diag_outcome};
use tr7_tests::{cluster_lab::BridgeLab, lab::ip};

/// The shared bridge lab ([`BridgeLab`]) with a gateway check, applied, and this file's
/// helpers.
struct Setup(BridgeLab);

impl std::ops::Deref for Setup {
    type Target = BridgeLab;
    fn deref(&self) -> &BridgeLab {
        &self.0
    }
}

/// One finding as the JSON output carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    code: String,
    severity: String,
    link: String,
    message: String,
}

/// The bridge lab with an IPv4 gateway check whose target has no host behind it, applied.
fn setup(tag: &str) -> Setup {
    let b = BridgeLab::new(tag, true);
    // The switch side is up, so eth1 has carrier once TR7 sets it up.
    ip(&["-n", &b.host, "link", "set", "wire", "up"]);
    let s = Setup(b);
    let (code, out) = apply_report(&ApplyArgs {
        plan: PlanArgs {
            file: s.file.clone(),
            node: Some("a".into()),
            netns: Some(s.host.clone()),
            remove_foreign: false,
            format: Format::Human,
        },
    })
    .expect("apply runs");
    assert_eq!(code, 0, "{out}");
    // The documented sysctls (docs/reconcile.md): with them the diagnosis has no warning.
    s.lab
        .proc_sys(&s.host, "net/ipv4/conf/all/arp_announce", "2");
    s
}

impl Setup {
    /// Deletes the IPv6 VIP from br0 and adds it back without `nodad`, so it goes through
    /// duplicate address detection.
    fn readd_vip6_with_dad(&self) {
        for op in ["del", "add"] {
            ip(&[
                "-n",
                &self.host,
                "addr",
                op,
                "2001:db8::10/128",
                "dev",
                "br0",
            ]);
        }
    }

    fn args(&self, vip: Option<&str>) -> DiagArgs {
        DiagArgs {
            file: self.file.clone(),
            vip: vip.map(|v| v.parse().expect("VIP")),
            node: Some("a".into()),
            netns: Some(self.host.clone()),
            format: Format::Json,
        }
    }

    /// Runs the diagnosis: (exit status, findings).
    fn diag(&self, vip: Option<&str>) -> (u8, Vec<Seen>) {
        let (code, out, err) = diag_outcome(&self.args(vip));
        assert!(code < 2, "diag failed: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output");
        let findings = v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| Seen {
                code: f["code"].as_str().unwrap_or_default().to_owned(),
                severity: f["severity"].as_str().unwrap_or_default().to_owned(),
                link: match f["link"]["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{}", f["link"]["name"].as_str().unwrap_or("")),
                    None => f["link"]["name"].as_str().unwrap_or("").to_owned(),
                },
                message: f["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        assert_eq!(v["ok"], code == 0, "{out}");
        (code, findings)
    }

    /// Diagnoses until `done` holds, for at most `limit`: the kernel settles carrier, DAD
    /// and neighbour states asynchronously. Returns the last result either way.
    fn diag_until(
        &self,
        vip: Option<&str>,
        limit: Duration,
        done: impl Fn(u8, &[Seen]) -> bool,
    ) -> (u8, Vec<Seen>) {
        let start = Instant::now();
        loop {
            let (code, f) = self.diag(vip);
            if done(code, &f) || start.elapsed() > limit {
                return (code, f);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the diagnosis names `code` on `link` (at most `limit`) and returns it.
    fn expect(&self, code: &str, link: &str, limit: Duration) -> (u8, Vec<Seen>) {
        let (status, f) = self.diag_until(None, limit, |_, f| has(f, code, link));
        assert!(has(&f, code, link), "no {code} on {link}: {f:#?}");
        assert_eq!(status, 1, "{f:#?}");
        (status, f)
    }

    fn clean(&self) {
        let (code, f) =
            self.diag_until(None, Duration::from_secs(3), |c, f| c == 0 && f.is_empty());
        assert_eq!((code, f), (0, vec![]), "not clean after apply");
    }
}

fn has(f: &[Seen], code: &str, link: &str) -> bool {
    f.iter().any(|s| s.code == code && s.link == link)
}

// Proves a freshly applied file diagnoses clean (exit 0), that arp_announce=0 is only a
// warning (exit still 0), and that an unreadable file exits 2.
#[test]
fn clean_after_apply() {
    let s = setup("dc");
    s.clean();
    s.lab
        .proc_sys(&s.host, "net/ipv4/conf/all/arp_announce", "0");
    let (code, f) = s.diag(None);
    assert_eq!(code, 0, "{f:#?}");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        (
            f[0].code.as_str(),
            f[0].severity.as_str(),
            f[0].link.as_str()
        ),
        ("arp-announce", "warning", "br0")
    );

    let mut bad = s.args(None);
    bad.file = s.file.with_extension("missing");
    let (code, out, err) = diag_outcome(&bad);
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("missing"), "{err}");
}

// Proves a port MTU lowered by hand under its bridge is `mtu-differs` on the port and
// `mtu-above-parent` on the bridge, and a veth-peer's MTU changed is `mtu-differs`.
#[test]
fn mtu_changed_by_hand() {
    let s = setup("dm");
    s.clean();
    ip(&["-n", &s.host, "link", "set", "eth1", "mtu", "1500"]);
    let (_, f) = s.expect("mtu-differs", "eth1", Duration::ZERO);
    assert!(has(&f, "mtu-above-parent", "br0"), "{f:#?}");
    ip(&["-n", &s.red, "link", "set", "eth0", "mtu", "1400"]);
    s.expect("mtu-differs", &format!("{}/eth0", s.red), Duration::ZERO);
}

// Proves the switch side of a port going down is `no-carrier` on that port, and that the
// VIP argument keeps the report to the VIP's path.
#[test]
fn port_without_carrier() {
    let s = setup("dn");
    s.clean();
    ip(&["-n", &s.host, "link", "set", "wire", "down"]);
    let (_, f) = s.expect("no-carrier", "eth1", Duration::from_secs(2));
    assert_eq!(f.len(), 1, "{f:#?}");
    let (code, f) = s.diag(Some("192.0.2.10"));
    assert_eq!(code, 1);
    assert!(has(&f, "no-carrier", "eth1"), "{f:#?}");
}

// Proves a VIP deleted by hand is `vip-missing`.
#[test]
fn vip_deleted() {
    let s = setup("dv");
    s.clean();
    ip(&["-n", &s.host, "addr", "del", "192.0.2.10/32", "dev", "br0"]);
    let (_, f) = s.expect("vip-missing", "br0", Duration::ZERO);
    assert_eq!(f.len(), 1, "{f:#?}");
    // Limited to the other VIP, the report is clean.
    assert_eq!(s.diag(Some("2001:db8::10")), (0, vec![]));
}

// Proves a VIP re-added with duplicate address detection (not nodad) is `vip-tentative`
// while DAD runs: 60 probes keep it tentative for a minute, far beyond the test.
#[test]
fn vip_tentative() {
    let s = setup("dt");
    s.clean();
    s.lab
        .proc_sys(&s.host, "net/ipv6/conf/br0/dad_transmits", "60");
    s.readd_vip6_with_dad();
    let (_, f) = s.expect("vip-tentative", "br0", Duration::ZERO);
    assert_eq!(f.len(), 1, "{f:#?}");
}

// Proves a VIP whose duplicate address detection meets another owner on the segment (the
// tenant, a bridge port away) is `vip-dadfailed`.
#[test]
fn vip_dadfailed() {
    let s = setup("dd");
    s.clean();
    // Snooping would hold the DAD probe back until the tenant's MLD report is seen.
    ip(&[
        "-n",
        &s.host,
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);
    s.lab.addr(&s.red, "eth0", "2001:db8::10/128");
    s.readd_vip6_with_dad();
    s.expect("vip-dadfailed", "br0", Duration::from_secs(5));
}

/// `ping -c 1` of the gateway from the host namespace, in the background.
fn ping(s: &Setup, target: &str) -> Child {
    Command::new("ip")
        .args([
            "netns", "exec", &s.host, "ping", "-c", "1", "-W", "1", target,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ping")
}

// Proves a gateway that does not answer ARP is `gateway-incomplete` while the kernel asks
// and `gateway-failed` once it gives up (3 probes, 1 s apart by default).
#[test]
fn gateway_neighbour_failed() {
    let s = setup("dg");
    s.clean();
    let mut child = ping(&s, "192.0.2.1");
    s.expect("gateway-incomplete", "br0", Duration::from_secs(2));
    s.expect("gateway-failed", "br0", Duration::from_secs(8));
    let _ = child.wait();
}

// Proves ARP flux (arp_ignore=0 on another IPv4 interface), strict rp_filter in a
// multi-homed namespace and arp_ignore=8 on the VIP's interface are each named.
#[test]
fn sysctls_bad_for_the_vip() {
    let s = setup("ds");
    s.clean();
    // A second IPv4 interface makes the namespace multi-homed.
    ip(&[
        "-n",
        &s.host,
        "addr",
        "add",
        "203.0.113.1/24",
        "dev",
        "wire",
    ]);
    let (_, f) = s.expect("arp-ignore", "br0", Duration::ZERO);
    assert!(
        f.iter()
            .any(|x| x.message.contains("arp_ignore is 0 on wire")),
        "{f:#?}"
    );
    s.lab.proc_sys(&s.host, "net/ipv4/conf/all/arp_ignore", "1");
    s.lab.proc_sys(&s.host, "net/ipv4/conf/all/rp_filter", "0");
    s.lab.proc_sys(&s.host, "net/ipv4/conf/br0/rp_filter", "1");
    let (_, f) = s.expect("rp-filter", "br0", Duration::ZERO);
    assert_eq!(f.len(), 1, "{f:#?}");
    s.lab.proc_sys(&s.host, "net/ipv4/conf/br0/rp_filter", "2");
    s.lab.proc_sys(&s.host, "net/ipv4/conf/br0/arp_ignore", "8");
    let (_, f) = s.expect("arp-ignore", "br0", Duration::ZERO);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].message.contains("arp_ignore is 8"), "{f:#?}");
}

// Proves a veth-peer moved out of its namespace (into the host's) is
// `veth-peer-outside-namespace`, saying where it is; limited to the VIP, the report shows
// only what its path sees (the veth without carrier).
#[test]
fn veth_peer_moved_out() {
    let s = setup("dp");
    s.clean();
    ip(&["-n", &s.red, "link", "set", "eth0", "netns", &s.host]);
    let red_eth0 = format!("{}/eth0", s.red);
    let (_, f) = s.expect("veth-peer-outside-namespace", &red_eth0, Duration::ZERO);
    assert!(
        f.iter()
            .any(|x| x.message.contains("eth0 in the host namespace")),
        "{f:#?}"
    );
    let (code, f) = s.diag_until(Some("192.0.2.10"), Duration::from_secs(2), |_, f| {
        has(f, "no-carrier", "veth-red")
    });
    assert_eq!(code, 1);
    assert!(has(&f, "no-carrier", "veth-red"), "{f:#?}");
    assert!(!has(&f, "veth-peer-outside-namespace", &red_eth0), "{f:#?}");
}
