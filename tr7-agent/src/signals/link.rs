//! The carrier mechanism: one thread per namespace with a netlink socket subscribed to link
//! events (RTNLGRP_LINK) and a carrier poll (an RTM_GETLINK dump) every poll interval.
//!
//! Why both: the kernel batches non-urgent carrier changes (linkwatch) for up to one second
//! on the path of physical NICs, and both the RTM_NEWLINK event and the operstate wait for
//! it. The carrier bit itself (`IFF_LOWER_UP`, from `netif_carrier_ok`) changes at once, and
//! a dump reads it; so the poll bounds detection to one poll interval on every path, and the
//! event makes the fast path (urgent events) faster still. No process is forked; the sockets
//! live in the namespace of the interfaces, entered by this thread only.
//!
//! Where the kernel allows it, the eBPF hook on `netif_carrier_off`/`netif_carrier_on`
//! (`hook.rs`) wakes the watcher at the carrier change itself; the events and the poll stay
//! as confirmation and fallback. [`choose`] probes the kernel and says which runs and why.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use rtnetlink::packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{
    InfoBondPort, InfoPortData, LacpState, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use thiserror::Error;
use tracing::warn;

use super::hook::{CarrierHook, Wake};
use super::tracker::PortObs;
use crate::netns;

/// The link-event multicast group (RTNLGRP_LINK).
const RTNLGRP_LINK: u32 = 1;

/// Default carrier poll interval.
pub const DEFAULT_POLL: Duration = Duration::from_millis(10);

/// How the carrier of the tracked interfaces is watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mechanism {
    /// Short name for status and logs.
    pub name: String,
    /// Why this one (what was probed).
    pub why: String,
}

/// The mechanism without the hook: netlink events plus the poll (what [`choose`] falls back
/// to, and what a plan shows before the kernel is probed).
pub fn probe_mechanism(poll: Duration) -> Mechanism {
    Mechanism {
        name: format!("netlink-events+poll-{}ms", poll.as_millis()),
        why: format!("RTM_GETLINK poll every {poll:?} bounds the linkwatch delay"),
    }
}

/// Probes the kernel and picks the fastest carrier mechanism: the fexit hook on the carrier
/// functions (with netlink events and the poll kept as confirmation and fallback) when it
/// loads and attaches, else netlink events plus the poll, saying why the hook is missing.
pub fn choose(poll: Duration) -> (Mechanism, Option<CarrierHook>) {
    match CarrierHook::start() {
        Ok(hook) => (
            Mechanism {
                name: format!(
                    "ebpf-fexit-carrier+netlink-events+poll-{}ms",
                    poll.as_millis()
                ),
                why: format!(
                    "fexit on netif_carrier_off/netif_carrier_on attached (net_device.ifindex at byte {} from kernel BTF); netlink events and the poll every {poll:?} confirm",
                    hook.ifindex_offset
                ),
            },
            Some(hook),
        ),
        Err(hook_error) => {
            let fallback = probe_mechanism(poll);
            (
                Mechanism {
                    why: format!(
                        "eBPF carrier hook unavailable: {hook_error}; {}",
                        fallback.why
                    ),
                    ..fallback
                },
                None,
            )
        }
    }
}

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("namespace {netns:?}: {source}")]
    Netns {
        netns: Option<String>,
        source: netns::NetnsError,
    },
    #[error("namespace {netns:?}: cannot {step}: {source}")]
    Socket {
        netns: Option<String>,
        step: &'static str,
        source: std::io::Error,
    },
}

/// What the kernel says about every interface of one namespace, and what made us look.
#[derive(Clone, Debug)]
pub struct LinkSnapshot {
    pub netns: Option<String>,
    pub at: Instant,
    /// `ebpf` (the carrier hook woke the watcher), `event` (an RTM_NEWLINK/DELLINK arrived)
    /// or `poll`.
    pub source: &'static str,
    pub links: BTreeMap<String, PortObs>,
}

/// Starts the watcher of interfaces `names` (every interface when empty) in namespace
/// `netns` (`ip netns` name; `None`: the agent's). It sends
/// a snapshot at once and then whenever something changed; it ends when `stop` is set or `tx`
/// returns false.
pub fn spawn(
    netns: Option<String>,
    names: Vec<String>,
    poll: Duration,
    tx: impl Fn(LinkSnapshot) -> bool + Send + 'static,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, LinkError> {
    spawn_with(netns, names, poll, None, tx, stop)
}

/// [`spawn`], also woken by the eBPF carrier hook (`wake`): a snapshot made because of it
/// has the source `ebpf`.
pub fn spawn_with(
    netns: Option<String>,
    names: Vec<String>,
    poll: Duration,
    wake: Option<Wake>,
    tx: impl Fn(LinkSnapshot) -> bool + Send + 'static,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, LinkError> {
    let sock_err = |step| {
        let netns = netns.clone();
        move |source| LinkError::Socket {
            netns,
            step,
            source,
        }
    };
    // Sockets are made in the namespace and keep it; the thread itself need not stay there.
    let (events, query) = netns::within(netns.as_deref(), || {
        let mut events = Socket::new(NETLINK_ROUTE).map_err(sock_err("open a netlink socket"))?;
        events
            .bind_auto()
            .map_err(sock_err("bind the netlink event socket"))?;
        events
            .add_membership(RTNLGRP_LINK)
            .map_err(sock_err("join RTNLGRP_LINK"))?;
        events
            .set_non_blocking(true)
            .map_err(sock_err("set the event socket non-blocking"))?;
        let mut query = Socket::new(NETLINK_ROUTE).map_err(sock_err("open a netlink socket"))?;
        query
            .bind_auto()
            .map_err(sock_err("bind the netlink query socket"))?;
        query
            .connect(&SocketAddr::new(0, 0))
            .map_err(sock_err("connect the netlink query socket"))?;
        Ok::<_, LinkError>((events, query))
    })
    .map_err(|source| LinkError::Netns {
        netns: netns.clone(),
        source,
    })??;
    let name = format!("link-{}", netns.as_deref().unwrap_or("host"));
    let spawn_err = sock_err("spawn the link watcher");
    let owned = netns.clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let sockets = Sockets {
                events,
                query,
                wake,
            };
            watch(owned, names, poll, sockets, tx, stop)
        })
        .map_err(spawn_err)
}

/// What wakes a watcher (link events, the hook) and what it dumps with.
struct Sockets {
    events: Socket,
    query: Socket,
    wake: Option<Wake>,
}

fn watch(
    netns: Option<String>,
    names: Vec<String>,
    poll: Duration,
    sockets: Sockets,
    tx: impl Fn(LinkSnapshot) -> bool,
    stop: Arc<AtomicBool>,
) {
    let Sockets {
        events,
        query,
        wake,
    } = sockets;
    let mut last: Option<BTreeMap<String, PortObs>> = None;
    let mut seq = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_poll = Instant::now();
    let mut source = "poll";
    while !stop.load(Ordering::Relaxed) {
        seq = seq.wrapping_add(1);
        match dump(&query, seq, &names, &mut buf) {
            Ok(links) => {
                if last.as_ref() != Some(&links) {
                    let snap = LinkSnapshot {
                        netns: netns.clone(),
                        at: Instant::now(),
                        source,
                        links: links.clone(),
                    };
                    if !tx(snap) {
                        return;
                    }
                    last = Some(links);
                }
            }
            Err(error) => {
                warn!(netns = ?netns, %error, "carrier poll failed");
            }
        }
        next_poll += poll;
        let now = Instant::now();
        if next_poll < now {
            next_poll = now + poll;
        }
        // Wait for an event or the next poll, whichever comes first.
        let wait = next_poll.saturating_duration_since(now);
        let timeout = PollTimeout::try_from(wait.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(events.as_fd(), PollFlags::POLLIN)];
        if let Some(w) = &wake {
            fds.push(PollFd::new(w.0.as_fd(), PollFlags::POLLIN));
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        source = match nix::poll::poll(&mut fds, timeout) {
            Ok(n) if n > 0 => {
                let hook = fds.get(1).is_some_and(ready);
                // Drain: the dump below reads the state; the wake-ups only say "look now".
                if ready(&fds[0]) {
                    while events.recv(&mut &mut buf[..], 0).is_ok_and(|n| n > 0) {}
                }
                if let Some(w) = wake.as_ref().filter(|_| hook) {
                    while w.0.recv(&mut buf[..]).is_ok_and(|n| n > 0) {}
                }
                if hook { "ebpf" } else { "event" }
            }
            _ => "poll",
        };
    }
}

/// One RTM_GETLINK dump of the namespace.
fn dump(
    sock: &Socket,
    seq: u32,
    names: &[String],
    buf: &mut [u8],
) -> Result<BTreeMap<String, PortObs>, std::io::Error> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    sock.send(&out, 0)?;
    let mut links = BTreeMap::new();
    loop {
        // The kernel answers a dump at once; a bound keeps a stop from waiting forever.
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, PollTimeout::from(1000u16))? == 0 {
            return Err(std::io::Error::other("no answer to RTM_GETLINK within 1 s"));
        }
        let n = sock.recv(&mut &mut buf[..], 0)?;
        let mut offset = 0;
        while offset + NLMSG_HDR <= n {
            let raw = &buf[offset..n];
            let len = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            if len < NLMSG_HDR || len > raw.len() {
                return Err(std::io::Error::other(format!(
                    "netlink message of {len} bytes in {} received",
                    raw.len()
                )));
            }
            let raw = &raw[..len];
            let kind = u16::from_ne_bytes([raw[4], raw[5]]);
            let this_seq = u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]);
            // Only the links we track get the full (allocating) decode: a namespace may hold
            // hundreds of links, polled a hundred times a second.
            let wanted = kind != RTM_NEWLINK
                || names.is_empty()
                || raw_ifname(raw).is_some_and(|n| names.iter().any(|w| w.as_bytes() == n));
            if this_seq == seq && wanted {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw)
                    .map_err(|e| std::io::Error::other(format!("RTM_NEWLINK decode: {e}")))?;
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(links),
                    NetlinkPayload::Error(e) => {
                        return Err(std::io::Error::other(format!("RTM_GETLINK: {e:?}")));
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                        if let Some((name, obs)) = observe(&link) {
                            links.insert(name, obs);
                        }
                    }
                    _ => {}
                }
            }
            offset += (len + 3) & !3;
        }
    }
}

/// struct nlmsghdr.
const NLMSG_HDR: usize = 16;
/// struct nlmsghdr + struct ifinfomsg.
const IFINFO_END: usize = 32;
const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;

/// The IFLA_IFNAME of an RTM_NEWLINK message, read in place (no decode, no allocation).
fn raw_ifname(msg: &[u8]) -> Option<&[u8]> {
    let mut off = IFINFO_END;
    while off + 4 <= msg.len() {
        let len = usize::from(u16::from_ne_bytes([msg[off], msg[off + 1]]));
        let kind = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]) & 0x3fff;
        if len < 4 || off + len > msg.len() {
            return None;
        }
        if kind == IFLA_IFNAME {
            let name = &msg[off + 4..off + len];
            return Some(name.split(|b| *b == 0).next().unwrap_or(name));
        }
        off += (len + 3) & !3;
    }
    None
}

/// The name and carrier of one link message.
pub fn observe(link: &LinkMessage) -> Option<(String, PortObs)> {
    let mut name = None;
    let mut distributing = None;
    for attr in &link.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::PortData(InfoPortData::BondPort(port)) = info {
                        for p in port {
                            if let InfoBondPort::AdActorOperPortState(s) = p {
                                distributing = Some(s.contains(LacpState::DISTRIBUTING));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let flags = link.header.flags;
    // IFF_LOWER_UP is netif_carrier_ok() of a running device, without linkwatch's delay.
    let carrier = flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp);
    Some((
        name?,
        PortObs {
            carrier,
            distributing,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the kernel probe reports what it chose: the hook's name when it attached, else
    // the fallback's name with the reason the hook is missing (on this machine's kernel:
    // fexit does not load; in a build with AYA_BUILD_SKIP=1: no object). Prints the choice.
    #[test]
    fn choose_names_the_mechanism_and_why() {
        let (m, hook) = choose(Duration::from_millis(10));
        eprintln!("carrier mechanism: {} ({})", m.name, m.why);
        if hook.is_some() {
            assert_eq!(m.name, "ebpf-fexit-carrier+netlink-events+poll-10ms");
            assert!(m.why.contains("net_device.ifindex at byte"), "{}", m.why);
        } else {
            assert_eq!(m.name, "netlink-events+poll-10ms");
            let reason = m
                .why
                .strip_prefix("eBPF carrier hook unavailable: ")
                .unwrap_or_else(|| panic!("no reason given: {}", m.why));
            assert!(reason.len() > "; RTM_GETLINK".len() + 10, "{}", m.why);
        }
    }
}
