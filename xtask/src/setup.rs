//! Idempotent machine setup: each step checks first, acts only when something is missing,
//! and says which it was.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::run;

/// The bpf-linker release that links with the nightly toolchain of our machines; newer ones
/// fail to link here (docs/development.md).
const BPF_LINKER: &str = "0.10.4";

/// Debian packages the tests and the demo use.
pub const PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "iputils-arping",
    "procps",
    // Dissects the VRRP packets of tr7::vrrp in its golden-byte test.
    "tshark",
    // The other VRRP implementation of the interop tests (tests/tests/vrrp_wire.rs).
    "keepalived",
    // Drops a gateway's answers in the signal labs (tests/tests/signals_lab.rs).
    "nftables",
];

/// `cargo xtask setup`: every step, reporting each.
pub fn run() -> anyhow::Result<()> {
    steps(true)
}

/// Run by every other command: the same steps, quiet when nothing is missing.
pub fn ensure() -> anyhow::Result<()> {
    steps(false)
}

fn steps(verbose: bool) -> anyhow::Result<()> {
    let say = |msg: &str| {
        if verbose {
            println!("setup: {msg}");
        }
    };
    if !nix_is_root() {
        bail!(
            "TR7's setup, tests and demo need root (they install packages, load BPF and create network namespaces)"
        );
    }
    rust_src(&say)?;
    bpf_linker(&say)?;
    packages(&say)?;
    Ok(())
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn rust_src(say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup is needed to build the eBPF programs with the nightly toolchain")?;
    if !installed.status.success() {
        bail!(
            "no nightly toolchain: the eBPF programs build with nightly (`rustup toolchain install nightly`): {}",
            String::from_utf8_lossy(&installed.stderr).trim()
        );
    }
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        say("nightly rust-src: already installed");
        return Ok(());
    }
    println!("setup: installing nightly rust-src (the eBPF build compiles core from source)");
    run::status(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker(say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let version = Command::new("bpf-linker").arg("--version").output();
    if let Ok(out) = &version
        && String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER)
    {
        say(&format!("bpf-linker {BPF_LINKER}: already installed"));
        return Ok(());
    }
    println!("setup: installing bpf-linker {BPF_LINKER} (about 2 minutes)");
    run::status(Command::new("cargo").args([
        "install",
        &format!("bpf-linker@{BPF_LINKER}"),
        "--locked",
        "--force",
    ]))
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn packages(say: &dyn Fn(&str)) -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        say(&format!(
            "Debian packages: already installed ({})",
            PACKAGES.join(", ")
        ));
        return Ok(());
    }
    println!("setup: installing Debian packages: {}", missing.join(", "));
    run::status(Command::new("apt-get").args(["update", "-qq"]))?;
    run::status(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    )
}
