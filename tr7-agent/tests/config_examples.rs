//! The examples/ files validate, the generated trunk is the committed one, files round-trip
//! through serialization, and the 4,000-VLAN benchmark input validates.

use std::path::PathBuf;
use std::time::Instant;

use tr7::config::{self, InterfaceKind, generate};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

const EXAMPLES: [&str; 5] = [
    "telecom-trunk.yaml",
    "production-lacp.yaml",
    "active-active.yaml",
    "multi-tenant.yaml",
    "minimal.yaml",
];

// Proves that every scenario file in examples/ is a valid cluster file.
#[test]
fn every_example_validates() {
    for name in EXAMPLES {
        let path = examples_dir().join(name);
        if let Err(e) = config::load(&path) {
            panic!("{name} does not validate:\n{e}");
        }
    }
}

// Proves that examples/telecom-trunk.yaml is exactly generate::trunk(200), so the committed
// file and its documented generator agree. TR7_REGENERATE=1 rewrites the file.
#[test]
fn trunk_example_is_generated() {
    let path = examples_dir().join("telecom-trunk.yaml");
    let want = generate::trunk(200);
    if std::env::var_os("TR7_REGENERATE").is_some() {
        std::fs::write(&path, &want).expect("write telecom-trunk.yaml");
    }
    let have = std::fs::read_to_string(&path).expect("read telecom-trunk.yaml");
    assert!(
        have == want,
        "examples/telecom-trunk.yaml differs from generate::trunk(200); regenerate with \
         TR7_REGENERATE=1 cargo test -p tr7-agent --test config_examples"
    );
    let cluster = config::parse(&have, "telecom-trunk.yaml").expect("valid");
    let vlans = cluster
        .interfaces
        .iter()
        .filter(|i| matches!(i.kind, InterfaceKind::Vlan { .. }))
        .count();
    assert_eq!(vlans, 200);
}

// Proves parse -> serialize -> parse keeps the file: the serialized form parses again, to the
// same file types and the same validated cluster.
#[test]
fn examples_round_trip() {
    for name in EXAMPLES {
        let text = std::fs::read_to_string(examples_dir().join(name)).expect("read example");
        let first = config::parse_file(&text, name).expect("parses");
        let yaml = config::to_yaml(&first).expect("serializes");
        let second = config::parse_file(&yaml, name)
            .unwrap_or_else(|e| panic!("{name}: serialized form does not parse:\n{e}\n{yaml}"));
        assert_eq!(
            serde_json::to_value(&first).expect("json"),
            serde_json::to_value(&second).expect("json"),
            "{name}: round trip changed the file"
        );
        assert_eq!(
            config::parse(&text, name).expect("valid"),
            config::parse(&yaml, name).expect("valid after round trip"),
            "{name}: round trip changed the cluster"
        );
    }
}

// Benchmark, not a timed assertion: a 4,000-VLAN trunk validates; the time is printed
// (`cargo test -- --nocapture`). `cargo xtask bench config` uses the same input.
#[test]
fn four_thousand_vlans_validate() {
    let text = config::bench_input(4000);
    let start = Instant::now();
    let cluster = config::parse(&text, "bench.yaml").expect("valid");
    let elapsed = start.elapsed();
    assert_eq!(cluster.interfaces.len(), 4003);
    assert_eq!(cluster.vrids().len(), 8000);
    println!(
        "config bench: {} bytes, 4003 interfaces, 16000 VIPs validated in {elapsed:?}",
        text.len()
    );
}

// Proves the node view gives each node its own addresses, priorities and unicast peers.
#[test]
fn node_view_of_active_active() {
    let cluster = config::load(examples_dir().join("active-active.yaml")).expect("valid");
    let a = cluster.node_view("node-a").expect("node-a");
    let eth0 = &a.interfaces[0];
    assert_eq!(eth0.addresses[0].to_string(), "192.0.2.2/24");
    let master = &eth0.slots[0];
    assert_eq!(master.vrid.value, 10);
    assert!(master.vrid.pinned);
    assert!(master.preferred);
    assert_eq!(master.priority, 200);
    assert_eq!(
        master.peers,
        vec![
            "192.0.2.3".parse::<std::net::IpAddr>().expect("ip"),
            "2001:db8:1::3".parse().expect("ip")
        ]
    );
    let backup = &eth0.slots[1];
    assert!(!backup.preferred);
    assert_eq!(backup.priority, 100);
    assert!(cluster.node_view("node-z").is_err());
}
