//! IPv4: the addresses, after checking the header is one.

use crate::{
    cursor::{Bytes, Truncated},
    frame::{Frame, Side},
};

/// Fills `frame.src`/`frame.dst`; a header that is not plausibly IPv4 (version, IHL, total
/// length) counts as malformed.
#[inline(always)]
pub fn parse(
    pkt: &impl Bytes,
    offset: usize,
    side: Side,
    frame: &mut Frame,
) -> Result<(), Truncated> {
    // The whole 20-byte header must be there, whichever address this side reads. Checked
    // first, so the reads below need no bounds check of their own.
    let [_last] = pkt.read::<[u8; 1]>(offset + 19)?;
    let [ver_ihl, _tos, len_hi, len_lo] = pkt.read::<[u8; 4]>(offset)?;
    let ihl = usize::from(ver_ihl & 0x0f);
    if ver_ihl >> 4 != 4 || ihl < 5 || usize::from(u16::from_be_bytes([len_hi, len_lo])) < ihl * 4 {
        return Err(Truncated);
    }
    match side {
        Side::Ingress => frame.dst[0] = pkt.word_at(offset + 16)?,
        Side::Egress => {
            frame.src[0] = pkt.word_at(offset + 12)?;
            let [_ttl, proto] = pkt.read::<[u8; 2]>(offset + 8)?;
            frame.proto = proto;
            frame.l4_offset = offset + ihl * 4;
        }
    }
    Ok(())
}
