//! `cargo xtask test`: every check, in order of cost, each named in the summary, and a
//! closing `N passed, N failed` line that counts every test of every test binary. Exits
//! non-zero when any step or test fails.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::Context as _;
use clap::Args;

use crate::{run, setup, vm};

#[derive(Args)]
pub struct TestArgs {
    /// Only run tests whose name contains this (passed to the test binaries).
    filter: Option<String>,
}

const TESTS: &str = "tests (unit and privileged integration)";
const GUEST: &str = "guest tests (QEMU: VLAN, bond, LACP)";

struct Step {
    name: &'static str,
    ok: bool,
    secs: f64,
}

/// Counts of a `cargo test` run, read from each binary's `test result:` line.
#[derive(Default)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    /// Adds the numbers of a libtest `test result: ...` line; other lines change nothing.
    pub fn add_result_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        let num = |key: &str| -> u64 {
            rest.split(';')
                .find_map(|part| part.trim().strip_suffix(key))
                .and_then(|n| n.trim().rsplit(' ').next().and_then(|n| n.parse().ok()))
                .unwrap_or(0)
        };
        self.passed += num(" passed");
        self.failed += num(" failed");
        self.ignored += num(" ignored");
    }
}

fn step(steps: &mut Vec<Step>, name: &'static str, cmd: &mut Command) -> bool {
    println!("\n==> {name}: {}", run::describe(cmd));
    let start = Instant::now();
    let ok = cmd.status().is_ok_and(|s| s.success());
    steps.push(Step {
        name,
        ok,
        secs: start.elapsed().as_secs_f64(),
    });
    ok
}

/// Runs `cargo test` with its output passed through, and counts its results.
fn cargo_test(
    steps: &mut Vec<Step>,
    counts: &mut Counts,
    filter: Option<&str>,
) -> anyhow::Result<()> {
    let mut cmd = run::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast", "--color", "never"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    println!("\n==> tests: {}", run::describe(&cmd));
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start cargo test")?;
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        counts.add_result_line(&line);
    }
    let status = child.wait()?;
    steps.push(Step {
        name: TESTS,
        ok: status.success(),
        secs: start.elapsed().as_secs_f64(),
    });
    Ok(())
}

/// The guest-only tests (VLAN, bond, LACP) in a kernel under QEMU (`cargo xtask vm-test`);
/// their `test result:` lines count like the host's. Returns how many guest tests failed.
fn guest_tests(steps: &mut Vec<Step>, counts: &mut Counts, filter: Option<&str>) -> u64 {
    println!("\n==> {GUEST}: cargo xtask vm-test");
    let start = Instant::now();
    let mut failed = 0;
    let ok = match vm::guest_tests(filter) {
        Ok(report) => {
            failed = report.counts.failed;
            counts.passed += report.counts.passed;
            counts.failed += report.counts.failed;
            counts.ignored += report.counts.ignored;
            // A failed guest run with no failed test (a crash, a module that would not
            // load) still counts as one failure below.
            report.ok
        }
        Err(error) => {
            println!("vm: error: {error:#}");
            false
        }
    };
    steps.push(Step {
        name: GUEST,
        ok,
        secs: start.elapsed().as_secs_f64(),
    });
    failed
}

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    setup::ensure()?;
    let mut steps = Vec::new();
    let mut counts = Counts::default();
    step(
        &mut steps,
        "format",
        run::cargo().args(["fmt", "--all", "--check"]),
    );
    step(
        &mut steps,
        "clippy",
        run::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    cargo_test(&mut steps, &mut counts, args.filter.as_deref())?;
    let guest_failed = guest_tests(&mut steps, &mut counts, args.filter.as_deref());

    println!("\n==> summary ({:.0} s)", start.elapsed().as_secs_f64());
    for s in &steps {
        let mark = if s.ok { "ok  " } else { "FAIL" };
        println!("  [{mark}] {:<42} {:>6.1} s", s.name, s.secs);
    }
    // Every failed test counts; so does every failed step that is not a test run (format,
    // clippy), and a failed test run with no failed test (a build error, a guest that did
    // not boot): the closing line never says "0 failed" for a red run.
    let failed_step = |name: &str| steps.iter().any(|s| !s.ok && s.name == name);
    let other_failures = steps
        .iter()
        .filter(|s| !s.ok && s.name != TESTS && s.name != GUEST)
        .count() as u64;
    let host_failed = counts.failed - guest_failed;
    let failed = counts.failed
        + other_failures
        + u64::from(failed_step(TESTS) && host_failed == 0)
        + u64::from(failed_step(GUEST) && guest_failed == 0);
    if counts.ignored > 0 {
        println!(
            "{} passed, {} failed, {} skipped",
            counts.passed, failed, counts.ignored
        );
    } else {
        println!("{} passed, {} failed", counts.passed, failed);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
