//! Addresses of the cluster file: CIDR interface addresses and MAC addresses.
//!
//! Small own types instead of a crate: the model needs parse, display, "contains" and a schema,
//! nothing more.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// An address with its prefix length: `192.0.2.1/24`, `2001:db8::1/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The address itself (host bits kept).
    pub addr: IpAddr,
    /// The prefix length, at most 32 for IPv4 and 128 for IPv6.
    pub prefix: u8,
}

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Not an IPv4 or IPv6 address.
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    NotAnAddress(String),
    /// An address without `/prefix` where one is needed.
    #[error("`{0}` has no prefix length")]
    NoPrefix(String),
    /// A prefix length that is not a number or too large for the family.
    #[error("`{0}` has an invalid prefix length")]
    BadPrefix(String),
    /// Not six colon-separated hex octets.
    #[error("`{0}` is not a MAC address")]
    NotAMac(String),
    /// A multicast or all-zero MAC.
    #[error("`{0}` is not a unicast MAC address")]
    NotUnicastMac(String),
}

impl Cidr {
    /// The longest prefix of the address's family: 32 or 128.
    pub fn max_prefix(addr: IpAddr) -> u8 {
        if addr.is_ipv4() { 32 } else { 128 }
    }

    /// Parses `addr/prefix`; the prefix is required.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        match s.split_once('/') {
            Some(_) => Self::parse_host_or_cidr(s),
            None => Err(AddrError::NoPrefix(s.to_owned())),
        }
    }

    /// Parses `addr` (a host route: /32 or /128) or `addr/prefix`.
    pub fn parse_host_or_cidr(s: &str) -> Result<Self, AddrError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(a.trim()).map_err(|_| AddrError::NotAnAddress(s.to_owned()))?;
        let max = Self::max_prefix(addr);
        let prefix = match p {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(AddrError::BadPrefix(s.to_owned())),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// Whether this is a single host (/32 or /128).
    pub fn is_host(&self) -> bool {
        self.prefix == Self::max_prefix(self.addr)
    }

    /// Whether `other` lies in this address's subnet (same family, same network bits).
    pub fn contains(&self, other: IpAddr) -> bool {
        match (self.addr, other) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    /// Whether the address is the network address of a subnet that has a broadcast address
    /// (IPv4 /0-/30), which the kernel accepts but nothing can reach as a host.
    pub fn is_v4_network_or_broadcast(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) if self.prefix <= 30 => {
                let host_mask = u32::MAX >> self.prefix;
                let host = u32::from(a) & host_mask;
                host == 0 || host == host_mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An address with its prefix length, IPv4 or IPv6.",
            "examples": ["192.0.2.2/24", "2001:db8::2/64"]
        })
    }
}

/// A unicast MAC address, written `02:00:5e:10:00:01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses six colon- or dash-separated hex octets; refuses multicast and all-zero MACs,
    /// which no interface can own.
    pub fn parse(s: &str) -> Result<Self, AddrError> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(AddrError::NotAMac(s.to_owned()));
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(&parts) {
            if p.len() != 2 {
                return Err(AddrError::NotAMac(s.to_owned()));
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| AddrError::NotAMac(s.to_owned()))?;
        }
        if out[0] & 1 == 1 || out == [0; 6] {
            return Err(AddrError::NotUnicastMac(s.to_owned()));
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for Mac {
    fn schema_name() -> Cow<'static, str> {
        "Mac".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$",
            "description": "A unicast MAC address.",
            "examples": ["02:00:00:00:0a:01"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves subnet membership at the prefix boundaries of both families.
    #[test]
    fn contains_respects_prefix() {
        let c = Cidr::parse("192.0.2.1/24").expect("valid");
        assert!(c.contains("192.0.2.200".parse().expect("ip")));
        assert!(!c.contains("192.0.3.1".parse().expect("ip")));
        assert!(!c.contains("2001:db8::1".parse().expect("ip")));
        let all = Cidr::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains("203.0.113.9".parse().expect("ip")));
        let c6 = Cidr::parse("2001:db8:1::1/64").expect("valid");
        assert!(c6.contains("2001:db8:1::ffff".parse().expect("ip")));
        assert!(!c6.contains("2001:db8:2::1".parse().expect("ip")));
    }

    // Proves that bad addresses are refused with a reason.
    #[test]
    fn refuses_bad_addresses() {
        assert_eq!(
            Cidr::parse("192.0.2.1"),
            Err(AddrError::NoPrefix("192.0.2.1".into()))
        );
        assert!(matches!(
            Cidr::parse("192.0.2.1/33"),
            Err(AddrError::BadPrefix(_))
        ));
        assert!(matches!(
            Cidr::parse("nope/24"),
            Err(AddrError::NotAnAddress(_))
        ));
        assert!(
            Cidr::parse_host_or_cidr("2001:db8::1")
                .expect("host")
                .is_host()
        );
        assert!(matches!(
            Mac::parse("01:00:5e:00:00:01"),
            Err(AddrError::NotUnicastMac(_))
        ));
        assert!(matches!(
            Mac::parse("02:00:5e:00:01"),
            Err(AddrError::NotAMac(_))
        ));
        assert_eq!(
            Mac::parse("02-00-5E-00-00-01").expect("mac").to_string(),
            "02:00:5e:00:00:01"
        );
    }
}
