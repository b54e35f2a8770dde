//! `cargo xtask bench NAME`: benchmarks, each reporting ratios to a baseline measured in the
//! same invocation. Never assertions on time: numbers go to docs/performance.md.

use clap::{Args, ValueEnum};

use crate::{run, setup, vm};

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// ns per frame of the gate vs an empty XDP program, at 1, 1,000 and 100,000 VIPs.
    Dataplane,
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
        Bench::Config => "config",
        Bench::Reconcile => "reconcile",
        Bench::Failover => "failover",
    };
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
    run::status(&mut cmd)
}
