//! Tracked signals (issue 6): the carrier of a VIP's interface and everything beneath it,
//! and the reachability of its gateway per address family. A failed signal makes the
//! virtual routers whose VIPs' method watches it give up (`Driver::set_fault`).
//!
//! `tracker` is the pure part (rise/fall, damping, combination rules, verdicts) tested with a
//! fake clock; `link` and `probe` are the mechanisms (netlink events plus a carrier poll;
//! ARP, neighbour solicitation, ICMP echo); `monitor` runs them for the agent. See
//! docs/signals.md.

pub mod hook;
pub mod link;
pub mod monitor;
pub mod probe;
pub mod tracker;

pub use link::DEFAULT_POLL;
pub use monitor::{Monitor, Plan, RouterKey, SignalError, SignalStatus, plan};
pub use tracker::{
    Board, Change, Damper, Damping, Debounce, Health, LinkFault, LinkNode, LinkTree, PortObs,
    RouterId, SignalId, SignalSnapshot,
};
