//! Automatic VRIDs: deterministic, collision-free within an L2 segment, never moving a pin.
//!
//! Each slot that needs a VRID has a stable identity, `segment|interface|slot`, built from
//! names only, never from file order. Its preferred VRID is `FNV-1a-64(identity) % 255 + 1`.
//! Within one segment, pinned VRIDs are placed first; then the automatic slots, in order of
//! (preferred VRID, identity), each take their preferred VRID or the next free one (wrapping
//! 255 -> 1). FNV is written out here because std's `DefaultHasher` does not promise the same
//! output across Rust releases, and two nodes built by different toolchains must agree.

use std::collections::BTreeMap;

/// One slot asking for a VRID.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    /// The L2 segment the slot speaks on.
    pub(crate) segment: String,
    /// `segment|interface|slot`: unique per slot, stable across edits of other entries.
    pub(crate) identity: String,
    /// A VRID the file pins (already range-checked to 1-255).
    pub(crate) pinned: Option<u8>,
}

/// A problem found while assigning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Request `index` pins the VRID that request `other` pinned before it.
    Pinned {
        index: usize,
        other: usize,
        vrid: u8,
    },
    /// Request `index` found no free VRID in its segment.
    Exhausted { index: usize },
}

/// The preferred VRID of an identity.
pub(crate) fn preferred(identity: &str) -> u8 {
    // 255 residues map onto VRIDs 1-255; the result always fits in u8.
    (fnv1a(identity.as_bytes()) % 255 + 1) as u8
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Assigns a VRID to every request; conflicting requests get `None` and a [`Conflict`].
pub(crate) fn assign(requests: &[Request]) -> (Vec<Option<u8>>, Vec<Conflict>) {
    let mut out = vec![None; requests.len()];
    let mut conflicts = Vec::new();
    let mut segments: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in requests.iter().enumerate() {
        segments.entry(r.segment.as_str()).or_default().push(i);
    }
    for members in segments.values() {
        // owner[v] = the request holding VRID v in this segment.
        let mut owner: [Option<usize>; 256] = [None; 256];
        for &i in members {
            if let Some(v) = requests[i].pinned {
                match owner[usize::from(v)] {
                    Some(other) => conflicts.push(Conflict::Pinned {
                        index: i,
                        other,
                        vrid: v,
                    }),
                    None => {
                        owner[usize::from(v)] = Some(i);
                        out[i] = Some(v);
                    }
                }
            }
        }
        let mut auto: Vec<(u8, &str, usize)> = members
            .iter()
            .filter(|&&i| requests[i].pinned.is_none())
            .map(|&i| {
                let id = requests[i].identity.as_str();
                (preferred(id), id, i)
            })
            .collect();
        auto.sort_unstable();
        for (start, _, i) in auto {
            let free = (0..255u16)
                .map(|step| ((u16::from(start) - 1 + step) % 255 + 1) as u8)
                .find(|v| owner[usize::from(*v)].is_none());
            match free {
                Some(v) => {
                    owner[usize::from(v)] = Some(i);
                    out[i] = Some(v);
                }
                None => conflicts.push(Conflict::Exhausted { index: i }),
            }
        }
    }
    (out, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(segment: &str, name: &str, pinned: Option<u8>) -> Request {
        Request {
            segment: segment.to_owned(),
            identity: format!("{segment}|{name}"),
            pinned,
        }
    }

    // Proves the hash is the published FNV-1a-64 (so other tools can recompute VRIDs).
    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    // Proves that a pin is kept even when an automatic slot prefers the same VRID.
    #[test]
    fn pins_never_move() {
        let auto = req("s", "eth0|master", None);
        let pin = preferred(&auto.identity);
        let reqs = vec![auto, req("s", "eth1|master", Some(pin))];
        let (out, conflicts) = assign(&reqs);
        assert!(conflicts.is_empty());
        assert_eq!(out[1], Some(pin));
        assert_ne!(out[0], Some(pin));
    }

    // Proves that a full segment reports exhaustion instead of reusing a VRID.
    #[test]
    fn exhaustion_is_reported() {
        let reqs: Vec<Request> = (0..256)
            .map(|i| req("s", &format!("if{i}|master"), None))
            .collect();
        let (out, conflicts) = assign(&reqs);
        assert_eq!(out.iter().filter(|v| v.is_some()).count(), 255);
        assert_eq!(conflicts.len(), 1);
    }

    // Proves that two pins on one segment collide and on two segments do not.
    #[test]
    fn pinned_collisions_per_segment() {
        let reqs = vec![
            req("a", "x|master", Some(7)),
            req("a", "y|master", Some(7)),
            req("b", "z|master", Some(7)),
        ];
        let (_, conflicts) = assign(&reqs);
        assert_eq!(
            conflicts,
            vec![Conflict::Pinned {
                index: 1,
                other: 0,
                vrid: 7
            }]
        );
    }
}
