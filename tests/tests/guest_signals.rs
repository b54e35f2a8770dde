//! Guest-only tests of the link signal on kernel objects this machine's kernel lacks (run by
//! `cargo xtask vm-test`): the carrier watcher and the combination rules on a real
//! active-backup bond under a VLAN, and on an LACP bond with min_links 2 whose members
//! negotiate with a partner bond. On the host every test is ignored with the reason.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tr7::signals::link::{self, LinkSnapshot};
use tr7::signals::{LinkNode, LinkTree, PortObs};
use tr7_tests::lab::{Lab, ip};

fn require_guest() {
    assert!(
        std::env::var("TR7_GUEST").is_ok_and(|v| v == "1"),
        "guest-only test: run it with `cargo xtask vm-test`, which boots a kernel with 8021q and bonding"
    );
}

macro_rules! guest_only {
    () => {
        "needs the guest kernel (8021q, bonding): run by cargo xtask vm-test"
    };
}

fn bond(ns: &str, options: &[&str], members: &[&str]) {
    let mut args = vec!["-n", ns, "link", "add", "bond0", "type", "bond"];
    args.extend_from_slice(options);
    ip(&args);
    for m in members {
        ip(&["-n", ns, "link", "set", m, "down"]);
        ip(&["-n", ns, "link", "set", m, "master", "bond0"]);
        ip(&["-n", ns, "link", "set", m, "up"]);
    }
    ip(&["-n", ns, "link", "set", "bond0", "up"]);
}

fn vlan(ns: &str) {
    ip(&[
        "-n",
        ns,
        "link",
        "add",
        "link",
        "bond0",
        "name",
        "bond0.100",
        "type",
        "vlan",
        "id",
        "100",
    ]);
    ip(&["-n", ns, "link", "set", "bond0.100", "up"]);
}

/// Watches `names` in `ns` and evaluates `root` through `tree` on every snapshot.
struct Watch {
    rx: mpsc::Receiver<LinkSnapshot>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    last: BTreeMap<String, PortObs>,
}

impl Watch {
    fn start(ns: &str, names: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let thread = link::spawn(
            Some(ns.to_owned()),
            names,
            link::DEFAULT_POLL,
            move |s| tx.send(s).is_ok(),
            stop.clone(),
        )
        .expect("start the carrier watcher");
        Self {
            rx,
            stop,
            thread: Some(thread),
            last: BTreeMap::new(),
        }
    }

    /// Snapshots until `root` evaluates as `want` (Ok or a fault whose text contains it),
    /// at most `limit`; the fault text, if any.
    fn until(
        &mut self,
        tree: &LinkTree,
        root: &str,
        want: Result<(), &str>,
        limit: Duration,
    ) -> String {
        let start = Instant::now();
        loop {
            let got = tree.evaluate(root, &self.last).map_err(|f| f.to_string());
            match (&want, &got) {
                (Ok(()), Ok(())) => return String::new(),
                (Err(w), Err(g)) if g.contains(w) => return g.clone(),
                _ => {}
            }
            let left = limit.saturating_sub(start.elapsed());
            match self.rx.recv_timeout(left) {
                Ok(s) => self.last = s.links,
                Err(_) => panic!(
                    "{root} not {want:?} within {limit:?}; last verdict {got:?}, links {:?}",
                    self.last
                ),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

// Proves the link of a VLAN over an active-backup bond stays up while one member has
// carrier and fails, naming the bond, when the last member loses it; and comes back.
#[test]
#[ignore = guest_only!()]
fn link_of_vlan_over_bond_follows_the_members() {
    require_guest();
    let mut lab = Lab::new("gsb");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    bond(
        &a,
        &["mode", "active-backup", "miimon", "100"],
        &["a1", "a2"],
    );
    vlan(&a);
    let tree = LinkTree {
        nodes: [
            (
                "bond0.100".to_owned(),
                LinkNode::Vlan {
                    parent: "bond0".into(),
                },
            ),
            (
                "bond0".to_owned(),
                LinkNode::Bond {
                    members: s(&["a1", "a2"]),
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let mut w = Watch::start(&a, tree.closure("bond0.100"));
    let limit = Duration::from_secs(5);
    w.until(&tree, "bond0.100", Ok(()), limit);
    ip(&["-n", &b, "link", "set", "b1", "down"]);
    // One member left: still up (give the watcher time to see a1 go).
    std::thread::sleep(Duration::from_millis(100));
    w.until(&tree, "bond0.100", Ok(()), limit);
    let cut = Instant::now();
    ip(&["-n", &b, "link", "set", "b2", "down"]);
    let fault = w.until(
        &tree,
        "bond0.100",
        Err("`bond0` has no active member"),
        limit,
    );
    eprintln!(
        "bond without members: `{fault}` seen {:?} after the last member's peer went down",
        cut.elapsed()
    );
    ip(&["-n", &b, "link", "set", "b2", "up"]);
    w.until(&tree, "bond0.100", Ok(()), limit);
}

// Proves the LACP rule on a real 802.3ad bond with min_links 2 negotiating with a partner:
// up once both members are distributing; when one member's peer goes down, the link fails
// naming the bond and min_links (the member's carrier or its distributing bit, whichever
// the watcher sees first); up again after renegotiation.
#[test]
#[ignore = guest_only!()]
fn link_of_lacp_bond_fails_below_min_links() {
    require_guest();
    let mut lab = Lab::new("gsl");
    let a = lab.netns("a");
    let b = lab.netns("b");
    lab.veth(&a, "a1", &b, "b1");
    lab.veth(&a, "a2", &b, "b2");
    let options = [
        "mode",
        "802.3ad",
        "lacp_rate",
        "fast",
        "miimon",
        "50",
        "min_links",
        "2",
    ];
    bond(&a, &options, &["a1", "a2"]);
    bond(&b, &options, &["b1", "b2"]);
    vlan(&a);
    let tree = LinkTree {
        nodes: [
            (
                "bond0.100".to_owned(),
                LinkNode::Vlan {
                    parent: "bond0".into(),
                },
            ),
            (
                "bond0".to_owned(),
                LinkNode::Lacp {
                    members: s(&["a1", "a2"]),
                    min_links: 2,
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let mut w = Watch::start(&a, tree.closure("bond0.100"));
    // Fast LACPDUs go every second; negotiation takes a few.
    w.until(&tree, "bond0.100", Ok(()), Duration::from_secs(15));
    assert!(
        w.last.get("a1").and_then(|o| o.distributing) == Some(true),
        "the watcher reads the actor's distributing bit: {:?}",
        w.last
    );
    let cut = Instant::now();
    ip(&["-n", &b, "link", "set", "b2", "down"]);
    let fault = w.until(
        &tree,
        "bond0.100",
        Err("below min_links 2"),
        Duration::from_secs(5),
    );
    eprintln!(
        "LACP below min_links: `{fault}` seen {:?} after a member's peer went down",
        cut.elapsed()
    );
    ip(&["-n", &b, "link", "set", "b2", "up"]);
    w.until(&tree, "bond0.100", Ok(()), Duration::from_secs(15));
}
