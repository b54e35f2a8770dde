//! `tr7 status`: ask the running agent over its control socket what each virtual router
//! is doing, and print it for a person or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::agent::control::{self, DEFAULT_SOCKET};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's control socket (as given to `tr7 agent --control-socket`).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// How long to wait for the agent's answer, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One block per virtual router, for a person.
    #[default]
    Human,
    /// The agent's `StatusReport` as JSON (docs/agent.md describes the fields).
    Json,
}

/// Prints the status; an agent that does not answer is an error (non-zero exit) that says
/// which socket was tried and what to check.
pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let report = control::query(&args.socket, Duration::from_secs(args.timeout))?;
    match args.format {
        Format::Human => print!("{}", report.render_human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}
