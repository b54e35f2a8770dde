//! VRRPv3 (RFC 9568): advertisements on the wire and the sans-IO state machine of one
//! virtual router. No sockets, tasks or clocks live here; the agent's shell feeds
//! received packets, timer expiries and tracked-signal changes in, and carries out the
//! returned [`Action`]s. See docs/vrrp.md for the design and its reasons.

pub mod checksum;
pub mod io;
pub mod packet;
pub mod socket;
pub mod state;
pub mod timers;

pub use checksum::ChecksumMode;
pub use io::{Driver, DriverConfig, DriverError, FaultHandle, IoCounters, Ownership, Status};
pub use packet::{
    AdvertError, Advertisement, DecodeError, EncodeError, Family, IpCheckError, Transport,
    check_ip_header, virtual_mac,
};
pub use socket::{SocketError, VrrpSocket, ipv6_source_usable, link_local_v6};
pub use state::{
    Action, AnnounceReason, Config, ConfigError, Counters, DropCounters, DropReason, Reason, State,
    Vrrp,
};
