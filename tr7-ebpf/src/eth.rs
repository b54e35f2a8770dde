//! Ethernet II with up to two VLAN tags (802.1Q C-tag 0x8100, 802.1ad S-tag 0x88a8).

use tr7_common::{VLAN_8021AD, VLAN_VID_MASK};

use crate::cursor::{Bytes, Truncated};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
const VLAN_HLEN: usize = 4;
/// More tags than this are not a trunk TR7 serves; the frame passes as "other protocol".
pub const MAX_TAGS: usize = 2;

/// What the Ethernet layer tells the layers above.
pub struct L2 {
    /// VLAN ids as carried in the frame, outermost first; 0 where absent.
    /// An S-tag's id has [`VLAN_8021AD`] set.
    pub tags: [u16; MAX_TAGS],
    /// EtherType after the tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: usize,
}

/// A VLAN id as keyed in the segment map: the 12 VID bits, plus a marker for an S-tag.
#[inline(always)]
pub fn vlan_key(tpid: u16, tci: u16) -> u16 {
    let vid = tci & VLAN_VID_MASK;
    if tpid == ETH_P_8021AD {
        vid | VLAN_8021AD
    } else {
        vid
    }
}

#[inline(always)]
pub fn parse(pkt: &impl Bytes) -> Result<L2, Truncated> {
    let mut ethertype = pkt.be16_at(12)?;
    let mut offset = ETH_HLEN;
    let mut tags = [0u16; MAX_TAGS];
    // Unrolled by hand so the verifier sees two straight-line steps.
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        tags[0] = vlan_key(ethertype, pkt.be16_at(offset)?);
        ethertype = pkt.be16_at(offset + 2)?;
        offset += VLAN_HLEN;
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            tags[1] = vlan_key(ethertype, pkt.be16_at(offset)?);
            ethertype = pkt.be16_at(offset + 2)?;
            offset += VLAN_HLEN;
        }
    }
    Ok(L2 {
        tags,
        ethertype,
        l3_offset: offset,
    })
}
