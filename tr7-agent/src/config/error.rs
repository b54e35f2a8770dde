//! Diagnostics of the cluster file: where a problem is, which rule it breaks, how to fix it.
//!
//! Every check of the parser and the validator reports into one [`Diagnostics`] list instead of
//! returning early, so an operator sees every problem of a file in one run.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A 1-based line and column (in characters) of the cluster file. `0:0` means "the file as a
/// whole" (for example an empty file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, counted in characters.
    pub column: u32,
}

impl Pos {
    /// A position from a line and a column.
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

/// The rule a diagnostic reports. Its kebab-case name is the `code` field of the JSON output,
/// stable for scripts and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Rule {
    /// The file could not be read.
    Read,
    /// The file is not readable YAML.
    Syntax,
    /// A value has the wrong YAML shape (a list where a string belongs, ...).
    WrongType,
    /// A required field is absent.
    MissingField,
    /// A field that no part of the model knows.
    UnknownField,
    /// A mapping names the same key twice.
    DuplicateKey,
    /// A field that exists, but not for this interface type.
    OptionNotForType,
    /// A scalar that does not parse as what the field holds (address, duration, enum, ...).
    InvalidValue,
    /// A name (node, interface, namespace) that the kernel or the model does not accept.
    InvalidName,
    /// A reference (parent, member, peer, primary) to an interface that does not exist.
    DanglingReference,
    /// A reference to an interface of a type that cannot play that role.
    WrongReferenceType,
    /// Interfaces that stand on each other in a circle.
    Cycle,
    /// One interface claimed by two bonds, two bridges, or a bond and a bridge.
    MemberOfTwo,
    /// A bond or lacp member that is not an ethernet interface.
    MemberNotEthernet,
    /// A bond, lacp or bridge member that carries addresses, VIPs or VRRP.
    MemberHasAddresses,
    /// A VLAN id outside 1-4094.
    VlanIdRange,
    /// The same VLAN id and protocol twice on one parent.
    VlanIdReused,
    /// An MTU outside 68-65535.
    MtuRange,
    /// An upper device (VLAN, bond, bridge) asks for a larger MTU than a device under it.
    MtuAboveParent,
    /// Two interfaces with one name in one namespace.
    DuplicateName,
    /// A veth without `peer`, a veth-peer without `peer` or `namespace`.
    VethIncomplete,
    /// A veth and a veth-peer that do not name each other.
    VethPeersMismatch,
    /// A node listed twice, or no node at all.
    DuplicateNode,
    /// A node name that is not in `nodes`.
    UnknownNode,
    /// One address used twice (on two nodes, or twice on one node).
    DuplicateAddress,
    /// An interface address that is a network or otherwise unusable host address.
    InvalidAddress,
    /// A VIP outside every subnet of its interface on some node.
    VipOutsideSubnet,
    /// A VIP listed twice in one namespace.
    VipDuplicate,
    /// A VIP whose family the interface has no address of on some node.
    VipFamilyMissing,
    /// A VIP with a prefix length other than /32 or /128.
    VipPrefix,
    /// A VIP that names a namespace other than its interface's.
    VipNamespace,
    /// A gateway-based failover method without a gateway check of the VIP's family.
    GatewayCheckMissing,
    /// A gateway check whose target is outside the interface's subnets.
    GatewayOutsideSubnet,
    /// A gateway check whose method or timing cannot work.
    GatewayCheckInvalid,
    /// A unicast VRRP source that is not an address of its node, or a peer outside the subnets.
    UnicastPeer,
    /// Two VRRP slots of one L2 segment with the same VRID.
    VridCollision,
    /// A VRID outside 1-255.
    VridRange,
    /// More VRRP slots in one L2 segment than VRIDs exist.
    VridExhausted,
    /// An advertisement interval outside 10 ms - 40.95 s or not a multiple of 10 ms.
    AdvertInterval,
    /// A VRRP priority outside 1-254 for a node that does not own the addresses.
    Priority,
    /// A slot's preferred node does not have the highest priority.
    PreferredNotHighest,
    /// A bond option that contradicts the members (primary, min_links).
    BondOption,
    /// VIPs of one slot and address family with different failover methods: they share one
    /// virtual router, which can only give up for one set of signals.
    SlotMixedMethods,
}

impl Rule {
    /// The stable kebab-case code of the rule.
    pub fn code(self) -> &'static str {
        match self {
            Rule::Read => "read",
            Rule::Syntax => "syntax",
            Rule::WrongType => "wrong-type",
            Rule::MissingField => "missing-field",
            Rule::UnknownField => "unknown-field",
            Rule::DuplicateKey => "duplicate-key",
            Rule::OptionNotForType => "option-not-for-type",
            Rule::InvalidValue => "invalid-value",
            Rule::InvalidName => "invalid-name",
            Rule::DanglingReference => "dangling-reference",
            Rule::WrongReferenceType => "wrong-reference-type",
            Rule::Cycle => "cycle",
            Rule::MemberOfTwo => "member-of-two",
            Rule::MemberNotEthernet => "member-not-ethernet",
            Rule::MemberHasAddresses => "member-has-addresses",
            Rule::VlanIdRange => "vlan-id-range",
            Rule::VlanIdReused => "vlan-id-reused",
            Rule::MtuRange => "mtu-range",
            Rule::MtuAboveParent => "mtu-above-parent",
            Rule::DuplicateName => "duplicate-name",
            Rule::VethIncomplete => "veth-incomplete",
            Rule::VethPeersMismatch => "veth-peers-mismatch",
            Rule::DuplicateNode => "duplicate-node",
            Rule::UnknownNode => "unknown-node",
            Rule::DuplicateAddress => "duplicate-address",
            Rule::InvalidAddress => "invalid-address",
            Rule::VipOutsideSubnet => "vip-outside-subnet",
            Rule::VipDuplicate => "vip-duplicate",
            Rule::VipFamilyMissing => "vip-family-missing",
            Rule::VipPrefix => "vip-prefix",
            Rule::VipNamespace => "vip-namespace",
            Rule::GatewayCheckMissing => "gateway-check-missing",
            Rule::GatewayOutsideSubnet => "gateway-outside-subnet",
            Rule::GatewayCheckInvalid => "gateway-check-invalid",
            Rule::UnicastPeer => "unicast-peer",
            Rule::VridCollision => "vrid-collision",
            Rule::VridRange => "vrid-range",
            Rule::VridExhausted => "vrid-exhausted",
            Rule::AdvertInterval => "advert-interval",
            Rule::Priority => "priority",
            Rule::PreferredNotHighest => "preferred-not-highest",
            Rule::BondOption => "bond-option",
            Rule::SlotMixedMethods => "slot-mixed-methods",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One problem of the cluster file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file name as given to the parser.
    pub file: String,
    /// 1-based line of the offending value (0 for the file as a whole).
    pub line: u32,
    /// 1-based column of the offending value (0 for the file as a whole).
    pub column: u32,
    /// Where in the model: `interfaces[3].vips.master[1].address`.
    pub path: String,
    /// Which rule is broken.
    pub code: Rule,
    /// What is wrong, with the names and values involved.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Diagnostic {
    /// The position of the diagnostic.
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: path: message (hint: ...)`, the shape compilers use, so editors jump to it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (hint: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Every problem found in one cluster file, sorted by position.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    /// The diagnostics as a slice.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.0
    }

    /// Whether there is no diagnostic.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of diagnostics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the diagnostics.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

/// Why a cluster file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read cluster file {}: {source}", path.display())]
    Read {
        /// The path that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but breaks rules of the format.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Collects diagnostics while parsing and validating one file.
#[derive(Debug)]
pub(crate) struct Sink {
    file: String,
    diags: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            diags: Vec::new(),
        }
    }

    /// Records one problem.
    pub(crate) fn push(
        &mut self,
        pos: Pos,
        path: impl Into<String>,
        code: Rule,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            path: path.into(),
            code,
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.diags.is_empty()
    }

    /// The diagnostics in file order; a stable sort keeps the order of checks for one position.
    pub(crate) fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.line, d.column));
        self.diags.dedup();
        Diagnostics(self.diags)
    }
}
