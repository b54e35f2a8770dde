//! Reads the positioned YAML tree into the file types of `file.rs`.
//!
//! This is the shape check: unknown fields, duplicate keys, wrong YAML kinds, unparseable
//! scalars, options that the interface type does not take. It records every problem and keeps
//! going, so one run shows them all; semantic rules are `validate.rs`'s job.

use std::net::IpAddr;

use super::addr::{Cidr, Mac};
use super::duration::{DURATION_HINT, HumanDuration};
use super::error::{Pos, Rule, Sink};
use super::file::{
    ClusterFile, GatewayCheckEntry, GatewayEntry, InterfaceEntry, NodeEntry, PerNode, SlotEntry,
    Sp, VipEntry, VipsEntry, VrrpEntry,
};
use super::model::{
    Checksum, FailoverMethod, HashPolicy, InterfaceType, LacpRate, ProbeMethod, Transport,
    VlanProtocol,
};
use super::yaml::{Node, Value};

/// Reads the whole file; `None` only when the top level is not a mapping at all.
pub(crate) fn cluster(root: &Node, sink: &mut Sink) -> Option<ClusterFile> {
    let mut m = Map::open(root, "", sink)?;
    let name = m.req("name", sink).and_then(|n| string(n, "name", sink));
    let nodes = m
        .req("nodes", sink)
        .and_then(|n| list(n, "nodes", sink, node_entry));
    let mut unreadable = Vec::new();
    let interfaces = m
        .get("interfaces")
        .and_then(|n| {
            list(n, "interfaces", sink, |n, path, sink| {
                let entry = interface(n, path, sink);
                if entry.is_none() {
                    unreadable.extend(name_of(n));
                }
                entry
            })
        })
        .unwrap_or_default();
    m.finish(ClusterFile::FIELDS, sink);
    Some(ClusterFile {
        pos: root.pos,
        name: name?,
        nodes: nodes.unwrap_or_default(),
        interfaces,
        unreadable,
    })
}

fn node_entry(n: &Node, path: &str, sink: &mut Sink) -> Option<NodeEntry> {
    let mut m = Map::open(n, path, sink)?;
    let name = m
        .req("name", sink)
        .and_then(|v| string(v, &join(path, "name"), sink));
    m.finish(NodeEntry::FIELDS, sink);
    Some(NodeEntry {
        pos: n.pos,
        name: name?,
    })
}

fn name_of(n: &Node) -> Option<String> {
    let Value::Map(entries) = &n.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (Value::Str(k), Value::Str(v)) if k == "name" => Some(v.clone()),
            _ => None,
        })
}

fn interface(n: &Node, path: &str, sink: &mut Sink) -> Option<InterfaceEntry> {
    let mut m = Map::open(n, path, sink)?;
    let name = m
        .req("name", sink)
        .and_then(|v| string(v, &join(path, "name"), sink));
    let kind = m.req("type", sink).and_then(|v| {
        keyword(
            v,
            &join(path, "type"),
            sink,
            InterfaceType::from_name,
            InterfaceType::NAMES,
        )
    });
    let p = |k: &str| join(path, k);
    let mtu = m.get("mtu").and_then(|v| int(v, &p("mtu"), sink));
    let mac = m.get("mac").and_then(|v| {
        per_node(v, &p("mac"), sink, |v, path, sink| {
            parsed(
                v,
                path,
                sink,
                Mac::parse,
                "write six hex octets, e.g. 02:00:00:00:0a:01",
            )
        })
    });
    let addresses = m.get("addresses").and_then(|v| {
        per_node(v, &p("addresses"), sink, |v, path, sink| {
            spanned_list(v, path, sink, |v, path, sink| {
                parsed(
                    v,
                    path,
                    sink,
                    Cidr::parse,
                    "write the address with its prefix length, e.g. 192.0.2.2/24 or 2001:db8::2/64",
                )
            })
        })
    });
    let parent = m.get("parent").and_then(|v| string(v, &p("parent"), sink));
    let id = m.get("id").and_then(|v| int(v, &p("id"), sink));
    let protocol = m.get("protocol").and_then(|v| {
        keyword(
            v,
            &p("protocol"),
            sink,
            VlanProtocol::from_name,
            VlanProtocol::NAMES,
        )
    });
    let members = m
        .get("members")
        .and_then(|v| spanned_list(v, &p("members"), sink, string));
    let primary = m
        .get("primary")
        .and_then(|v| string(v, &p("primary"), sink));
    let mii_monitor_interval = m
        .get("mii_monitor_interval")
        .and_then(|v| duration(v, &p("mii_monitor_interval"), sink));
    let lacp_rate = m.get("lacp_rate").and_then(|v| {
        keyword(
            v,
            &p("lacp_rate"),
            sink,
            LacpRate::from_name,
            LacpRate::NAMES,
        )
    });
    let transmit_hash_policy = m.get("transmit_hash_policy").and_then(|v| {
        keyword(
            v,
            &p("transmit_hash_policy"),
            sink,
            HashPolicy::from_name,
            HashPolicy::NAMES,
        )
    });
    let min_links = m
        .get("min_links")
        .and_then(|v| int(v, &p("min_links"), sink));
    let peer = m.get("peer").and_then(|v| string(v, &p("peer"), sink));
    let namespace = m
        .get("namespace")
        .and_then(|v| string(v, &p("namespace"), sink));
    let stp = m.get("stp").and_then(|v| boolean(v, &p("stp"), sink));
    let vrrp = m.get("vrrp").and_then(|v| vrrp(v, &p("vrrp"), sink));
    let vips = m.get("vips").and_then(|v| vips(v, &p("vips"), sink));
    let gateway = m
        .get("gateway")
        .and_then(|v| gateway(v, &p("gateway"), sink));
    if let Some(kind) = &kind {
        // Options of another type get their own message naming this type and its options,
        // the mistake being "wrong place", not "misspelled".
        let own = InterfaceEntry::type_fields(kind.value);
        for (key, key_pos) in m.keys() {
            let known = InterfaceEntry::FIELDS.contains(&key);
            let allowed = InterfaceEntry::COMMON_FIELDS.contains(&key) || own.contains(&key);
            if known && !allowed {
                m.mark_used(key);
                let takes = if own.is_empty() {
                    "only the common options".to_owned()
                } else {
                    own.join(", ")
                };
                sink.push(
                    key_pos,
                    m.child(key),
                    Rule::OptionNotForType,
                    format!("`{key}` is not an option of a {} interface", kind.value),
                    format!(
                        "a {} takes {takes}, besides {}",
                        kind.value,
                        InterfaceEntry::COMMON_FIELDS.join(", ")
                    ),
                );
            }
        }
    }
    m.finish(InterfaceEntry::FIELDS, sink);
    Some(InterfaceEntry {
        pos: n.pos,
        path: path.to_owned(),
        name: name?,
        kind: kind?,
        mtu,
        mac,
        addresses,
        parent,
        id,
        protocol,
        members,
        primary,
        mii_monitor_interval,
        lacp_rate,
        transmit_hash_policy,
        min_links,
        peer,
        namespace,
        stp,
        vrrp,
        vips,
        gateway,
    })
}

fn vrrp(n: &Node, path: &str, sink: &mut Sink) -> Option<VrrpEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let entry = VrrpEntry {
        pos: n.pos,
        unicast: m.get("unicast").and_then(|v| {
            per_node(v, &p("unicast"), sink, |v, path, sink| {
                spanned_list(v, path, sink, |v, path, sink| {
                    parsed(
                        v,
                        path,
                        sink,
                        |s| s.trim().parse::<IpAddr>(),
                        "write a plain address of this node on the interface, e.g. 192.0.2.2",
                    )
                })
            })
        }),
        transport: m.get("transport").and_then(|v| {
            keyword(
                v,
                &p("transport"),
                sink,
                Transport::from_name,
                Transport::NAMES,
            )
        }),
        advert_interval: m
            .get("advert_interval")
            .and_then(|v| duration(v, &p("advert_interval"), sink)),
        preempt: m
            .get("preempt")
            .and_then(|v| boolean(v, &p("preempt"), sink)),
        preempt_delay: m
            .get("preempt_delay")
            .and_then(|v| duration(v, &p("preempt_delay"), sink)),
        accept_mode: m
            .get("accept_mode")
            .and_then(|v| boolean(v, &p("accept_mode"), sink)),
        checksum: m.get("checksum").and_then(|v| {
            keyword(
                v,
                &p("checksum"),
                sink,
                Checksum::from_name,
                Checksum::NAMES,
            )
        }),
        virtual_mac: m
            .get("virtual_mac")
            .and_then(|v| boolean(v, &p("virtual_mac"), sink)),
        master: m.get("master").and_then(|v| slot(v, &p("master"), sink)),
        backup: m.get("backup").and_then(|v| slot(v, &p("backup"), sink)),
    };
    m.finish(VrrpEntry::FIELDS, sink);
    Some(entry)
}

fn slot(n: &Node, path: &str, sink: &mut Sink) -> Option<SlotEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let entry = SlotEntry {
        pos: n.pos,
        preferred: m
            .get("preferred")
            .and_then(|v| string(v, &p("preferred"), sink)),
        priority: m
            .get("priority")
            .and_then(|v| per_node(v, &p("priority"), sink, int)),
        vrid: m.get("vrid").and_then(|v| int(v, &p("vrid"), sink)),
    };
    m.finish(SlotEntry::FIELDS, sink);
    Some(entry)
}

fn vips(n: &Node, path: &str, sink: &mut Sink) -> Option<VipsEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let entry = VipsEntry {
        pos: n.pos,
        master: m
            .get("master")
            .and_then(|v| list(v, &p("master"), sink, vip))
            .unwrap_or_default(),
        backup: m
            .get("backup")
            .and_then(|v| list(v, &p("backup"), sink, vip))
            .unwrap_or_default(),
    };
    m.finish(VipsEntry::FIELDS, sink);
    Some(entry)
}

fn vip(n: &Node, path: &str, sink: &mut Sink) -> Option<VipEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let address = m.req("address", sink).and_then(|v| {
        parsed(
            v,
            &p("address"),
            sink,
            Cidr::parse_host_or_cidr,
            "write an IPv4 or IPv6 address, e.g. 192.0.2.10 or 2001:db8::10",
        )
    });
    let method = m.get("method").and_then(|v| {
        keyword(
            v,
            &p("method"),
            sink,
            FailoverMethod::from_name,
            FailoverMethod::NAMES,
        )
    });
    let zone = m.get("zone").and_then(|v| string(v, &p("zone"), sink));
    let service = m
        .get("service")
        .and_then(|v| string(v, &p("service"), sink));
    let namespace = m
        .get("namespace")
        .and_then(|v| string(v, &p("namespace"), sink));
    let allow_off_subnet = m
        .get("allow_off_subnet")
        .and_then(|v| boolean(v, &p("allow_off_subnet"), sink));
    m.finish(VipEntry::FIELDS, sink);
    Some(VipEntry {
        pos: n.pos,
        path: path.to_owned(),
        address: address?,
        method,
        zone,
        service,
        namespace,
        allow_off_subnet,
    })
}

fn gateway(n: &Node, path: &str, sink: &mut Sink) -> Option<GatewayEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let entry = GatewayEntry {
        pos: n.pos,
        ipv4: m
            .get("ipv4")
            .and_then(|v| gateway_check(v, &p("ipv4"), sink)),
        ipv6: m
            .get("ipv6")
            .and_then(|v| gateway_check(v, &p("ipv6"), sink)),
    };
    m.finish(GatewayEntry::FIELDS, sink);
    Some(entry)
}

fn gateway_check(n: &Node, path: &str, sink: &mut Sink) -> Option<GatewayCheckEntry> {
    let mut m = Map::open(n, path, sink)?;
    let p = |k: &str| join(path, k);
    let target = m.req("target", sink).and_then(|v| {
        parsed(
            v,
            &p("target"),
            sink,
            |s| s.trim().parse::<IpAddr>(),
            "write the gateway's address, e.g. 192.0.2.1",
        )
    });
    let method = m.get("method").and_then(|v| {
        keyword(
            v,
            &p("method"),
            sink,
            ProbeMethod::from_name,
            ProbeMethod::NAMES,
        )
    });
    let interval = m
        .get("interval")
        .and_then(|v| duration(v, &p("interval"), sink));
    let timeout = m
        .get("timeout")
        .and_then(|v| duration(v, &p("timeout"), sink));
    let rise = m.get("rise").and_then(|v| int(v, &p("rise"), sink));
    let fall = m.get("fall").and_then(|v| int(v, &p("fall"), sink));
    m.finish(GatewayCheckEntry::FIELDS, sink);
    Some(GatewayCheckEntry {
        pos: n.pos,
        target: target?,
        method,
        interval,
        timeout,
        rise,
        fall,
    })
}

// ---- building blocks ----

/// A mapping being read: remembers which keys were consumed, to report the rest.
struct Map<'n> {
    pos: Pos,
    path: String,
    entries: Vec<(&'n str, Pos, &'n Node)>,
    used: Vec<bool>,
}

impl<'n> Map<'n> {
    /// Opens a mapping; reports non-string and duplicate keys.
    fn open(n: &'n Node, path: &str, sink: &mut Sink) -> Option<Self> {
        let Value::Map(raw) = &n.value else {
            wrong_type(n, path, "a mapping", sink);
            return None;
        };
        let mut entries: Vec<(&'n str, Pos, &'n Node)> = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            let Value::Str(key) = &k.value else {
                sink.push(
                    k.pos,
                    path,
                    Rule::WrongType,
                    format!("a key must be a string, found {}", k.value.kind()),
                    "field names are words like `name` or `type`",
                );
                continue;
            };
            if let Some((_, first, _)) = entries.iter().find(|(e, _, _)| e == key) {
                sink.push(
                    k.pos,
                    join(path, key),
                    Rule::DuplicateKey,
                    format!("`{key}` is given twice (first on line {})", first.line),
                    "keep one of them",
                );
                continue;
            }
            entries.push((key.as_str(), k.pos, v));
        }
        let used = vec![false; entries.len()];
        Some(Self {
            pos: n.pos,
            path: path.to_owned(),
            entries,
            used,
        })
    }

    fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    fn keys(&self) -> Vec<(&'n str, Pos)> {
        self.entries.iter().map(|(k, p, _)| (*k, *p)).collect()
    }

    fn mark_used(&mut self, key: &str) {
        if let Some(i) = self.entries.iter().position(|(k, _, _)| *k == key) {
            self.used[i] = true;
        }
    }

    /// The value of an optional key; an explicit null counts as absent.
    fn get(&mut self, key: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|(k, _, _)| *k == key)?;
        self.used[i] = true;
        let v = self.entries[i].2;
        (v.value != Value::Null).then_some(v)
    }

    /// The value of a required key, or a `missing-field` diagnostic at the mapping.
    fn req(&mut self, key: &str, sink: &mut Sink) -> Option<&'n Node> {
        let v = self.get(key);
        if v.is_none() {
            sink.push(
                self.pos,
                self.path.clone(),
                Rule::MissingField,
                format!("missing field `{key}`"),
                format!("add `{key}:`"),
            );
        }
        v
    }

    /// Reports every key that was not consumed and is not `known`.
    fn finish(self, known: &[&str], sink: &mut Sink) {
        for (i, (key, pos, _)) in self.entries.iter().enumerate() {
            if self.used[i] || known.contains(key) {
                continue;
            }
            let hint = match closest(key, known) {
                Some(c) => format!("did you mean `{c}`? known fields: {}", known.join(", ")),
                None => format!("known fields: {}", known.join(", ")),
            };
            sink.push(
                *pos,
                join(&self.path, key),
                Rule::UnknownField,
                format!("unknown field `{key}`"),
                hint,
            );
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The known name within edit distance 2, for "did you mean".
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn wrong_type(n: &Node, path: &str, expected: &str, sink: &mut Sink) {
    sink.push(
        n.pos,
        path,
        Rule::WrongType,
        format!("expected {expected}, found {}", n.value.kind()),
        format!("write {expected} here"),
    );
}

/// A list; items that fail are reported and left out.
fn list<T>(
    n: &Node,
    path: &str,
    sink: &mut Sink,
    mut item: impl FnMut(&Node, &str, &mut Sink) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Seq(items) = &n.value else {
        wrong_type(n, path, "a list", sink);
        return None;
    };
    Some(
        items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| item(v, &format!("{path}[{i}]"), sink))
            .collect(),
    )
}

fn spanned_list<T>(
    n: &Node,
    path: &str,
    sink: &mut Sink,
    item: impl FnMut(&Node, &str, &mut Sink) -> Option<T>,
) -> Option<Sp<Vec<T>>> {
    list(n, path, sink, item).map(|v| Sp::new(v, n.pos))
}

/// A mapping from node name to a value.
fn per_node<T>(
    n: &Node,
    path: &str,
    sink: &mut Sink,
    mut value: impl FnMut(&Node, &str, &mut Sink) -> Option<T>,
) -> Option<Sp<PerNode<T>>> {
    let m = Map::open(n, path, sink)?;
    let mut out = Vec::with_capacity(m.entries.len());
    for (key, pos, v) in &m.entries {
        if let Some(v) = value(v, &join(path, key), sink) {
            out.push((Sp::new((*key).to_owned(), *pos), v));
        }
    }
    Some(Sp::new(PerNode(out), n.pos))
}

fn string(n: &Node, path: &str, sink: &mut Sink) -> Option<Sp<String>> {
    match &n.value {
        Value::Str(s) => Some(Sp::new(s.clone(), n.pos)),
        // YAML reads `zone: 100` or `name: 2024` as numbers; as labels they are plain text.
        Value::Int(i) => Some(Sp::new(i.to_string(), n.pos)),
        _ => {
            wrong_type(n, path, "a string", sink);
            None
        }
    }
}

fn int(n: &Node, path: &str, sink: &mut Sink) -> Option<Sp<i64>> {
    match &n.value {
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => Some(Sp::new(i, n.pos)),
            Err(_) => {
                sink.push(
                    n.pos,
                    path,
                    Rule::InvalidValue,
                    format!("{i} is far out of range"),
                    "write a small whole number",
                );
                None
            }
        },
        _ => {
            wrong_type(n, path, "a whole number", sink);
            None
        }
    }
}

fn boolean(n: &Node, path: &str, sink: &mut Sink) -> Option<Sp<bool>> {
    match &n.value {
        Value::Bool(b) => Some(Sp::new(*b, n.pos)),
        _ => {
            wrong_type(n, path, "true or false", sink);
            None
        }
    }
}

/// A scalar parsed from its text by `parse`.
fn parsed<T, E: std::fmt::Display>(
    n: &Node,
    path: &str,
    sink: &mut Sink,
    parse: impl Fn(&str) -> Result<T, E>,
    hint: &str,
) -> Option<Sp<T>> {
    let text = match &n.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => {
            wrong_type(n, path, "a string", sink);
            return None;
        }
    };
    match parse(&text) {
        Ok(v) => Some(Sp::new(v, n.pos)),
        Err(e) => {
            let msg = e.to_string();
            // std's address errors say only "invalid IP address syntax"; name the value.
            let msg = if msg.contains(&text) {
                msg
            } else {
                format!("`{text}`: {msg}")
            };
            sink.push(n.pos, path, Rule::InvalidValue, msg, hint);
            None
        }
    }
}

fn duration(n: &Node, path: &str, sink: &mut Sink) -> Option<Sp<HumanDuration>> {
    parsed(n, path, sink, HumanDuration::parse, DURATION_HINT)
}

fn keyword<K>(
    n: &Node,
    path: &str,
    sink: &mut Sink,
    from_name: fn(&str) -> Option<K>,
    names: &[&str],
) -> Option<Sp<K>> {
    let text = match &n.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => {
            wrong_type(n, path, "a string", sink);
            return None;
        }
    };
    match from_name(&text) {
        Some(k) => Some(Sp::new(k, n.pos)),
        None => {
            let hint = match closest(&text, names) {
                Some(c) => format!("did you mean `{c}`? one of: {}", names.join(", ")),
                None => format!("one of: {}", names.join(", ")),
            };
            sink.push(
                n.pos,
                path,
                Rule::InvalidValue,
                format!("`{text}` is not a valid value"),
                hint,
            );
            None
        }
    }
}
