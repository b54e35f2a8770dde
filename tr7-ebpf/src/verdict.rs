//! Ownership decisions shared by the gate and the guard: the VIP lookup, the liveness fence,
//! and the counters every verdict increments.

use aya_ebpf::helpers::{bpf_jiffies64, bpf_ktime_get_coarse_ns};
use tr7_common::{
    FAMILY_IPV4, FAMILY_IPV6, Reason, SLOT_EMPTY, SLOT_USED, VIP_TABLE_PROBES, VIP_TABLE_SIZE,
    VipKey, VipState, vip_hash,
};

use crate::maps::{
    TR7_CLOCK, TR7_FENCE, TR7_IFACE_STATS, TR7_SCOPE, TR7_SLOT, TR7_VIP_STATS, TR7_VIP_TABLE,
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
    let home = vip_hash(key);
    for i in 0..VIP_TABLE_PROBES {
        let slot = TR7_VIP_TABLE.get(home.wrapping_add(i) & (VIP_TABLE_SIZE - 1))?;
        if slot.flags == SLOT_EMPTY {
            return None;
        }
        if slot.flags == SLOT_USED && same_key(&slot.key, key) {
            return Some(slot.state);
        }
    }
    None
}

/// Field by field, without `PartialEq` (which may become a `bcmp` call BPF does not have).
#[inline(always)]
fn same_key(a: &VipKey, b: &VipKey) -> bool {
    if a.scope != b.scope
        || a.outer_vlan != b.outer_vlan
        || a.inner_vlan != b.inner_vlan
        || a.family != b.family
    {
        return false;
    }
    a.addr[0] == b.addr[0]
        && a.addr[1] == b.addr[1]
        && a.addr[2] == b.addr[2]
        && a.addr[3] == b.addr[3]
}

/// Whether the agent's heartbeat is older than the fence (a fence of 0 never fires).
#[inline(always)]
pub fn fenced() -> bool {
    let Some(fence) = TR7_FENCE.get(0) else {
        return false;
    };
    if fence.interval_ns == 0 {
        return false;
    }
    now_ns().saturating_sub(fence.heartbeat_ns) > fence.interval_ns
}

/// CLOCK_MONOTONIC_COARSE (the clock the agent's heartbeat is written in, as of the last
/// tick), read through the helper at most once per tick and CPU.
///
/// Every helper call costs a call and a return (with the SRSO mitigation, the return is
/// the expensive part), and `bpf_ktime_get_ns` also reads the clock source, which under a
/// hypervisor is slow: together about 45 ns per frame on the development machine, as much
/// as the rest of the gate (docs/performance.md). `bpf_jiffies64` is inlined by the
/// verifier into one load, and the coarse clock only moves when jiffies do, so the reading
/// taken at the current jiffies value is reused. The fence may fire up to two ticks late
/// (the tick updates jiffies just before the coarse clock: 8 ms at HZ=250); the shortest
/// fence is Master_Down_Interval + advert interval at 10 ms adverts, over 40 ms.
#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: bpf_jiffies64 and bpf_ktime_get_coarse_ns have no preconditions.
    let jiffies = unsafe { bpf_jiffies64() };
    let Some(cache) = TR7_CLOCK.get_ptr_mut(0) else {
        // SAFETY: as above.
        return unsafe { bpf_ktime_get_coarse_ns() };
    };
    // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
    let cache = unsafe { &mut *cache };
    if cache.jiffies != jiffies || cache.now_ns == 0 {
        cache.jiffies = jiffies;
        // SAFETY: as above.
        cache.now_ns = unsafe { bpf_ktime_get_coarse_ns() };
    }
    cache.now_ns
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
