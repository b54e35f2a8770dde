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

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT, xdp_action},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use tr7_common::{Reason, VipKey};

use crate::{
    cursor::{Bytes, Direct, Skb},
    frame::{Frame, L3, NdKind, Side},
    verdict::{Tags, VipTraffic, count_iface, count_vip, owned, v4_key, v6_key, vip},
};

/// XDP ingress: traffic, ARP requests and neighbour solicitations for a VIP this node does
/// not own are dropped; everything else passes untouched.
#[xdp]
pub fn tr7_gate(ctx: XdpContext) -> u32 {
    let pkt = Direct::new(ctx.data(), ctx.data_end());
    let reason = decide_ingress(&pkt);
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
            judge(&v4_key(tags, &frame.dst), claim, bytes, Direction::Ingress)
        }
        _ => {
            let (addr, claim) = if frame.nd == NdKind::Solicit {
                (frame.nd_target, Claim::Nd)
            } else {
                (frame.dst, Claim::Ip)
            };
            judge(&v6_key(tags, addr), claim, bytes, Direction::Ingress)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// The verdict for a frame that claims `key`.
#[inline(always)]
fn judge(key: &VipKey, claim: Claim, bytes: u64, dir: Direction) -> Reason {
    let Some(state) = vip(key) else {
        return if dir == Direction::Ingress {
            Reason::PassedNotVip
        } else {
            Reason::EgressPassed
        };
    };
    match (owned(&state), dir) {
        (Ok(()), Direction::Ingress) => {
            count_vip(&state, VipTraffic::RxPassed, bytes);
            Reason::PassedOwned
        }
        (Ok(()), Direction::Egress) => Reason::EgressPassed,
        (Err(reason), Direction::Ingress) => {
            count_vip(&state, VipTraffic::RxDropped, bytes);
            match (reason, claim) {
                (Reason::Fenced, _) => Reason::Fenced,
                (_, Claim::Arp) => Reason::ArpSuppressed,
                (_, Claim::Nd) => Reason::NdSuppressed,
                (_, Claim::Ip) => Reason::DroppedNotOwned,
            }
        }
        (Err(_), Direction::Egress) => {
            count_vip(&state, VipTraffic::TxGuarded, bytes);
            Reason::EgressGuarded
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
    let reason = decide_egress(&pkt, meta_vlan, u64::from(len));
    count_iface(reason);
    if reason.is_drop() {
        TC_ACT_SHOT
    } else {
        TC_ACT_OK
    }
}

#[inline(always)]
fn decide_egress(pkt: &impl Bytes, meta_vlan: u16, bytes: u64) -> Reason {
    let mut frame = Frame::new();
    if frame::parse(pkt, Side::Egress, &mut frame).is_err() {
        return Reason::Malformed;
    }
    if frame.l3 == L3::Other {
        return Reason::EgressPassed;
    }
    let tags = frame_tags(&frame, meta_vlan);
    match frame.l3 {
        L3::Ipv4 | L3::Arp => judge(
            &v4_key(tags, &frame.src),
            Claim::Ip,
            bytes,
            Direction::Egress,
        ),
        _ => {
            if frame.nd == NdKind::Advert {
                let r = judge(
                    &v6_key(tags, frame.nd_target),
                    Claim::Nd,
                    bytes,
                    Direction::Egress,
                );
                if r.is_drop() {
                    return r;
                }
            }
            judge(
                &v6_key(tags, frame.src),
                Claim::Ip,
                bytes,
                Direction::Egress,
            )
        }
    }
}

tr7_ebpf::program_binary!();
