//! Building the release binary, and attaching its data plane to an interface.

use std::{path::PathBuf, process::Command};

use clap::Args;

use crate::{run, setup};

/// Builds `tr7` in release mode (the eBPF object is built and embedded by its build script).
pub fn release() -> anyhow::Result<PathBuf> {
    run::status(run::cargo().args(["build", "--release", "-p", "tr7-agent", "--bin", "tr7"]))?;
    Ok(run::root().join("target/release/tr7"))
}

#[derive(Args)]
pub struct LoadArgs {
    /// Interface to attach the gate (XDP ingress) and guard (TC egress) to.
    #[arg(long)]
    iface: String,
    /// Network namespace (`ip netns` name) the interface lives in.
    #[arg(long)]
    netns: Option<String>,
    /// XDP mode: auto, native or generic.
    #[arg(long, default_value = "auto")]
    mode: String,
    /// bpffs directory for pins.
    #[arg(long, default_value = "/sys/fs/bpf/tr7")]
    pin_dir: String,
    /// Remove the gate and guard instead.
    #[arg(long)]
    detach: bool,
}

pub fn load(args: &LoadArgs) -> anyhow::Result<()> {
    setup::ensure()?;
    let tr7 = release()?;
    let mut cmd = Command::new(tr7);
    cmd.args(["dataplane", "--pin-dir", &args.pin_dir]);
    if args.detach {
        cmd.args(["detach", "--iface", &args.iface]);
    } else {
        cmd.args(["attach", "--iface", &args.iface, "--mode", &args.mode]);
    }
    if let Some(ns) = &args.netns {
        cmd.args(["--netns", ns]);
    }
    run::status(&mut cmd)
}
