//! The kernel behaviour the virtual MAC design (docs/agent.md, "Virtual MAC") rests on,
//! checked in a namespace lab so a kernel that behaves otherwise is noticed: a MAC in an
//! interface's unicast filter does not make the IP stack take frames sent to it; a macvlan
//! holding the VIP with the virtual MAC makes the kernel answer ARP and neighbour
//! solicitations with that MAC, for IPv4 only when `arp_announce=2` keeps the node's own ARP
//! requests from teaching the client the parent's MAC.
//!
//! No TR7 code runs here: these tests pin down the premises of a design that is not
//! implemented yet, not the agent.

use tr7_tests::lab::{Lab, ip};

/// VRID 0x33 (51).
const VMAC4: &str = "00:00:5e:00:01:33";
const VMAC6: &str = "00:00:5e:00:02:33";
const VIP4: &str = "192.0.2.10";
const VIP6: &str = "2001:db8::10";

/// client `vc` (192.0.2.50/24, 2001:db8::50/64) <-veth-> node `va` (192.0.2.1/24,
/// 2001:db8::1/64).
fn pair(tag: &str) -> (Lab, String, String) {
    let mut lab = Lab::new(tag);
    let client = lab.netns("client");
    let node = lab.netns("node");
    lab.veth(&node, "va", &client, "vc");
    lab.addr(&node, "va", "192.0.2.1/24");
    lab.addr(&node, "va", "2001:db8::1/64");
    lab.addr(&client, "vc", "192.0.2.50/24");
    lab.addr(&client, "vc", "2001:db8::50/64");
    lab.wait_ipv6_ready(&client, "vc");
    lab.wait_ipv6_ready(&node, "va");
    (lab, client, node)
}

/// How many of two pings to `dst` from `ns` were answered.
fn pings_answered(lab: &Lab, ns: &str, dst: &str) -> u32 {
    let out = lab.exec(ns, &["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", dst]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("ping {dst} from {ns}: no summary in {text:?}"))
}

/// The link-layer address of `dst` in `ns`'s neighbour table, if any.
fn neighbour(lab: &Lab, ns: &str, dst: &str) -> Option<String> {
    let out = lab.exec(ns, &["ip", "neigh", "show", dst]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.find(|w| *w == "lladdr")?;
    words.next().map(str::to_owned)
}

#[test]
fn unicast_filter_entry_alone_does_not_deliver_frames_to_the_stack() {
    let (lab, client, node) = pair("vmf");
    lab.addr(&node, "va", &format!("{VIP4}/32"));
    // RTM_NEWNEIGH, AF_BRIDGE, NTF_SELF on a plain interface: dev_uc_add.
    let add = lab.exec(
        &node,
        &[
            "bridge",
            "fdb",
            "add",
            VMAC4,
            "dev",
            "va",
            "self",
            "permanent",
        ],
    );
    assert!(
        add.status.success(),
        "bridge fdb add {VMAC4} dev va self permanent: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let fdb = lab.exec(&node, &["bridge", "fdb", "show", "dev", "va"]);
    let fdb = String::from_utf8_lossy(&fdb.stdout);
    assert!(
        fdb.lines()
            .any(|l| l.starts_with(VMAC4) && l.contains("self")),
        "the virtual MAC is not in va's address list: {fdb}"
    );
    ip(&[
        "-n",
        &client,
        "neigh",
        "replace",
        VIP4,
        "lladdr",
        VMAC4,
        "dev",
        "vc",
        "nud",
        "permanent",
    ]);
    assert_eq!(
        pings_answered(&lab, &client, VIP4),
        0,
        "frames to a MAC in the unicast filter reached IP: the design's premise changed"
    );
    // The same path works with the interface's own MAC, so the silence above is the MAC.
    let own = lab.mac(&node, "va");
    ip(&[
        "-n",
        &client,
        "neigh",
        "replace",
        VIP4,
        "lladdr",
        &own,
        "dev",
        "vc",
        "nud",
        "permanent",
    ]);
    assert_eq!(pings_answered(&lab, &client, VIP4), 2);
}

/// A macvlan `vr51` (mode private, `mac`) on `va` holding `vip`.
fn macvlan(lab: &Lab, node: &str, mac: &str, vip: &str) {
    ip(&[
        "-n", node, "link", "add", "link", "va", "name", "vr51", "address", mac, "type", "macvlan",
        "mode", "private",
    ]);
    ip(&["-n", node, "link", "set", "vr51", "addrgenmode", "none"]);
    ip(&["-n", node, "link", "set", "vr51", "up"]);
    lab.addr(node, "vr51", vip);
}

#[test]
fn macvlan_with_the_virtual_mac_answers_arp_with_it_given_arp_announce() {
    for arp_announce in ["2", "0"] {
        let (lab, client, node) = pair("vma");
        lab.proc_sys(&node, "net/ipv4/conf/all/arp_ignore", "1");
        lab.proc_sys(&node, "net/ipv4/conf/all/arp_announce", arp_announce);
        macvlan(&lab, &node, VMAC4, &format!("{VIP4}/32"));
        assert_eq!(pings_answered(&lab, &client, VIP4), 2);
        let seen = neighbour(&lab, &client, VIP4);
        if arp_announce == "2" {
            assert_eq!(seen.as_deref(), Some(VMAC4));
        } else {
            // The node's ARP request for the client, sent on va with the VIP as sender
            // address, overwrote the client's entry with va's MAC.
            assert_eq!(seen, Some(lab.mac(&node, "va")));
        }
    }
}

#[test]
fn macvlan_with_the_virtual_mac_answers_ns_with_it() {
    let (lab, client, node) = pair("vm6");
    macvlan(&lab, &node, VMAC6, &format!("{VIP6}/128"));
    assert_eq!(pings_answered(&lab, &client, VIP6), 2);
    assert_eq!(neighbour(&lab, &client, VIP6).as_deref(), Some(VMAC6));
}
