//! `tr7 plan`, `tr7 apply` and `tr7 diag`: arguments, output, exit status.
//!
//! The text is built by [`plan_report`], [`apply_report`] and [`diag_report`] so tests check
//! what the operator sees; the `run_*` functions only print it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::diag::{self, Finding};
use super::plan::{Options, Plan};
use super::{ApplyError, ApplyReport, Target, desired, observe, plan};

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Numbered actions with reasons, then conflicts.
    #[default]
    Human,
    /// One JSON document.
    Json,
}

/// `tr7 plan FILE [--node NAME] [--netns NS] [--remove-foreign] [--format human|json]`.
#[derive(Clone, Debug, clap::Args)]
pub struct PlanArgs {
    /// The cluster file.
    pub file: PathBuf,
    /// This node's name in the file (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Treat this named namespace (`ip netns`) as the node's host namespace.
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// Plan the removal of foreign addresses from declared links.
    #[arg(long)]
    pub remove_foreign: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// `tr7 apply FILE [--node NAME] [--netns NS] [--remove-foreign] [--format human|json]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Node(#[from] crate::config::UnknownNode),
    #[error("no --node given and the host name cannot be read")]
    NoNode,
    #[error(transparent)]
    Observe(#[from] observe::ObserveError),
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Diag(#[from] diag::DiagError),
}

/// `tr7 diag FILE [VIP] [--node NAME] [--netns NS] [--format human|json]`.
#[derive(Clone, Debug, clap::Args)]
pub struct DiagArgs {
    /// The cluster file.
    pub file: PathBuf,
    /// Only this VIP and the links on its path (its interface and every device under it).
    pub vip: Option<IpAddr>,
    /// This node's name in the file (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Treat this named namespace (`ip netns`) as the node's host namespace.
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// The JSON document of `tr7 diag --format json`.
#[derive(Debug, Serialize)]
pub struct DiagDocument<'a> {
    /// The node diagnosed.
    pub node: &'a str,
    /// The VIP the report is limited to, if any.
    pub vip: Option<IpAddr>,
    /// No error found (warnings may remain).
    pub ok: bool,
    /// Every finding.
    pub findings: &'a [Finding],
}

/// The JSON document of `tr7 plan --format json`.
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    /// The node planned for.
    pub node: &'a str,
    /// The plan.
    pub plan: &'a Plan,
}

/// The JSON document of `tr7 apply --format json`.
#[derive(Debug, Serialize)]
pub struct ApplyDocument<'a> {
    /// The node.
    pub node: &'a str,
    /// Whether every action was applied.
    pub ok: bool,
    /// What was applied.
    pub applied: &'a [super::Action],
    /// The failure, if any.
    pub error: Option<&'a ApplyError>,
    /// Conflicts left alone.
    pub conflicts: &'a [super::Conflict],
}

fn runtime() -> Result<tokio::runtime::Runtime, ReconcileError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ReconcileError::Runtime)
}

fn node_name(args: &PlanArgs) -> Result<String, ReconcileError> {
    node_or_host(args.node.as_ref())
}

fn node_or_host(node: Option<&String>) -> Result<String, ReconcileError> {
    match node {
        Some(n) => Ok(n.clone()),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or(ReconcileError::NoNode),
    }
}

/// Loads the file, observes the kernel and plans: (node, plan).
pub fn make_plan(args: &PlanArgs) -> Result<(String, Plan), ReconcileError> {
    let cluster = crate::config::load(&args.file)?;
    let node = node_name(args)?;
    let want = desired::desired(&cluster.node_view(&node)?);
    let target = Target {
        root: args.netns.clone(),
    };
    let seen = runtime()?.block_on(observe::observe(&target, &want.namespaces()))?;
    let p = plan::plan(
        &want,
        &seen,
        Options {
            remove_foreign: args.remove_foreign,
        },
    );
    Ok((node, p))
}

/// Observes the file's namespaces `names` on a private runtime: for callers without one
/// (benchmarks, tests).
pub fn observe_blocking(
    target: &Target,
    names: &[Option<String>],
) -> Result<observe::Observed, ReconcileError> {
    Ok(runtime()?.block_on(observe::observe(target, names))?)
}

/// Applies `plan` on a private runtime: for callers without one (the CLI, tests).
pub fn apply_blocking(
    plan: &Plan,
    target: &Target,
) -> Result<Result<ApplyReport, ApplyError>, ReconcileError> {
    Ok(runtime()?.block_on(super::apply(plan, target)))
}

/// The text `tr7 plan` prints.
pub fn plan_report(args: &PlanArgs) -> Result<String, ReconcileError> {
    let (node, p) = make_plan(args)?;
    Ok(match args.format {
        Format::Human => format!("plan for node {node}: {p}"),
        Format::Json => json(&PlanDocument {
            node: &node,
            plan: &p,
        }),
    })
}

/// Plans and applies: the exit status (0 applied, 1 failed) and the text `tr7 apply` prints.
pub fn apply_report(args: &ApplyArgs) -> Result<(u8, String), ReconcileError> {
    let (node, p) = make_plan(&args.plan)?;
    let target = Target {
        root: args.plan.netns.clone(),
    };
    let result = runtime()?.block_on(super::apply(&p, &target));
    let empty = ApplyReport::default();
    let (report, error) = match &result {
        Ok(r) => (r, None),
        Err(e) => (&empty, Some(e)),
    };
    let applied: &[super::Action] = match error {
        Some(e) => &e.applied,
        None => &report.applied,
    };
    let text = match args.plan.format {
        Format::Json => json(&ApplyDocument {
            node: &node,
            ok: error.is_none(),
            applied,
            error,
            conflicts: &p.conflicts,
        }),
        Format::Human => {
            let mut t = format!("apply for node {node}: ");
            match error {
                None => t.push_str(&report.to_string()),
                Some(e) => {
                    t.push_str(&format!("FAILED: {e}\n"));
                    t.push_str(
                        &ApplyReport {
                            applied: e.applied.clone(),
                        }
                        .to_string(),
                    );
                }
            }
            if !p.conflicts.is_empty() {
                t.push_str(&format!("{} conflicts left alone:\n", p.conflicts.len()));
                for c in &p.conflicts {
                    t.push_str(&format!("  - {c}\n"));
                }
            }
            t
        }
    };
    Ok((u8::from(error.is_some()), text))
}

fn json<T: Serialize>(v: &T) -> String {
    // Plain data: serializing cannot fail.
    let mut t = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into());
    t.push('\n');
    t
}

/// Runs `tr7 plan`.
pub fn run_plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    print!("{}", plan_report(args)?);
    Ok(ExitCode::SUCCESS)
}

/// Runs `tr7 apply`.
pub fn run_apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let (code, text) = apply_report(args)?;
    print!("{text}");
    Ok(ExitCode::from(code))
}

/// Loads the file, observes the kernel and diagnoses: (node, findings).
pub fn make_diagnosis(args: &DiagArgs) -> Result<(String, Vec<Finding>), ReconcileError> {
    let cluster = crate::config::load(&args.file)?;
    let node = node_or_host(args.node.as_ref())?;
    let view = cluster.node_view(&node)?;
    let want = desired::desired(&view);
    let target = Target {
        root: args.netns.clone(),
    };
    let seen = runtime()?.block_on(observe::observe_for_diag(&target, &want.namespaces()))?;
    let findings = diag::diagnose(&view, &seen, args.vip)?;
    Ok((node, findings))
}

/// Diagnoses: the exit status (0 no error, 1 an error found) and the text `tr7 diag` prints.
pub fn diag_report(args: &DiagArgs) -> Result<(u8, String), ReconcileError> {
    let (node, findings) = make_diagnosis(args)?;
    let ok = !diag::has_errors(&findings);
    let text = match args.format {
        Format::Json => json(&DiagDocument {
            node: &node,
            vip: args.vip,
            ok,
            findings: &findings,
        }),
        Format::Human => {
            let what = args
                .vip
                .map_or(String::new(), |v| format!(" (VIP {v} and its path)"));
            let mut t = format!("diag for node {node}{what}: {}\n", diag::summary(&findings));
            for f in &findings {
                t.push_str(&format!("  {f}\n"));
            }
            t
        }
    };
    Ok((u8::from(!ok), text))
}

/// What `tr7 diag` does, as values: (exit status, standard output, standard error). 0 when
/// nothing is wrong (warnings may be shown), 1 when a cause is found, 2 when no diagnosis
/// could be made (the file unreadable or invalid, an unknown node or VIP, the kernel not
/// observable).
pub fn diag_outcome(args: &DiagArgs) -> (u8, String, String) {
    match diag_report(args) {
        Ok((code, text)) => (code, text, String::new()),
        Err(error) => (2, String::new(), format!("tr7: {error}\n")),
    }
}

/// Runs `tr7 diag`.
pub fn run_diag(args: &DiagArgs) -> ExitCode {
    let (code, out, err) = diag_outcome(args);
    print!("{out}");
    eprint!("{err}");
    ExitCode::from(code)
}
