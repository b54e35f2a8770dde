//! VRRPv3 advertisements on the wire (RFC 9568 section 5): the payload after the IP
//! header, its encoding and decoding, and the IP-level rules a receiver checks
//! (RFC 9568 7.1) that the shell reads from the IP header or socket ancillary data.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |(rsvd) |     Max Adver Int     |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     IPvX Address(es) ...                      |
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use thiserror::Error;

use super::checksum::{self, ChecksumMode};

/// IP protocol number / IPv6 next header of VRRP (RFC 9568 5.1.1.4, 5.1.2.3).
pub const PROTOCOL: u8 = 112;
/// The only version this module speaks (RFC 9568 5.2.1).
pub const VERSION: u8 = 3;
/// The only message type (RFC 9568 5.2.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// TTL / hop limit on send, and the only value accepted on receive (RFC 9568 5.1.1.3,
/// 5.1.2.2, 7.1): a packet that crossed a router is not from this link.
pub const TTL: u8 = 255;
/// IPv4 multicast group of VRRP (RFC 9568 5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 9568 5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Bytes before the address list.
pub const HEADER_LEN: usize = 8;
/// Max Adver Int is 12 bits of centiseconds (RFC 9568 5.2.7).
pub const MAX_ADVERT_INTERVAL_CS: u16 = 0x0fff;

/// An address family; one advertisement and one state machine carry only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Bytes of one address of this family in the address list.
    pub fn address_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// The VRRP multicast group of this family.
    pub fn multicast_group(self) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(MULTICAST_V4),
            Family::V6 => IpAddr::V6(MULTICAST_V6),
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The RFC's virtual router MAC for `vrid` (RFC 9568 7.3): 00-00-5E-00-01-{VRID} for
/// IPv4, 00-00-5E-00-02-{VRID} for IPv6. Used only when the cluster file asks for it;
/// by default TR7 answers with the interface MAC, as keepalived does (docs/vrrp.md).
pub fn virtual_mac(vrid: u8, family: Family) -> [u8; 6] {
    let f = match family {
        Family::V4 => 0x01,
        Family::V6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, f, vrid]
}

/// Why an [`Advertisement`] cannot be built from the given values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AdvertError {
    #[error("VRID 0 is not valid; VRIDs are 1-255 (RFC 9568 5.2.3)")]
    VridZero,
    #[error("advertisement interval {0} cs is outside 1-4095 cs (RFC 9568 5.2.7)")]
    IntervalOutOfRange(u16),
    #[error("an advertisement needs at least one address (RFC 9568 5.2.5)")]
    NoAddresses,
    #[error("{0} addresses do not fit the 8-bit count field (at most 255)")]
    TooManyAddresses(usize),
    #[error("addresses mix IPv4 and IPv6 (`{first}` and `{other}`); one family per virtual router")]
    MixedFamilies { first: IpAddr, other: IpAddr },
}

/// Why an advertisement cannot be encoded for the given IP endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("advertisement for {family} addresses cannot be sent from `{src}` to `{dst}`")]
    FamilyMismatch {
        family: Family,
        src: IpAddr,
        dst: IpAddr,
    },
}

/// Why received bytes are not a valid VRRPv3 advertisement (RFC 9568 7.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("IP source `{src}` and destination `{dst}` are of different families")]
    FamilyMismatch { src: IpAddr, dst: IpAddr },
    #[error("{len} bytes is shorter than the {HEADER_LEN}-byte VRRP header")]
    Truncated { len: usize },
    #[error("VRRP version {0} is not supported (only version 3)")]
    UnsupportedVersion(u8),
    #[error("VRRP packet type {0} is unknown (only 1, advertisement)")]
    UnknownType(u8),
    #[error("VRID 0 is not valid")]
    VridZero,
    #[error("Max Adver Int of 0 cs is not valid")]
    ZeroInterval,
    #[error("address count is 0")]
    NoAddresses,
    #[error(
        "{count} {family} addresses need {expected} bytes of VRRP message, the packet has {actual}"
    )]
    LengthMismatch {
        count: u8,
        family: Family,
        expected: usize,
        actual: usize,
    },
    #[error("checksum 0x{received:04x} is wrong for {family} (tried: {tried})")]
    BadChecksum {
        received: u16,
        family: Family,
        tried: &'static str,
    },
}

impl DecodeError {
    /// A short stable label, for counters and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::FamilyMismatch { .. } => "family_mismatch",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::VridZero => "vrid_zero",
            DecodeError::ZeroInterval => "zero_interval",
            DecodeError::NoAddresses => "no_addresses",
            DecodeError::LengthMismatch { .. } => "length_mismatch",
            DecodeError::BadChecksum { .. } => "bad_checksum",
        }
    }
}

/// A VRRPv3 advertisement (RFC 9568 5.2). Built through [`Advertisement::new`] or
/// [`Advertisement::decode`], so it always holds a valid VRID, interval and a non-empty
/// single-family address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    vrid: u8,
    priority: u8,
    max_advert_interval_cs: u16,
    addresses: Vec<IpAddr>,
}

impl Advertisement {
    pub fn new(
        vrid: u8,
        priority: u8,
        max_advert_interval_cs: u16,
        addresses: Vec<IpAddr>,
    ) -> Result<Self, AdvertError> {
        if vrid == 0 {
            return Err(AdvertError::VridZero);
        }
        if max_advert_interval_cs == 0 || max_advert_interval_cs > MAX_ADVERT_INTERVAL_CS {
            return Err(AdvertError::IntervalOutOfRange(max_advert_interval_cs));
        }
        let Some(&first) = addresses.first() else {
            return Err(AdvertError::NoAddresses);
        };
        if addresses.len() > usize::from(u8::MAX) {
            return Err(AdvertError::TooManyAddresses(addresses.len()));
        }
        if let Some(&other) = addresses
            .iter()
            .find(|a| Family::of(**a) != Family::of(first))
        {
            return Err(AdvertError::MixedFamilies { first, other });
        }
        Ok(Self {
            vrid,
            priority,
            max_advert_interval_cs,
            addresses,
        })
    }

    pub fn vrid(&self) -> u8 {
        self.vrid
    }

    /// 255: the address owner; 0: the sender stops being master (RFC 9568 5.2.4).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn max_advert_interval_cs(&self) -> u16 {
        self.max_advert_interval_cs
    }

    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    pub fn family(&self) -> Family {
        // `new` and `decode` guarantee at least one address.
        self.addresses
            .first()
            .map_or(Family::V4, |a| Family::of(*a))
    }

    /// The same advertisement with another priority (the priority-0 advert on shutdown).
    pub fn with_priority(&self, priority: u8) -> Self {
        Self {
            priority,
            ..self.clone()
        }
    }

    /// Bytes of the encoded message.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.addresses.len() * self.family().address_len()
    }

    /// The VRRP message (the IP payload) sent from `src` to `dst`. `mode` chooses the
    /// IPv4 checksum; IPv6 always sums the pseudo-header (RFC 9568 5.2.8).
    pub fn encode(
        &self,
        src: IpAddr,
        dst: IpAddr,
        mode: ChecksumMode,
    ) -> Result<BytesMut, EncodeError> {
        let family = self.family();
        if Family::of(src) != family || Family::of(dst) != family {
            return Err(EncodeError::FamilyMismatch { family, src, dst });
        }
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u8((VERSION << 4) | TYPE_ADVERTISEMENT);
        buf.put_u8(self.vrid);
        buf.put_u8(self.priority);
        // `new` and `decode` bound the count to 255.
        buf.put_u8(u8::try_from(self.addresses.len()).unwrap_or(u8::MAX));
        // RFC 9568 5.2.6: the reserved nibble is sent as zero.
        buf.put_u16(self.max_advert_interval_cs & MAX_ADVERT_INTERVAL_CS);
        buf.put_u16(0);
        for addr in &self.addresses {
            match addr {
                IpAddr::V4(a) => buf.put_slice(&a.octets()),
                IpAddr::V6(a) => buf.put_slice(&a.octets()),
            }
        }
        // Families were checked above, so the sum exists.
        let sum = checksum::compute(&buf, src, dst, mode).unwrap_or(0);
        buf[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(buf)
    }

    /// Parses the VRRP message received from `src` for `dst`, and says which checksum it
    /// carried: for IPv4 both the pseudo-header and the message-only sum are accepted
    /// (see [`checksum`](super::checksum)); for IPv6 only the pseudo-header.
    /// Never panics, whatever the bytes.
    pub fn decode(
        bytes: &[u8],
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<(Self, ChecksumMode), DecodeError> {
        let family = Family::of(src);
        if Family::of(dst) != family {
            return Err(DecodeError::FamilyMismatch { src, dst });
        }
        let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::Truncated { len: bytes.len() });
        };
        // RFC 9568 7.1: MUST verify the version is 3 and the type is advertisement.
        let version = header[0] >> 4;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let kind = header[0] & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(DecodeError::UnknownType(kind));
        }
        let count = header[3];
        if count == 0 {
            return Err(DecodeError::NoAddresses);
        }
        // RFC 9568 7.1: the length must match the address count of this family. We ask
        // for an exact match: VRRPv3 has no trailer, and IP already strips link padding.
        let expected = HEADER_LEN + usize::from(count) * family.address_len();
        if bytes.len() != expected {
            return Err(DecodeError::LengthMismatch {
                count,
                family,
                expected,
                actual: bytes.len(),
            });
        }
        // RFC 9568 7.1: MUST verify the checksum.
        let mode = match family {
            Family::V6 if checksum::verify(bytes, src, dst, ChecksumMode::PseudoHeader) => {
                ChecksumMode::PseudoHeader
            }
            Family::V4 if checksum::verify(bytes, src, dst, ChecksumMode::PseudoHeader) => {
                ChecksumMode::PseudoHeader
            }
            Family::V4 if checksum::verify(bytes, src, dst, ChecksumMode::MessageOnly) => {
                ChecksumMode::MessageOnly
            }
            _ => {
                return Err(DecodeError::BadChecksum {
                    received: u16::from_be_bytes([header[6], header[7]]),
                    family,
                    tried: match family {
                        Family::V4 => "IPv4 pseudo-header, message only",
                        Family::V6 => "IPv6 pseudo-header",
                    },
                });
            }
        };
        let vrid = header[1];
        if vrid == 0 {
            return Err(DecodeError::VridZero);
        }
        // RFC 9568 5.2.6: the reserved nibble is ignored on receive.
        let interval = u16::from_be_bytes([header[4], header[5]]) & MAX_ADVERT_INTERVAL_CS;
        if interval == 0 {
            return Err(DecodeError::ZeroInterval);
        }
        let list = &bytes[HEADER_LEN..];
        let addresses = match family {
            Family::V4 => list
                .chunks_exact(4)
                .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                .map(|o| IpAddr::V4(Ipv4Addr::from(o)))
                .collect(),
            Family::V6 => list
                .chunks_exact(16)
                .filter_map(|c| <[u8; 16]>::try_from(c).ok())
                .map(|o| IpAddr::V6(Ipv6Addr::from(o)))
                .collect(),
        };
        Ok((
            Self {
                vrid,
                priority: header[2],
                max_advert_interval_cs: interval,
                addresses,
            },
            mode,
        ))
    }
}

/// Why the IP header around an advertisement makes it unacceptable (RFC 9568 7.1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpCheckError {
    #[error("IP protocol {0} is not VRRP (112)")]
    WrongProtocol(u8),
    #[error("TTL / hop limit {0} is not 255: the packet crossed a router")]
    BadTtl(u8),
    #[error("IP source `{src}` and destination `{dst}` are of different families")]
    FamilyMismatch { src: IpAddr, dst: IpAddr },
    #[error("source `{0}` is not a valid sender address")]
    BadSource(IpAddr),
    #[error("IPv6 source `{0}` is not link-local (RFC 9568 5.1.2.1)")]
    Ipv6SourceNotLinkLocal(Ipv6Addr),
    #[error("multicast destination `{0}` is not the VRRP group")]
    WrongGroup(IpAddr),
}

impl IpCheckError {
    /// A short stable label, for counters and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            IpCheckError::WrongProtocol(_) => "wrong_protocol",
            IpCheckError::BadTtl(_) => "bad_ttl",
            IpCheckError::FamilyMismatch { .. } => "family_mismatch",
            IpCheckError::BadSource(_) => "bad_source",
            IpCheckError::Ipv6SourceNotLinkLocal(_) => "ipv6_source_not_link_local",
            IpCheckError::WrongGroup(_) => "wrong_group",
        }
    }
}

/// How a virtual router exchanges adverts: over the VRRP group, or with configured
/// unicast peers. It decides which IPv6 sources [`check_ip_header`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 224.0.0.18 / ff02::12; IPv6 adverts must come from a link-local address.
    Multicast,
    /// To and from configured peers. An IPv6 peer may speak from a global address (what
    /// keepalived does with a global `unicast_src_ip`); the state machine's peer list,
    /// not the address scope, decides who is heard (docs/vrrp.md, IPv6 unicast).
    Unicast,
}

/// The IP-level receive checks of RFC 9568 7.1 on values the shell takes from the IP
/// header (or IP_TTL / IPV6_HOPLIMIT ancillary data): protocol 112, TTL or hop limit
/// 255, one family, a unicast source (link-local for IPv6 over multicast, RFC 9568
/// 5.1.2.1; any unicast source in unicast mode, where only configured peers are heard),
/// and a destination that is either the VRRP group or a unicast address.
pub fn check_ip_header(
    ttl_or_hop_limit: u8,
    protocol: u8,
    src: IpAddr,
    dst: IpAddr,
    transport: Transport,
) -> Result<(), IpCheckError> {
    if protocol != PROTOCOL {
        return Err(IpCheckError::WrongProtocol(protocol));
    }
    if ttl_or_hop_limit != TTL {
        return Err(IpCheckError::BadTtl(ttl_or_hop_limit));
    }
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if s.is_unspecified() || s.is_multicast() || s.is_broadcast() {
                return Err(IpCheckError::BadSource(src));
            }
            if d.is_multicast() && d != MULTICAST_V4 {
                return Err(IpCheckError::WrongGroup(dst));
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if s.is_unspecified() || s.is_multicast() {
                return Err(IpCheckError::BadSource(src));
            }
            if transport == Transport::Multicast && !s.is_unicast_link_local() {
                return Err(IpCheckError::Ipv6SourceNotLinkLocal(s));
            }
            if d.is_multicast() && d != MULTICAST_V6 {
                return Err(IpCheckError::WrongGroup(dst));
            }
        }
        _ => return Err(IpCheckError::FamilyMismatch { src, dst }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4_advert() -> Advertisement {
        Advertisement::new(51, 200, 100, vec![ip("192.0.2.10"), ip("192.0.2.11")]).unwrap()
    }

    fn v6_advert() -> Advertisement {
        Advertisement::new(51, 100, 5, vec![ip("fe80::1"), ip("2001:db8::10")]).unwrap()
    }

    // Golden bytes: laid out by hand from the RFC 9568 5.2 diagram; the checksums were
    // computed independently with a Python RFC 1071 one-liner (pseudo-header as
    // keepalived builds it: src, dst, 0, 112, length) and the resulting frames were
    // dissected by tshark 4.0.17 as "Good" (see tests/vrrp_tshark.rs, which re-checks
    // this on every run).
    const GOLDEN_V4_PSEUDO: [u8; 16] = [
        0x31, 51, 200, 2, 0x00, 100, 0xdf, 0xba, 192, 0, 2, 10, 192, 0, 2, 11,
    ];
    const GOLDEN_V4_MESSAGE_ONLY: [u8; 16] = [
        0x31, 51, 200, 2, 0x00, 100, 0x82, 0x4f, 192, 0, 2, 10, 192, 0, 2, 11,
    ];
    const GOLDEN_V4_PSEUDO_UNICAST: [u8; 16] = [
        0x31, 51, 200, 2, 0x00, 100, 0xfd, 0xca, 192, 0, 2, 10, 192, 0, 2, 11,
    ];
    const GOLDEN_V6: [u8; 40] = [
        0x31, 51, 100, 2, 0x00, 5, 0x40, 0x42, // header
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // fe80::1
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // 2001:db8::10
    ];

    #[test]
    fn encode_matches_golden_bytes() {
        // Proves the encoder produces the hand-laid golden bytes for both IPv4 checksum
        // modes, for a unicast destination, and for IPv6.
        let a = v4_advert();
        let (s, m, u) = (ip("192.0.2.1"), ip("224.0.0.18"), ip("192.0.2.2"));
        let pseudo = a.encode(s, m, ChecksumMode::PseudoHeader).unwrap();
        assert_eq!(&pseudo[..], &GOLDEN_V4_PSEUDO);
        let msg = a.encode(s, m, ChecksumMode::MessageOnly).unwrap();
        assert_eq!(&msg[..], &GOLDEN_V4_MESSAGE_ONLY);
        let uni = a.encode(s, u, ChecksumMode::PseudoHeader).unwrap();
        assert_eq!(&uni[..], &GOLDEN_V4_PSEUDO_UNICAST);
        // IPv6 ignores the mode: RFC 9568 5.2.8 always includes the pseudo-header.
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::MessageOnly] {
            let v6 = v6_advert()
                .encode(ip("fe80::a"), ip("ff02::12"), mode)
                .unwrap();
            assert_eq!(&v6[..], &GOLDEN_V6);
        }
    }

    #[test]
    fn decode_golden_bytes_reports_checksum_mode() {
        // Proves the receiver accepts both IPv4 checksums (RFC 9568 5.2.8 vs keepalived
        // default) and reports which one the sender used.
        let (s, m) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let (a, mode) = Advertisement::decode(&GOLDEN_V4_PSEUDO, s, m).unwrap();
        assert_eq!((a, mode), (v4_advert(), ChecksumMode::PseudoHeader));
        let (a, mode) = Advertisement::decode(&GOLDEN_V4_MESSAGE_ONLY, s, m).unwrap();
        assert_eq!((a, mode), (v4_advert(), ChecksumMode::MessageOnly));
        let (a, mode) = Advertisement::decode(&GOLDEN_V6, ip("fe80::a"), ip("ff02::12")).unwrap();
        assert_eq!((a, mode), (v6_advert(), ChecksumMode::PseudoHeader));
        assert_eq!(v6_advert().max_advert_interval_cs(), 5);
    }

    #[test]
    fn ipv6_message_only_checksum_is_rejected() {
        // Proves IPv6 accepts only the pseudo-header checksum (RFC 9568 5.2.8).
        let mut b = GOLDEN_V6;
        b[6..8].copy_from_slice(&[0, 0]);
        let sum = checksum::compute(&b, ip("fe80::a"), ip("ff02::12"), ChecksumMode::MessageOnly)
            .unwrap();
        // compute() ignores MessageOnly for IPv6, so build the message-only sum by hand.
        let mut sum_msg: u32 = b
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum_msg > 0xffff {
            sum_msg = (sum_msg & 0xffff) + (sum_msg >> 16);
        }
        let msg_only = !(sum_msg as u16);
        assert_ne!(sum, msg_only);
        b[6..8].copy_from_slice(&msg_only.to_be_bytes());
        let err = Advertisement::decode(&b, ip("fe80::a"), ip("ff02::12")).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::BadChecksum {
                family: Family::V6,
                ..
            }
        ));
    }

    #[test]
    fn pseudo_header_checksum_binds_the_destination() {
        // Proves a pseudo-header checksum computed for one destination fails for another
        // (the keepalived "old_unicast_checksum" trap) unless it also passes message-only.
        let err =
            Advertisement::decode(&GOLDEN_V4_PSEUDO, ip("192.0.2.1"), ip("192.0.2.2")).unwrap_err();
        assert_eq!(err.reason(), "bad_checksum");
        assert!(err.to_string().contains("0xdfba"), "{err}");
    }

    #[test]
    fn dual_accept_lets_a_rare_corruption_through_as_the_other_mode() {
        // Proves (and documents) the price of accepting both IPv4 checksums: when the
        // pseudo-header sums to 2^k (here 0.0.0.4 + 0.0.0.0 + 112 + 12 = 128), clearing a
        // bit of weight 128 turns a valid message-only checksum into a valid
        // pseudo-header one. decode then reports PseudoHeader, which the shell can
        // compare with what the peer normally sends.
        let (s, d) = (ip("0.0.0.4"), ip("0.0.0.0"));
        let a = Advertisement::new(200, 100, 100, vec![ip("192.0.2.10")]).unwrap();
        let mut b = a.encode(s, d, ChecksumMode::MessageOnly).unwrap();
        b[1] ^= 0x80; // VRID 200 (0xc8) becomes 72
        let (got, mode) = Advertisement::decode(&b, s, d).unwrap();
        assert_eq!((got.vrid(), mode), (72, ChecksumMode::PseudoHeader));
    }

    #[test]
    fn decode_rejects_each_malformed_field() {
        // Proves each RFC 9568 7.1 structural check has its own DecodeError.
        let (s, m) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let fix = |mut b: Vec<u8>| {
            b[6] = 0;
            b[7] = 0;
            let c = checksum::compute(&b, s, m, ChecksumMode::MessageOnly).unwrap();
            b[6..8].copy_from_slice(&c.to_be_bytes());
            b
        };
        let base = GOLDEN_V4_PSEUDO.to_vec();
        let case = |b: Vec<u8>| Advertisement::decode(&b, s, m).unwrap_err();

        assert_eq!(case(base[..7].to_vec()), DecodeError::Truncated { len: 7 });
        let mut b = base.clone();
        b[0] = 0x21;
        assert_eq!(case(fix(b)), DecodeError::UnsupportedVersion(2));
        let mut b = base.clone();
        b[0] = 0x32;
        assert_eq!(case(fix(b)), DecodeError::UnknownType(2));
        let mut b = base.clone();
        b[3] = 0;
        assert_eq!(case(fix(b)), DecodeError::NoAddresses);
        let mut b = base.clone();
        b[3] = 3;
        assert_eq!(
            case(fix(b)),
            DecodeError::LengthMismatch {
                count: 3,
                family: Family::V4,
                expected: 20,
                actual: 16
            }
        );
        let mut b = base.clone();
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(case(fix(b)).reason(), "length_mismatch");
        let mut b = base.clone();
        b[1] = 0;
        assert_eq!(case(fix(b)), DecodeError::VridZero);
        let mut b = base.clone();
        b[4] = 0xf0; // reserved bits set, interval 0
        b[5] = 0;
        assert_eq!(case(fix(b)), DecodeError::ZeroInterval);
        let mut b = base.clone();
        b[8] ^= 1;
        assert_eq!(case(b).reason(), "bad_checksum");
        assert_eq!(
            Advertisement::decode(&base, s, ip("ff02::12")).unwrap_err(),
            DecodeError::FamilyMismatch {
                src: s,
                dst: ip("ff02::12")
            }
        );
        // IPv4 source with an IPv6-sized list: the family comes from the IP header.
        let v6_from_v4 = fix(GOLDEN_V6.to_vec());
        assert_eq!(case(v6_from_v4).reason(), "length_mismatch");
    }

    #[test]
    fn reserved_nibble_is_ignored_on_receive_and_zero_on_send() {
        // Proves RFC 9568 5.2.6: reserved bits are ignored by the receiver, sent as 0.
        let (s, m) = (ip("192.0.2.1"), ip("224.0.0.18"));
        let mut b = GOLDEN_V4_MESSAGE_ONLY;
        b[4] |= 0xa0;
        b[6..8].copy_from_slice(&[0, 0]);
        let c = checksum::compute(&b, s, m, ChecksumMode::MessageOnly).unwrap();
        b[6..8].copy_from_slice(&c.to_be_bytes());
        let (a, _) = Advertisement::decode(&b, s, m).unwrap();
        assert_eq!(a.max_advert_interval_cs(), 100);
        let again = a.encode(s, m, ChecksumMode::MessageOnly).unwrap();
        assert_eq!(again[4] & 0xf0, 0);
    }

    #[test]
    fn new_validates_fields() {
        // Proves Advertisement::new refuses what could not be encoded faithfully.
        let v4 = vec![ip("192.0.2.10")];
        assert_eq!(
            Advertisement::new(0, 1, 100, v4.clone()),
            Err(AdvertError::VridZero)
        );
        assert_eq!(
            Advertisement::new(1, 1, 0, v4.clone()),
            Err(AdvertError::IntervalOutOfRange(0))
        );
        assert_eq!(
            Advertisement::new(1, 1, 4096, v4.clone()),
            Err(AdvertError::IntervalOutOfRange(4096))
        );
        assert!(Advertisement::new(1, 1, 4095, v4.clone()).is_ok());
        assert_eq!(
            Advertisement::new(1, 1, 1, vec![]),
            Err(AdvertError::NoAddresses)
        );
        assert_eq!(
            Advertisement::new(1, 1, 1, vec![ip("192.0.2.1"), ip("2001:db8::1")]),
            Err(AdvertError::MixedFamilies {
                first: ip("192.0.2.1"),
                other: ip("2001:db8::1")
            })
        );
        let many: Vec<IpAddr> = (0..256u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
            .collect();
        assert_eq!(
            Advertisement::new(1, 1, 1, many.clone()),
            Err(AdvertError::TooManyAddresses(256))
        );
        let max = Advertisement::new(1, 1, 1, many[..255].to_vec()).unwrap();
        let s = ip("192.0.2.1");
        let bytes = max.encode(s, s, ChecksumMode::MessageOnly).unwrap();
        assert_eq!(bytes.len(), 8 + 255 * 4);
        assert_eq!(Advertisement::decode(&bytes, s, s).unwrap().0, max);
    }

    #[test]
    fn encode_refuses_endpoints_of_another_family() {
        // Proves an IPv4 advert cannot be sent between IPv6 endpoints.
        let err = v4_advert()
            .encode(ip("fe80::a"), ip("ff02::12"), ChecksumMode::PseudoHeader)
            .unwrap_err();
        assert!(matches!(
            err,
            EncodeError::FamilyMismatch {
                family: Family::V4,
                ..
            }
        ));
    }

    #[test]
    fn ip_header_rules() {
        // Proves the RFC 9568 7.1 IP-level checks: TTL 255, protocol 112, IPv6 source
        // link-local, one family, the VRRP group or a unicast destination.
        let (s4, g4, u4) = (ip("192.0.2.1"), ip("224.0.0.18"), ip("192.0.2.2"));
        let (s6, g6) = (ip("fe80::a"), ip("ff02::12"));
        assert_eq!(
            check_ip_header(255, 112, s4, g4, Transport::Multicast),
            Ok(())
        );
        assert_eq!(
            check_ip_header(255, 112, s4, u4, Transport::Multicast),
            Ok(())
        );
        assert_eq!(
            check_ip_header(255, 112, s6, g6, Transport::Multicast),
            Ok(())
        );
        assert_eq!(
            check_ip_header(255, 112, s6, ip("fe80::b"), Transport::Multicast),
            Ok(())
        );
        assert_eq!(
            check_ip_header(254, 112, s4, g4, Transport::Multicast),
            Err(IpCheckError::BadTtl(254))
        );
        assert_eq!(
            check_ip_header(64, 112, s6, g6, Transport::Multicast),
            Err(IpCheckError::BadTtl(64))
        );
        assert_eq!(
            check_ip_header(255, 17, s4, g4, Transport::Multicast),
            Err(IpCheckError::WrongProtocol(17))
        );
        assert_eq!(
            check_ip_header(255, 112, ip("2001:db8::1"), g6, Transport::Multicast),
            Err(IpCheckError::Ipv6SourceNotLinkLocal(
                "2001:db8::1".parse().unwrap()
            ))
        );
        assert_eq!(
            check_ip_header(255, 112, s4, ip("224.0.0.5"), Transport::Multicast),
            Err(IpCheckError::WrongGroup(ip("224.0.0.5")))
        );
        assert_eq!(
            check_ip_header(255, 112, s6, ip("ff02::1"), Transport::Multicast),
            Err(IpCheckError::WrongGroup(ip("ff02::1")))
        );
        assert_eq!(
            check_ip_header(255, 112, ip("224.0.0.1"), g4, Transport::Multicast),
            Err(IpCheckError::BadSource(ip("224.0.0.1")))
        );
        assert_eq!(
            check_ip_header(255, 112, s4, g6, Transport::Multicast)
                .unwrap_err()
                .reason(),
            "family_mismatch"
        );
    }

    #[test]
    fn ip_header_rules_in_unicast_mode() {
        // Proves that unicast mode lifts only the IPv6 link-local source rule (a global
        // unicast_src_ip, as keepalived sends, passes; the peer list filters later) and
        // keeps every other check: hop limit 255, a unicast source.
        let (g1, g2) = (ip("2001:db8::1"), ip("2001:db8::2"));
        let u = Transport::Unicast;
        assert_eq!(check_ip_header(255, 112, g1, g2, u), Ok(()));
        assert_eq!(check_ip_header(255, 112, ip("fe80::a"), g2, u), Ok(()));
        assert_eq!(
            check_ip_header(64, 112, g1, g2, u),
            Err(IpCheckError::BadTtl(64))
        );
        assert_eq!(
            check_ip_header(255, 112, ip("ff02::1"), g2, u),
            Err(IpCheckError::BadSource(ip("ff02::1")))
        );
        assert_eq!(
            check_ip_header(255, 112, ip("::"), g2, u),
            Err(IpCheckError::BadSource(ip("::")))
        );
        assert_eq!(
            check_ip_header(255, 112, ip("192.0.2.1"), ip("192.0.2.2"), u),
            Ok(())
        );
    }

    #[test]
    fn virtual_mac_per_rfc() {
        // Proves RFC 9568 7.3: 00-00-5E-00-01-{VRID} (IPv4), 00-00-5E-00-02-{VRID} (IPv6).
        assert_eq!(virtual_mac(51, Family::V4), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(255, Family::V6), [0, 0, 0x5e, 0, 2, 255]);
        assert_eq!(Family::V4.multicast_group(), ip("224.0.0.18"));
        assert_eq!(Family::V6.multicast_group(), ip("ff02::12"));
    }
}
