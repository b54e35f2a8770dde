//! `tr7 dataplane ...`: attach, inspect and drive the data plane by hand. The agent does the
//! same through the library; these commands exist for operators, `cargo xtask`, and tests.

use std::{net::IpAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use nix::time::{ClockId, clock_gettime};
use tr7_common::{Reason, VLAN_8021AD, VLAN_VID_MASK};

use crate::dataplane::{self, AttachOutcome, DEFAULT_PIN_DIR, Maps, VipScope, XdpAttachMode};

#[derive(Debug, Args)]
pub struct DataplaneArgs {
    /// bpffs directory of the pinned maps and links.
    #[arg(long, global = true, default_value = DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
    #[command(subcommand)]
    pub command: DataplaneCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataplaneCommand {
    /// Load the programs and attach the gate (XDP ingress) and guard (TC egress) to an
    /// interface; adopts an existing attachment and the pinned maps.
    Attach {
        #[arg(long)]
        iface: String,
        /// Network namespace (`ip netns` name) of the interface.
        #[arg(long)]
        netns: Option<String>,
        /// Scope of the VIPs this interface serves: every port of one L2 domain (the
        /// members of a bond, say) shares one scope.
        #[arg(long, default_value_t = 1)]
        scope: u32,
        #[arg(long, value_enum, default_value_t)]
        mode: XdpAttachMode,
    },
    /// Remove the gate and guard from an interface.
    Detach {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        netns: Option<String>,
    },
    /// Set whether this node owns a VIP (adds the VIP if new).
    Vip {
        addr: IpAddr,
        /// Scope of the interfaces the VIP is reached through.
        #[arg(long, default_value_t = 1)]
        scope: u32,
        /// VLAN tags the VIP is reached with: OUTER or OUTER.INNER; `ad:` before a VID
        /// marks an 802.1ad S-tag.
        #[arg(long, value_parser = parse_vlans)]
        vlan: Option<(u16, u16)>,
        #[command(flatten)]
        action: VipAction,
    },
    /// Refresh the liveness heartbeat now and set the fence interval (0s disables it).
    Fence {
        #[arg(long, value_parser = parse_duration)]
        interval: Duration,
    },
    /// Print VIPs with their ownership and counters, and per-interface counters.
    Show,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct VipAction {
    /// This node answers for the VIP.
    #[arg(long)]
    own: bool,
    /// This node stays silent for the VIP.
    #[arg(long)]
    disown: bool,
    /// Forget the VIP: its traffic passes as ordinary traffic.
    #[arg(long)]
    remove: bool,
}

fn parse_vid(s: &str) -> Result<u16, String> {
    let (flag, vid) = match s.strip_prefix("ad:") {
        Some(rest) => (VLAN_8021AD, rest),
        None => (0, s),
    };
    let vid: u16 = vid
        .parse()
        .map_err(|_| format!("`{s}` is not a VLAN id (1-4094, `ad:` prefix for 802.1ad)"))?;
    if !(1..=4094).contains(&vid) {
        return Err(format!("VLAN id {vid} is outside 1-4094"));
    }
    Ok((vid & VLAN_VID_MASK) | flag)
}

fn parse_vlans(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('.') {
        Some((outer, inner)) => Ok((parse_vid(outer)?, parse_vid(inner)?)),
        None => Ok((parse_vid(s)?, 0)),
    }
}

/// `250ms`, `2s`, `1.5s`, `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("`{s}` is not a duration; write e.g. `250ms` or `2s`");
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(err)?;
    let value: f64 = num.trim().parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err())
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> anyhow::Result<u64> {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).context("clock_gettime")?;
    Ok(u64::try_from(ts.tv_sec())? * 1_000_000_000 + u64::try_from(ts.tv_nsec())?)
}

pub fn run(args: &DataplaneArgs) -> anyhow::Result<ExitCode> {
    let pin_dir = &args.pin_dir;
    match &args.command {
        DataplaneCommand::Attach {
            iface,
            netns,
            scope,
            mode,
        } => {
            let att = dataplane::attach(pin_dir, iface, netns.as_deref(), *scope, *mode)?;
            let say = |o: AttachOutcome| match o {
                AttachOutcome::Attached => "attached",
                AttachOutcome::Adopted => "adopted (already running this program)",
                AttachOutcome::Replaced => "replaced atomically with this build",
            };
            println!(
                "{iface} (ifindex {}, netns {}, scope {}, counter slot {}): gate {}, guard {}; pins under {}",
                att.ifindex,
                att.netns,
                att.scope,
                att.slot,
                say(att.gate),
                say(att.guard),
                pin_dir.display()
            );
            for c in att.vlan_offload.iter().filter(|c| !c.turned_off.is_empty()) {
                println!(
                    "{} ({}): turned off {} so VLAN tags stay in the frame (detach turns it back on)",
                    c.iface,
                    c.netns.as_deref().unwrap_or("this namespace"),
                    c.turned_off.join(", "),
                );
            }
        }
        DataplaneCommand::Detach { iface, netns } => {
            let done = dataplane::detach(pin_dir, iface, netns.as_deref())?;
            if done.found {
                println!("{iface}: gate and guard detached");
            } else {
                println!("{iface}: nothing was attached");
            }
            for r in done.vlan_offload.iter().filter(|r| !r.turned_on.is_empty()) {
                println!(
                    "{} ({}): turned {} back on (attach had turned it off)",
                    r.iface,
                    r.netns.as_deref().unwrap_or("this namespace"),
                    r.turned_on.join(", "),
                );
            }
        }
        DataplaneCommand::Vip {
            addr,
            scope,
            vlan,
            action,
        } => {
            let (outer_vlan, inner_vlan) = vlan.unwrap_or((0, 0));
            let place = VipScope {
                scope: *scope,
                outer_vlan,
                inner_vlan,
            };
            let mut maps = Maps::open(pin_dir)?;
            if action.remove {
                maps.remove_vip(place, *addr)?;
                println!("{addr} ({place}) removed");
            } else {
                let state = maps.set_vip(place, *addr, action.own)?;
                let word = if action.own { "owned" } else { "not owned" };
                println!("{addr} ({place}, counters #{}) {word}", state.index);
            }
        }
        DataplaneCommand::Fence { interval } => {
            let mut maps = Maps::open(pin_dir)?;
            let ns = u64::try_from(interval.as_nanos()).context("fence interval too long")?;
            maps.heartbeat(monotonic_ns()?, ns)?;
            if ns == 0 {
                println!("fence disabled");
            } else {
                println!("heartbeat refreshed; VIPs are fenced {interval:?} after the last one");
            }
        }
        DataplaneCommand::Show => show(pin_dir)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn show(pin_dir: &std::path::Path) -> anyhow::Result<()> {
    let maps = Maps::open(pin_dir)?;
    let fence = maps.fence()?;
    if fence.interval_ns == 0 {
        println!("fence: disabled");
    } else {
        let age = monotonic_ns()?.saturating_sub(fence.heartbeat_ns);
        let state = if age > fence.interval_ns {
            "FENCED"
        } else {
            "live"
        };
        println!(
            "fence: {state} (heartbeat {:.3}s ago, interval {:.3}s)",
            age as f64 / 1e9,
            fence.interval_ns as f64 / 1e9
        );
    }
    let vips = maps.vips()?;
    println!("VIPs: {}", vips.len());
    for v in &vips {
        let c = &v.counters;
        println!(
            "  {:<28} {:<22} {:<9} rx passed {} pkts / {} B, rx dropped {} pkts / {} B, tx guarded {} pkts",
            v.addr,
            v.place.to_string(),
            if v.owned { "owned" } else { "not-owned" },
            c.rx_passed_packets,
            c.rx_passed_bytes,
            c.rx_dropped_packets,
            c.rx_dropped_bytes,
            c.tx_guarded_packets
        );
    }
    let ifaces = maps.ifaces()?;
    println!("attachments: {}", ifaces.len());
    for e in &ifaces {
        let counts: Vec<String> = Reason::ALL
            .iter()
            .filter(|r| e.packets.get(**r) > 0)
            .map(|r| format!("{}={}", r.label(), e.packets.get(*r)))
            .collect();
        println!(
            "  netns {} ifindex {} (scope {}): {}",
            e.netns,
            e.ifindex,
            e.attachment.scope,
            counts.join(" ")
        );
    }
    Ok(())
}
