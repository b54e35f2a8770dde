//! `tr7 status`: ask the running agent over its control socket what each virtual router
//! is doing, and print it for a person or as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::agent::control;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The agent's control socket, as given to `tr7 agent --control-socket` (default:
    /// /run/tr7/tr7.sock, or the agent's of `--netns`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Ask the agent started with `tr7 agent --netns NS` (its default socket).
    #[arg(long, value_name = "NS", conflicts_with = "socket")]
    pub netns: Option<String>,
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
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| control::default_socket(args.netns.as_deref()));
    let report = control::query(&socket, Duration::from_secs(args.timeout))?;
    match args.format {
        Format::Human => print!("{}", report.render_human()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}
