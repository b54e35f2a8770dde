//! The cluster file as written: one struct per YAML mapping, every value with its position.
//!
//! These types are what `read.rs` fills from YAML, what `validate.rs` checks, what serializes
//! back to YAML (round trip) and what `tr7 schema` describes (schemars reads their doc
//! comments). Optional fields stay `None` here; defaults are applied in the validated model.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::addr::{Cidr, Mac};
use super::duration::HumanDuration;
use super::error::Pos;
use super::model::{
    Checksum, FailoverMethod, HashPolicy, InterfaceType, LacpRate, ProbeMethod, Transport,
    VlanProtocol,
};

/// A value of the file with the position it was written at. Serializes and describes itself
/// as the bare value.
#[derive(Clone, Debug)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where the value starts in the file.
    pub pos: Pos,
}

impl<T> Sp<T> {
    /// A value at a position.
    pub fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

impl<T> Deref for Sp<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Sp<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A mapping from node name to a value, in file order (`node-a: ...`, `node-b: ...`).
#[derive(Clone, Debug, Default)]
pub struct PerNode<T>(pub Vec<(Sp<String>, T)>);

impl<T> PerNode<T> {
    /// The value of `node`, if the file gives one.
    pub fn get(&self, node: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k.value == node).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for PerNode<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&k.value, v)?;
        }
        map.end()
    }
}

impl<T: JsonSchema> JsonSchema for PerNode<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("PerNode_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<T>();
        json_schema!({
            "type": "object",
            "description": "One entry per node name of `nodes`.",
            "additionalProperties": value
        })
    }
}

/// A list per node, each value with its position (`addresses`, `unicast`).
pub type NodeLists<T> = Sp<PerNode<Sp<Vec<Sp<T>>>>>;

/// The whole cluster file.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(title = "TR7 cluster file", deny_unknown_fields)]
pub struct ClusterFile {
    /// Position of the top mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// The cluster's name, shown in status and metrics.
    pub name: Sp<String>,
    /// The nodes of the cluster. Each node picks its own part of the file by its name.
    pub nodes: Vec<NodeEntry>,
    /// The interfaces, one entry per interface; they form a tree by name references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceEntry>,
    /// Names of interface entries the reader had to drop (a missing `name` or a bad `type`):
    /// references to them are not reported again as dangling.
    #[serde(skip)]
    pub unreadable: Vec<String>,
}

impl ClusterFile {
    /// Every key of the top mapping.
    pub const FIELDS: &'static [&'static str] = &["name", "nodes", "interfaces"];
}

/// One node.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct NodeEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// The node's name; `tr7 --node NAME` selects it (default: the host name).
    pub name: Sp<String>,
}

impl NodeEntry {
    /// Every key of a node entry.
    pub const FIELDS: &'static [&'static str] = &["name"];
}

/// One interface. Which options are allowed depends on `type`.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InterfaceEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// Model path of the entry (`interfaces[3]`), counted in the file even when entries
    /// before it could not be read.
    #[serde(skip)]
    pub path: String,
    /// Kernel name: 1-15 bytes, no `/`, `:` or white space.
    pub name: Sp<String>,
    /// The interface type.
    #[serde(rename = "type")]
    pub kind: Sp<InterfaceType>,
    /// MTU in bytes, 68-65535. Default 1500.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<Sp<i64>>,
    /// MAC address per node. Default: the kernel's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<Sp<PerNode<Sp<Mac>>>>,
    /// Addresses per node in CIDR form, IPv4 and IPv6 together. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addresses: Option<NodeLists<Cidr>>,
    /// vlan: the parent interface (ethernet, bond, lacp, or an 802.1ad vlan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Sp<String>>,
    /// vlan: the VLAN id, 1-4094.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub id: Option<Sp<i64>>,
    /// vlan: the tag protocol. Default 802.1Q.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Sp<VlanProtocol>>,
    /// bond, lacp: member ethernet interfaces; bridge: ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Sp<Vec<Sp<String>>>>,
    /// bond: the member preferred while it has carrier. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Sp<String>>,
    /// bond: MII link monitoring interval. Default 100ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mii_monitor_interval: Option<Sp<HumanDuration>>,
    /// lacp: LACPDU rate. Default fast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<Sp<LacpRate>>,
    /// lacp: transmit hash policy. Default layer3+4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transmit_hash_policy: Option<Sp<HashPolicy>>,
    /// lacp: members with carrier needed for the bond to have carrier. Default 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_links: Option<Sp<i64>>,
    /// veth: the veth-peer (`name` or `namespace/name`); veth-peer: the veth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Sp<String>>,
    /// veth-peer: the network namespace it lives in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Sp<String>>,
    /// bridge: spanning tree protocol. Default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stp: Option<Sp<bool>>,
    /// VRRP settings of the interface's two slots. Default: all defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vrrp: Option<VrrpEntry>,
    /// The VIPs of the interface, per slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vips: Option<VipsEntry>,
    /// Gateway checks per address family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayEntry>,
}

impl InterfaceEntry {
    /// Keys every interface type takes.
    pub const COMMON_FIELDS: &'static [&'static str] = &[
        "name",
        "type",
        "mtu",
        "mac",
        "addresses",
        "vrrp",
        "vips",
        "gateway",
    ];

    /// Every key of an interface entry, of any type.
    pub const FIELDS: &'static [&'static str] = &[
        "name",
        "type",
        "mtu",
        "mac",
        "addresses",
        "parent",
        "id",
        "protocol",
        "members",
        "primary",
        "mii_monitor_interval",
        "lacp_rate",
        "transmit_hash_policy",
        "min_links",
        "peer",
        "namespace",
        "stp",
        "vrrp",
        "vips",
        "gateway",
    ];

    /// The keys a type takes beyond [`Self::COMMON_FIELDS`].
    pub fn type_fields(kind: InterfaceType) -> &'static [&'static str] {
        match kind {
            InterfaceType::Ethernet => &[],
            InterfaceType::Vlan => &["parent", "id", "protocol"],
            InterfaceType::Bond => &["members", "primary", "mii_monitor_interval"],
            InterfaceType::Lacp => &["members", "lacp_rate", "transmit_hash_policy", "min_links"],
            InterfaceType::Veth => &["peer"],
            InterfaceType::VethPeer => &["peer", "namespace"],
            InterfaceType::Bridge => &["members", "stp"],
        }
    }

    /// The keys a type requires beyond `name` and `type`.
    pub fn required_fields(kind: InterfaceType) -> &'static [&'static str] {
        match kind {
            InterfaceType::Vlan => &["parent", "id"],
            InterfaceType::Bond | InterfaceType::Lacp => &["members"],
            InterfaceType::Veth => &["peer"],
            InterfaceType::VethPeer => &["peer", "namespace"],
            InterfaceType::Ethernet | InterfaceType::Bridge => &[],
        }
    }
}

/// VRRP settings of one interface.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VrrpEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// Each node's unicast source addresses (at most one per family); a node sends to the
    /// other nodes' addresses of the same family. Default: each node's first address of each
    /// family on the interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unicast: Option<NodeLists<IpAddr>>,
    /// `unicast` to the other nodes' addresses or `multicast` to 224.0.0.18 / ff02::12.
    /// Default unicast.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Sp<Transport>>,
    /// Advertisement interval, 10ms-40.95s in steps of 10ms. Default 1s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advert_interval: Option<Sp<HumanDuration>>,
    /// Whether a higher-priority node takes mastership back. Default true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt: Option<Sp<bool>>,
    /// Delay before preempting after the node starts, at most 1h. Default 0s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preempt_delay: Option<Sp<HumanDuration>>,
    /// Whether the master accepts traffic to VIPs it does not own. Default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_mode: Option<Sp<bool>>,
    /// IPv4 checksum form: pseudo-header (keepalived, FRR) or message-only (RFC 9568).
    /// Default pseudo-header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Sp<Checksum>>,
    /// Use the VRRP virtual MAC for the VIPs. Default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_mac: Option<Sp<bool>>,
    /// The slot carrying `vips.master`. Default: preferred by the first node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<SlotEntry>,
    /// The slot carrying `vips.backup`. Default: preferred by the second node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<SlotEntry>,
}

impl VrrpEntry {
    /// Every key of a `vrrp` mapping.
    pub const FIELDS: &'static [&'static str] = &[
        "unicast",
        "transport",
        "advert_interval",
        "preempt",
        "preempt_delay",
        "accept_mode",
        "checksum",
        "virtual_mac",
        "master",
        "backup",
    ];
}

/// One VRRP slot.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct SlotEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// The node that is master while healthy. Default: first node (master slot), second node
    /// (backup slot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred: Option<Sp<String>>,
    /// Priority per node, 1-254 (255 only for a node owning every VIP of the slot).
    /// Default: 200 for the preferred node, 100 for the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<Sp<PerNode<Sp<i64>>>>,
    /// Pinned virtual router id, 1-255. Default: assigned automatically.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub vrid: Option<Sp<i64>>,
}

impl SlotEntry {
    /// Every key of a slot mapping.
    pub const FIELDS: &'static [&'static str] = &["preferred", "priority", "vrid"];
}

/// The VIP lists of one interface.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VipsEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// VIPs of the master slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub master: Vec<VipEntry>,
    /// VIPs of the backup slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<VipEntry>,
}

impl VipsEntry {
    /// Every key of a `vips` mapping.
    pub const FIELDS: &'static [&'static str] = &["master", "backup"];
}

/// One VIP.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VipEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// Model path of the entry (`interfaces[3].vips.master[1]`).
    #[serde(skip)]
    pub path: String,
    /// The address: plain, /32 or /128.
    pub address: Sp<Cidr>,
    /// Failover method: vrrp, link, gateway, link-and-gateway. Default vrrp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Sp<FailoverMethod>>,
    /// A label carried into status, events and metrics. Default `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<Sp<String>>,
    /// Optional service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Sp<String>>,
    /// Must equal the interface's namespace if given (a VIP lives where its interface is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Sp<String>>,
    /// Allow the VIP outside every subnet of the interface. Default false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_off_subnet: Option<Sp<bool>>,
}

impl VipEntry {
    /// Every key of a VIP mapping.
    pub const FIELDS: &'static [&'static str] = &[
        "address",
        "method",
        "zone",
        "service",
        "namespace",
        "allow_off_subnet",
    ];
}

/// Gateway checks of one interface, at most one per family.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GatewayEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// The IPv4 gateway check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<GatewayCheckEntry>,
    /// The IPv6 gateway check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<GatewayCheckEntry>,
}

impl GatewayEntry {
    /// Every key of a `gateway` mapping.
    pub const FIELDS: &'static [&'static str] = &["ipv4", "ipv6"];
}

/// One gateway check.
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GatewayCheckEntry {
    /// Position of the mapping.
    #[serde(skip)]
    pub pos: Pos,
    /// The gateway's address, inside the interface's subnets on every node.
    pub target: Sp<IpAddr>,
    /// arp (IPv4), ndp (IPv6) or icmp. Default arp for ipv4, ndp for ipv6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Sp<ProbeMethod>>,
    /// Time between probes. Default 1s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Sp<HumanDuration>>,
    /// Time a probe waits for its answer, at most `interval`. Default 500ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Sp<HumanDuration>>,
    /// Successes in a row that make a down gateway up, 1-255. Default 2.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub rise: Option<Sp<i64>>,
    /// Failures in a row that make an up gateway down, 1-255. Default 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub fall: Option<Sp<i64>>,
}

impl GatewayCheckEntry {
    /// Every key of a gateway check mapping.
    pub const FIELDS: &'static [&'static str] =
        &["target", "method", "interval", "timeout", "rise", "fall"];
}
