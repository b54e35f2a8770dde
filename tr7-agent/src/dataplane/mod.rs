//! The data plane as user space sees it: loading the embedded eBPF object, attaching the
//! XDP gate and TC guard to interfaces with their links pinned (so they outlive the agent and
//! a restarted agent adopts them), and typed access to the maps.

mod attach;
pub mod live_frames;
mod maps;
pub mod object;
pub mod vlan_offload;

use std::path::PathBuf;

pub use attach::{
    AttachOutcome, Attachment, Detachment, Globals, Programs, XdpAttachMode, attach, create_maps,
    detach, ensure_bpffs,
};
pub use maps::{IfaceEntry, Maps, PinLayout, ReasonCounts, VipEntry, VipScope, key_addr, vip_key};

/// Where the data plane pins its maps and links unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/tr7";

/// Errors of the data plane. The underlying error is the `source()`, not repeated in the
/// message: print with `{:#}` (anyhow) or walk the chain to see both.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error(
        "this tr7 binary was built with AYA_BUILD_SKIP=1 and carries no eBPF object; rebuild without it (`cargo xtask build`)"
    )]
    NoObject,
    #[error("cannot load the eBPF object")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("cannot read the eBPF object embedded in this binary")]
    Object(#[source] Box<aya_obj::ParseError>),
    #[error(
        "{path} is a map another TR7 build made ({have}), not this build's {name} ({want}): \
         stop the agent that uses it (SIGTERM), detach its interfaces with that build \
         (`tr7 dataplane detach`), then remove the pin (`rm {path}`)"
    )]
    PinLayout {
        path: PathBuf,
        name: String,
        have: String,
        want: String,
    },
    #[error("program `{name}`")]
    Program {
        name: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("interface `{iface}` does not exist in this network namespace")]
    NoInterface { iface: String },
    #[error("link pin {path}")]
    Link {
        path: PathBuf,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("cannot pin {path}")]
    Pin {
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("cannot open map {path} (is the data plane loaded? `tr7 dataplane attach`)")]
    OpenMap {
        path: PathBuf,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot read map {map}")]
    MapRead {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("cannot write map {map}")]
    MapWrite {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("{what} is full ({max} entries)")]
    Full { what: &'static str, max: u32 },
    #[error(
        "the VIP table has no free slot within {probes} slots of this VIP's home slot; remove unused VIPs (the table is sized for 4x the VIP limit, so this means unusual clustering)"
    )]
    TableCrowded { probes: u32 },
    #[error("cannot count CPUs")]
    Cpus(#[source] std::io::Error),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot turn VLAN offload off on `{iface}` ({what}); the gate would see offloaded tags as absent"
    )]
    Ethtool {
        iface: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

impl DataplaneError {
    fn map_read(map: &'static str, source: aya::maps::MapError) -> Self {
        Self::MapRead { map, source }
    }

    fn map_write(map: &'static str, source: aya::maps::MapError) -> Self {
        Self::MapWrite { map, source }
    }

    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
