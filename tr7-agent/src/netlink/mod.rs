//! Kernel state from the cluster file: observe → desired → pure `plan()` → apply.
//!
//! `desired` turns this node's part of the model into the links and addresses each namespace
//! should have; `observe` dumps what the kernel has, through rtnetlink; `plan` compares the
//! two without any I/O and returns ordered actions with reasons, plus conflicts it leaves
//! alone; `apply` executes a plan; `diag` compares the observation with the file and with
//! itself and names what keeps a VIP from carrying traffic. `conn` opens a netlink socket
//! bound to one namespace, and `cli` is `tr7 plan` / `tr7 apply` / `tr7 diag`. The pipeline
//! is described in docs/reconcile.md. `watch` keeps an observation current from rtnetlink
//! events (subscribe, dump, then apply what arrived meanwhile).
//!
//! Namespaces are named as in the file: `None` is the node's root (host) namespace, which a
//! [`Target`] may map to a named namespace standing in for the host (`--netns`).

pub mod apply;
pub mod cli;
pub mod conn;
pub mod desired;
pub mod diag;
pub mod observe;
pub mod plan;
pub mod watch;

pub use apply::{ApplyError, ApplyReport, apply};
pub use desired::{BondSpec, Desired, DesiredAddress, DesiredKind, DesiredLink, desired};
pub use diag::{Code, DiagError, Finding, Severity, diagnose};
pub use observe::{
    AddressFlags, BondInfo, BondPortInfo, Ipv4Conf, LinkKind, NudState, ObserveError, Observed,
    ObservedAddress, ObservedLink, ObservedNamespace, ObservedNeighbour, VlanInfo, observe,
    observe_for_diag,
};
pub use plan::{Action, BondChange, Conflict, ConflictKind, Options, Plan, Step, plan};
pub use watch::Watch;

/// Which kernel namespaces the file's namespaces are: the file's host namespace is the
/// calling thread's own, or a named namespace that stands in for the host (tests, and
/// operators who run a node's network inside a namespace). Other namespaces are the named
/// namespaces of the file (`ip netns` names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// The named namespace treated as the node's root namespace; `None` is this thread's.
    pub root: Option<String>,
}

impl Target {
    /// The `ip netns` name of the file's namespace `ns` (`None`: the current namespace).
    pub fn resolve<'a>(&'a self, ns: Option<&'a str>) -> Option<&'a str> {
        ns.or(self.root.as_deref())
    }
}

/// How a namespace of the file is shown to people: `host` or its name.
pub fn ns_label(ns: Option<&str>) -> &str {
    ns.unwrap_or("host")
}

/// The name serde gives a unit enum variant (`#[serde(rename_all = ...)]` included): one
/// spelling for Display, JSON output and docs.
fn serde_label<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
