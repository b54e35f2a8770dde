//! Every map of the data plane, pinned by name so a restarted agent adopts them with their
//! contents, and the per-instance globals. Names and value types come from tr7-common; user
//! space checks the names exist.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use tr7_common::{
    Attachment, Fence, IfaceCounters, IfaceKey, MAX_ATTACHMENTS, MAX_VIPS, VIP_TABLE_SIZE,
    VMACS_SIZE, VipCounters, VipKey, VipSlot, VipState, VmacState,
};

/// The VIP table the programs look VIPs up in (open addressing, see `tr7_common::vip_home`).
#[map]
pub static TR7_VIP_SLOTS: Array<VipSlot> = Array::pinned(VIP_TABLE_SIZE, 0);

/// The VIP directory; user space only.
#[map]
pub static TR7_VIPS: HashMap<VipKey, VipState> = HashMap::pinned(MAX_VIPS, 0);

/// The virtual MACs of each attachment (`tr7_common::vmac_index`).
#[map]
pub static TR7_VMACS: Array<VmacState> = Array::pinned(VMACS_SIZE, 0);

/// Per CPU: the guard's rewrite plan for the frame at hand (`vmac::EgressPlan`). Scratch,
/// not state: not pinned.
#[map]
pub static TR7_EGRESS_PLAN: PerCpuArray<crate::vmac::EgressPlan> =
    PerCpuArray::with_max_entries(1, 0);

/// One copy per CPU: the agent writes them all, the programs cache their verdict in their
/// own (`tr7_common::Fence::verdict`, `verdict::fenced`).
#[map]
pub static TR7_FENCE_CPU: PerCpuArray<Fence> = PerCpuArray::pinned(1, 0);

#[map]
pub static TR7_IFACE_STATS: PerCpuArray<IfaceCounters> = PerCpuArray::pinned(MAX_ATTACHMENTS, 0);

#[map]
pub static TR7_VIP_STATS: PerCpuArray<VipCounters> = PerCpuArray::pinned(MAX_VIPS, 0);

/// Written and read by user space only; declared here so it is created and pinned with the
/// others.
#[map]
pub static TR7_ATTACHMENTS: HashMap<IfaceKey, Attachment> = HashMap::pinned(MAX_ATTACHMENTS, 0);

/// The scope of the VIPs this instance serves (see `tr7_common::VipKey`).
#[unsafe(no_mangle)]
pub static TR7_SCOPE: Global<u32> = Global::new(0);

/// This instance's row in `TR7_IFACE_STATS`.
#[unsafe(no_mangle)]
pub static TR7_SLOT: Global<u32> = Global::new(0);
