//! IPv4: the addresses, after checking the header is one.

use crate::{
    cursor::{Bytes, Truncated},
    frame::Frame,
};

/// Fills `frame.src`/`frame.dst`; a header that is not plausibly IPv4 (version, IHL, total
/// length) counts as malformed.
#[inline(always)]
pub fn parse(pkt: &impl Bytes, offset: usize, frame: &mut Frame) -> Result<(), Truncated> {
    let [ver_ihl, _tos, len_hi, len_lo] = pkt.read::<[u8; 4]>(offset)?;
    let ihl = usize::from(ver_ihl & 0x0f);
    if ver_ihl >> 4 != 4 || ihl < 5 || usize::from(u16::from_be_bytes([len_hi, len_lo])) < ihl * 4 {
        return Err(Truncated);
    }
    let src: [u8; 4] = pkt.read(offset + 12)?;
    let dst: [u8; 4] = pkt.read(offset + 16)?;
    frame.src[..4].copy_from_slice(&src);
    frame.dst[..4].copy_from_slice(&dst);
    Ok(())
}
