//! `tr7 agent`: the daemon that runs one node of the cluster. It turns the cluster file
//! into kernel state, attaches the data plane, runs one VRRP virtual router per
//! (interface, slot, address family), and on each transition writes the ownership map and
//! announces. docs/agent.md describes what it does and what it does not do yet.
//!
//! One file per job: `run` wires everything and waits for a signal, `routers` is the set of
//! virtual routers (their specs from the file, the pure diff between two files, the
//! running drivers), `reload` applies a re-read file, `ownership` is what a transition
//! does to the data plane, `announce` builds and sends the gratuitous ARP / unsolicited NA
//! burst, `heartbeat` keeps the data plane's liveness fence fresh and derives it, `status`
//! is the report `tr7 status` shows, `control` the root-only socket it is asked over,
//! `metrics` the Prometheus `/metrics` endpoint built from the same report, `vmac` a
//! router's virtual MAC.

pub mod announce;
pub mod control;
pub mod heartbeat;
pub mod metrics;
pub mod ownership;
mod reload;
pub mod routers;
pub mod run;
pub mod status;
pub mod vmac;

pub use announce::{AnnounceError, Announcer, Burst};
pub use heartbeat::Heartbeat;
pub use ownership::SlotOwnership;
pub use routers::{Change, RouterKey, RouterSnapshot, RouterSpec, Routers};
pub use run::{AgentArgs, AgentError, run};
pub use status::{SignalState, SignalStatus, StatusReport};

/// An error and all its sources, `: `-separated, for log fields.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
