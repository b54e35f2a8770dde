//! Properties of automatic VRIDs over generated cluster files: deterministic (also under
//! reordering of the file), collision-free within each L2 segment, stable when other segments
//! change, and never moving a pinned VRID.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use tr7::config::{self, Cluster, SlotName};

/// One slot's wish: has VIPs, pinned VRID.
#[derive(Clone, Debug)]
struct SlotSpec {
    vips: bool,
    pin: Option<u8>,
}

/// A bridge port (veth + veth-peer in its own namespace) or a VLAN on eth1.
#[derive(Clone, Debug)]
struct Spec {
    ports: Vec<[SlotSpec; 2]>,
    vlans: Vec<(u16, [SlotSpec; 2])>,
}

fn slot() -> impl Strategy<Value = SlotSpec> {
    (any::<bool>(), prop::option::weighted(0.2, 1u8..=255))
        .prop_map(|(vips, pin)| SlotSpec { vips, pin })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec([slot(), slot()], 0..40),
        prop::collection::vec((1u16..=4094, [slot(), slot()]), 0..12),
    )
        .prop_map(|(ports, mut vlans)| {
            let mut seen = HashSet::new();
            vlans.retain(|(id, _)| seen.insert(*id));
            let mut spec = Spec { ports, vlans };
            // Pins are distinct per segment (colliding pins are an error, tested elsewhere).
            let mut used = HashSet::new();
            for p in &mut spec.ports {
                for s in p.iter_mut() {
                    if let Some(v) = s.pin
                        && !used.insert(v)
                    {
                        s.pin = None;
                    }
                }
            }
            for (_, v) in &mut spec.vlans {
                if v[0].pin.is_some() && v[0].pin == v[1].pin {
                    v[1].pin = None;
                }
            }
            spec
        })
}

fn vrrp_block(slots: &[SlotSpec; 2], master_vip: &str, backup_vip: &str) -> String {
    let mut s = String::from("    vrrp:\n");
    for (name, sl) in ["master", "backup"].iter().zip(slots) {
        match sl.pin {
            Some(v) => s.push_str(&format!("      {name}: {{vrid: {v}}}\n")),
            None => s.push_str(&format!("      {name}: {{}}\n")),
        }
    }
    s.push_str("    vips:\n");
    if slots[0].vips {
        s.push_str(&format!("      master: [{{address: {master_vip}}}]\n"));
    }
    if slots[1].vips {
        s.push_str(&format!("      backup: [{{address: {backup_vip}}}]\n"));
    }
    s
}

/// The interface entries of a spec, each a self-contained YAML list item.
fn entries(spec: &Spec) -> Vec<String> {
    let mut out = vec!["  - name: eth1\n    type: ethernet\n".to_owned()];
    let mut ports = vec!["eth1".to_owned()];
    for (i, slots) in spec.ports.iter().enumerate() {
        ports.push(format!("vp{i}"));
        out.push(format!(
            "  - name: vp{i}\n    type: veth\n    peer: t{i}/eth0\n"
        ));
        out.push(format!(
            "  - name: eth0\n    type: veth-peer\n    namespace: t{i}\n    peer: vp{i}\n    addresses:\n      a: [192.0.2.2/24]\n      b: [192.0.2.3/24]\n{}",
            vrrp_block(slots, "192.0.2.10", "192.0.2.11")
        ));
    }
    out.push(format!(
        "  - name: br0\n    type: bridge\n    members: [{}]\n",
        ports.join(", ")
    ));
    for (id, slots) in &spec.vlans {
        out.push(format!(
            "  - name: v{id}\n    type: vlan\n    parent: eth2\n    id: {id}\n    addresses:\n      a: [2001:db8:{id:x}::2/64]\n      b: [2001:db8:{id:x}::3/64]\n{}",
            vrrp_block(slots, &format!("2001:db8:{id:x}::10"), &format!("2001:db8:{id:x}::11"))
        ));
    }
    out.push("  - name: eth2\n    type: ethernet\n".to_owned());
    out
}

fn file(entries: &[String]) -> String {
    format!(
        "name: p\nnodes: [{{name: a}}, {{name: b}}]\ninterfaces:\n{}",
        entries.concat()
    )
}

/// (interface, slot) -> (vrid, pinned, segment).
fn vrids(c: &Cluster) -> BTreeMap<(String, SlotName), (u8, bool, String)> {
    let mut out = BTreeMap::new();
    for i in &c.interfaces {
        if let Some(v) = &i.vrrp {
            for s in v.slots() {
                if let Some(id) = s.vrid {
                    out.insert(
                        (i.id.to_string(), s.name),
                        (id.value, id.pinned, i.segment.clone()),
                    );
                }
            }
        }
    }
    out
}

fn parse(text: &str) -> Cluster {
    match config::parse(text, "gen.yaml") {
        Ok(c) => c,
        Err(e) => panic!("generated file is invalid:\n{e}\n{text}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    // Proves VRIDs are the same for the same file, and for the file with its interface
    // entries in another order (no dependence on file order or hash-map iteration).
    #[test]
    fn deterministic(spec in spec(), seed in any::<u64>()) {
        let e = entries(&spec);
        let first = vrids(&parse(&file(&e)));
        prop_assert_eq!(&first, &vrids(&parse(&file(&e))));
        let mut shuffled = e.clone();
        // A deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&first, &vrids(&parse(&file(&shuffled))));
    }

    // Proves no two slots of one L2 segment share a VRID, and every slot with VIPs has one.
    #[test]
    fn collision_free(spec in spec()) {
        let c = parse(&file(&entries(&spec)));
        let v = vrids(&c);
        let mut seen = HashSet::new();
        for (key, (vrid, _, seg)) in &v {
            prop_assert!(seen.insert((seg.clone(), *vrid)), "{:?} reuses {} on {}", key, vrid, seg);
        }
        let with_vips = spec.ports.iter().flatten().chain(spec.vlans.iter().flat_map(|(_, s)| s))
            .filter(|s| s.vips || s.pin.is_some()).count();
        prop_assert_eq!(v.len(), with_vips);
    }

    // Proves pinned VRIDs are exactly what the file says.
    #[test]
    fn pins_never_move(spec in spec()) {
        let c = parse(&file(&entries(&spec)));
        let v = vrids(&c);
        for (i, slots) in spec.ports.iter().enumerate() {
            for (name, s) in [SlotName::Master, SlotName::Backup].into_iter().zip(slots) {
                if let Some(pin) = s.pin {
                    prop_assert_eq!(v.get(&(format!("t{i}/eth0"), name)).map(|x| (x.0, x.1)), Some((pin, true)));
                }
            }
        }
    }

    // Proves adding, removing or editing VLANs (other segments) leaves the bridge segment's
    // VRIDs unchanged, and each remaining VLAN keeps its VRIDs.
    #[test]
    fn stable_when_other_segments_change(spec in spec(), extra in 1u16..=4094) {
        let before = vrids(&parse(&file(&entries(&spec))));
        let mut changed = spec.clone();
        if changed.vlans.is_empty() {
            changed.vlans.push((extra, [SlotSpec { vips: true, pin: None }, SlotSpec { vips: true, pin: None }]));
        } else {
            changed.vlans.remove(0);
        }
        let after = vrids(&parse(&file(&entries(&changed))));
        for (key, val) in &before {
            if let Some(now) = after.get(key) {
                prop_assert_eq!(val, now, "{:?} moved", key);
            }
        }
    }
}
