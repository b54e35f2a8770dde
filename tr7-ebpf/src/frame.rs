//! One parse of a frame into what both programs decide on: the VLAN tags and the addresses
//! that matter for VIP ownership.
//!
//! [`Frame`] is a plain struct whose every byte is initialised before any parser runs, and
//! parsers fill it in place. Enums with payloads (or `Option<[u8; N]>`) are avoided on
//! purpose: LLVM copies their unset payload bytes from registers never written on that path,
//! and the verifier rejects such reads (`R5 !read_ok`).

use crate::{
    arp,
    cursor::{Bytes, Truncated},
    eth::{self, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6},
    ipv4, ipv6,
};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// `src`/`dst` hold the IPv4 addresses in their first four bytes.
    Ipv4,
    /// `src`/`dst` hold the IPv6 addresses; `nd`/`nd_target` the neighbour discovery message.
    Ipv6,
    /// `src` holds the sender protocol address, `dst` the target protocol address.
    Arp,
    /// Another EtherType, or ARP that is not Ethernet/IPv4.
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NdKind {
    None,
    Solicit,
    Advert,
}

pub struct Frame {
    /// VLAN keys as carried in the frame, outermost first; 0 where absent.
    pub tags: [u16; eth::MAX_TAGS],
    pub l3: L3,
    /// Addresses as words of network-order bytes (`tr7_common::VipKey::addr`'s form), so
    /// keys are built, hashed and compared a word at a time.
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub nd: NdKind,
    pub nd_target: [u32; 4],
    /// Egress only (the guard's rewrites): where the L3 header starts, the IP protocol
    /// (IPv6: the header after the extension headers) and where it starts. Zero otherwise.
    pub l3_offset: usize,
    pub proto: u8,
    pub l4_offset: usize,
}

/// Which addresses a program decides on: ingress looks at destinations (and ARP/NS targets),
/// egress at sources (and NA targets). Parsing only those saves the other 16-byte reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Ingress,
    Egress,
}

/// `Err(Truncated)` when a header ends before the frame does, and for headers whose fields
/// contradict themselves (an IPv4 version nibble of 5): both are "malformed" to the callers.
/// Only the addresses `side` needs are read; the others stay zero.
#[inline(always)]
pub fn parse(pkt: &impl Bytes, side: Side, frame: &mut Frame) -> Result<(), Truncated> {
    let l2 = eth::parse(pkt)?;
    frame.tags = l2.tags;
    let off = l2.l3_offset;
    if side == Side::Egress {
        frame.l3_offset = off;
    }
    match l2.ethertype {
        ETH_P_IP => {
            ipv4::parse(pkt, off, side, frame)?;
            frame.l3 = L3::Ipv4;
        }
        ETH_P_IPV6 => {
            ipv6::parse(pkt, off, side, frame)?;
            frame.l3 = L3::Ipv6;
        }
        ETH_P_ARP if arp::parse(pkt, off, side, frame)? => frame.l3 = L3::Arp,
        _ => {}
    }
    Ok(())
}

impl Frame {
    #[inline(always)]
    pub const fn new() -> Self {
        Self {
            tags: [0; eth::MAX_TAGS],
            l3: L3::Other,
            src: [0; 4],
            dst: [0; 4],
            nd: NdKind::None,
            nd_target: [0; 4],
            l3_offset: 0,
            proto: 0,
            l4_offset: 0,
        }
    }
}
