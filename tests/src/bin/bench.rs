//! `tr7-bench`: benchmarks run by `cargo xtask bench`. Every number is a ratio to a baseline
//! measured in the same run, interleaved round by round, because absolute timings on a
//! shared machine swing by 2x between runs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::ExitCode,
    time::Duration,
};

use aya::{Ebpf, EbpfLoader, programs::Xdp};
use tr7::dataplane::{VipScope, object::BASELINE};
use tr7_tests::{
    bpf::{TEST_SCOPE, TEST_SLOT, TestDataplane, run_timed},
    failover,
    packet::Frame,
};

const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

struct Opts {
    repeat: u32,
    rounds: usize,
    /// An older `tr7-dataplane` object whose gate is measured beside this build's.
    against: Option<std::path::PathBuf>,
    /// dataplane-floor: cut-down gates (`NAME=OBJECT`), measured beside this build's.
    variants: Vec<(String, std::path::PathBuf)>,
    failover: failover::Opts,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        repeat: 1_000_000,
        rounds: 5,
        against: None,
        variants: Vec::new(),
        failover: failover::Opts::default(),
    };
    let mut rounds = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--against" {
            let path = it
                .next()
                .ok_or("--against needs the path of a tr7-dataplane object")?;
            opts.against = Some(path.into());
            continue;
        }
        if a == "--variant" {
            let v = it
                .next()
                .ok_or("--variant needs NAME=OBJECT, e.g. no-counters=floor-no-counters.o")?;
            let (name, path) = v
                .split_once('=')
                .ok_or_else(|| format!("--variant `{v}`: expected NAME=OBJECT"))?;
            opts.variants.push((name.to_string(), path.into()));
            continue;
        }
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--repeat" => opts.repeat = value("--repeat")?,
            "--rounds" => rounds = Some(value("--rounds")? as usize),
            "--intervals" => {
                let list = it
                    .next()
                    .ok_or("--intervals needs a list, e.g. 1000,100,10")?;
                opts.failover.intervals = list
                    .split(',')
                    .map(|v| match v.trim().parse::<u64>() {
                        Ok(n) if n >= 10 && n % 10 == 0 && n <= 40_950 => {
                            Ok(Duration::from_millis(n))
                        }
                        _ => Err(format!(
                            "--intervals: `{v}` is not a VRRPv3 interval in ms (10-40950, a multiple of 10)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--impls" => {
                let list = it
                    .next()
                    .ok_or("--impls needs a list, e.g. tr7,keepalived")?;
                opts.failover.impls = list
                    .split(',')
                    .map(|v| match v.trim() {
                        "tr7" => Ok(failover::Impl::Tr7),
                        "keepalived" => Ok(failover::Impl::Keepalived),
                        other => Err(format!(
                            "--impls: unknown implementation `{other}` (known: tr7, keepalived)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--faults" => {
                let list = it
                    .next()
                    .ok_or("--faults needs a list, e.g. kill9,sigterm")?;
                opts.failover.faults = list
                    .split(',')
                    .map(|v| {
                        failover::Fault::parse(v.trim()).ok_or_else(|| {
                            format!(
                                "--faults: unknown fault `{}` (known: {})",
                                v.trim(),
                                failover::Fault::KNOWN
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => {
                return Err(format!(
                    "unknown option `{other}` (known: --repeat N, --rounds N, --against OBJECT, \
                     --variant NAME=OBJECT, and for failover --intervals MS,MS,.., --faults kill9,sigterm,carrier-slow,.. and \
                     --impls tr7,keepalived)"
                ));
            }
        }
    }
    if let Some(r) = rounds {
        opts.rounds = r;
        opts.failover.rounds = r;
    }
    if opts.repeat == 0 || opts.rounds == 0 {
        return Err("--repeat and --rounds must be at least 1".into());
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((what, rest)) = args.split_first() else {
        eprintln!(
            "usage: tr7-bench dataplane|dataplane-floor|config|reconcile|reconcile-vlan|failover [--repeat N] [--rounds N] \
             [--intervals MS,..] [--faults kill9,sigterm,carrier-slow,carrier-slow-busy,carrier-fast,gateway] \
             [--impls tr7,keepalived]"
        );
        return ExitCode::FAILURE;
    };
    let opts = match parse_opts(rest) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tr7-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match what.as_str() {
        "dataplane" => dataplane(&opts),
        "dataplane-floor" => dataplane_floor(&opts),
        "config" => config(&opts),
        "reconcile" => reconcile(&opts),
        "reconcile-vlan" => reconcile_vlan(&opts),
        "failover" => {
            // The real agent binary, built next to this one by `cargo xtask bench failover`.
            let tr7 = std::env::current_exe()
                .ok()
                .and_then(|e| Some(e.parent()?.join("tr7")))
                .filter(|p| p.exists());
            let Some(tr7) = tr7 else {
                eprintln!(
                    "tr7-bench failover: no `tr7` binary next to tr7-bench; run it through \
                     `cargo xtask bench failover` (which builds both)"
                );
                return ExitCode::FAILURE;
            };
            failover::run(&opts.failover, &tr7);
        }
        other => {
            eprintln!(
                "tr7-bench: unknown benchmark `{other}` (known: dataplane, dataplane-floor, config, reconcile, \
                 reconcile-vlan, failover)"
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Fills the VIP map with `n` VIPs, the measured ones among them. Beyond the 768 IPv4
/// documentation addresses, VIPs spread over further VLANs and over 2001:db8::/32: the
/// hash map's cost depends on how full it is, not on which addresses fill it.
fn fill(t: &mut TestDataplane, n: usize) {
    let untagged = VipScope::untagged(TEST_SCOPE);
    let mut index = 0u32;
    let put = |t: &mut TestDataplane, index: &mut u32, place: VipScope, addr: IpAddr| {
        t.maps.set_vip_indexed(place, addr, true, *index).unwrap();
        *index += 1;
    };
    put(t, &mut index, untagged, VIP4.into());
    put(t, &mut index, untagged, VIP6.into());
    put(t, &mut index, VipScope::vlan(TEST_SCOPE, 100), VIP4.into());
    let v4_blocks = [[192u8, 0, 2], [198, 51, 100], [203, 0, 113]];
    let mut i = 0usize;
    while (index as usize) < n {
        if i.is_multiple_of(2) {
            let block = v4_blocks[(i / 2) % 3];
            let host = ((i / 6) % 256) as u8;
            let vlan = 1000 + (i / (6 * 256)) as u16;
            let place = VipScope::vlan(TEST_SCOPE, vlan);
            put(
                t,
                &mut index,
                place,
                IpAddr::from([block[0], block[1], block[2], host]),
            );
        } else {
            let x = i as u32;
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 0x1000, 0, 0, 0, (x >> 16) as u16, x as u16);
            put(t, &mut index, untagged, addr.into());
        }
        i += 1;
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The empty XDP program every gate is measured beside.
fn load_baseline() -> Ebpf {
    let mut baseline = Ebpf::load(BASELINE).expect("load the baseline object (built by build.rs)");
    baseline_program(&mut baseline)
        .load()
        .expect("verify the baseline program");
    baseline
}

fn baseline_program(ebpf: &mut Ebpf) -> &mut Xdp {
    ebpf.program_mut("tr7_baseline")
        .expect("tr7_baseline program")
        .try_into()
        .expect("an XDP program")
}

/// A table of `n` VIPs with the fence armed as the agent arms it (a running agent always
/// has a fence), far from firing.
fn bench_dataplane(n: usize) -> TestDataplane {
    let mut t = TestDataplane::load("bench");
    fill(&mut t, n);
    t.maps
        .heartbeat(tr7::agent::heartbeat::monotonic_ns(), 3_600_000_000_000)
        .expect("arm the fence");
    t
}

/// The measured frames, each addressed to the owned VIP the bench fills in first (the
/// gate's longest path).
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "IPv4 UDP",
            Frame::eth()
                .ipv4(CLIENT4, VIP4, 17)
                .udp(4000, 53, &[0; 18])
                .bytes()
                .to_vec(),
        ),
        (
            "IPv6 UDP",
            Frame::eth()
                .ipv6(CLIENT6, VIP6, 17)
                .udp(4000, 53, &[0; 18])
                .bytes()
                .to_vec(),
        ),
        (
            "ARP request",
            Frame::eth_broadcast()
                .arp(1, CLIENT4, VIP4)
                .bytes()
                .to_vec(),
        ),
        (
            "802.1Q IPv4 UDP",
            Frame::eth()
                .vlan(100)
                .ipv4(CLIENT4, VIP4, 17)
                .udp(4000, 53, &[0; 18])
                .bytes()
                .to_vec(),
        ),
    ]
}

fn dataplane(opts: &Opts) {
    let mut baseline = load_baseline();
    let empty = baseline_program(&mut baseline);

    let frames = frames();
    println!(
        "gate (fence armed) vs empty XDP program, BPF_PROG_TEST_RUN, repeat {} x {} interleaved rounds (median)",
        opts.repeat, opts.rounds
    );
    println!(
        "{:<18} {:>8} {:>10} {:>10} {:>7}",
        "frame", "VIPs", "gate ns", "empty ns", "ratio"
    );
    let old_object = opts
        .against
        .as_ref()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("--against {}: {e}", p.display())));
    if let Some(p) = &opts.against {
        println!(
            "older gate: {} (same maps, measured in the same rounds; `old/new` > 1: this build is faster)",
            p.display()
        );
    }
    let mut worst_at_max = 0.0f64;
    for n in [1usize, 1_000, 100_000] {
        let mut t = bench_dataplane(n);
        let mut old = old_object
            .as_deref()
            .map(|o| load_gate_of(&t, o, "--against"));
        for (name, bytes) in &frames {
            let mut gate_ns = Vec::new();
            let mut empty_ns = Vec::new();
            let mut old_ns = Vec::new();
            for _ in 0..opts.rounds {
                let (v, ns) = run_timed(t.programs.gate().unwrap(), bytes, opts.repeat);
                assert_eq!(v, 2, "{name}: the gate must pass an owned VIP's frame");
                gate_ns.push(ns);
                empty_ns.push(run_timed(empty, bytes, opts.repeat).1);
                if let Some(old) = old.as_mut() {
                    old_ns.push(run_timed(gate_of(old), bytes, opts.repeat).1);
                }
            }
            let (g, e) = (median(gate_ns), median(empty_ns));
            let ratio = g as f64 / e.max(1) as f64;
            if n == 100_000 {
                worst_at_max = worst_at_max.max(ratio);
            }
            print!("{name:<18} {n:>8} {g:>10} {e:>10} {ratio:>6.2}x");
            if old.is_some() {
                let o = median(old_ns);
                let old_ratio = o as f64 / e.max(1) as f64;
                print!(
                    "   old {o:>4} ns {old_ratio:>5.2}x   old/new {:>5.2}",
                    o as f64 / g.max(1) as f64
                );
            }
            println!();
        }
    }
    println!("worst ratio at 100,000 VIPs: {worst_at_max:.2}x (target: at most 1.50x)");
}

/// Loads the gate of another object (`what`: the option that named it) against the maps of
/// `t` (same pins, scope and slot), for `--against` and `--variant`.
fn load_gate_of(t: &TestDataplane, object: &[u8], what: &str) -> Ebpf {
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&t.pins.path)
        .override_global(tr7_common::global::SCOPE, &TEST_SCOPE, true)
        .override_global(tr7_common::global::SLOT, &TEST_SLOT, true)
        .load(object)
        .unwrap_or_else(|e| panic!("load the {what} object (it must use this build's maps): {e}"));
    gate_of(&mut ebpf)
        .load()
        .unwrap_or_else(|e| panic!("verify the {what} gate: {e}"));
    ebpf
}

fn gate_of(ebpf: &mut Ebpf) -> &mut Xdp {
    ebpf.program_mut(tr7_common::program::GATE)
        .expect("the object has no gate")
        .try_into()
        .expect("the gate is an XDP program")
}

/// What the parts of the gate cost: this build's gate and cut-down builds of it (`--variant
/// NAME=OBJECT`, built by `cargo xtask bench dataplane-floor` from tr7-ebpf's `floor-*`
/// features), each beside the empty program in the same interleaved rounds, at 100,000 VIPs.
fn dataplane_floor(opts: &Opts) {
    let mut baseline = load_baseline();
    let empty = baseline_program(&mut baseline);
    let mut t = bench_dataplane(100_000);
    let mut variants: Vec<(String, Ebpf)> = opts
        .variants
        .iter()
        .map(|(name, path)| {
            let object = std::fs::read(path)
                .unwrap_or_else(|e| panic!("--variant {name}={}: {e}", path.display()));
            (
                name.clone(),
                load_gate_of(&t, &object, &format!("--variant {name}")),
            )
        })
        .collect();
    println!(
        "the gate and cut-down builds of it, 100,000 VIPs, fence armed: ns per frame and ratio \
         to the empty XDP program, BPF_PROG_TEST_RUN, repeat {} x {} interleaved rounds (median)",
        opts.repeat, opts.rounds
    );
    print!("{:<18} {:>10}", "frame", "empty ns");
    for (name, _) in &variants {
        print!(" {name:>20}");
    }
    println!(" {:>20}", "gate");
    for (frame, bytes) in frames() {
        let mut empty_ns = Vec::new();
        let mut gate_ns = Vec::new();
        let mut variant_ns = vec![Vec::new(); variants.len()];
        // Each round starts with the next program in turn, so no program always runs first
        // or right after the same one.
        let programs = variants.len() + 2;
        for round in 0..opts.rounds {
            for k in 0..programs {
                match (round + k) % programs {
                    0 => empty_ns.push(run_timed(empty, &bytes, opts.repeat).1),
                    1 => {
                        let (v, ns) = run_timed(t.programs.gate().unwrap(), &bytes, opts.repeat);
                        assert_eq!(v, 2, "{frame}: the gate must pass an owned VIP's frame");
                        gate_ns.push(ns);
                    }
                    i => variant_ns[i - 2]
                        .push(run_timed(gate_of(&mut variants[i - 2].1), &bytes, opts.repeat).1),
                }
            }
        }
        let e = median(empty_ns).max(1);
        let cell = |ns: u64| format!("{ns} ns {:.2}x", ns as f64 / e as f64);
        print!("{frame:<18} {e:>10}");
        for ns in variant_ns {
            print!(" {:>20}", cell(median(ns)));
        }
        println!(" {:>20}", cell(median(gate_ns)));
    }
}

/// Validating the 4,000-VLAN trunk file beside only reading it (YAML and typed reading,
/// no semantic rules), interleaved round by round: the ratio is what validation adds.
fn config(opts: &Opts) {
    let vlans = 4_000;
    let text = tr7::config::bench_input(vlans);
    let mut read_ms = Vec::new();
    let mut validate_ms = Vec::new();
    for _ in 0..opts.rounds {
        let start = std::time::Instant::now();
        tr7::config::parse_file(&text, "trunk.yaml").expect("the trunk file reads");
        read_ms.push(start.elapsed().as_micros() as u64);
        let start = std::time::Instant::now();
        let cluster = tr7::config::parse(&text, "trunk.yaml").expect("the trunk file is valid");
        validate_ms.push(start.elapsed().as_micros() as u64);
        assert_eq!(cluster.interfaces.len(), vlans + 3);
    }
    let (r, v) = (median(read_ms), median(validate_ms));
    println!(
        "cluster file with {vlans} VLANs ({} KiB), {} rounds (median)",
        text.len() / 1024,
        opts.rounds
    );
    println!(
        "  read only (YAML + typed reading): {:>8.1} ms",
        r as f64 / 1000.0
    );
    println!(
        "  read and validate (tr7 validate): {:>8.1} ms",
        v as f64 / 1000.0
    );
    println!(
        "  validation ratio: {:.2}x of reading",
        v as f64 / r.max(1) as f64
    );
}

/// veth pairs of the reconcile benchmark: each host end a port of one bridge, each tenant end
/// in one tenant namespace with `ADDRS_PER_PEER` addresses: 1,000 interfaces, 4,000
/// addresses. IPv6 only, because the IPv4 documentation ranges hold 768 addresses.
const PAIRS: usize = 500;
const ADDRS_PER_PEER: usize = 8;
/// No-change re-plans measured per round.
const REPLANS: usize = 10;

/// The namespaces of one benchmark round, removed on drop (also on panic).
struct BenchNetns(Vec<String>);

impl BenchNetns {
    fn add(&mut self, name: String) -> String {
        run_ip(&["netns", "add", &name]);
        self.0.push(name.clone());
        name
    }
}

impl Drop for BenchNetns {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

fn run_ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bench_addr(pair: usize, n: usize) -> String {
    format!("2001:db8:{:x}::{:x}/64", 0x100 + pair, n + 1)
}

/// The cluster file: bridge br0 over v0..v499, each veth's peer pN in `tenant`.
fn reconcile_file(tenant: &str) -> String {
    let mut y = String::from("name: bench\nnodes: [{name: a}]\ninterfaces:\n");
    let members: Vec<String> = (0..PAIRS).map(|i| format!("v{i}")).collect();
    y.push_str(&format!(
        "  - {{name: br0, type: bridge, members: [{}]}}\n",
        members.join(", ")
    ));
    for i in 0..PAIRS {
        y.push_str(&format!(
            "  - {{name: v{i}, type: veth, peer: {tenant}/p{i}}}\n"
        ));
        let addrs: Vec<String> = (0..ADDRS_PER_PEER).map(|n| bench_addr(i, n)).collect();
        y.push_str(&format!(
            "  - {{name: p{i}, type: veth-peer, namespace: {tenant}, peer: v{i}, addresses: {{a: [{}]}}}}\n",
            addrs.join(", ")
        ));
    }
    y
}

/// The same operations as `tr7 apply` of [`reconcile_file`], as two `ip -batch` files: the
/// host's (bridge, veths created with their peer in the tenant namespace, ports, up) and
/// the tenant's (peers up, addresses).
fn reconcile_batches(tenant: &str) -> (String, String) {
    let mut host = String::from("link add br0 type bridge\n");
    let mut ten = String::new();
    for i in 0..PAIRS {
        host.push_str(&format!(
            "link add v{i} mtu 1500 type veth peer name p{i} mtu 1500 netns {tenant}\n"
        ));
    }
    for i in 0..PAIRS {
        host.push_str(&format!("link set v{i} master br0\n"));
    }
    host.push_str("link set br0 up\n");
    for i in 0..PAIRS {
        host.push_str(&format!("link set v{i} up\n"));
        ten.push_str(&format!("link set p{i} up\n"));
    }
    for i in 0..PAIRS {
        for n in 0..ADDRS_PER_PEER {
            ten.push_str(&format!("addr add {} dev p{i}\n", bench_addr(i, n)));
        }
    }
    (host, ten)
}

/// `tr7 apply` (observe + plan + apply, as library calls) of 1,000 interfaces with 4,000
/// addresses, beside `ip -batch` doing the same in other namespaces of the same round; then
/// a no-change re-plan (observe + plan) of the applied state.
fn reconcile(opts: &Opts) {
    use std::time::Instant;
    use tr7::netlink::{Options, Target, cli, desired, plan};

    let tag = std::process::id() % 100_000;
    let mut apply_ms = Vec::new();
    let mut batch_ms = Vec::new();
    let mut replan_ms = Vec::new();
    let mut plan_only_us = Vec::new();
    let mut ip_show_us = Vec::new();
    let mut actions = 0;
    for round in 0..opts.rounds {
        let mut ns = BenchNetns(Vec::new());
        let host = ns.add(format!("tr7b{tag}-host"));
        let tenant = ns.add(format!("tr7b{tag}-ten"));
        let ip_host = ns.add(format!("tr7b{tag}-iphost"));
        let ip_tenant = ns.add(format!("tr7b{tag}-ipten"));

        let text = reconcile_file(&tenant);
        let cluster = tr7::config::parse(&text, "bench.yaml").expect("the bench file is valid");
        let want = desired(&cluster.node_view("a").expect("node a"));
        let target = Target {
            root: Some(host.clone()),
        };
        let (host_batch, tenant_batch) = reconcile_batches(&ip_tenant);
        let dir = std::env::temp_dir();
        let host_file = dir.join(format!("tr7b{tag}-host.batch"));
        let tenant_file = dir.join(format!("tr7b{tag}-ten.batch"));
        std::fs::write(&host_file, host_batch).expect("write batch");
        std::fs::write(&tenant_file, tenant_batch).expect("write batch");

        let run_batch = || {
            let start = Instant::now();
            run_ip(&["-n", &ip_host, "-batch", &host_file.display().to_string()]);
            run_ip(&[
                "-n",
                &ip_tenant,
                "-batch",
                &tenant_file.display().to_string(),
            ]);
            start.elapsed()
        };
        let run_tr7 = || {
            let start = Instant::now();
            let seen = cli::observe_blocking(&target, &want.namespaces()).expect("observe");
            let p = plan(&want, &seen, Options::default());
            let report = cli::apply_blocking(&p, &target)
                .expect("runtime")
                .expect("apply");
            (start.elapsed(), report.applied.len())
        };
        // Alternate which goes first, so neither always meets a warmer or busier kernel.
        let (b, (t, n)) = if round % 2 == 0 {
            let b = run_batch();
            (b, run_tr7())
        } else {
            let t = run_tr7();
            (run_batch(), t)
        };
        actions = n;
        batch_ms.push(b.as_micros() as u64);
        apply_ms.push(t.as_micros() as u64);

        // The re-plan is short and the machine shared: REPLANS of them per round.
        for _ in 0..REPLANS {
            let start = Instant::now();
            let seen = cli::observe_blocking(&target, &want.namespaces()).expect("observe");
            let planned = Instant::now();
            let again = plan(&want, &seen, Options::default());
            plan_only_us.push(planned.elapsed().as_micros() as u64);
            replan_ms.push(start.elapsed().as_micros() as u64);
            assert!(
                again.is_empty(),
                "re-plan after apply is not empty: {again}"
            );
            assert!(again.conflicts.is_empty(), "{again}");
            // The reference: iproute2 dumping the same, links and addresses of both
            // namespaces (`ip addr show` dumps both), output discarded.
            let start = Instant::now();
            for ns in [&host, &tenant] {
                let ok = std::process::Command::new("ip")
                    .args(["-n", ns, "addr", "show"])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "ip -n {ns} addr show");
            }
            ip_show_us.push(start.elapsed().as_micros() as u64);
        }
        let _ = std::fs::remove_file(&host_file);
        let _ = std::fs::remove_file(&tenant_file);
    }
    let (a, b) = (median(apply_ms), median(batch_ms));
    let (r, po) = (median(replan_ms), median(plan_only_us));
    println!(
        "{} interfaces ({PAIRS} veth pairs, host ends in one bridge), {} addresses, {} rounds (median)",
        2 * PAIRS + 1,
        PAIRS * ADDRS_PER_PEER,
        opts.rounds
    );
    println!(
        "  tr7 apply (observe + plan + {actions} actions): {:>8.1} ms",
        a as f64 / 1000.0
    );
    println!(
        "  ip -batch, same operations:              {:>8.1} ms",
        b as f64 / 1000.0
    );
    println!(
        "  apply ratio: {:.2}x of ip -batch (target: at most 1.50x)",
        a as f64 / b.max(1) as f64
    );
    println!(
        "  no-change re-plan (observe + plan):       {:>8.1} ms (target: under 100 ms; median of {REPLANS} per round), of which plan {:.1} ms",
        r as f64 / 1000.0,
        po as f64 / 1000.0
    );
    let shown = median(ip_show_us);
    println!(
        "  ip addr show of both namespaces (links + addresses, 2 processes): {:>6.1} ms; re-plan {:.2}x of it",
        shown as f64 / 1000.0,
        r as f64 / shown.max(1) as f64
    );
}

/// The VLAN variant (guest kernel only: it needs 8021q): `VLANS` VLANs spread over
/// `VLAN_PARENTS` ethernet ports (veths created before the clock starts, as the hardware
/// would be), `ADDRS_PER_VLAN` IPv6 addresses each: 1,000 interfaces, 4,000 addresses.
const VLAN_PARENTS: usize = 4;
const VLANS: usize = 1_000;
const ADDRS_PER_VLAN: usize = 4;

fn vlan_name(id: usize) -> String {
    format!("eth{}.{id}", id % VLAN_PARENTS)
}

fn vlan_addr(id: usize, n: usize) -> String {
    format!("2001:db8:{id:x}::{:x}/64", n + 1)
}

/// The cluster file: ports eth0..eth3, VLANs 1..=1000 on them in turn.
fn reconcile_vlan_file() -> String {
    let mut y = String::from("name: bench\nnodes: [{name: a}]\ninterfaces:\n");
    for p in 0..VLAN_PARENTS {
        y.push_str(&format!("  - {{name: eth{p}, type: ethernet}}\n"));
    }
    for id in 1..=VLANS {
        let addrs: Vec<String> = (0..ADDRS_PER_VLAN).map(|n| vlan_addr(id, n)).collect();
        y.push_str(&format!(
            "  - {{name: {}, type: vlan, parent: eth{}, id: {id}, addresses: {{a: [{}]}}}}\n",
            vlan_name(id),
            id % VLAN_PARENTS,
            addrs.join(", ")
        ));
    }
    y
}

/// The same operations as `tr7 apply` of [`reconcile_vlan_file`] as one `ip -batch` file:
/// VLANs created, set up, addresses added (the order of tr7's plan).
fn reconcile_vlan_batch() -> String {
    let mut b = String::new();
    for id in 1..=VLANS {
        b.push_str(&format!(
            "link add link eth{} name {} mtu 1500 type vlan id {id}\n",
            id % VLAN_PARENTS,
            vlan_name(id)
        ));
    }
    for id in 1..=VLANS {
        b.push_str(&format!("link set {} up\n", vlan_name(id)));
    }
    for id in 1..=VLANS {
        for n in 0..ADDRS_PER_VLAN {
            b.push_str(&format!(
                "addr add {} dev {}\n",
                vlan_addr(id, n),
                vlan_name(id)
            ));
        }
    }
    b
}

/// Creates the ethernet ports of the VLAN bench in `ns`: veth pairs ethN/swN, both ends up.
fn vlan_ports(ns: &str) {
    for p in 0..VLAN_PARENTS {
        let (eth, sw) = (format!("eth{p}"), format!("sw{p}"));
        run_ip(&[
            "-n", ns, "link", "add", &eth, "type", "veth", "peer", "name", &sw,
        ]);
        run_ip(&["-n", ns, "link", "set", &eth, "up"]);
        run_ip(&["-n", ns, "link", "set", &sw, "up"]);
    }
}

/// Stops the bench (its namespaces removed on unwind) when the kernel cannot create a VLAN.
fn require_vlans(ns: &str) {
    let probe = std::process::Command::new("ip")
        .args([
            "-n", ns, "link", "add", "link", "eth0", "name", "probe", "type", "vlan", "id", "4094",
        ])
        .output()
        .expect("run ip (iproute2)");
    assert!(
        probe.status.success(),
        "reconcile-vlan needs 802.1Q VLANs, which this kernel cannot create ({}): run it in \
         the guest kernel with `cargo xtask bench reconcile --guest`",
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    run_ip(&["-n", ns, "link", "del", "probe"]);
}

/// `tr7 apply` (observe + plan + apply, as library calls) of 1,000 VLANs with 4,000
/// addresses beside `ip -batch` doing the same in another namespace of the same round, then
/// no-change re-plans beside `ip addr show` of the same state. Needs 8021q: run in the guest
/// by `cargo xtask bench reconcile --guest`.
fn reconcile_vlan(opts: &Opts) {
    use std::time::Instant;
    use tr7::netlink::{Options, Target, cli, desired, plan};

    let tag = std::process::id() % 100_000;
    let text = reconcile_vlan_file();
    let cluster = tr7::config::parse(&text, "bench.yaml").expect("the bench file is valid");
    let want = desired(&cluster.node_view("a").expect("node a"));
    let batch_file = std::env::temp_dir().join(format!("tr7b{tag}-vlan.batch"));
    std::fs::write(&batch_file, reconcile_vlan_batch()).expect("write batch");
    let batch_path = batch_file.display().to_string();

    let mut apply_ms = Vec::new();
    let mut batch_ms = Vec::new();
    let mut replan_ms = Vec::new();
    let mut plan_only_us = Vec::new();
    let mut ip_show_us = Vec::new();
    let mut actions = 0;
    for round in 0..opts.rounds {
        let mut ns = BenchNetns(Vec::new());
        let host = ns.add(format!("tr7b{tag}-vlan"));
        let ip_host = ns.add(format!("tr7b{tag}-vlanip"));
        vlan_ports(&host);
        vlan_ports(&ip_host);
        if round == 0 {
            require_vlans(&host);
        }
        let target = Target {
            root: Some(host.clone()),
        };
        let run_batch = || {
            let start = Instant::now();
            run_ip(&["-n", &ip_host, "-batch", &batch_path]);
            start.elapsed()
        };
        let run_tr7 = || {
            let start = Instant::now();
            let seen = cli::observe_blocking(&target, &want.namespaces()).expect("observe");
            let p = plan(&want, &seen, Options::default());
            let report = cli::apply_blocking(&p, &target)
                .expect("runtime")
                .expect("apply");
            (start.elapsed(), report.applied.len())
        };
        // Alternate which goes first, so neither always meets a warmer or busier kernel.
        let (b, (t, n)) = if round % 2 == 0 {
            let b = run_batch();
            (b, run_tr7())
        } else {
            let t = run_tr7();
            (run_batch(), t)
        };
        actions = n;
        batch_ms.push(b.as_micros() as u64);
        apply_ms.push(t.as_micros() as u64);
        println!(
            "  round {}: tr7 apply {:.1} ms ({n} actions), ip -batch {:.1} ms",
            round + 1,
            t.as_secs_f64() * 1000.0,
            b.as_secs_f64() * 1000.0
        );

        // The re-plan measures the steady state: under TCG the 8,000 addresses' duplicate
        // address detection runs for seconds after the apply, and each address changing
        // state interrupts a dump in progress.
        let settled = wait_dad(&[&host, &ip_host], Duration::from_secs(120));
        println!("  duplicate address detection settled {settled:.1} s after the apply");
        for _ in 0..REPLANS {
            let start = Instant::now();
            let seen = cli::observe_blocking(&target, &want.namespaces()).expect("observe");
            let planned = Instant::now();
            let again = plan(&want, &seen, Options::default());
            plan_only_us.push(planned.elapsed().as_micros() as u64);
            replan_ms.push(start.elapsed().as_micros() as u64);
            assert!(
                again.is_empty(),
                "re-plan after apply is not empty: {again}"
            );
            assert!(again.conflicts.is_empty(), "{again}");
            let vlans = seen
                .namespaces
                .iter()
                .flat_map(|n| n.links.iter())
                .filter(|l| l.kind == tr7::netlink::LinkKind::Vlan)
                .count();
            assert_eq!(vlans, VLANS, "VLAN links observed after apply");
            // The reference: iproute2 dumping the same links and addresses.
            let start = Instant::now();
            let ok = std::process::Command::new("ip")
                .args(["-n", &host, "addr", "show"])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip -n {host} addr show");
            ip_show_us.push(start.elapsed().as_micros() as u64);
        }
    }
    let _ = std::fs::remove_file(&batch_file);
    let (a, b) = (median(apply_ms), median(batch_ms));
    let (r, po) = (median(replan_ms), median(plan_only_us));
    let shown = median(ip_show_us);
    println!(
        "{VLANS} VLANs on {VLAN_PARENTS} ethernet ports, {} addresses, {} rounds (median)",
        VLANS * ADDRS_PER_VLAN,
        opts.rounds
    );
    println!(
        "  tr7 apply (observe + plan + {actions} actions): {:>8.1} ms",
        a as f64 / 1000.0
    );
    println!(
        "  ip -batch, same operations:              {:>8.1} ms",
        b as f64 / 1000.0
    );
    println!(
        "  apply ratio: {:.2}x of ip -batch (target: at most 1.50x)",
        a as f64 / b.max(1) as f64
    );
    println!(
        "  no-change re-plan (observe + plan):       {:>8.1} ms (median of {REPLANS} per round), of which plan {:.1} ms",
        r as f64 / 1000.0,
        po as f64 / 1000.0
    );
    println!(
        "  ip addr show of the same namespace: {:>6.1} ms; re-plan {:.2}x of it",
        shown as f64 / 1000.0,
        r as f64 / shown.max(1) as f64
    );
}

/// Waits until no IPv6 address in `namespaces` is tentative (`ip -6 addr show tentative`
/// prints nothing), at most `limit`; returns the seconds waited. Panics past the limit.
fn wait_dad(namespaces: &[&str], limit: Duration) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let busy = namespaces.iter().any(|ns| {
            let out = std::process::Command::new("ip")
                .args(["-n", ns, "-6", "addr", "show", "tentative"])
                .output()
                .expect("run ip (iproute2)");
            !out.stdout.is_empty()
        });
        if !busy {
            return start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed() < limit,
            "IPv6 addresses still tentative {} s after the apply",
            limit.as_secs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
