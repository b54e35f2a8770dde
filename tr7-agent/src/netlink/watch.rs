//! An observation kept current from rtnetlink multicast events, per namespace.
//!
//! Dumping and then subscribing loses what changes in between. So each namespace's socket
//! joins the link, address (and, for diagnosis, neighbour) groups when it is created, and
//! the dump goes through that same socket: events that arrive during the dump wait in the
//! socket's queue and are applied after it, in order. Every RTM_NEW* carries the whole
//! object, so an event the dump already reflects changes nothing when replayed, and the last
//! word is the kernel's latest. Sysctls have no events; they stay as read at the start.
//!
//! Not handled: a socket overrun (ENOBUFS, the kernel dropped events) needs a new dump;
//! start a new [`Watch`]. A named namespace that does not exist at the start stays absent.

use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, MulticastGroup};

use super::Target;
use super::conn::{self, Events};
use super::observe::{
    self, ObserveError, Observed, ObservedNamespace, parse_address, parse_link, parse_neighbour,
};
use crate::netns;

/// The observation of the file's namespaces, updated from events.
pub struct Watch {
    namespaces: Vec<NsWatch>,
}

struct NsWatch {
    state: ObservedNamespace,
    /// `None` for a namespace that did not exist at the start.
    events: Option<Events>,
    /// Keeps the connection task (and so the subscription) alive.
    _handle: Option<Handle>,
}

impl Watch {
    /// Subscribes in each of the file's namespaces `names` (mapped by `target`), then dumps
    /// links and addresses (and neighbours with `neighbours`), then applies the events that
    /// arrived during the dump. Must run inside a tokio runtime with I/O enabled.
    pub async fn start(
        target: &Target,
        names: &[Option<String>],
        neighbours: bool,
    ) -> Result<Self, ObserveError> {
        if let Some(root) = &target.root
            && !netns::exists(root)
        {
            return Err(ObserveError::RootMissing { ns: root.clone() });
        }
        let mut groups = vec![
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ];
        if neighbours {
            groups.push(MulticastGroup::Neigh);
        }
        let mut namespaces = Vec::with_capacity(names.len());
        for name in names {
            let kernel_ns = target.resolve(name.as_deref());
            if let Some(k) = kernel_ns
                && !netns::exists(k)
            {
                namespaces.push(NsWatch {
                    state: ObservedNamespace {
                        name: name.clone(),
                        exists: false,
                        ..Default::default()
                    },
                    events: None,
                    _handle: None,
                });
                continue;
            }
            // Subscribed from here on: the socket joins the groups when it is made.
            let (handle, events) = conn::connect_multicast(kernel_ns, &groups)?;
            let label = super::ns_label(kernel_ns);
            let (links, addresses) = observe::dump(&handle, label).await?;
            let neighbours = if neighbours {
                observe::dump_neighbours(&handle, label).await?
            } else {
                Vec::new()
            };
            let mut ns = NsWatch {
                state: ObservedNamespace {
                    name: name.clone(),
                    exists: true,
                    links,
                    addresses,
                    neighbours,
                    ..Default::default()
                },
                events: Some(events),
                _handle: Some(handle),
            };
            ns.drain();
            namespaces.push(ns);
        }
        Ok(Self { namespaces })
    }

    /// Applies every event that has arrived, without waiting; returns how many there were.
    pub fn update(&mut self) -> usize {
        self.namespaces.iter_mut().map(NsWatch::drain).sum()
    }

    /// Waits at most `timeout` for an event in any namespace, then applies it and every
    /// other one that has arrived; returns how many were applied (0: none came).
    pub async fn wait(&mut self, timeout: Duration) -> usize {
        let arrived = {
            let nexts: Vec<_> = self
                .namespaces
                .iter_mut()
                .enumerate()
                .filter_map(|(i, n)| {
                    n.events
                        .as_mut()
                        .map(|e| Box::pin(async move { (i, e.next().await) }))
                })
                .collect();
            if nexts.is_empty() {
                return 0;
            }
            match tokio::time::timeout(timeout, futures_util::future::select_all(nexts)).await {
                Ok(((i, Some((msg, _))), _, _)) => Some((i, msg)),
                _ => None,
            }
        };
        let Some((i, msg)) = arrived else {
            return 0;
        };
        apply_message(&mut self.namespaces[i].state, &msg);
        1 + self.update()
    }

    /// The current observation (sysctls as read at the start: none).
    pub fn observed(&self) -> Observed {
        Observed {
            namespaces: self.namespaces.iter().map(|n| n.state.clone()).collect(),
        }
    }
}

impl NsWatch {
    fn drain(&mut self) -> usize {
        let Some(events) = self.events.as_mut() else {
            return 0;
        };
        let mut n = 0;
        // `Some(Some(_))`: an event is ready; `None`: none yet; `Some(None)`: closed.
        while let Some(Some((msg, _))) = events.next().now_or_never() {
            apply_message(&mut self.state, &msg);
            n += 1;
        }
        n
    }
}

fn apply_message(ns: &mut ObservedNamespace, msg: &NetlinkMessage<RouteNetlinkMessage>) {
    if let NetlinkPayload::InnerMessage(m) = &msg.payload {
        apply_event(ns, m);
    }
}

/// Applies one rtnetlink event to a namespace's observation; returns whether it was one
/// the observation keeps (links, addresses, neighbours). Pure, so tests feed it by hand.
pub fn apply_event(ns: &mut ObservedNamespace, msg: &RouteNetlinkMessage) -> bool {
    match msg {
        // AF_BRIDGE link messages describe bridge ports only partly (no kind, no flags of
        // the link itself); the AF_UNSPEC one of the same change carries everything.
        RouteNetlinkMessage::NewLink(m) if m.header.interface_family != AddressFamily::Bridge => {
            let link = parse_link(m);
            match ns.links.binary_search_by_key(&link.ifindex, |l| l.ifindex) {
                Ok(i) => ns.links[i] = link,
                Err(i) => ns.links.insert(i, link),
            }
            true
        }
        RouteNetlinkMessage::DelLink(m) if m.header.interface_family != AddressFamily::Bridge => {
            let gone = m.header.index;
            ns.links.retain(|l| l.ifindex != gone);
            ns.addresses.retain(|a| a.ifindex != gone);
            ns.neighbours.retain(|n| n.ifindex != gone);
            true
        }
        RouteNetlinkMessage::NewAddress(m) => {
            let Some(a) = parse_address(m) else {
                return false;
            };
            match ns
                .addresses
                .iter_mut()
                .find(|o| o.ifindex == a.ifindex && o.cidr == a.cidr)
            {
                Some(o) => *o = a,
                None => ns.addresses.push(a),
            }
            true
        }
        RouteNetlinkMessage::DelAddress(m) => {
            let Some(a) = parse_address(m) else {
                return false;
            };
            ns.addresses
                .retain(|o| !(o.ifindex == a.ifindex && o.cidr == a.cidr));
            true
        }
        RouteNetlinkMessage::NewNeighbour(m) => {
            let Some(n) = parse_neighbour(m) else {
                return false;
            };
            match ns
                .neighbours
                .iter_mut()
                .find(|o| o.ifindex == n.ifindex && o.address == n.address)
            {
                Some(o) => *o = n,
                None => ns.neighbours.push(n),
            }
            true
        }
        RouteNetlinkMessage::DelNeighbour(m) => {
            let Some(n) = parse_neighbour(m) else {
                return false;
            };
            ns.neighbours
                .retain(|o| !(o.ifindex == n.ifindex && o.address == n.address));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;
    use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
    use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

    fn link_msg(index: u32, name: &str, mtu: u32) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes = vec![
            LinkAttribute::IfName(name.to_owned()),
            LinkAttribute::Mtu(mtu),
        ];
        m
    }

    fn addr_msg(index: u32, cidr: &str) -> AddressMessage {
        let c = Cidr::parse(cidr).expect("cidr");
        let mut m = AddressMessage::default();
        m.header.index = index;
        m.header.prefix_len = c.prefix;
        m.header.family = if c.addr.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.attributes = vec![AddressAttribute::Local(c.addr)];
        m
    }

    // Proves the events a dump is followed by (here: queued during it) are applied in order
    // over it: a new link, an MTU change of a dumped link, an address added then removed,
    // another added, and a link deleted with its addresses; a replayed event the dump
    // already has changes nothing.
    #[test]
    fn events_after_the_dump_are_applied_in_order() {
        let mut ns = ObservedNamespace {
            exists: true,
            links: vec![
                parse_link(&link_msg(1, "lo", 65536)),
                parse_link(&link_msg(3, "a", 1500)),
            ],
            addresses: vec![parse_address(&addr_msg(3, "192.0.2.1/24")).expect("addr")],
            ..Default::default()
        };
        let before = ns.clone();
        assert!(apply_event(
            &mut ns,
            &RouteNetlinkMessage::NewLink(link_msg(3, "a", 1500))
        ));
        assert_eq!(ns, before, "replaying what the dump has changes nothing");
        let events = [
            RouteNetlinkMessage::NewLink(link_msg(2, "b", 1500)),
            RouteNetlinkMessage::NewLink(link_msg(3, "a", 9000)),
            RouteNetlinkMessage::NewAddress(addr_msg(2, "2001:db8::1/64")),
            RouteNetlinkMessage::NewAddress(addr_msg(2, "198.51.100.1/24")),
            RouteNetlinkMessage::DelAddress(addr_msg(2, "2001:db8::1/64")),
            RouteNetlinkMessage::DelLink(link_msg(3, "a", 9000)),
        ];
        for e in &events {
            assert!(apply_event(&mut ns, e));
        }
        let names: Vec<(u32, &str, u32)> = ns
            .links
            .iter()
            .map(|l| (l.ifindex, l.name.as_str(), l.mtu))
            .collect();
        assert_eq!(names, [(1, "lo", 65536), (2, "b", 1500)]);
        let addrs: Vec<String> = ns.addresses.iter().map(|a| a.cidr.to_string()).collect();
        assert_eq!(addrs, ["198.51.100.1/24"]);
    }

    // Proves an AF_BRIDGE link message (a bridge port's partial view) does not replace the
    // link.
    #[test]
    fn bridge_family_link_messages_are_ignored() {
        let mut ns = ObservedNamespace {
            links: vec![parse_link(&link_msg(2, "p", 9000))],
            ..Default::default()
        };
        let mut m = link_msg(2, "p", 1500);
        m.header.interface_family = AddressFamily::Bridge;
        assert!(!apply_event(&mut ns, &RouteNetlinkMessage::NewLink(m)));
        assert_eq!(ns.links[0].mtu, 9000);
    }
}
