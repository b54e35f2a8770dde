//! `cargo xtask`: everything a developer or CI does with TR7, from a fresh machine on.
//! Every command first makes sure the machine has what it needs (`setup`, idempotent).

mod bench;
mod build;
mod demo;
mod demo_agents;
mod run;
mod setup;
mod test;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, load, demo, test and benchmark TR7"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks: nightly rust-src, bpf-linker, Debian packages.
    Setup,
    /// Build the tr7 binary (release) with its embedded eBPF object.
    Build,
    /// Build, then attach the data plane to an interface (or detach it).
    BuildAndLoad(build::LoadArgs),
    /// Build, then show the data plane at work in a lab of network namespaces.
    Demo,
    /// fmt check, clippy (warnings denied), unit and privileged integration tests.
    Test(test::TestArgs),
    /// The guest-only tests (VLAN, bond, LACP) in a Debian kernel under QEMU.
    VmTest(vm::VmArgs),
    /// Benchmarks, each against a baseline measured in the same run.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::run().map(|_| ExitCode::SUCCESS),
        Command::Build => setup::ensure()
            .and_then(|()| build::release())
            .map(|_| ExitCode::SUCCESS),
        Command::BuildAndLoad(args) => build::load(&args).map(|()| ExitCode::SUCCESS),
        Command::Demo => demo::run().map(|()| ExitCode::SUCCESS),
        Command::Test(args) => test::run(&args),
        Command::VmTest(args) => vm::run(&args),
        Command::Bench(args) => bench::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
