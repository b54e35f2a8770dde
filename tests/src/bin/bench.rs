//! `tr7-bench`: benchmarks run by `cargo xtask bench`. Every number is a ratio to a baseline
//! measured in the same run, interleaved round by round, because absolute timings on a
//! shared machine swing by 2x between runs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::ExitCode,
};

use aya::{Ebpf, programs::Xdp};
use tr7::dataplane::{VipScope, object::BASELINE};
use tr7_tests::{
    bpf::{TEST_SCOPE, TestDataplane, run_timed},
    packet::Frame,
};

const CLIENT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

struct Opts {
    repeat: u32,
    rounds: usize,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts {
        repeat: 1_000_000,
        rounds: 5,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--repeat" => opts.repeat = value("--repeat")?,
            "--rounds" => opts.rounds = value("--rounds")? as usize,
            other => {
                return Err(format!(
                    "unknown option `{other}` (known: --repeat N, --rounds N)"
                ));
            }
        }
    }
    if opts.repeat == 0 || opts.rounds == 0 {
        return Err("--repeat and --rounds must be at least 1".into());
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((what, rest)) = args.split_first() else {
        eprintln!("usage: tr7-bench dataplane|config [--repeat N] [--rounds N]");
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
        "config" => config(&opts),
        other => {
            eprintln!("tr7-bench: unknown benchmark `{other}` (known: dataplane, config)");
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

fn dataplane(opts: &Opts) {
    let mut baseline = Ebpf::load(BASELINE).expect("load the baseline object (built by build.rs)");
    let empty: &mut Xdp = baseline
        .program_mut("tr7_baseline")
        .expect("tr7_baseline program")
        .try_into()
        .expect("an XDP program");
    empty.load().expect("verify the baseline program");

    let frames: Vec<(&str, Vec<u8>)> = vec![
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
    ];
    println!(
        "gate vs empty XDP program, BPF_PROG_TEST_RUN, repeat {} x {} interleaved rounds (median)",
        opts.repeat, opts.rounds
    );
    println!(
        "{:<18} {:>8} {:>10} {:>10} {:>7}",
        "frame", "VIPs", "gate ns", "empty ns", "ratio"
    );
    let mut worst_at_max = 0.0f64;
    for n in [1usize, 1_000, 100_000] {
        let mut t = TestDataplane::load("bench");
        fill(&mut t, n);
        for (name, bytes) in &frames {
            let mut gate_ns = Vec::new();
            let mut empty_ns = Vec::new();
            for _ in 0..opts.rounds {
                let (v, ns) = run_timed(t.programs.gate().unwrap(), bytes, opts.repeat);
                assert_eq!(v, 2, "{name}: the gate must pass an owned VIP's frame");
                gate_ns.push(ns);
                empty_ns.push(run_timed(empty, bytes, opts.repeat).1);
            }
            let (g, e) = (median(gate_ns), median(empty_ns));
            let ratio = g as f64 / e.max(1) as f64;
            if n == 100_000 {
                worst_at_max = worst_at_max.max(ratio);
            }
            println!("{name:<18} {n:>8} {g:>10} {e:>10} {ratio:>6.2}x");
        }
    }
    println!("worst ratio at 100,000 VIPs: {worst_at_max:.2}x (target: at most 1.50x)");
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
