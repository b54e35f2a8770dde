//! Every validation rule of the cluster file, each with a small file that breaks exactly that
//! rule: the test asserts the rule code, the message and the line it points at.

use tr7::config::{self, Diagnostic, Rule};

/// Lines 1-10. eth0 carries addresses on both nodes; eth1 carries nothing (a free port).
const BASE: &str = "\
name: t
nodes:
  - name: a
  - name: b
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24]
      b: [192.0.2.3/24]
  - name: eth1
    type: ethernet
";

/// The first line after BASE.
const NEXT: u32 = 13;

fn diags(text: &str) -> Vec<Diagnostic> {
    match config::parse(text, "t.yaml") {
        Ok(_) => Vec::new(),
        Err(d) => d.0,
    }
}

/// Asserts that `text` breaks `code` only, at `line`, with a message containing `msg`.
#[track_caller]
fn breaks(text: &str, code: Rule, line: u32, msg: &str) -> Vec<Diagnostic> {
    let d = diags(text);
    let dump = d
        .iter()
        .map(|d| format!("{d} [{}]", d.code))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !d.is_empty(),
        "expected {code} at line {line}, file is valid:\n{text}"
    );
    assert!(
        d.iter().all(|x| x.code == code && x.line == line),
        "expected only {code} at line {line}, got:\n{dump}"
    );
    assert!(
        d.iter().any(|x| x.message.contains(msg)),
        "no message contains {msg:?}:\n{dump}"
    );
    assert!(
        d.iter().all(|x| !x.hint.is_empty()),
        "every diagnostic has a hint:\n{dump}"
    );
    d
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

// Proves the base file itself is valid, so each case below breaks only what it adds.
#[test]
fn base_is_valid() {
    assert_eq!(diags(BASE), Vec::new());
}

// Proves a YAML syntax error is reported with its position and stops there.
#[test]
fn syntax_error() {
    let d = breaks("name: t\nnodes: [\n", Rule::Syntax, 2, "unclosed bracket");
    assert_eq!(d[0].column, 8);
}

// Proves an unknown field is reported at its key with a "did you mean".
#[test]
fn unknown_field() {
    let d = breaks(
        &with("    mtuu: 9000\n"),
        Rule::UnknownField,
        NEXT,
        "unknown field `mtuu`",
    );
    assert!(d[0].hint.contains("did you mean `mtu`"), "{}", d[0].hint);
    assert_eq!(d[0].path, "interfaces[1].mtuu");
    assert_eq!(d[0].column, 5);
}

// Proves that `id` on a bridge names the type and the options it takes.
#[test]
fn option_not_for_bridge() {
    let d = breaks(
        &with("  - name: br0\n    type: bridge\n    id: 5\n"),
        Rule::OptionNotForType,
        NEXT + 2,
        "`id` is not an option of a bridge interface",
    );
    assert!(
        d[0].hint.contains("a bridge takes members, stp"),
        "{}",
        d[0].hint
    );
}

// Proves that `members` on a vlan names the type and the options it takes.
#[test]
fn option_not_for_vlan() {
    let d = breaks(
        &with("  - name: v5\n    type: vlan\n    parent: eth1\n    id: 5\n    members: [eth0]\n"),
        Rule::OptionNotForType,
        NEXT + 4,
        "`members` is not an option of a vlan interface",
    );
    assert!(d[0].hint.contains("parent, id, protocol"), "{}", d[0].hint);
}

// Proves a duplicate key is reported at the second occurrence.
#[test]
fn duplicate_key() {
    breaks(
        &with("    mtu: 1500\n    mtu: 1400\n"),
        Rule::DuplicateKey,
        NEXT + 1,
        "`mtu` is given twice",
    );
}

// Proves a value of the wrong YAML kind is reported at the value.
#[test]
fn wrong_type() {
    breaks(
        &with("    mtu: [1500]\n"),
        Rule::WrongType,
        NEXT,
        "expected a whole number, found a list",
    );
}

// Proves a missing required field is reported at its mapping.
#[test]
fn missing_field() {
    breaks(
        &with("  - type: ethernet\n"),
        Rule::MissingField,
        NEXT,
        "missing field `name`",
    );
}

// Proves a malformed scalar (duration, address, keyword) is reported at the value.
#[test]
fn invalid_values() {
    breaks(
        &with(
            "  - name: bond0\n    type: bond\n    members: [eth1]\n    mii_monitor_interval: 100\n",
        ),
        Rule::InvalidValue,
        NEXT + 3,
        "`100` has no unit",
    );
    let d = breaks(
        "name: t\nnodes: [{name: a}]\ninterfaces:\n  - name: eth0\n    type: ethernet\n    addresses:\n      a: [192.0.2.2]\n",
        Rule::InvalidValue,
        7,
        "`192.0.2.2` has no prefix length",
    );
    assert_eq!(d[0].path, "interfaces[0].addresses.a[0]");
    let d = breaks(
        &with("  - name: bond0\n    type: lacp\n    members: [eth1]\n    lacp_rate: fsat\n"),
        Rule::InvalidValue,
        NEXT + 3,
        "`fsat` is not a valid value",
    );
    assert!(d[0].hint.contains("did you mean `fast`"));
}

// Proves a vlan whose parent does not exist is a dangling reference at `parent`.
#[test]
fn dangling_parent() {
    breaks(
        &with("  - name: v5\n    type: vlan\n    parent: eth9\n    id: 5\n"),
        Rule::DanglingReference,
        NEXT + 2,
        "parent `eth9` is not declared",
    );
}

// Proves a bond member that does not exist is a dangling reference at the member.
#[test]
fn dangling_member() {
    breaks(
        &with("  - name: bond0\n    type: bond\n    members:\n      - eth1\n      - eth7\n"),
        Rule::DanglingReference,
        NEXT + 4,
        "member `eth7` is not declared",
    );
}

// Proves a veth whose peer does not exist is a dangling reference at `peer`.
#[test]
fn dangling_peer() {
    breaks(
        &with("  - name: v1\n    type: veth\n    peer: red/p1\n"),
        Rule::DanglingReference,
        NEXT + 2,
        "peer `red/p1` is not declared",
    );
}

// Proves two vlans standing on each other are one cycle error.
#[test]
fn cycle() {
    breaks(
        &with(
            "  - name: va\n    type: vlan\n    parent: vb\n    id: 5\n    protocol: 802.1ad\n\
             \x20 - name: vb\n    type: vlan\n    parent: va\n    id: 6\n    protocol: 802.1ad\n",
        ),
        Rule::Cycle,
        NEXT + 2,
        "interfaces stand on each other: va -> vb -> va",
    );
}

// Proves one port in two bonds is reported at the second claim.
#[test]
fn member_of_two_bonds() {
    breaks(
        &with(
            "  - name: bond0\n    type: bond\n    members: [eth1]\n\
             \x20 - name: bond1\n    type: lacp\n    members: [eth1]\n",
        ),
        Rule::MemberOfTwo,
        NEXT + 5,
        "`eth1` is already a member of bond `bond0`",
    );
}

// Proves one port in a bond and a bridge is reported at the second claim.
#[test]
fn member_of_bond_and_bridge() {
    breaks(
        &with(
            "  - name: bond0\n    type: bond\n    members: [eth1]\n\
             \x20 - name: br0\n    type: bridge\n    members: [eth1]\n",
        ),
        Rule::MemberOfTwo,
        NEXT + 5,
        "`eth1` is already a member of bond `bond0`",
    );
}

// Proves a bond member must be ethernet.
#[test]
fn member_not_ethernet() {
    breaks(
        &with(
            "  - name: v5\n    type: vlan\n    parent: eth1\n    id: 5\n\
             \x20 - name: bond0\n    type: bond\n    members: [v5]\n",
        ),
        Rule::MemberNotEthernet,
        NEXT + 6,
        "member `v5` of bond `bond0` is a vlan",
    );
}

// Proves a bond member carrying addresses is reported at those addresses.
#[test]
fn member_has_addresses() {
    breaks(
        &with("  - name: bond0\n    type: lacp\n    members: [eth0]\n"),
        Rule::MemberHasAddresses,
        9,
        "`eth0` is a member of lacp `bond0` and cannot carry addresses",
    );
}

// Proves VLAN ids outside 1-4094 are refused.
#[test]
fn vlan_id_range() {
    breaks(
        &with("  - name: v5\n    type: vlan\n    parent: eth1\n    id: 4095\n"),
        Rule::VlanIdRange,
        NEXT + 3,
        "VLAN id 4095 is outside 1-4094",
    );
}

// Proves one VLAN id twice on one parent is refused at the second.
#[test]
fn vlan_id_reused() {
    breaks(
        &with(
            "  - name: v5\n    type: vlan\n    parent: eth1\n    id: 5\n\
             \x20 - name: also5\n    type: vlan\n    parent: eth1\n    id: 5\n",
        ),
        Rule::VlanIdReused,
        NEXT + 7,
        "VLAN id 5 (802.1Q) is already used on `eth1` by `v5`",
    );
}

// Proves a vlan cannot ask a larger MTU than its parent.
#[test]
fn mtu_above_parent() {
    breaks(
        &with("  - name: v5\n    type: vlan\n    parent: eth1\n    id: 5\n    mtu: 9000\n"),
        Rule::MtuAboveParent,
        NEXT + 4,
        "`v5` asks MTU 9000, above the MTU 1500 of `eth1` under it",
    );
}

// Proves an MTU outside 68-65535 is refused.
#[test]
fn mtu_range() {
    breaks(
        &with("    mtu: 40\n"),
        Rule::MtuRange,
        NEXT,
        "MTU 40 is outside 68-65535",
    );
}

// Proves interface names longer than 15 bytes are refused.
#[test]
fn name_too_long() {
    breaks(
        &with("  - name: abcdefghijklmnop\n    type: ethernet\n"),
        Rule::InvalidName,
        NEXT,
        "is 16 bytes long, the kernel allows at most 15",
    );
}

// Proves names the kernel refuses (`:` here) are refused.
#[test]
fn name_invalid_for_kernel() {
    breaks(
        &with("  - name: \"eth1:0\"\n    type: ethernet\n"),
        Rule::InvalidName,
        NEXT,
        "contains ':'",
    );
}

// Proves two interfaces with one name in one namespace are refused at the second.
#[test]
fn duplicate_name() {
    breaks(
        &with("  - name: eth1\n    type: ethernet\n"),
        Rule::DuplicateName,
        NEXT,
        "interface `eth1` is declared twice in the host namespace (first on line 11)",
    );
}

// Proves the same name in two namespaces is fine.
#[test]
fn same_name_in_two_namespaces_is_valid() {
    let text = with(
        "  - name: va\n    type: veth\n    peer: red/eth0\n\
         \x20 - name: eth0\n    type: veth-peer\n    namespace: red\n    peer: va\n\
         \x20 - name: vb\n    type: veth\n    peer: blue/eth0\n\
         \x20 - name: eth0\n    type: veth-peer\n    namespace: blue\n    peer: vb\n",
    );
    assert_eq!(diags(&text), Vec::new());
}

// Proves a veth without peer is refused.
#[test]
fn veth_without_peer() {
    breaks(
        &with("  - name: v1\n    type: veth\n"),
        Rule::VethIncomplete,
        NEXT,
        "veth `v1` has no `peer`",
    );
}

// Proves a veth-peer without namespace is refused.
#[test]
fn veth_peer_without_namespace() {
    breaks(
        &with(
            "  - name: v1\n    type: veth\n    peer: p1\n  - name: p1\n    type: veth-peer\n    peer: v1\n",
        ),
        Rule::VethIncomplete,
        NEXT + 3,
        "veth-peer `p1` has no `namespace`",
    );
}

// Proves a veth naming a veth-peer that names another veth is refused at the veth.
#[test]
fn veth_peers_do_not_name_each_other() {
    breaks(
        &with(
            "  - name: v1\n    type: veth\n    peer: red/p1\n\
             \x20 - name: v2\n    type: veth\n    peer: red/p1\n\
             \x20 - name: p1\n    type: veth-peer\n    namespace: red\n    peer: v2\n",
        ),
        Rule::VethPeersMismatch,
        NEXT + 2,
        "`v1` names `red/p1` as its peer, but `red/p1` names `v2`",
    );
}

// Proves a VIP outside every subnet of its interface on one node is refused at the VIP.
#[test]
fn vip_outside_subnet() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24]
      b: [192.0.2.3/24, 198.51.100.3/24]
    vips:
      master:
        - address: 198.51.100.10
";
    let d = breaks(
        text,
        Rule::VipOutsideSubnet,
        11,
        "VIP 198.51.100.10 is outside every subnet of `eth0` on node a",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].path, "interfaces[0].vips.master[0].address");
    assert!(d[0].hint.contains("allow_off_subnet"));
    let allowed = text.replace(
        "198.51.100.10\n",
        "198.51.100.10\n          allow_off_subnet: true\n",
    );
    assert_eq!(diags(&allowed), Vec::new(), "explicitly allowed");
}

// Proves a VIP listed twice is refused at the second.
#[test]
fn vip_duplicate() {
    breaks(
        &format!(
            "{}    vips:\n      master: [{{address: 192.0.2.10}}]\n      backup: [{{address: 192.0.2.10}}]\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::VipDuplicate,
        13,
        "VIP 192.0.2.10 is listed twice in the host namespace (first on line 12)",
    );
}

// Proves a VIP of a family the interface lacks on a node is refused at the VIP.
#[test]
fn vip_family_missing() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24, 2001:db8::2/64]
      b: [192.0.2.3/24]
    vips:
      master:
        - address: 2001:db8::10
";
    breaks(
        text,
        Rule::VipFamilyMissing,
        11,
        "VIP 2001:db8::10 is IPv6, but `eth0` has no IPv6 address on node b",
    );
}

// Proves a VIP must be a single address.
#[test]
fn vip_prefix() {
    breaks(
        &format!(
            "{}    vips:\n      master: [{{address: 192.0.2.10/24}}]\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::VipPrefix,
        12,
        "VIP 192.0.2.10/24 must be a single address",
    );
}

// Proves a VIP that names another namespace than its interface's is refused.
#[test]
fn vip_namespace() {
    breaks(
        &format!(
            "{}    vips:\n      master:\n        - address: 192.0.2.10\n          namespace: red\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::VipNamespace,
        14,
        "VIP 192.0.2.10 says namespace `red`, but its interface `eth0` lives in the host namespace",
    );
}

// Proves a gateway-based method needs a gateway check of the VIP's family.
#[test]
fn gateway_check_missing() {
    breaks(
        &format!(
            "{}    vips:\n      master:\n        - address: 192.0.2.10\n          method: link-and-gateway\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::GatewayCheckMissing,
        14,
        "VIP 192.0.2.10 fails over on link-and-gateway, but `eth0` has no IPv4 gateway check",
    );
}

// Proves the slot rule of issue 6: VIPs of one slot and family share one virtual router,
// so they must share one failover method; the other family of the slot may differ.
#[test]
fn slot_mixed_methods() {
    let text = format!(
        "{}    gateway:\n      ipv4: {{target: 192.0.2.1}}\n    vips:\n      master:\n        \
         - {{address: 192.0.2.10, method: link}}\n        \
         - {{address: 192.0.2.11, method: gateway}}\n",
        &BASE[..BASE.find("  - name: eth1").expect("eth1")]
    );
    let d = breaks(
        &text,
        Rule::SlotMixedMethods,
        16,
        "VIP 192.0.2.11 fails over on gateway, but IPv4 VIP 192.0.2.10 of the same slot fails over on link; one slot and family is one virtual router",
    );
    assert!(d[0].hint.contains("other slot"), "{:?}", d[0]);
    let split = text.replace(
        "      master:\n        - {address: 192.0.2.10, method: link}\n",
        "      backup: [{address: 192.0.2.10, method: link}]\n      master:\n",
    );
    assert!(diags(&split).is_empty(), "{:?}", diags(&split));
}

// Proves a gateway outside the interface's subnets is refused at the target.
#[test]
fn gateway_outside_subnet() {
    breaks(
        &format!(
            "{}    gateway:\n      ipv4: {{target: 198.51.100.1}}\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::GatewayOutsideSubnet,
        12,
        "gateway 198.51.100.1 is outside the IPv4 subnets of `eth0` on node a",
    );
}

// Proves a probe method of the wrong family is refused.
#[test]
fn gateway_method_family() {
    breaks(
        &format!(
            "{}    gateway:\n      ipv4: {{target: 192.0.2.1, method: ndp}}\n",
            &BASE[..BASE.find("  - name: eth1").expect("eth1")]
        ),
        Rule::GatewayCheckInvalid,
        12,
        "ndp cannot probe an IPv4 gateway",
    );
}

// Proves a unicast peer outside the interface's subnets is refused at the peer's address.
#[test]
fn unicast_peer_outside_subnet() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24]
      b: [192.0.2.3/24, 198.51.100.3/24]
    vrrp:
      unicast:
        a: [192.0.2.2]
        b: [198.51.100.3]
";
    breaks(
        text,
        Rule::UnicastPeer,
        12,
        "unicast peer 198.51.100.3 (node b) is outside the IPv4 subnets of `eth0` on node a",
    );
}

// Proves a unicast source must be the node's own address on the interface.
#[test]
fn unicast_source_not_local() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24]
      b: [192.0.2.3/24]
    vrrp:
      unicast:
        a: [192.0.2.9]
";
    breaks(
        text,
        Rule::UnicastPeer,
        11,
        "unicast source 192.0.2.9 is not an address of `eth0` on node a",
    );
}

/// An interface with VIPs in both slots; `{M}` and `{B}` are the slot settings.
fn two_slots(master: &str, backup: &str) -> String {
    format!(
        "{}    vrrp:\n      master: {{{master}}}\n      backup: {{{backup}}}\n    vips:\n      master: [{{address: 192.0.2.10}}]\n      backup: [{{address: 192.0.2.11}}]\n",
        &BASE[..BASE.find("  - name: eth1").expect("eth1")]
    )
}

// Proves two pinned slots on one L2 segment may not share a VRID.
#[test]
fn vrid_collision() {
    breaks(
        &two_slots("vrid: 7", "vrid: 7"),
        Rule::VridCollision,
        13,
        "VRID 7 of `eth0` slot backup collides with `eth0` slot master on L2 segment eth0",
    );
}

// Proves the same pinned VRID on two VLANs (two segments) is fine.
#[test]
fn same_vrid_on_two_segments_is_valid() {
    let text = with(
        "  - name: v5\n    type: vlan\n    parent: eth1\n    id: 5\n    addresses: {a: [198.51.100.2/26], b: [198.51.100.3/26]}\n    vrrp: {master: {vrid: 9}}\n    vips: {master: [{address: 198.51.100.10}]}\n\
         \x20 - name: v6\n    type: vlan\n    parent: eth1\n    id: 6\n    addresses: {a: [198.51.100.66/26], b: [198.51.100.67/26]}\n    vrrp: {master: {vrid: 9}}\n    vips: {master: [{address: 198.51.100.70}]}\n",
    );
    assert_eq!(diags(&text), Vec::new());
}

// Proves an explicit VRID outside 1-255 is refused.
#[test]
fn vrid_range() {
    breaks(
        &two_slots("vrid: 256", ""),
        Rule::VridRange,
        12,
        "VRID 256 is outside 1-255",
    );
    breaks(
        &two_slots("vrid: 0", ""),
        Rule::VridRange,
        12,
        "VRID 0 is outside 1-255",
    );
}

// Proves the advertisement interval must fit VRRPv3's centiseconds.
#[test]
fn advert_interval() {
    let base = &BASE[..BASE.find("  - name: eth1").expect("eth1")];
    breaks(
        &format!("{base}    vrrp:\n      advert_interval: 41s\n"),
        Rule::AdvertInterval,
        12,
        "advert_interval 41s is outside 10ms-40.95s",
    );
    breaks(
        &format!("{base}    vrrp:\n      advert_interval: 5ms\n"),
        Rule::AdvertInterval,
        12,
        "advert_interval 5ms is outside 10ms-40.95s",
    );
    breaks(
        &format!("{base}    vrrp:\n      advert_interval: 15ms\n"),
        Rule::AdvertInterval,
        12,
        "advert_interval 15ms is not a multiple of 10ms",
    );
    assert_eq!(
        diags(&format!("{base}    vrrp:\n      advert_interval: 40.95s\n")),
        Vec::new()
    );
}

// Proves priorities outside 1-254 are refused for a node that does not own the VIPs.
#[test]
fn priority_range() {
    breaks(
        &two_slots("priority: {a: 255, b: 100}", ""),
        Rule::Priority,
        12,
        "priority 255 of node a is outside 1-254",
    );
    breaks(
        &two_slots("priority: {a: 200, b: 0}", ""),
        Rule::Priority,
        12,
        "priority 0 of node b is outside 1-254",
    );
}

// Proves 255 is accepted for the address owner (the VIP is the node's own address).
#[test]
fn priority_owner() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      a: [192.0.2.2/24, 192.0.2.10/24]
      b: [192.0.2.3/24]
    vrrp:
      master: {priority: {a: 255}}
    vips:
      master: [{address: 192.0.2.10}]
";
    assert_eq!(diags(text), Vec::new());
}

// Proves the preferred node must have the highest priority.
#[test]
fn preferred_not_highest() {
    breaks(
        &two_slots("preferred: a, priority: {a: 100, b: 150}", ""),
        Rule::PreferredNotHighest,
        12,
        "preferred node a has priority 100, but node b has 150",
    );
}

// Proves node names used anywhere must be nodes of the cluster.
#[test]
fn unknown_node() {
    breaks(
        "name: t\nnodes: [{name: a}, {name: b}]\ninterfaces:\n  - name: eth0\n    type: ethernet\n    addresses:\n      c: [192.0.2.2/24]\n",
        Rule::UnknownNode,
        7,
        "`c` is not a node of the cluster",
    );
    breaks(
        &two_slots("preferred: z", ""),
        Rule::UnknownNode,
        12,
        "`z` is not a node of the cluster",
    );
}

// Proves a node listed twice is refused.
#[test]
fn duplicate_node() {
    breaks(
        "name: t\nnodes:\n  - name: a\n  - name: a\n",
        Rule::DuplicateNode,
        4,
        "node `a` is listed twice",
    );
}

// Proves one address on two nodes is refused.
#[test]
fn duplicate_address() {
    breaks(
        "name: t\nnodes: [{name: a}, {name: b}]\ninterfaces:\n  - name: eth0\n    type: ethernet\n    addresses:\n      a: [192.0.2.2/24]\n      b: [192.0.2.2/24]\n",
        Rule::DuplicateAddress,
        8,
        "address 192.0.2.2 of `eth0` on node b is already used by `eth0` on node a",
    );
}

// Proves bond options that contradict the members are refused.
#[test]
fn bond_options() {
    breaks(
        &with("  - name: bond0\n    type: bond\n    members: [eth1]\n    primary: eth0\n"),
        Rule::BondOption,
        NEXT + 3,
        "primary `eth0` is not a member of `bond0`",
    );
    breaks(
        &with("  - name: bond0\n    type: lacp\n    members: [eth1]\n    min_links: 2\n"),
        Rule::BondOption,
        NEXT + 3,
        "min_links 2 is outside 1-1",
    );
}

// Proves every problem of a file is reported in one run, in file order.
#[test]
fn all_errors_at_once() {
    let text = "\
name: t
nodes: [{name: a}, {name: b}]
interfaces:
  - name: eth0
    type: ethernet
    colour: red
    addresses:
      a: [192.0.2.2/24]
      b: [192.0.2.3/24]
  - name: v5
    type: vlan
    parent: eth9
    id: 5000
    vips:
      master: [{address: 192.0.2.10}]
";
    let d = diags(text);
    let got: Vec<(u32, Rule)> = d.iter().map(|d| (d.line, d.code)).collect();
    assert!(got.contains(&(6, Rule::UnknownField)), "{got:?}");
    assert!(got.contains(&(12, Rule::DanglingReference)), "{got:?}");
    assert!(got.contains(&(13, Rule::VlanIdRange)), "{got:?}");
    assert!(got.contains(&(15, Rule::VipFamilyMissing)), "{got:?}");
    let lines: Vec<u32> = d.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "sorted by position");
    let first = d[0].to_string();
    assert!(
        first.starts_with("t.yaml:6:5: interfaces[0].colour: unknown field `colour` (hint: "),
        "{first}"
    );
}
