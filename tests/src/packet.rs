//! A small frame builder for test tables, in the style of katran's and Cilium's:
//! `Frame::eth().vlan(100).ipv4(src, dst).udp(1, 2, b"x")`. Checksums are left zero: the
//! data plane never reads them, and BPF_PROG_TEST_RUN does not check them.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const NODE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

#[derive(Clone, Debug, Default)]
pub struct Frame {
    bytes: Vec<u8>,
    /// Offsets where each header starts: what truncation tests cut at.
    boundaries: Vec<usize>,
    /// Where the IP header starts, to fix its length field once the payload is known.
    l3: Option<usize>,
}

impl Frame {
    /// Ethernet header from the client to the node; the EtherType is patched by what follows.
    pub fn eth() -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(&NODE_MAC);
        bytes.extend_from_slice(&CLIENT_MAC);
        bytes.extend_from_slice(&[0, 0]);
        Self {
            bytes,
            boundaries: vec![0],
            l3: None,
        }
    }

    /// Broadcast destination (ARP requests).
    pub fn eth_broadcast() -> Self {
        let mut f = Self::eth();
        f.bytes[..6].copy_from_slice(&[0xff; 6]);
        f
    }

    fn set_ethertype(&mut self, ethertype: u16) {
        let at = self.bytes.len() - 2;
        self.bytes[at..].copy_from_slice(&ethertype.to_be_bytes());
    }

    fn mark(&mut self) {
        self.boundaries.push(self.bytes.len());
    }

    /// An 802.1Q tag (C-tag).
    pub fn vlan(self, vid: u16) -> Self {
        self.tag(0x8100, vid)
    }

    /// An 802.1ad tag (S-tag).
    pub fn svlan(self, vid: u16) -> Self {
        self.tag(0x88a8, vid)
    }

    fn tag(mut self, tpid: u16, vid: u16) -> Self {
        self.set_ethertype(tpid);
        self.mark();
        self.bytes.extend_from_slice(&vid.to_be_bytes());
        self.bytes.extend_from_slice(&[0, 0]);
        self
    }

    pub fn ipv4(mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        self.set_ethertype(0x0800);
        self.mark();
        self.l3 = Some(self.bytes.len());
        self.bytes
            .extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, proto, 0, 0]);
        self.bytes.extend_from_slice(&src.octets());
        self.bytes.extend_from_slice(&dst.octets());
        self
    }

    pub fn ipv6(mut self, src: Ipv6Addr, dst: Ipv6Addr, next: u8) -> Self {
        self.set_ethertype(0x86dd);
        self.mark();
        self.l3 = Some(self.bytes.len());
        self.bytes
            .extend_from_slice(&[0x60, 0, 0, 0, 0, 0, next, 255]);
        self.bytes.extend_from_slice(&src.octets());
        self.bytes.extend_from_slice(&dst.octets());
        self
    }

    /// An IPv6 extension header of 8 bytes (hop-by-hop, destination options, routing).
    pub fn ext(mut self, next: u8) -> Self {
        self.mark();
        self.bytes.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        self
    }

    /// Fixes the IPv4 total length or IPv6 payload length once the payload is known.
    fn fix_lengths(mut self) -> Self {
        let Some(l3) = self.l3 else {
            return self;
        };
        let total = u16::try_from(self.bytes.len() - l3).expect("test frames are small");
        match self.bytes[l3] >> 4 {
            4 => self.bytes[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes()),
            6 => self.bytes[l3 + 4..l3 + 6].copy_from_slice(&(total - 40).to_be_bytes()),
            _ => {}
        }
        self
    }

    pub fn udp(mut self, sport: u16, dport: u16, payload: &[u8]) -> Self {
        self.mark();
        let len = (8 + payload.len()) as u16;
        self.bytes.extend_from_slice(&sport.to_be_bytes());
        self.bytes.extend_from_slice(&dport.to_be_bytes());
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(&[0, 0]);
        self.bytes.extend_from_slice(payload);
        self.fix_lengths()
    }

    /// ARP over Ethernet/IPv4: op 1 request, 2 reply.
    pub fn arp(mut self, op: u16, sender: Ipv4Addr, target: Ipv4Addr) -> Self {
        self.set_ethertype(0x0806);
        self.mark();
        self.bytes.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
        self.bytes.extend_from_slice(&op.to_be_bytes());
        self.bytes.extend_from_slice(&CLIENT_MAC);
        self.bytes.extend_from_slice(&sender.octets());
        self.bytes.extend_from_slice(&[0; 6]);
        self.bytes.extend_from_slice(&target.octets());
        self
    }

    /// ICMPv6 neighbour solicitation (135) or advertisement (136) for `target`.
    pub fn nd(mut self, icmp_type: u8, target: Ipv6Addr) -> Self {
        self.mark();
        let flags = if icmp_type == 136 { 0x20 } else { 0 }; // override flag on NA
        self.bytes
            .extend_from_slice(&[icmp_type, 0, 0, 0, flags, 0, 0, 0]);
        self.bytes.extend_from_slice(&target.octets());
        self.bytes.extend_from_slice(&[1, 1]); // source/target link-layer address option
        self.bytes.extend_from_slice(&CLIENT_MAC);
        self.fix_lengths()
    }

    /// A payload as is (a VRRP advert's bytes, say) after the IP header.
    pub fn payload(mut self, bytes: &[u8]) -> Self {
        self.mark();
        self.bytes.extend_from_slice(bytes);
        self.fix_lengths()
    }

    /// A neighbour solicitation (135) or advertisement (136) for `target` with a
    /// link-layer address option of `option_type` (1 source, 2 target) carrying `mac`, and
    /// a correct ICMPv6 checksum (after [`Frame::ipv6`], with next header 58).
    pub fn nd_checked(
        self,
        icmp_type: u8,
        target: Ipv6Addr,
        option_type: u8,
        mac: [u8; 6],
    ) -> Self {
        let mut f = self.nd(icmp_type, target);
        let icmp = f.icmpv6_offset();
        let len = f.bytes.len();
        f.bytes[len - 8] = option_type;
        f.bytes[len - 6..].copy_from_slice(&mac);
        let sum = icmpv6_checksum(&f.bytes, f.l3.expect("after ipv6()"), icmp);
        f.bytes[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn icmpv6_offset(&self) -> usize {
        self.l3.expect("after ipv6()") + 40
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn boundaries(&self) -> &[usize] {
        &self.boundaries
    }
}

/// The solicited-node multicast address of `target` (RFC 4291 2.7.1), where NS are sent.
pub fn solicited_node(target: Ipv6Addr) -> Ipv6Addr {
    let t = target.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    )
}

/// The ICMPv6 checksum (RFC 4443 2.3) of the message at `icmp` in `frame`, whose IPv6
/// header is at `l3`, computed with the checksum field taken as zero.
pub fn icmpv6_checksum(frame: &[u8], l3: usize, icmp: usize) -> u16 {
    let msg = &frame[icmp..];
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for pair in b.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&x| u32::from(x));
            sum += hi | lo;
        }
    };
    add(&frame[l3 + 8..l3 + 40]);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&msg[..2]);
    add(&msg[4..]);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
