//! The `tr7` command: a thin CLI over the library.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tr7::cli;

#[derive(Debug, Parser)]
#[command(
    name = "tr7",
    version,
    about = "VIPs together with the network they live on"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a cluster file: every error at once with its place and a hint, or a summary.
    Validate(tr7::config::cli::ValidateArgs),
    /// Print the JSON Schema of the cluster file, for editors.
    Schema(tr7::config::cli::SchemaArgs),
    /// Show what `apply` would change to make the kernel match the file.
    Plan(tr7::netlink::cli::PlanArgs),
    /// Make the kernel match the file: links, MTUs, MACs, membership, addresses.
    Apply(tr7::netlink::cli::ApplyArgs),
    /// "VIP is up but no traffic": name every cause in the kernel state, with its fix.
    Diag(tr7::netlink::cli::DiagArgs),
    /// Drive the XDP/TC data plane by hand.
    Dataplane(cli::dataplane::DataplaneArgs),
    /// Run this node: apply the topology, attach the data plane, run VRRP, own VIPs.
    Agent(tr7::agent::AgentArgs),
    /// Ask the running agent what each virtual router does: state, priority, master, VIPs.
    Status(cli::status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon's transitions are its record; the one-shot commands stay quiet.
    let default_level = match cli.command {
        Command::Agent(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a daemon's log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TR7_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let result = match &cli.command {
        Command::Validate(args) => tr7::config::cli::run_validate(args),
        Command::Schema(args) => tr7::config::cli::run_schema(args),
        Command::Plan(args) => tr7::netlink::cli::run_plan(args),
        Command::Apply(args) => tr7::netlink::cli::run_apply(args),
        Command::Diag(args) => Ok(tr7::netlink::cli::run_diag(args)),
        Command::Dataplane(args) => cli::dataplane::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::Agent(args) => tr7::agent::run(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tr7: {error:#}");
            ExitCode::FAILURE
        }
    }
}
