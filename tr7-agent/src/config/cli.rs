//! `tr7 validate` and `tr7 schema`: arguments and output, ready for the binary to wire.
//!
//! The output is built as a string by [`validate_report`] so tests check exactly what the
//! operator sees; [`run_validate`] only prints it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::error::{ConfigError, Diagnostic, Diagnostics, Rule};
use super::model::{Cluster, Family, SlotName};

/// Exit status of a valid file.
pub const EXIT_VALID: u8 = 0;
/// Exit status of a file that breaks rules.
pub const EXIT_INVALID: u8 = 1;
/// Exit status of a file that cannot be read.
pub const EXIT_UNREADABLE: u8 = 2;

/// How many interfaces the human summary lists VRIDs for, to stay on one screen.
const VRID_LINES: usize = 16;

/// Output format of `tr7 validate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per error (`FILE:LINE:COL: path: message (hint: ...)`), or a short summary.
    #[default]
    Human,
    /// One JSON document with the same fields.
    Json,
}

/// `tr7 validate FILE [--node NAME] [--format human|json]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ValidateArgs {
    /// The cluster file.
    pub file: PathBuf,
    /// The node whose part to summarize (default: this host's name).
    #[arg(long)]
    pub node: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// `tr7 schema`: prints the JSON Schema of the cluster file.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SchemaArgs {}

/// Runs `tr7 validate`: prints the report to stdout and returns the exit status
/// (0 valid, 1 invalid, 2 unreadable).
pub fn run_validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let (code, text) = validate_report(args);
    print!("{text}");
    Ok(ExitCode::from(code))
}

/// Runs `tr7 schema`: prints the JSON Schema to stdout.
pub fn run_schema(_args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    println!("{}", super::schema::schema_text());
    Ok(ExitCode::SUCCESS)
}

/// The JSON document of `tr7 validate --format json`.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The file as given.
    pub file: String,
    /// Whether the file is valid.
    pub valid: bool,
    /// Every problem, in file order (empty when valid).
    pub errors: Vec<Diagnostic>,
    /// The summary of a valid file.
    pub summary: Option<Summary>,
}

/// What a valid file describes.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The cluster's name.
    pub cluster: String,
    /// Its nodes.
    pub nodes: Vec<String>,
    /// The node the summary is for, if it is one of the cluster's nodes.
    pub node: Option<String>,
    /// Interface count per type.
    pub interfaces: BTreeMap<String, usize>,
    /// VIP count per family and slot.
    pub vips: BTreeMap<Family, BTreeMap<SlotName, usize>>,
    /// Every resolved VRID.
    pub vrids: Vec<VridLine>,
}

/// One resolved VRID.
#[derive(Debug, Serialize)]
pub struct VridLine {
    /// `name` or `namespace/name`.
    pub interface: String,
    /// The slot.
    pub slot: SlotName,
    /// The VRID.
    pub vrid: u8,
    /// Pinned in the file or assigned.
    pub pinned: bool,
    /// The L2 segment.
    pub segment: String,
    /// The slot's preferred node.
    pub preferred: String,
    /// The summarized node's priority in this slot.
    pub priority: Option<u8>,
}

/// The exit status and the text `tr7 validate` prints.
pub fn validate_report(args: &ValidateArgs) -> (u8, String) {
    let file = args.file.display().to_string();
    let (code, errors, summary) = match super::load(&args.file) {
        Err(ConfigError::Read { source, .. }) => {
            let d = Diagnostic {
                file: file.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                code: Rule::Read,
                message: format!("cannot read the file: {source}"),
                hint: "check the path and its permissions".to_owned(),
            };
            (EXIT_UNREADABLE, vec![d], None)
        }
        Err(ConfigError::Invalid(diags)) => (EXIT_INVALID, diags.0, None),
        Ok(cluster) => {
            let (node, explicit) = match &args.node {
                Some(n) => (Some(n.clone()), true),
                None => (hostname(), false),
            };
            let known = node.as_ref().filter(|n| cluster.nodes.contains(n)).cloned();
            if explicit && known.is_none() {
                let d = Diagnostic {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    path: "--node".to_owned(),
                    code: Rule::UnknownNode,
                    message: format!(
                        "`{}` is not a node of the cluster",
                        node.unwrap_or_default()
                    ),
                    hint: format!("the cluster's nodes: {}", cluster.nodes.join(", ")),
                };
                (EXIT_INVALID, vec![d], None)
            } else {
                (EXIT_VALID, Vec::new(), Some(summarize(&cluster, known)))
            }
        }
    };
    let text = match args.format {
        Format::Json => {
            let report = Report {
                file,
                valid: code == EXIT_VALID,
                errors,
                summary,
            };
            // Serializing plain data cannot fail; an empty object would still be valid JSON.
            let mut t = serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".into());
            t.push('\n');
            t
        }
        Format::Human => match summary {
            Some(s) => human_summary(&file, &s, args.node.is_none()),
            None => {
                let mut t = Diagnostics(errors).to_string();
                t.push('\n');
                t
            }
        },
    };
    (code, text)
}

/// This host's name, the default `--node`.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn summarize(cluster: &Cluster, node: Option<String>) -> Summary {
    let mut interfaces = BTreeMap::new();
    let mut vips: BTreeMap<Family, BTreeMap<SlotName, usize>> = BTreeMap::new();
    let mut vrids = Vec::new();
    for iface in &cluster.interfaces {
        *interfaces
            .entry(iface.kind.type_name().as_str().to_owned())
            .or_insert(0) += 1;
        let Some(vrrp) = &iface.vrrp else { continue };
        for slot in vrrp.slots() {
            for v in &slot.vips {
                *vips
                    .entry(Family::of(v.address))
                    .or_default()
                    .entry(slot.name)
                    .or_insert(0) += 1;
            }
            if let Some(vrid) = slot.vrid {
                vrids.push(VridLine {
                    interface: iface.id.to_string(),
                    slot: slot.name,
                    vrid: vrid.value,
                    pinned: vrid.pinned,
                    segment: iface.segment.clone(),
                    preferred: slot.preferred.clone(),
                    priority: node.as_ref().and_then(|n| slot.priorities.get(n).copied()),
                });
            }
        }
    }
    Summary {
        cluster: cluster.name.clone(),
        nodes: cluster.nodes.clone(),
        node,
        interfaces,
        vips,
        vrids,
    }
}

fn human_summary(file: &str, s: &Summary, node_defaulted: bool) -> String {
    let mut t = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        t,
        "{file}: valid cluster `{}`, nodes: {}",
        s.cluster,
        s.nodes.join(", ")
    );
    match (&s.node, node_defaulted) {
        (Some(n), _) => {
            let _ = writeln!(t, "node: {n}");
        }
        (None, _) => {
            let _ = writeln!(
                t,
                "node: (this host is not a node of the cluster; pass --node)"
            );
        }
    }
    let types: Vec<String> = s
        .interfaces
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let total: usize = s.interfaces.values().sum();
    let _ = writeln!(t, "interfaces: {total} ({})", types.join(", "));
    let mut vips = Vec::new();
    for (family, slots) in &s.vips {
        let per: Vec<String> = slots.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let sum: usize = slots.values().sum();
        vips.push(format!("{family} {sum} ({})", per.join(", ")));
    }
    if vips.is_empty() {
        vips.push("none".to_owned());
    }
    let _ = writeln!(t, "VIPs: {}", vips.join("; "));
    let _ = writeln!(t, "VRIDs ({} slots; * = pinned):", s.vrids.len());
    let mut by_iface: Vec<(&str, Vec<String>)> = Vec::new();
    for v in &s.vrids {
        let entry = format!(
            "{} {}{} (preferred {}{})",
            v.slot,
            v.vrid,
            if v.pinned { "*" } else { "" },
            v.preferred,
            v.priority
                .map_or(String::new(), |p| format!(", priority here {p}"))
        );
        match by_iface.last_mut() {
            Some((name, list)) if *name == v.interface => list.push(entry),
            _ => by_iface.push((&v.interface, vec![entry])),
        }
    }
    for (name, list) in by_iface.iter().take(VRID_LINES) {
        let _ = writeln!(t, "  {name}: {}", list.join(", "));
    }
    if by_iface.len() > VRID_LINES {
        let _ = writeln!(
            t,
            "  ... and {} more interfaces (--format json lists all)",
            by_iface.len() - VRID_LINES
        );
    }
    t
}
