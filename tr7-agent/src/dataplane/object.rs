//! The eBPF objects built by build.rs from tr7-ebpf, embedded in the binary.

/// The ELF bytes of the data plane; empty when built with `AYA_BUILD_SKIP=1`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tr7-dataplane"));

/// An XDP program that only passes frames: the baseline benchmarks compare the gate with.
/// A few hundred bytes; empty when built with `AYA_BUILD_SKIP=1`.
pub static BASELINE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tr7-baseline"));

/// The announcement emitter (`tr7_announce`, returns XDP_TX), run on pre-built frames by
/// `dataplane::live_frames`; empty when built with `AYA_BUILD_SKIP=1`.
pub static ANNOUNCE: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tr7-announce"));
