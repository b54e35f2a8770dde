//! The VRRP virtual MAC (RFC 9568 7.3) in the data plane, for virtual routers configured
//! with `virtual_mac: true` (docs/dataplane.md, "Virtual MAC").
//!
//! Every node keeps every VIP on its interface, so the kernel answers ARP and neighbour
//! solicitations with the interface MAC and drops frames sent to any other MAC. The
//! programs make the virtual MAC the VIP's link-layer address without a macvlan:
//! - ingress (the gate): a frame to a virtual MAC this node owns gets the interface MAC as
//!   destination, so the stack takes it as its own, and is then judged like any other
//!   frame; to a virtual MAC of a router that is backup here, it is dropped;
//! - egress (the guard): a frame that speaks for an owned VIP of such a router leaves with
//!   the virtual MAC as Ethernet source, and ARP sender address / neighbour discovery
//!   link-layer option rewritten to it; the router's own adverts leave with it as source.
//!
//! Which virtual MACs an attachment serves, and whether they are owned, is in
//! `TR7_VMACS`, written by the agent on the same transition as the VIP table.

use aya_ebpf::programs::TcContext;
use tr7_common::{
    FAMILY_IPV4, FAMILY_IPV6, Reason, VMAC_BACKUP, VMAC_IPV4, VMAC_IPV6, VMAC_OWNED, VMAC_PREFIX,
    VipState, vmac_index,
};

use crate::{
    cursor::{Bytes, Direct},
    eth::ETH_HLEN,
    frame::{Frame, L3, NdKind},
    maps::{TR7_EGRESS_PLAN, TR7_SLOT, TR7_VMACS},
    verdict::fenced,
};

/// The prefix as the word a 4-byte load of the destination gives.
const PREFIX_WORD: u32 = u32::from_ne_bytes(VMAC_PREFIX);

/// Ingress, before the frame is judged: `Err` is the drop reason of a frame to the virtual
/// MAC of a router that is not master here (or fenced). A frame to an owned virtual MAC
/// has its destination rewritten; any other frame is untouched.
#[inline(always)]
pub fn ingress(pkt: &Direct) -> Result<(), Reason> {
    // One load and compare for every frame; the rest only for 00-00-5E-00-xx-xx. The
    // bounds check is the Ethernet header's, which the parse then shares.
    let Ok(eth) = pkt.read::<[u8; ETH_HLEN]>(0) else {
        return Ok(());
    };
    if u32::from_ne_bytes([eth[0], eth[1], eth[2], eth[3]]) != PREFIX_WORD {
        return Ok(());
    }
    let [kind, vrid] = [eth[4], eth[5]];
    let family = match kind {
        VMAC_IPV4 => FAMILY_IPV4,
        VMAC_IPV6 => FAMILY_IPV6,
        _ => return Ok(()),
    };
    let Some(entry) = TR7_VMACS.get(vmac_index(TR7_SLOT.load(), family, vrid)) else {
        return Ok(());
    };
    match entry.state {
        VMAC_OWNED if fenced() => Err(Reason::Fenced),
        VMAC_OWNED => {
            // Cannot fail: the six bytes were read above.
            let _ = pkt.write(0, entry.iface_mac);
            Ok(())
        }
        VMAC_BACKUP => Err(Reason::DroppedNotOwned),
        _ => Ok(()),
    }
}

/// Where the guard rewrites a frame's link-layer addresses, should it speak for an owned
/// virtual-MAC VIP: worked out from the parse before the VIP lookups.
///
/// It waits in `TR7_EGRESS_PLAN`, a per-CPU scratch value, not on the stack. The offsets
/// are constants on each parse path (14, 18 or 22 bytes of Ethernet, ...); kept in
/// registers or on the stack across the lookups and branched on after them, each would be
/// marked precise, the verifier could no longer merge the lookups' states across paths,
/// and the guard went past the kernel's one-million-instruction limit. Read back from the
/// map they are plain unknown numbers.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EgressPlan {
    /// Offset of the ARP sender hardware address; 0: not ARP.
    pub arp_sha: u32,
    /// Offset of the neighbour discovery link-layer address option (its type byte) of an
    /// NS (source) or NA (target); 0: none.
    pub nd_option: u32,
    /// Offset of the ICMPv6 header, whose checksum covers the option.
    pub icmp: u32,
    /// A VRRP advert: the fifth byte of its family's virtual MAC and its VRID
    /// (`kind << 8 | vrid`); 0: not an advert.
    pub advert: u32,
}

impl EgressPlan {
    pub const NONE: Self = Self {
        arp_sha: 0,
        nd_option: 0,
        icmp: 0,
        advert: 0,
    };
}

const IPPROTO_VRRP: u8 = 112;
const ND_OPT_SOURCE_LLADDR: u8 = 1;
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// Neighbour solicitations and advertisements carry their options after 24 bytes.
const ND_OPTIONS_AT: usize = 24;
/// [`speaker`]: the frame's neighbour discovery option is not the speaker's to rewrite.
const KEEP_ND_OPTION: u32 = 1 << 16;

/// Fills this CPU's [`EgressPlan`] for `frame` (egress; cleared by the caller before).
#[inline(always)]
pub fn plan(pkt: &impl Bytes, frame: &Frame) {
    let Some(p) = TR7_EGRESS_PLAN.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a per-CPU value of this CPU; nothing else writes it concurrently.
    let p = unsafe { &mut *p };
    match frame.l3 {
        // Sender hardware address: after htype, ptype, hlen, plen and oper.
        L3::Arp => p.arp_sha = (frame.l3_offset + 8) as u32,
        L3::Ipv4 | L3::Ipv6 if frame.proto == IPPROTO_VRRP => {
            // Version and type, then the VRID.
            if let Ok([_, vrid]) = pkt.read::<[u8; 2]>(frame.l4_offset) {
                let kind = if frame.l3 == L3::Ipv6 {
                    VMAC_IPV6
                } else {
                    VMAC_IPV4
                };
                p.advert = u32::from(kind) << 8 | u32::from(vrid);
            }
        }
        L3::Ipv6 if frame.nd != NdKind::None => {
            let kind = if frame.nd == NdKind::Advert {
                ND_OPT_TARGET_LLADDR
            } else {
                ND_OPT_SOURCE_LLADDR
            };
            // The first option, when it is that link-layer address option for Ethernet
            // (length 1, in units of 8 bytes).
            let at = frame.l4_offset + ND_OPTIONS_AT;
            if let Ok([t, len]) = pkt.read::<[u8; 2]>(at)
                && t == kind
                && len == 1
            {
                p.nd_option = at as u32;
                p.icmp = frame.l4_offset as u32;
            }
        }
        _ => {}
    }
}

/// Who a frame speaks for, from the state of the VIP it speaks for: 0 unless that is an
/// owned VIP with a virtual MAC (the caller judged ownership). `nd_option`: the frame's
/// neighbour discovery option, if any, belongs to this VIP.
#[inline(always)]
pub fn speaker(family: u8, state: &VipState, nd_option: bool) -> u32 {
    if state.virtual_mac == 0 {
        return 0;
    }
    let kind = if family == FAMILY_IPV6 {
        VMAC_IPV6
    } else {
        VMAC_IPV4
    };
    let keep = if nd_option { 0 } else { KEEP_ND_OPTION };
    keep | u32::from(kind) << 8 | u32::from(state.vrid)
}

/// Rewrites a frame the guard lets out to speak with the virtual MAC of `speaker` (from
/// [`speaker`]), or of its advert's router when that is master here: the Ethernet source,
/// and per `plan` the ARP sender hardware address or the neighbour discovery option (with
/// the ICMPv6 checksum updated). A failed store leaves the rest as it is: the frame still
/// leaves, partly with the interface MAC.
#[inline(always)]
pub fn speak(ctx: &TcContext, speaker: u32, plan: &EgressPlan) {
    let speaker = if speaker != 0 {
        speaker
    } else if plan.advert != 0 && advert_owned(plan.advert) {
        plan.advert | KEEP_ND_OPTION
    } else {
        return;
    };
    let mac = StackMac([
        VMAC_PREFIX[0],
        VMAC_PREFIX[1],
        VMAC_PREFIX[2],
        VMAC_PREFIX[3],
        (speaker >> 8) as u8,
        speaker as u8,
    ]);
    if ctx.store(6, &mac.0, 0).is_err() {
        return;
    }
    if plan.arp_sha != 0 {
        let _ = ctx.store(plan.arp_sha as usize, &mac.0, 0);
    }
    if plan.nd_option != 0 && speaker & KEEP_ND_OPTION == 0 {
        let at = plan.nd_option as usize;
        // The whole option (type, length, MAC) in one aligned 8-byte read.
        let Ok(NdOption([_, _, old @ ..])) = ctx.load::<NdOption>(at) else {
            return;
        };
        if ctx.store(at + 2, &mac.0, 0).is_err() {
            return;
        }
        // The option starts 24 bytes into the message, so its MAC lies on 16-bit word
        // boundaries of the checksum: each word is replaced in it (flag 2: a 2-byte field,
        // values as stored, in network order).
        let csum = plan.icmp as usize + 2;
        for i in 0..3 {
            let from = u16::from_ne_bytes([old[2 * i], old[2 * i + 1]]);
            let to = u16::from_ne_bytes([mac.0[2 * i], mac.0[2 * i + 1]]);
            let _ = ctx.l4_csum_replace(csum, u64::from(from), u64::from(to), 2);
        }
    }
}

/// Whether the advert's router (`kind << 8 | vrid`) owns its virtual MAC here.
#[inline(always)]
fn advert_owned(advert: u32) -> bool {
    let family = if (advert >> 8) as u8 == VMAC_IPV6 {
        FAMILY_IPV6
    } else {
        FAMILY_IPV4
    };
    TR7_VMACS
        .get(vmac_index(TR7_SLOT.load(), family, advert as u8))
        .is_some_and(|e| e.state == VMAC_OWNED)
}

/// A MAC on the BPF stack. The verifier refuses misaligned stack accesses, and with
/// misaligned loads allowed LLVM may store a bare `[u8; 6]` as a word at an odd offset;
/// aligned to 8, every word store lands on a word boundary.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct StackMac(pub [u8; 6]);

/// A neighbour discovery link-layer address option for Ethernet (type, length 1, MAC), on
/// the stack, aligned for the same reason as [`StackMac`].
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct NdOption(pub [u8; 8]);
