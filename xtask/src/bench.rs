//! `cargo xtask bench NAME`: benchmarks, each reporting ratios to a baseline measured in the
//! same invocation. Never assertions on time: numbers go to docs/performance.md.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::{run, setup, vm};

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// ns per frame of the gate vs an empty XDP program, at 1, 1,000 and 100,000 VIPs.
    Dataplane,
    /// What the parts of the gate cost: cut-down builds of it (tr7-ebpf's `floor-*`
    /// features) beside the gate and the empty program, at 100,000 VIPs.
    DataplaneFloor,
    /// Validating a 4,000-VLAN cluster file vs only reading it.
    Config,
    /// `tr7 apply` of 1,000 interfaces with 4,000 addresses vs `ip -batch`, and a no-change
    /// re-plan (veth pairs and bridge ports; with `--guest`, 1,000 VLANs in the guest kernel).
    Reconcile,
    /// Client outage when the VRRP master is killed (-9), stopped (SIGTERM), loses an
    /// uplink's carrier (slow and fast kernel path) or its gateway: two `tr7 agent`s vs two
    /// keepalived (track_interface, track_script), advert intervals 100 ms and 10 ms.
    Failover,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    bench: Bench,
    /// BPF_PROG_TEST_RUN repeat count per measurement.
    #[arg(long, default_value_t = 1_000_000)]
    repeat: u32,
    /// Interleaved rounds; the median is reported (default 5; failover: 3).
    #[arg(long)]
    rounds: Option<u32>,
    /// failover: advert intervals in ms, comma-separated (default 100,10).
    #[arg(long)]
    intervals: Option<String>,
    /// failover: faults, comma-separated: kill9, sigterm, carrier-slow, carrier-slow-busy,
    /// carrier-fast, gateway (default all).
    #[arg(long)]
    faults: Option<String>,
    /// failover: implementations, comma-separated: tr7, keepalived (default both).
    #[arg(long)]
    impls: Option<String>,
    /// dataplane: also measure the gate of an older `tr7-dataplane` object (same maps) in the
    /// same rounds, e.g. one built at an earlier commit.
    #[arg(long)]
    against: Option<std::path::PathBuf>,
    /// reconcile: run the VLAN variant in the guest kernel (QEMU TCG, as `cargo xtask
    /// vm-test`; this machine has no 8021q). Default 1 round: the guest run is bounded.
    #[arg(long)]
    guest: bool,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    setup::ensure()?;
    let name = match args.bench {
        Bench::Dataplane => "dataplane",
        Bench::DataplaneFloor => "dataplane-floor",
        Bench::Config => "config",
        Bench::Reconcile => "reconcile",
        Bench::Failover => "failover",
    };
    anyhow::ensure!(
        args.against.is_none() || matches!(args.bench, Bench::Dataplane),
        "--against is only for `bench dataplane` (it measures an older build's gate beside this one)"
    );
    if args.guest {
        anyhow::ensure!(
            matches!(args.bench, Bench::Reconcile),
            "--guest is only for `bench reconcile` (its VLAN variant needs the guest kernel)"
        );
        let rounds = args.rounds.unwrap_or(1).to_string();
        let ok = vm::guest_bench(&["reconcile-vlan", "--rounds", &rounds])?;
        anyhow::ensure!(ok, "the guest bench failed (see the guest's output above)");
        return Ok(());
    }
    if let Bench::Failover = args.bench {
        // The bench runs the real agent: `tr7` next to `tr7-bench`, same profile.
        run::status(run::cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "tr7-agent",
            "--bin",
            "tr7",
        ]))?;
    }
    let mut cmd = run::cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "tr7-tests",
        "--bin",
        "tr7-bench",
        "--",
        name,
        "--repeat",
        &args.repeat.to_string(),
    ]);
    if let Some(r) = args.rounds {
        cmd.args(["--rounds", &r.to_string()]);
    }
    if let Some(i) = &args.intervals {
        cmd.args(["--intervals", i]);
    }
    if let Some(f) = &args.faults {
        cmd.args(["--faults", f]);
    }
    if let Some(i) = &args.impls {
        cmd.args(["--impls", i]);
    }
    if let Some(against) = &args.against {
        cmd.arg("--against").arg(against);
    }
    if let Bench::DataplaneFloor = args.bench {
        for (name, object) in floor_objects()? {
            cmd.arg("--variant")
                .arg(format!("{name}={}", object.display()));
        }
    }
    run::status(&mut cmd)
}

/// The cut-down gates of `dataplane-floor`: a name for the table, and the tr7-ebpf feature
/// that builds it (tr7-ebpf/Cargo.toml says what each leaves out).
const FLOOR: [(&str, &str); 3] = [
    ("return-at-once", "floor-return"),
    ("no-lookup", "floor-no-lookup"),
    ("no-counters", "floor-no-counters"),
];

/// Builds tr7-ebpf once per `FLOOR` feature, as aya-build builds the embedded object (same
/// toolchain, target and flags), and returns each object's path under target/floor.
fn floor_objects() -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let target = run::root().join("target").join("floor");
    let mut objects = Vec::new();
    for (name, feature) in FLOOR {
        let mut cmd = Command::new("rustup");
        cmd.current_dir(run::root())
            .args(["run", "nightly", "cargo", "build", "--quiet", "--release"])
            .args(["--package", "tr7-ebpf", "--bin", "tr7-dataplane"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--features", feature])
            .arg("--target-dir")
            .arg(&target)
            // aya-build's flags (aya-build 0.2, `build_ebpf`); the toolchain's own cargo
            // and rustc, not the ones running xtask.
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                format!(
                    "--cfg=bpf_target_arch=\"{}\"\x1f-Cdebuginfo=2\x1f-Clink-arg=--btf",
                    std::env::consts::ARCH
                ),
            )
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CARGO");
        run::status(&mut cmd)?;
        let built = target.join("bpfel-unknown-none/release/tr7-dataplane");
        let object = target.join(format!("{feature}.o"));
        std::fs::copy(&built, &object)
            .with_context(|| format!("copy {} to {}", built.display(), object.display()))?;
        objects.push((name, object));
    }
    Ok(objects)
}
