//! The cluster file: parsing, the validated model, and `tr7 validate` / `tr7 schema`.
//!
//! One YAML file describes the whole cluster; every node reads the same file and takes its
//! part with [`Cluster::node_view`]. The pipeline is: YAML with positions (`yaml`) → the file
//! as written (`read` into [`file`] types) → semantic rules and defaults (`validate`, with
//! VRIDs from `vrid`) → [`Cluster`]. Every stage reports into one list of [`Diagnostic`]s, so
//! a run shows every problem at once. The format is documented in docs/config.md.

pub mod addr;
pub mod cli;
pub mod duration;
pub mod error;
pub mod file;
pub mod generate;
pub mod model;
mod read;
pub mod schema;
mod validate;
mod vrid;
mod yaml;

use std::path::Path;

pub use addr::{Cidr, Mac};
pub use error::{ConfigError, Diagnostic, Diagnostics, Pos, Rule};
pub use file::ClusterFile;
pub use generate::bench_input;
pub use model::{
    Checksum, Cluster, FailoverMethod, Family, GatewayCheck, GatewayChecks, HashPolicy, IfaceRef,
    Interface, InterfaceKind, InterfaceType, LacpRate, NodeInterface, NodeSlot, NodeView,
    ProbeMethod, Slot, SlotName, UnicastSources, UnknownNode, Vip, VlanProtocol, Vrid, Vrrp,
};
pub use validate::{
    DEFAULT_ADVERT_INTERVAL, DEFAULT_FALL, DEFAULT_GATEWAY_INTERVAL, DEFAULT_GATEWAY_TIMEOUT,
    DEFAULT_MII_MONITOR, DEFAULT_MTU, DEFAULT_OTHER_PRIORITY, DEFAULT_PREFERRED_PRIORITY,
    DEFAULT_RISE, DEFAULT_ZONE,
};

/// Reads and validates the cluster file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Cluster, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, &path.display().to_string()).map_err(ConfigError::Invalid)
}

/// Parses and validates a cluster file held in memory; `filename` is used in diagnostics.
pub fn parse(text: &str, filename: &str) -> Result<Cluster, Diagnostics> {
    let mut sink = error::Sink::new(filename);
    let file = read_into(text, &mut sink);
    let cluster = match &file {
        Some(f) => validate::validate(f, &mut sink),
        None => None,
    };
    match cluster {
        Some(c) if sink.is_empty() => Ok(c),
        _ => Err(sink.finish()),
    }
}

/// Parses a cluster file into the file types only (the shape as written, with positions),
/// without the semantic rules. Serializing the result gives back an equivalent YAML file.
pub fn parse_file(text: &str, filename: &str) -> Result<ClusterFile, Diagnostics> {
    let mut sink = error::Sink::new(filename);
    match read_into(text, &mut sink) {
        Some(f) if sink.is_empty() => Ok(f),
        _ => Err(sink.finish()),
    }
}

/// Serializes the file types back to YAML.
pub fn to_yaml(file: &ClusterFile) -> Result<String, serde_saphyr::SerializeError> {
    serde_saphyr::to_string(file)
}

fn read_into(text: &str, sink: &mut error::Sink) -> Option<ClusterFile> {
    match yaml::parse(text) {
        Ok(root) => read::cluster(&root, sink),
        Err(e) => {
            sink.push(
                e.pos,
                "",
                Rule::Syntax,
                e.message,
                "fix the YAML syntax; nothing else was checked",
            );
            None
        }
    }
}
