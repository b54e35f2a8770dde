//! The VRRPv3 checksum (RFC 9568 5.2.8): the Internet checksum of RFC 1071 over the
//! message, with or without an IP pseudo-header in front of it.
//!
//! Two readings of the IPv4 rule exist on the wire. RFC 5798 said "a pseudo-header as
//! defined in Section 8.1 of RFC 2460" for both families, and keepalived, FRR's older
//! releases and Wireshark's default read that as an RFC 768-style IPv4 pseudo-header.
//! RFC 9568 5.2.8 settled it the other way: "For the IPv4 address family, the checksum
//! calculation only includes the VRRP message". Keepalived keeps the pseudo-header unless
//! `v3_checksum_as_v2` is set. We therefore send either (configurable) and accept both
//! on receive for IPv4. IPv6 has only one reading: the RFC 8200 8.1 pseudo-header.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::packet::PROTOCOL;

/// Which checksum an IPv4 advertisement carries. IPv6 always uses the pseudo-header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumMode {
    /// Sum over an IPv4 pseudo-header (source, destination, zero, protocol 112, length)
    /// and the message: what keepalived (without `v3_checksum_as_v2`) and Wireshark's
    /// default expect. The default, because it is what the peers we meet send.
    #[default]
    PseudoHeader,
    /// Sum over the VRRP message only, as RFC 9568 5.2.8 specifies for IPv4 (keepalived
    /// `v3_checksum_as_v2`, Cisco).
    MessageOnly,
}

/// Adds `bytes` as big-endian 16-bit words to `sum`; an odd last byte is padded with
/// zero (RFC 1071). Carries are folded at the end, so `u64` cannot overflow for any
/// message that fits in an IP packet.
fn add_words(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u64 {
    let mut sum = add_words(0, &src.octets());
    sum = add_words(sum, &dst.octets());
    sum += u64::from(PROTOCOL);
    sum + len as u64
}

fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u64 {
    let mut sum = add_words(0, &src.octets());
    sum = add_words(sum, &dst.octets());
    // RFC 8200 8.1: 32-bit upper-layer length, three zero bytes, next header.
    sum += (len as u64 >> 16) & 0xffff;
    sum += len as u64 & 0xffff;
    sum + u64::from(PROTOCOL)
}

/// The sum of the pseudo-header that `mode` puts in front of a message of `len` bytes
/// sent from `src` to `dst`; `None` when the families differ. The IPv6 pseudo-header is
/// used whatever `mode` says.
fn pseudo_sum(src: IpAddr, dst: IpAddr, len: usize, mode: ChecksumMode) -> Option<u64> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(match mode {
            ChecksumMode::PseudoHeader => pseudo_header_v4(s, d, len),
            ChecksumMode::MessageOnly => 0,
        }),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, len)),
        _ => None,
    }
}

/// The checksum to write into bytes 6..8 of `message`, whose checksum field must hold
/// zero. `None` when `src` and `dst` are of different families.
pub fn compute(message: &[u8], src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> Option<u16> {
    let sum = pseudo_sum(src, dst, message.len(), mode)?;
    Some(!fold(add_words(sum, message)))
}

/// Whether `message` (checksum field included) sums to zero under `mode`.
pub fn verify(message: &[u8], src: IpAddr, dst: IpAddr, mode: ChecksumMode) -> bool {
    pseudo_sum(src, dst, message.len(), mode)
        .is_some_and(|sum| fold(add_words(sum, message)) == 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sum() {
        // Proves the word sum and carry folding match the worked example of RFC 1071
        // section 3 (bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 after folding).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(add_words(0, &bytes)), 0xddf2);
    }

    #[test]
    fn odd_length_is_zero_padded() {
        // Proves an odd trailing byte counts as the high byte of a zero-padded word.
        assert_eq!(fold(add_words(0, &[0x12, 0x34, 0x56])), 0x6834);
    }

    #[test]
    fn computed_checksum_verifies_in_its_own_mode_only() {
        // Proves compute/verify agree, and that an IPv4 pseudo-header checksum does not
        // pass as message-only (so the receiver can tell which one a peer uses).
        let msg = [
            0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 192, 0, 2, 10,
        ];
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let dst: IpAddr = "224.0.0.18".parse().unwrap();
        for mode in [ChecksumMode::PseudoHeader, ChecksumMode::MessageOnly] {
            let mut m = msg;
            let c = compute(&m, src, dst, mode).unwrap();
            m[6..8].copy_from_slice(&c.to_be_bytes());
            assert!(verify(&m, src, dst, mode));
            let other = match mode {
                ChecksumMode::PseudoHeader => ChecksumMode::MessageOnly,
                ChecksumMode::MessageOnly => ChecksumMode::PseudoHeader,
            };
            assert!(!verify(&m, src, dst, other));
        }
    }

    #[test]
    fn mixed_families_have_no_checksum() {
        // Proves a v4 source with a v6 destination is refused rather than summed.
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let dst: IpAddr = "ff02::12".parse().unwrap();
        assert_eq!(compute(&[0; 8], src, dst, ChecksumMode::PseudoHeader), None);
        assert!(!verify(&[0; 8], src, dst, ChecksumMode::PseudoHeader));
    }
}
