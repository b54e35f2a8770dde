//! Ownership decisions shared by the gate and the guard: segment and VIP lookups, the
//! liveness fence, and the counters every verdict increments.

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_ktime_get_ns};
use tr7_common::{
    FAMILY_IPV4, FAMILY_IPV6, IfaceCounters, IfaceKey, Reason, SegmentKey, VipKey, VipState,
};

use crate::maps::{TR7_FENCE, TR7_IFACE_STATS, TR7_NETNS, TR7_SEGMENTS, TR7_VIP_STATS, TR7_VIPS};

/// The segment a frame belongs to, or `None` when no VIP lives where it was seen.
#[inline(always)]
pub fn segment(ifindex: u32, outer_vlan: u16, inner_vlan: u16) -> Option<u32> {
    let key = SegmentKey {
        netns: TR7_NETNS.load(),
        ifindex,
        outer_vlan,
        inner_vlan,
    };
    // SAFETY: the value is a plain u32 copied out at once.
    unsafe { TR7_SEGMENTS.get(&key) }.copied()
}

#[inline(always)]
pub fn v4_key(segment: u32, addr: &[u8; 16]) -> VipKey {
    let mut full = [0u8; 16];
    full[0] = addr[0];
    full[1] = addr[1];
    full[2] = addr[2];
    full[3] = addr[3];
    VipKey {
        segment,
        family: FAMILY_IPV4,
        _pad: [0; 3],
        addr: full,
    }
}

#[inline(always)]
pub fn v6_key(segment: u32, addr: [u8; 16]) -> VipKey {
    VipKey {
        segment,
        family: FAMILY_IPV6,
        _pad: [0; 3],
        addr,
    }
}

#[inline(always)]
pub fn vip(key: &VipKey) -> Option<VipState> {
    // SAFETY: the value is copied out at once; a concurrent update yields either version.
    unsafe { TR7_VIPS.get(key) }.copied()
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
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
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
pub fn count_iface(ifindex: u32, reason: Reason) {
    let key = IfaceKey {
        netns: TR7_NETNS.load(),
        ifindex,
    };
    let idx = reason as usize;
    match TR7_IFACE_STATS.get_ptr_mut(&key) {
        Some(counters) => {
            // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
            if let Some(slot) = unsafe { (*counters).packets.get_mut(idx) } {
                *slot += 1;
            }
        }
        None => {
            let mut counters = IfaceCounters::default();
            if let Some(slot) = counters.packets.get_mut(idx) {
                *slot = 1;
            }
            // A concurrent first insert on another CPU wins; losing one count there is fine.
            let _ = TR7_IFACE_STATS.insert(&key, &counters, u64::from(BPF_NOEXIST));
        }
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
