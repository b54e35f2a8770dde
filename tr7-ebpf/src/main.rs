//! TR7's data plane: the XDP VIP gate on ingress and the TC VIP guard on egress.
//!
//! Entry points are thin: they build a [`cursor::Bytes`] view and hand it to `try_*`/`decide_*`
//! functions that return a verdict and the [`Reason`] counted for it.
// Built for the BPF target by aya-build; on the host (clippy, `cargo test --workspace`)
// it compiles as an empty program so the whole workspace lints and builds.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod arp;
mod cursor;
mod eth;
mod frame;
mod ipv4;
mod ipv6;
mod maps;
mod verdict;
mod vmac;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use tr7_common::{FAMILY_IPV4, FAMILY_IPV6, Reason, VipKey, VipState};

use crate::{
    cursor::{Bytes, Direct, Skb},
    frame::{Frame, L3, NdKind, Side},
    maps::TR7_EGRESS_PLAN,
    verdict::{Tags, VipTraffic, count_iface, count_vip, owned, v4_key, v6_key, vip},
    vmac::EgressPlan,
};

/// XDP ingress: traffic, ARP requests and neighbour solicitations for a VIP this node does
/// not own are dropped, and frames to the virtual MAC of a router that is backup here;
/// everything else passes (a frame to an owned virtual MAC with the interface MAC as its
/// destination, see [`vmac`]).
#[xdp]
pub fn tr7_gate(ctx: XdpContext) -> u32 {
    // `black_box`: the rest of the gate stays in the program (its size, stack and saved
    // registers), only not run.
    if cfg!(feature = "floor-return") && core::hint::black_box(true) {
        return xdp_action::XDP_PASS;
    }
    let pkt = Direct::new(ctx.data(), ctx.data_end());
    let reason = match vmac::ingress(&pkt) {
        Ok(()) => decide_ingress(&pkt),
        Err(reason) => reason,
    };
    count_iface(reason);
    if reason.is_drop() {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}

/// What kind of claim on a VIP a frame makes; decides which drop reason is counted.
#[derive(Clone, Copy)]
enum Claim {
    Ip,
    Arp,
    Nd,
}

#[inline(always)]
fn decide_ingress(pkt: &impl Bytes) -> Reason {
    let mut frame = Frame::new();
    if frame::parse(pkt, Side::Ingress, &mut frame).is_err() {
        return Reason::Malformed;
    }
    if frame.l3 == L3::Other {
        return Reason::PassedOtherProtocol;
    }
    let tags = frame_tags(&frame, 0);
    let bytes = pkt.len() as u64;
    // One `judge` per address family, so each inlined copy hashes and compares a key whose
    // shape the compiler knows (an IPv4 key's three zero words fold away).
    match frame.l3 {
        L3::Ipv4 | L3::Arp => {
            let claim = if frame.l3 == L3::Arp {
                Claim::Arp
            } else {
                Claim::Ip
            };
            judge(&v4_key(tags, &frame.dst), claim, bytes)
        }
        _ => {
            let (addr, claim) = if frame.nd == NdKind::Solicit {
                (frame.nd_target, Claim::Nd)
            } else {
                (frame.dst, Claim::Ip)
            };
            judge(&v6_key(tags, addr), claim, bytes)
        }
    }
}

/// The ingress verdict for a frame that claims `key`.
#[inline(always)]
fn judge(key: &VipKey, claim: Claim, bytes: u64) -> Reason {
    if cfg!(feature = "floor-no-lookup") {
        // Keeps the key and its hash, which the compiler would otherwise drop unused.
        core::hint::black_box(tr7_common::vip_home(key));
        return Reason::PassedOwned;
    }
    let Some(state) = vip(key) else {
        return Reason::PassedNotVip;
    };
    match owned(&state) {
        Ok(()) => {
            count_vip(&state, VipTraffic::RxPassed, bytes);
            Reason::PassedOwned
        }
        Err(reason) => {
            count_vip(&state, VipTraffic::RxDropped, bytes);
            match (reason, claim) {
                (Reason::Fenced, _) => Reason::Fenced,
                (_, Claim::Arp) => Reason::ArpSuppressed,
                (_, Claim::Nd) => Reason::NdSuppressed,
                (_, Claim::Ip) => Reason::DroppedNotOwned,
            }
        }
    }
}

/// The VLAN tags of a frame. `meta_vlan` is a tag the kernel already took out of the frame
/// into skb metadata (TC on egress); it is then the outermost tag. 0 means none: VID 0 is
/// not a VLAN, and a plain integer (not an `Option`) keeps every register the verifier
/// reads initialised.
#[inline(always)]
fn frame_tags(frame: &Frame, meta_vlan: u16) -> Tags {
    if meta_vlan != 0 {
        Tags {
            outer: meta_vlan,
            inner: frame.tags[0],
        }
    } else {
        Tags {
            outer: frame.tags[0],
            inner: frame.tags[1],
        }
    }
}

/// TC egress: frames that would speak for a VIP this node does not own (ARP from it, an NA
/// for it, IP from it) are dropped, so a backup never announces or answers for a VIP.
/// Frames that speak for an owned VIP of a virtual-MAC router, and that router's adverts,
/// leave with the virtual MAC (see [`vmac`]).
#[classifier]
pub fn tr7_guard(ctx: TcContext) -> i32 {
    // SAFETY: reading fields of the context the kernel handed us.
    let (len, vlan_present, vlan_tci, vlan_proto) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.len, skb.vlan_present, skb.vlan_tci, skb.vlan_proto)
    };
    let meta_vlan = if vlan_present != 0 {
        eth::vlan_key(u16::from_be(vlan_proto as u16), vlan_tci as u16)
    } else {
        0
    };
    let pkt = Skb::new(&ctx, len);
    // Cleared first: the plan of the previous frame on this CPU must not apply to this one.
    let plan = TR7_EGRESS_PLAN.get_ptr_mut(0);
    if let Some(p) = plan {
        // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
        unsafe { *p = EgressPlan::NONE };
    }
    let (reason, speaker) = decide_egress(&pkt, meta_vlan, u64::from(len));
    count_iface(reason);
    if reason.is_drop() {
        return TC_ACT_SHOT;
    }
    if let Some(p) = plan {
        // SAFETY: as above.
        let plan = unsafe { *p };
        vmac::speak(&ctx, speaker, &plan);
    }
    TC_ACT_OK
}

/// The egress verdict, and who the frame speaks for: 0, or the virtual MAC's fifth byte and
/// VRID (`kind << 8 | vrid`, see [`vmac::speaker`]) of the owned virtual-MAC VIP it speaks
/// for. What to rewrite besides the Ethernet source is planned in `TR7_EGRESS_PLAN`.
#[inline(always)]
fn decide_egress(pkt: &impl Bytes, meta_vlan: u16, bytes: u64) -> (Reason, u32) {
    let mut frame = Frame::new();
    if frame::parse(pkt, Side::Egress, &mut frame).is_err() {
        return (Reason::Malformed, 0);
    }
    if frame.l3 == L3::Other {
        return (Reason::EgressPassed, 0);
    }
    vmac::plan(pkt, &frame);
    let tags = frame_tags(&frame, meta_vlan);
    match frame.l3 {
        L3::Ipv4 | L3::Arp => {
            let (reason, state) = judge_egress(&v4_key(tags, &frame.src), bytes);
            (reason, vmac::speaker(FAMILY_IPV4, &state, true))
        }
        _ => {
            let mut target = VipState::default();
            if frame.nd == NdKind::Advert {
                let (r, state) = judge_egress(&v6_key(tags, frame.nd_target), bytes);
                if r.is_drop() {
                    return (r, 0);
                }
                target = state;
            }
            let (reason, source) = judge_egress(&v6_key(tags, frame.src), bytes);
            // An NA's link-layer option is the target's; a solicitation's, the source's.
            let speaker = if target.virtual_mac != 0 {
                vmac::speaker(FAMILY_IPV6, &target, true)
            } else {
                vmac::speaker(FAMILY_IPV6, &source, frame.nd != NdKind::Advert)
            };
            (reason, speaker)
        }
    }
}

/// The egress verdict for a frame that speaks for `key`, and the VIP's state when it is an
/// owned VIP that may speak (default, `virtual_mac` 0, otherwise).
#[inline(always)]
fn judge_egress(key: &VipKey, bytes: u64) -> (Reason, VipState) {
    let Some(state) = unpack(egress_vip(key)) else {
        return (Reason::EgressPassed, VipState::default());
    };
    match owned(&state) {
        Ok(()) => (Reason::EgressPassed, state),
        Err(_) => {
            count_vip(&state, VipTraffic::TxGuarded, bytes);
            (Reason::EgressGuarded, VipState::default())
        }
    }
}

/// The guard's VIP lookup, as a function of its own (a BPF-to-BPF call) returning the
/// state packed in one register, so the verifier's states for the probe loop do not
/// multiply with the guard's other paths. The gate keeps the inlined lookup: its path is
/// short, and a call would cost every frame.
#[inline(never)]
fn egress_vip(key: &VipKey) -> u64 {
    match vip(key) {
        Some(s) => {
            1 << 63
                | u64::from(s.index)
                | u64::from(s.owned) << 32
                | u64::from(s.virtual_mac) << 40
                | u64::from(s.vrid) << 48
        }
        None => 0,
    }
}

#[inline(always)]
fn unpack(packed: u64) -> Option<VipState> {
    if packed >> 63 == 0 {
        return None;
    }
    Some(VipState {
        owned: (packed >> 32) as u8,
        virtual_mac: (packed >> 40) as u8,
        vrid: (packed >> 48) as u8,
        _pad: 0,
        index: packed as u32,
    })
}

tr7_ebpf::program_binary!();
