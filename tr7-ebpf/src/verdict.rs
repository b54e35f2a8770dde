//! Ownership decisions shared by the gate and the guard: the VIP lookup, the liveness fence,
//! and the counters every verdict increments.

use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};
use tr7_common::{
    FAMILY_IPV4, FAMILY_IPV6, Fence, Reason, SLOT_EMPTY, SLOT_USED, VIP_TABLE_PROBES,
    VIP_TABLE_SIZE, VipKey, VipState, vip_home,
};

use crate::maps::{
    TR7_FENCE_CPU, TR7_IFACE_STATS, TR7_SCOPE, TR7_SLOT, TR7_VIP_SLOTS, TR7_VIP_STATS,
};

/// The VLAN tags a frame was seen with, outermost first (0 where absent).
#[derive(Clone, Copy)]
pub struct Tags {
    pub outer: u16,
    pub inner: u16,
}

#[inline(always)]
pub fn v4_key(tags: Tags, addr: &[u32; 4]) -> VipKey {
    VipKey {
        scope: TR7_SCOPE.load(),
        outer_vlan: tags.outer,
        inner_vlan: tags.inner,
        family: FAMILY_IPV4,
        _pad: [0; 3],
        addr: [addr[0], 0, 0, 0],
    }
}

#[inline(always)]
pub fn v6_key(tags: Tags, addr: [u32; 4]) -> VipKey {
    VipKey {
        scope: TR7_SCOPE.load(),
        outer_vlan: tags.outer,
        inner_vlan: tags.inner,
        family: FAMILY_IPV6,
        _pad: [0; 3],
        addr,
    }
}

/// Looks `key` up in the VIP table: its home slot and up to `VIP_TABLE_PROBES - 1` after
/// it, stopping at an empty slot. Array lookups are inlined, so this makes no call.
#[inline(always)]
pub fn vip(key: &VipKey) -> Option<VipState> {
    let words = key.words();
    let home = vip_home(key);
    for i in 0..VIP_TABLE_PROBES {
        let slot = TR7_VIP_SLOTS.get(home.wrapping_add(i) & (VIP_TABLE_SIZE - 1))?;
        if slot.flags == SLOT_EMPTY {
            return None;
        }
        if slot.flags == SLOT_USED && same_key(&slot.key, &words) {
            return Some(slot.state);
        }
    }
    None
}

/// A slot's key against `words` ([`VipKey::words`]), a 64-bit word at a time (the slot is
/// 8-byte aligned in the array).
#[inline(always)]
fn same_key(slot: &VipKey, words: &[u64; 4]) -> bool {
    let w = |i: usize| -> u64 {
        // SAFETY: word `i` < 3 of a 28-byte key; unaligned loads are allowed (see build.rs).
        unsafe { core::ptr::read_unaligned((slot as *const VipKey as *const u64).add(i)) }
    };
    w(0) == words[0] && w(1) == words[1] && w(2) == words[2] && u64::from(slot.addr[3]) == words[3]
}

/// Whether the agent's heartbeat is older than the fence (a fence of 0 never fires).
///
/// Worked out once per tick and CPU, and kept in this CPU's copy of the fence
/// ([`tr7_common::Fence::verdict`]): a frame costs one per-CPU lookup, one load of jiffies
/// (`bpf_jiffies64`, which the verifier inlines) and a compare. The clock read, a helper
/// call, happens only on the first frame of a tick; per frame it cost as much as the rest of
/// the gate (docs/performance.md). The agent's writes clear every CPU's verdict, so a new
/// heartbeat or interval counts at once. The fence fires up to two ticks late: the verdict
/// holds for the tick, and the coarse clock it is taken with lags jiffies by up to one.
#[inline(always)]
pub fn fenced() -> bool {
    let Some(fence) = TR7_FENCE_CPU.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's copy; the programs on this CPU do not run concurrently, and an
    // agent write racing this one leaves a verdict at most one tick old (see `Fence`).
    let fence = unsafe { &mut *fence };
    // SAFETY: bpf_jiffies64 has no preconditions.
    let jiffies = unsafe { bpf_jiffies64() };
    if fence.verdict >> 1 != jiffies {
        fence.verdict = jiffies << 1 | u64::from(expired(fence));
    }
    fence.verdict & 1 != 0
}

/// The fence check proper, once per tick and CPU (a function of its own, off the path every
/// frame takes).
#[inline(never)]
fn expired(fence: &Fence) -> bool {
    if fence.interval_ns == 0 {
        return false;
    }
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    now.saturating_sub(fence.heartbeat_ns) > fence.interval_ns
}

/// Whether this node may speak for `state`'s VIP right now.
#[inline(always)]
pub fn owned(state: &VipState) -> Result<(), Reason> {
    if state.owned == 0 {
        return Err(Reason::DroppedNotOwned);
    }
    if fenced() {
        return Err(Reason::Fenced);
    }
    Ok(())
}

#[inline(always)]
pub fn count_iface(reason: Reason) {
    if cfg!(feature = "floor-no-counters") {
        return;
    }
    let Some(counters) = TR7_IFACE_STATS.get_ptr_mut(TR7_SLOT.load()) else {
        return;
    };
    // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
    if let Some(slot) = unsafe { (*counters).packets.get_mut(reason as usize) } {
        *slot += 1;
    }
}

pub enum VipTraffic {
    RxPassed,
    RxDropped,
    TxGuarded,
}

#[inline(always)]
pub fn count_vip(state: &VipState, kind: VipTraffic, bytes: u64) {
    if cfg!(feature = "floor-no-counters") {
        return;
    }
    let Some(c) = TR7_VIP_STATS.get_ptr_mut(state.index) else {
        return;
    };
    // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
    let c = unsafe { &mut *c };
    match kind {
        VipTraffic::RxPassed => {
            c.rx_passed_packets += 1;
            c.rx_passed_bytes += bytes;
        }
        VipTraffic::RxDropped => {
            c.rx_dropped_packets += 1;
            c.rx_dropped_bytes += bytes;
        }
        VipTraffic::TxGuarded => {
            c.tx_guarded_packets += 1;
            c.tx_guarded_bytes += bytes;
        }
    }
}
