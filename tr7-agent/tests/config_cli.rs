//! `tr7 validate` and `tr7 schema` output: exit codes, the human lines, the JSON shape.

use std::path::PathBuf;

use tr7::config::cli::{self, Format, ValidateArgs};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tr7-config-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write scratch file");
    path
}

fn args(file: PathBuf, node: Option<&str>, format: Format) -> ValidateArgs {
    ValidateArgs {
        file,
        node: node.map(str::to_owned),
        format,
    }
}

// Proves a valid file exits 0 with a summary of types, VIPs and VRIDs.
#[test]
fn valid_human_summary() {
    let (code, text) = cli::validate_report(&args(
        example("active-active.yaml"),
        Some("node-a"),
        Format::Human,
    ));
    assert_eq!(code, cli::EXIT_VALID, "{text}");
    assert!(
        text.contains("valid cluster `adc-aa`, nodes: node-a, node-b"),
        "{text}"
    );
    assert!(text.contains("node: node-a"), "{text}");
    assert!(text.contains("interfaces: 2 (2 ethernet)"), "{text}");
    assert!(
        text.contains("VIPs: IPv4 4 (master 2, backup 2); IPv6 2 (master 1, backup 1)"),
        "{text}"
    );
    assert!(
        text.contains("eth0: master 10* (preferred node-a, priority here 200), backup 11*"),
        "{text}"
    );
    assert!(text.lines().count() < 25, "one screen:\n{text}");
}

// Proves the 200-VLAN summary stays on one screen.
#[test]
fn trunk_summary_fits_a_screen() {
    let (code, text) = cli::validate_report(&args(
        example("telecom-trunk.yaml"),
        Some("node-b"),
        Format::Human,
    ));
    assert_eq!(code, cli::EXIT_VALID, "{text}");
    assert!(text.lines().count() <= 24, "{text}");
    assert!(text.contains("... and 184 more interfaces"), "{text}");
}

// Proves an invalid file exits 1 with one `FILE:LINE:COL: path: message (hint: ...)` line per error.
#[test]
fn invalid_human_lines() {
    let path = scratch(
        "bad.yaml",
        "name: t\nnodes: [{name: a}]\ninterfaces:\n  - name: eth0\n    type: ethernet\n    colour: red\n    mtu: 10\n",
    );
    let (code, text) = cli::validate_report(&args(path.clone(), None, Format::Human));
    assert_eq!(code, cli::EXIT_INVALID);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let p = path.display();
    assert!(
        lines[0].starts_with(&format!(
            "{p}:6:5: interfaces[0].colour: unknown field `colour` (hint: "
        )),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{p}:7:10: interfaces[0].mtu: MTU 10 is outside 68-65535 (hint: "
        )),
        "{text}"
    );
}

// Proves the JSON output carries file, line, column, path, code, message and hint per error.
#[test]
fn invalid_json_shape() {
    let path = scratch(
        "bad2.yaml",
        "name: t\nnodes: [{name: a}]\ninterfaces:\n  - name: eth0\n    type: bridge\n    id: 3\n",
    );
    let (code, text) = cli::validate_report(&args(path, None, Format::Json));
    assert_eq!(code, cli::EXIT_INVALID);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["valid"], false);
    assert!(v["summary"].is_null());
    let e = &v["errors"][0];
    assert_eq!(e["line"], 6);
    assert_eq!(e["column"], 5);
    assert_eq!(e["path"], "interfaces[0].id");
    assert_eq!(e["code"], "option-not-for-type");
    assert_eq!(e["message"], "`id` is not an option of a bridge interface");
    assert!(e["hint"].as_str().expect("hint").contains("members, stp"));
    assert!(e["file"].as_str().expect("file").ends_with("bad2.yaml"));
}

// Proves the JSON summary of a valid file lists every VRID.
#[test]
fn valid_json_summary() {
    let (code, text) = cli::validate_report(&args(
        example("telecom-trunk.yaml"),
        Some("node-a"),
        Format::Json,
    ));
    assert_eq!(code, cli::EXIT_VALID);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["valid"], true);
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(0));
    let s = &v["summary"];
    assert_eq!(s["interfaces"]["vlan"], 200);
    assert_eq!(s["interfaces"]["lacp"], 1);
    assert_eq!(s["vips"]["ipv6"]["backup"], 200);
    assert_eq!(s["vrids"].as_array().map(Vec::len), Some(400));
    assert_eq!(s["vrids"][0]["interface"], "bond0.1");
    assert_eq!(s["vrids"][0]["priority"], 200);
}

// Proves --node with a name outside the cluster is an error, and a missing file exits 2.
#[test]
fn unknown_node_and_missing_file() {
    let (code, text) = cli::validate_report(&args(
        example("minimal.yaml"),
        Some("node-z"),
        Format::Human,
    ));
    assert_eq!(code, cli::EXIT_INVALID);
    assert!(text.contains("--node: `node-z` is not a node of the cluster (hint: the cluster's nodes: node-a, node-b)"), "{text}");
    let (code, text) = cli::validate_report(&args(
        PathBuf::from("/nonexistent/tr7.yaml"),
        None,
        Format::Json,
    ));
    assert_eq!(code, cli::EXIT_UNREADABLE);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["errors"][0]["code"], "read");
}
