//! TR7: VIPs managed together with the network they live on.
//!
//! The library owns everything the `tr7` binary does; the binary is a thin CLI over it.

pub mod agent;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod netlink;
pub mod netns;
pub mod signals;
pub mod vrrp;
