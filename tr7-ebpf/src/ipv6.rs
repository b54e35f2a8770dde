//! IPv6: the addresses, and the ICMPv6 neighbour discovery message behind any extension
//! headers (RFC 8200 4, RFC 4861 4.3 and 4.4).

use crate::{
    cursor::{Bytes, Truncated},
    frame::{Frame, NdKind, Side},
};

const IPV6_HLEN: usize = 40;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_FRAGMENT: u8 = 44;
const NEXTHDR_AUTH: u8 = 51;
const NEXTHDR_DEST: u8 = 60;
const NEXTHDR_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Enough for hop-by-hop, destination options, routing and fragment headers in one packet.
const MAX_EXT_HEADERS: usize = 6;

/// Fills the addresses and the neighbour discovery fields of `frame`; a version other than
/// 6 counts as malformed.
#[inline(always)]
pub fn parse(
    pkt: &impl Bytes,
    offset: usize,
    side: Side,
    frame: &mut Frame,
) -> Result<(), Truncated> {
    let [ver_tc, _, _, _, _, _, next, _hop] = pkt.read::<[u8; 8]>(offset)?;
    if ver_tc >> 4 != 6 {
        return Err(Truncated);
    }
    // The whole fixed header must be there whichever address is read.
    let [_last] = pkt.read::<[u8; 1]>(offset + IPV6_HLEN - 1)?;
    match side {
        Side::Ingress => frame.dst = pkt.addr16_at(offset + 24)?,
        Side::Egress => frame.src = pkt.addr16_at(offset + 8)?,
    }
    neighbour_discovery(pkt, next, offset + IPV6_HLEN, side, frame)
}

#[inline(always)]
fn neighbour_discovery(
    pkt: &impl Bytes,
    mut next: u8,
    mut offset: usize,
    side: Side,
    frame: &mut Frame,
) -> Result<(), Truncated> {
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            NEXTHDR_ICMPV6 => break,
            // Next header and length are read as one pair: single-byte reads at a variable
            // offset compile to a bounds check the verifier cannot use (`at >= end`).
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let [nh, len] = pkt.read::<[u8; 2]>(offset)?;
                next = nh;
                offset += (usize::from(len) + 1) * 8;
            }
            NEXTHDR_AUTH => {
                let [nh, len] = pkt.read::<[u8; 2]>(offset)?;
                next = nh;
                offset += (usize::from(len) + 2) * 4;
            }
            NEXTHDR_FRAGMENT => {
                // Only the first fragment carries the ICMPv6 header.
                let [nh, _, off_hi, off_lo] = pkt.read::<[u8; 4]>(offset)?;
                if u16::from_be_bytes([off_hi, off_lo]) & 0xfff8 != 0 {
                    return Ok(());
                }
                next = nh;
                offset += 8;
            }
            _ => break,
        }
    }
    if side == Side::Egress {
        frame.proto = next;
        frame.l4_offset = offset;
    }
    if next != NEXTHDR_ICMPV6 {
        return Ok(());
    }
    // Every ICMPv6 message has type, code and checksum.
    let [icmp_type, ..] = pkt.read::<[u8; 4]>(offset)?;
    match icmp_type {
        // Type, code, checksum, flags/reserved, then the 16-byte target.
        ND_NEIGHBOR_SOLICIT => frame.nd = NdKind::Solicit,
        ND_NEIGHBOR_ADVERT => frame.nd = NdKind::Advert,
        _ => return Ok(()),
    }
    frame.nd_target = pkt.addr16_at(offset + 8)?;
    Ok(())
}
