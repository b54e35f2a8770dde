//! `cargo xtask vm-test`: TR7's guest-only tests (VLAN, bond, LACP, which this machine's
//! kernel lacks) in a Debian kernel booted under QEMU with software emulation (TCG; the
//! machine's `/dev/kvm` cannot boot stock kernels). docs/vm-test.md explains the recipe.
//!
//! Everything it needs is cached under `target/vm/`: the kernel as an ELF `vmlinux` and its
//! modules, decompressed, in load order. A second run downloads nothing; only the initramfs
//! (busybox, the host's `ip`, `bash`, `ping`, `arping`, `ethtool`, the test binaries, and their
//! libraries) is rebuilt, because the test binaries change.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use clap::Args;

use crate::{run, setup, test::Counts};

#[derive(Args)]
pub struct VmArgs {
    /// Only run guest tests whose name contains this (passed to the test binaries).
    filter: Option<String>,
}

/// Test targets of `tr7-tests` that run in the guest (each `tests/tests/<name>.rs`). Outside
/// the guest they print why they skip.
const GUEST_TESTS: &[&str] = &["guest_vlan", "guest_signals", "guest_reconcile"];

/// Modules the guest tests need, with their dependencies resolved by `modprobe`.
const MODULES: &[&str] = &["veth", "8021q", "bonding", "bridge", "macvlan"];

/// Module parameters: no `bond0` appears by itself; the tests create their bonds.
const MODULE_PARAMS: &[(&str, &str)] = &[("bonding", "max_bonds=0")];

/// The kernel's meta package; `apt-cache depends` names the real one.
const KERNEL_META: &str = "linux-image-cloud-amd64";

/// TCX (the guard's attach point) arrived in Linux 6.6.
const MIN_KERNEL: (u32, u32) = (6, 6);

/// Host packages of the VM recipe. qemu comes from the backports suite: bookworm's 7.2
/// conflicts with the backports qemu-utils of our machine images.
const BACKPORTS_PACKAGES: &[&str] = &["qemu-system-x86"];
const PACKAGES: &[&str] = &["kmod", "busybox-static", "zstd", "xz-utils", "ethtool"];

/// Host programs copied into the guest, with their libraries. busybox's `ip` cannot
/// configure bonds or VLANs, and busybox `sh` prefers its own applets, hence `bash`.
/// `ethtool` switches VLAN offloads, which decide whether XDP sees a tag.
const HOST_PROGRAMS: &[&str] = &["ip", "bash", "ping", "arping", "ethtool"];

/// The line the guest's init prints last; the run's verdict.
const MARKER: &str = "TR7-VM-RESULT rc=";

/// Upper bound of one guest run (boot, module loading, every guest test).
const GUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// What the guest reported.
pub struct GuestReport {
    pub counts: Counts,
    /// The guest's init exited 0: every test binary passed.
    pub ok: bool,
}

/// `cargo xtask vm-test [FILTER]`.
pub fn run(args: &VmArgs) -> anyhow::Result<ExitCode> {
    setup::ensure()?;
    let start = Instant::now();
    let report = guest_tests(args.filter.as_deref())?;
    let c = &report.counts;
    println!(
        "\n==> vm-test ({:.0} s): {} passed, {} failed{}",
        start.elapsed().as_secs_f64(),
        c.passed,
        c.failed + u64::from(!report.ok && c.failed == 0),
        if c.ignored > 0 {
            format!(", {} skipped", c.ignored)
        } else {
            String::new()
        }
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Prepares the guest (host packages, kernel, test binaries, initramfs), boots it and runs
/// the guest tests. An error means no verdict from the guest (setup failed, the guest
/// hung or crashed); failed tests are a report with `ok == false`.
pub fn guest_tests(filter: Option<&str>) -> anyhow::Result<GuestReport> {
    let t = Instant::now();
    host_packages()?;
    let kernel = kernel()?;
    let binaries = test_binaries()?;
    let names: Vec<String> = binaries.iter().map(|(n, _)| n.clone()).collect();
    let initrd = initramfs(&kernel, &binaries, &tests_script(&names, filter))?;
    println!(
        "vm: guest ready in {:.1} s (kernel {}, initramfs {} MiB)",
        t.elapsed().as_secs_f64(),
        kernel.version,
        std::fs::metadata(&initrd).map_or(0, |m| m.len() >> 20)
    );
    boot(&kernel, &initrd)
}

/// `cargo xtask bench NAME --guest`: runs `tr7-bench` (release) with `args` in the guest
/// kernel, for benchmarks that need what this machine's kernel lacks (8021q). Separate from
/// the guest tests: `cargo xtask test` never runs it. Returns whether the bench exited 0.
pub fn guest_bench(args: &[&str]) -> anyhow::Result<bool> {
    setup::ensure()?;
    let t = Instant::now();
    host_packages()?;
    let kernel = kernel()?;
    let bench = bench_binary()?;
    let mut line = String::from("/tests/tr7-bench");
    for a in args {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let script = format!("echo \"TR7-VM: running {line}\"\n{line} || rc=1\n");
    let initrd = initramfs(&kernel, &[("tr7-bench".to_owned(), bench)], &script)?;
    println!(
        "vm: guest ready in {:.1} s (kernel {}, initramfs {} MiB)",
        t.elapsed().as_secs_f64(),
        kernel.version,
        std::fs::metadata(&initrd).map_or(0, |m| m.len() >> 20)
    );
    Ok(boot(&kernel, &initrd)?.ok)
}

// ---------------------------------------------------------------------------------------
// Host packages

fn codename() -> anyhow::Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("read /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME")
}

const DEBIAN_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/tr7-backports.sources";

/// Whether any apt source already names `suite`.
fn suite_configured(suite: &str) -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources")),
        );
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .any(|l| l.split_whitespace().any(|w| w == suite))
        })
    })
}

/// The backports suite, as a deb822 entry derived from the machine's own Debian source
/// (same mirror, components and key), so no mirror is named in this repository.
fn backports_source(codename: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(DEBIAN_SOURCES).with_context(|| {
        format!("read {DEBIAN_SOURCES} (the backports suite is derived from it)")
    })?;
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let Some(suites) = field("Suites") else {
            continue;
        };
        if !suites.split_whitespace().any(|s| s == codename) {
            continue;
        }
        let uris = field("URIs").context("the main Debian source has no URIs")?;
        let components = field("Components").unwrap_or_else(|| "main".into());
        let mut entry = format!(
            "# Written by `cargo xtask vm-test`: qemu-system-x86 and the guest kernel come from\n\
             # {codename}-backports. Derived from {DEBIAN_SOURCES}.\n\
             Types: deb\nURIs: {uris}\nSuites: {codename}-backports\nComponents: {components}\n"
        );
        if let Some(key) = field("Signed-By") {
            writeln!(entry, "Signed-By: {key}")?;
        }
        return Ok(entry);
    }
    bail!(
        "{DEBIAN_SOURCES} has no entry for suite `{codename}` to derive {codename}-backports from"
    )
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        // Downloads land in target/vm, which apt's sandbox user cannot write.
        .args(["-o", "APT::Sandbox::User=root"]);
    cmd
}

fn host_packages() -> anyhow::Result<()> {
    let codename = codename()?;
    let backports = format!("{codename}-backports");
    let missing_bp: Vec<&str> = BACKPORTS_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed(p))
        .collect();
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    let kernel_cached = current_kernel().is_some();
    if missing_bp.is_empty() && missing.is_empty() && kernel_cached {
        return Ok(());
    }
    let mut update = false;
    if suite_configured(&backports) {
        println!("vm: apt suite {backports}: already configured");
    } else {
        let entry = backports_source(&codename)?;
        std::fs::write(BACKPORTS_SOURCES, entry)
            .with_context(|| format!("write {BACKPORTS_SOURCES}"))?;
        println!(
            "vm: added apt suite {backports} ({BACKPORTS_SOURCES}, derived from {DEBIAN_SOURCES})"
        );
        update = true;
    }
    if !update {
        // Lists may predate the suite's configuration.
        let policy = run::output(Command::new("apt-cache").args(["policy", KERNEL_META]))?;
        update = !String::from_utf8_lossy(&policy.stdout).contains(&backports);
    }
    if update {
        println!("vm: apt-get update");
        run::status(apt_get().args(["update", "-qq"]))?;
    }
    if !missing_bp.is_empty() {
        println!("vm: installing from {backports}: {}", missing_bp.join(", "));
        run::status(
            apt_get()
                .args(["install", "-y", "-qq", "--no-install-recommends", "-t"])
                .arg(&backports)
                .args(&missing_bp),
        )?;
    }
    if !missing.is_empty() {
        println!("vm: installing: {}", missing.join(", "));
        run::status(
            apt_get()
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing),
        )?;
    }
    if missing_bp.is_empty() && missing.is_empty() {
        println!(
            "vm: host packages: already installed ({}, {})",
            BACKPORTS_PACKAGES.join(", "),
            PACKAGES.join(", ")
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The guest kernel

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                run::root().join(p)
            }
        })
        .unwrap_or_else(|| run::root().join("target"))
}

fn vm_dir() -> PathBuf {
    target_dir().join("vm")
}

/// A guest kernel ready to boot.
pub struct Kernel {
    version: String,
    /// The ELF vmlinux (or the bzImage when it could not be extracted).
    image: PathBuf,
    /// Decompressed modules in load order, with their parameters.
    modules: Vec<(PathBuf, String)>,
}

/// The cached kernel directory: `target/vm/kernel/<version>/` with `vmlinux`, `modules/`
/// (`NN-name.ko`, NN the load order) and `READY`, written last.
fn kernel_dir(version: &str) -> PathBuf {
    vm_dir().join("kernel").join(version)
}

fn current_kernel() -> Option<Kernel> {
    let version = std::fs::read_to_string(vm_dir().join("kernel/current")).ok()?;
    let version = version.trim().to_owned();
    let dir = kernel_dir(&version);
    if !dir.join("READY").exists() {
        return None;
    }
    let image = ["vmlinux", "vmlinuz"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())?;
    let mut modules: Vec<PathBuf> = std::fs::read_dir(dir.join("modules"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    modules.sort();
    let modules = modules
        .into_iter()
        .map(|p| {
            let name = module_name(&p);
            let params = MODULE_PARAMS
                .iter()
                .find(|(m, _)| *m == name)
                .map_or("", |(_, p)| p);
            (p, params.to_owned())
        })
        .collect();
    Some(Kernel {
        version,
        image,
        modules,
    })
}

/// `modules/03-bonding.ko` → `bonding`.
fn module_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    stem.split_once('-')
        .map_or(stem.to_string(), |(_, n)| n.to_owned())
}

fn kernel() -> anyhow::Result<Kernel> {
    if let Some(k) = current_kernel() {
        println!(
            "vm: kernel {}: cached in {}",
            k.version,
            kernel_dir(&k.version).display()
        );
        return Ok(k);
    }
    let t = Instant::now();
    let backports = format!("{}-backports", codename()?);
    let depends =
        run::output(Command::new("apt-cache").args(["depends", "-t", &backports, KERNEL_META]))?;
    let depends = String::from_utf8_lossy(&depends.stdout);
    let package = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .with_context(|| format!("`apt-cache depends {KERNEL_META}` names no kernel: {depends}"))?
        .to_owned();
    let version = package.trim_start_matches("linux-image-").to_owned();
    let mut nums = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    ensure!(
        (major, minor) >= MIN_KERNEL,
        "{backports} offers kernel {version}; the guard needs TCX, Linux {}.{} or later",
        MIN_KERNEL.0,
        MIN_KERNEL.1
    );

    let downloads = vm_dir().join("downloads");
    std::fs::create_dir_all(&downloads)?;
    let deb = find_deb(&downloads, &package);
    let deb = match deb {
        Some(d) => d,
        None => {
            println!("vm: downloading {package}");
            run::status(
                apt_get()
                    .current_dir(&downloads)
                    .args(["download", "-qq", &package]),
            )?;
            find_deb(&downloads, &package)
                .with_context(|| format!("apt-get download left no {package}_*.deb"))?
        }
    };

    let dir = kernel_dir(&version);
    let unpacked = vm_dir().join("unpacked");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::create_dir_all(dir.join("modules"))?;
    println!("vm: unpacking {}", deb.display());
    run::status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;

    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{version}"));
    match extract_vmlinux(&vmlinuz) {
        Ok(elf) => {
            std::fs::write(dir.join("vmlinux"), elf)?;
            println!("vm: extracted vmlinux (an ELF boots about 3 s faster than the bzImage)");
        }
        Err(e) => {
            println!("vm: cannot extract vmlinux ({e:#}); booting the bzImage instead");
            std::fs::copy(&vmlinuz, dir.join("vmlinuz"))?;
        }
    }

    run::status(
        Command::new("depmod")
            .arg("-b")
            .arg(&unpacked)
            .arg(&version),
    )?;
    let deps = run::output(
        Command::new("modprobe")
            .args(["-C", "/dev/null", "-d"])
            .arg(&unpacked)
            .args(["-S", &version, "--show-depends", "-a"])
            .args(MODULES),
    )?;
    let mut order: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(&deps.stdout).lines() {
        // `insmod PATH [params]`; `builtin NAME` needs nothing.
        if let Some(path) = line
            .strip_prefix("insmod ")
            .and_then(|r| r.split_whitespace().next())
        {
            let path = PathBuf::from(path);
            if !order.contains(&path) {
                order.push(path);
            }
        }
    }
    for (i, src) in order.iter().enumerate() {
        let file = src
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let name = file
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .trim_end_matches(".ko")
            .to_owned();
        let dst = dir.join(format!("modules/{:02}-{name}.ko", i + 1));
        let data = if file.ends_with(".xz") {
            run::output(Command::new("xz").arg("-dc").arg(src))?.stdout
        } else if file.ends_with(".zst") {
            run::output(Command::new("zstd").arg("-dcq").arg(src))?.stdout
        } else {
            std::fs::read(src)?
        };
        std::fs::write(&dst, data)?;
    }
    std::fs::remove_dir_all(&unpacked)?;
    std::fs::write(dir.join("READY"), "")?;
    std::fs::write(vm_dir().join("kernel/current"), &version)?;
    let k = current_kernel().context("the kernel cache just written is incomplete")?;
    println!(
        "vm: kernel {version} prepared in {:.1} s: {} modules ({})",
        t.elapsed().as_secs_f64(),
        k.modules.len(),
        k.modules
            .iter()
            .map(|(p, _)| module_name(p))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(k)
}

fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
                && p.extension().is_some_and(|e| e == "deb")
        })
}

/// The ELF kernel inside a bzImage: the setup header says where the compressed payload is
/// (boot protocol 2.08+), and its magic says how it is compressed. Build systems append
/// the uncompressed size as four bytes, which `zstd` and `xz` reject as trailing garbage.
fn extract_vmlinux(bzimage: &Path) -> anyhow::Result<Vec<u8>> {
    let img = std::fs::read(bzimage).with_context(|| format!("read {}", bzimage.display()))?;
    let u32_at = |o: usize| -> anyhow::Result<usize> {
        let b = img.get(o..o + 4).context("bzImage too short")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    ensure!(
        img.get(0x202..0x206) == Some(b"HdrS"),
        "no bzImage setup header"
    );
    let setup_sects = match img.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let payload = img
        .get(start..start + u32_at(0x24c)?)
        .context("payload outside the bzImage")?;
    let (tool, args): (&str, &[&str]) = match payload.get(..4) {
        Some([0x28, 0xb5, 0x2f, 0xfd]) => ("zstd", &["-dcq"]),
        Some([0xfd, b'7', b'z', b'X']) => ("xz", &["-dc", "--single-stream"]),
        Some([0x1f, 0x8b, _, _]) => ("gzip", &["-dc"]),
        other => bail!("unknown payload compression {other:02x?}"),
    };
    // With the size trailer cut off first, then as is.
    for data in [&payload[..payload.len().saturating_sub(4)], payload] {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {tool}"))?;
        let mut stdin = child.stdin.take().context("stdin")?;
        let input = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if out.status.success() && out.stdout.starts_with(b"\x7fELF") {
            return Ok(out.stdout);
        }
    }
    bail!("{tool} could not decompress the payload to an ELF")
}

// ---------------------------------------------------------------------------------------
// Test binaries

/// Builds the guest test targets on the host; returns `(name, executable)`. Built with
/// `--workspace`, as `cargo xtask test` builds them, so the features resolve the same and
/// nothing is built twice.
fn test_binaries() -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut cmd = run::cargo();
    cmd.args(["test", "--workspace", "--no-run", "--message-format=json"]);
    println!("vm: building the guest tests: {}", run::describe(&cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`", run::describe(&cmd)))?;
    ensure!(out.status.success(), "building the guest tests failed");
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = msg["target"]["name"].as_str().unwrap_or_default();
        if msg["reason"] == "compiler-artifact"
            && GUEST_TESTS.contains(&name)
            && let Some(exe) = msg["executable"].as_str()
        {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    for t in GUEST_TESTS {
        ensure!(
            found.iter().any(|(n, _)| n == t),
            "cargo built no executable for guest test `{t}`"
        );
    }
    Ok(found)
}

/// Builds `tr7-bench` (release), as `cargo xtask bench` runs it on the host; returns its
/// path.
fn bench_binary() -> anyhow::Result<PathBuf> {
    let mut cmd = run::cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "tr7-tests",
        "--bin",
        "tr7-bench",
        "--message-format=json",
    ]);
    println!("vm: building the bench: {}", run::describe(&cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start `{}`", run::describe(&cmd)))?;
    ensure!(out.status.success(), "building tr7-bench failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|msg| {
            (msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "tr7-bench")
                .then(|| msg["executable"].as_str().map(PathBuf::from))
                .flatten()
        })
        .context("cargo built no tr7-bench executable")
}

// ---------------------------------------------------------------------------------------
// The initramfs

enum Node {
    Dir,
    File { data: Vec<u8>, mode: u32 },
}

/// An uncompressed newc cpio archive, built in memory: the kernel unpacks it fastest.
#[derive(Default)]
struct Cpio {
    nodes: BTreeMap<String, Node>,
}

impl Cpio {
    fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        let mut at = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            self.nodes.entry(at.clone()).or_insert(Node::Dir);
        }
    }

    fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = path.trim_matches('/').to_owned();
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.nodes.insert(path, Node::File { data, mode });
    }

    /// Copies host file `src` (following symlinks) to `dst` in the archive.
    fn copy(&mut self, src: &Path, dst: &str) -> anyhow::Result<()> {
        let data = std::fs::read(src).with_context(|| format!("read {}", src.display()))?;
        self.file(dst, data, 0o755);
        Ok(())
    }

    /// Copies executable `src` to `dst` with every library `ldd` lists for it.
    fn program(&mut self, src: &Path, dst: &str) -> anyhow::Result<()> {
        self.copy(src, dst)?;
        let out = Command::new("ldd").arg(src).output().context("run ldd")?;
        if !out.status.success() {
            // Static: `not a dynamic executable`.
            return Ok(());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux... (0x...)`
            if let Some(lib) = line.split_whitespace().find(|w| w.starts_with('/'))
                && !self.nodes.contains_key(lib.trim_start_matches('/'))
            {
                self.copy(Path::new(lib), lib)?;
            }
        }
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        let mut entry = |ino: usize, name: &str, mode: u32, data: &[u8]| {
            let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
            // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
            // rdevmajor, rdevminor, namesize, check
            let fields = [ino, mode as usize, 0, 0, nlink, 0, data.len(), 0, 0, 0, 0];
            out.extend_from_slice(b"070701");
            for f in fields.iter().chain(&[name.len() + 1, 0]) {
                out.extend_from_slice(format!("{f:08X}").as_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.push(0);
            pad4(out);
            out.extend_from_slice(data);
            pad4(out);
        };
        let mut ino = 1;
        for (path, node) in &self.nodes {
            match node {
                Node::Dir => entry(ino, path, 0o040755, &[]),
                Node::File { data, mode } => entry(ino, path, 0o100000 | mode, data),
            }
            ino += 1;
        }
        entry(ino, "TRAILER!!!", 0, &[]);
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Finds a host program on the usual paths.
fn host_program(name: &str) -> anyhow::Result<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .with_context(|| format!("`{name}` is not installed on this machine (`cargo xtask setup`)"))
}

/// Shell-quotes `s` for the guest's bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's `/init`: mounts, modules, `body` (which sets `rc`), the marker, power off. A
/// module that does not load is a failure: the guest exists to have what this machine lacks.
fn init_script(kernel: &Kernel, body: &str) -> String {
    let mut s = String::from(
        r#"#!/usr/bin/bash
# TR7 guest init, written by `cargo xtask vm-test` (xtask/src/vm.rs).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TR7_GUEST=1 RUST_BACKTRACE=1
finish() {
    echo "TR7-VM-RESULT rc=$1"
    poweroff -f
    exit "$1"
}
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf || { echo "TR7-VM: cannot mount bpffs"; finish 1; }
ln -s /run /var/run
ip link set lo up
"#,
    );
    for (path, params) in &kernel.modules {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        let name = module_name(path);
        let _ = writeln!(
            s,
            "insmod /lib/modules/tr7/{file} {params} || {{ echo \"TR7-VM: module {name} does not load: the guest lacks what the tests need\"; finish 1; }}"
        );
    }
    s.push_str("echo \"TR7-VM: kernel $(uname -r), modules loaded\"\nrc=0\n");
    s.push_str(body);
    s.push_str("finish $rc\n");
    s
}

/// The part of `/init` that runs every guest test binary (`--ignored`, filtered).
fn tests_script(tests: &[String], filter: Option<&str>) -> String {
    let mut s = String::new();
    for t in tests {
        let filter = filter.map(quote).unwrap_or_default();
        // Guest tests are #[ignore]d on the host; here they run. Known gaps are skipped by
        // name, saying so.
        let mut skips = String::new();
        for (name, why) in KNOWN_GAPS {
            let _ = writeln!(s, "echo \"TR7-VM: not run: {name}: {why}\"");
            skips.push_str(&format!(" --skip {name}"));
        }
        let _ = writeln!(
            s,
            "echo \"TR7-VM: running {t}\"\n/tests/{t} --ignored --test-threads=1{skips} {filter} || rc=1"
        );
    }
    s
}

/// Guest tests that fail today because of a known gap, with the reason printed in the run.
/// Empty: the last one (offloaded VLAN tags) is fixed; keep the mechanism for the next.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Writes the initramfs: programs, modules, `binaries` under `/tests/`, and `/init`
/// running `body`.
fn initramfs(
    kernel: &Kernel,
    binaries: &[(String, PathBuf)],
    body: &str,
) -> anyhow::Result<PathBuf> {
    let mut cpio = Cpio::default();
    for d in [
        "proc", "sys", "dev", "run", "tmp", "var", "etc", "root", "sbin", "bin", "usr/bin",
        "usr/sbin",
    ] {
        cpio.dir(d);
    }
    cpio.copy(&host_program("busybox")?, "bin/busybox")?;
    for p in HOST_PROGRAMS {
        let src = host_program(p)?;
        let dst = std::fs::canonicalize(&src).unwrap_or_else(|_| src.clone());
        // Merged /usr: /bin/bash is /usr/bin/bash; keep the guest's /bin for busybox.
        let dst = dst.to_string_lossy().into_owned();
        cpio.program(&src, &dst)?;
    }
    for (path, _) in &kernel.modules {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
        cpio.copy(path, &format!("lib/modules/tr7/{file}"))?;
    }
    let stripped = vm_dir().join("bin");
    std::fs::create_dir_all(&stripped)?;
    for (name, exe) in binaries {
        // Debug info is most of a test binary; the guest only needs the code.
        let small = stripped.join(name);
        let ok = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&small)
            .arg(exe)
            .status()
            .is_ok_and(|s| s.success());
        cpio.program(if ok { &small } else { exe }, &format!("tests/{name}"))?;
    }
    cpio.file("init", init_script(kernel, body).into_bytes(), 0o755);
    let mut out = Vec::new();
    cpio.write(&mut out);
    let path = vm_dir().join("initramfs.cpio");
    std::fs::write(&path, out).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

// ---------------------------------------------------------------------------------------
// Booting

fn boot(kernel: &Kernel, initrd: &Path) -> anyhow::Result<GuestReport> {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", &GUEST_TIMEOUT.as_secs().to_string()])
        .arg("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    println!("vm: booting: {}", run::describe(&cmd));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{}`", run::describe(&cmd)))?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let mut counts = Counts::default();
    let mut rc = None;
    let mut last: VecDeque<String> = VecDeque::new();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line?;
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        println!("guest| {line}");
        counts.add_result_line(line);
        if let Some(n) = line.strip_prefix(MARKER) {
            rc = n.trim().parse::<i32>().ok();
        }
        if last.len() == 30 {
            last.pop_front();
        }
        last.push_back(line.to_owned());
    }
    let status = child.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let Some(rc) = rc else {
        let why = match status.code() {
            Some(124) | Some(137) => format!("timed out after {} s", GUEST_TIMEOUT.as_secs()),
            _ => format!("qemu exited ({status})"),
        };
        bail!(
            "the guest gave no verdict ({why}, {secs:.1} s, no `{MARKER}N` line); its last console lines:\n{}",
            last.iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    };
    println!("vm: guest finished in {secs:.1} s with rc={rc}");
    Ok(GuestReport {
        counts,
        ok: rc == 0,
    })
}
