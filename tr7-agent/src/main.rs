//! The `tr7` command: a thin CLI over the library.

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
    /// Drive the XDP/TC data plane by hand.
    Dataplane(cli::dataplane::DataplaneArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TR7_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Dataplane(args) => cli::dataplane::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tr7: {error:#}");
            ExitCode::FAILURE
        }
    }
}
