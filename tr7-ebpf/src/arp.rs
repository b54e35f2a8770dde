//! ARP for IPv4 over Ethernet (RFC 826).

use crate::{
    cursor::{Bytes, Truncated},
    frame::{Frame, Side},
};

const ARP_LEN: usize = 28;

/// Fills `frame.src` with the sender protocol address (who speaks) and `frame.dst` with the
/// target protocol address (who is asked for). `Ok(false)` for ARP that is not
/// Ethernet/IPv4 (other hardware or protocol types).
#[inline(always)]
pub fn parse(
    pkt: &impl Bytes,
    offset: usize,
    side: Side,
    frame: &mut Frame,
) -> Result<bool, Truncated> {
    // The whole fixed-size header must be there, even the parts we do not read.
    let [_last] = pkt.read::<[u8; 1]>(offset + ARP_LEN - 1)?;
    let [htype_hi, htype_lo, ptype_hi, ptype_lo, hlen, plen] = pkt.read::<[u8; 6]>(offset)?;
    if u16::from_be_bytes([htype_hi, htype_lo]) != 1
        || u16::from_be_bytes([ptype_hi, ptype_lo]) != 0x0800
        || hlen != 6
        || plen != 4
    {
        return Ok(false);
    }
    match side {
        Side::Ingress => frame.dst[0] = pkt.word_at(offset + 24)?,
        Side::Egress => frame.src[0] = pkt.word_at(offset + 14)?,
    }
    Ok(true)
}
