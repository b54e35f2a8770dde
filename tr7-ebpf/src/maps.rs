//! Every map of the data plane, pinned by name so a restarted agent adopts them with their
//! contents. Names and value types come from tr7-common; user space checks the names exist.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap},
};
use tr7_common::{
    Fence, IfaceCounters, IfaceKey, MAX_IFACES, MAX_SEGMENTS, MAX_VIPS, SegmentKey, VipCounters,
    VipKey, VipState,
};

#[map]
pub static TR7_SEGMENTS: HashMap<SegmentKey, u32> = HashMap::pinned(MAX_SEGMENTS, 0);

#[map]
pub static TR7_VIPS: HashMap<VipKey, VipState> = HashMap::pinned(MAX_VIPS, 0);

#[map]
pub static TR7_FENCE: Array<Fence> = Array::pinned(1, 0);

#[map]
pub static TR7_IFACE_STATS: PerCpuHashMap<IfaceKey, IfaceCounters> =
    PerCpuHashMap::pinned(MAX_IFACES, 0);

#[map]
pub static TR7_VIP_STATS: PerCpuArray<VipCounters> = PerCpuArray::pinned(MAX_VIPS, 0);

/// Inode of the network namespace this instance of the programs serves. Set by the loader
/// (one loaded instance per namespace), because ifindexes repeat across namespaces.
#[unsafe(no_mangle)]
pub static TR7_NETNS: Global<u32> = Global::new(0);
