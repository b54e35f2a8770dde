//! A virtual router's virtual MAC (`virtual_mac: true`, RFC 9568 7.3) on the node: what the
//! agent sets up when the router starts, flips on its transitions, and removes when it
//! stops. The data plane does the rest (tr7-ebpf's `vmac` module; docs/agent.md,
//! "Virtual MAC").
//!
//! At start, before the router runs:
//! - the virtual MAC goes into the interface's unicast filter (RTM_NEWNEIGH, AF_BRIDGE,
//!   NTF_SELF: what `bridge fdb add MAC dev IF self permanent` does), so a NIC that filters
//!   by destination hands frames for it to XDP; a device without a filter (a veth) goes
//!   promiscuous instead;
//! - the router's VIPs are marked to speak with the virtual MAC;
//! - each attachment of the router's scope gets a row for the virtual MAC, not owned
//!   (a resumed router keeps the ownership the row already has).
//!
//! On each transition [`super::ownership::SlotOwnership`] flips the rows with the VIPs.
//! While the router runs, the main loop keeps the rows on the interface's current MAC
//! ([`VirtualMac::follow_interface_mac`]).
//! When the router stops (SIGTERM, or a reload that removes or replaces it) the rows are
//! cleared, the VIPs go back to the interface MAC and the filter entry is removed. A
//! restart that keeps the VIPs (SIGQUIT, kill -9) leaves everything in place for the next
//! agent to adopt.

use std::net::IpAddr;

use nix::errno::Errno;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use tracing::{info, warn};

use super::run::AgentError;
use crate::dataplane::{Maps, VipScope};
use crate::netns;
use crate::vrrp::packet::Family;

/// One router's virtual MAC and where it was set up.
#[derive(Clone, Debug)]
pub struct VirtualMac {
    pub netns: Option<String>,
    pub iface: String,
    pub ifindex: u32,
    pub family: u8,
    pub vrid: u8,
    pub mac: [u8; 6],
    /// The interface's own MAC, which frames to the virtual MAC are given.
    pub iface_mac: [u8; 6],
    /// The attachment rows (counter slots) of the router's scope.
    pub rows: Vec<u32>,
    pub place: VipScope,
    pub vips: Vec<IpAddr>,
}

fn family_code(family: Family) -> u8 {
    match family {
        Family::V4 => tr7_common::FAMILY_IPV4,
        Family::V6 => tr7_common::FAMILY_IPV6,
    }
}

fn err(iface: &str, step: &'static str) -> impl FnOnce(std::io::Error) -> AgentError + use<> {
    let iface = iface.to_owned();
    move |source| AgentError::VirtualMac {
        iface,
        step,
        source,
    }
}

impl VirtualMac {
    /// Sets up the virtual MAC of (`family`, `vrid`) for `vips` on `iface`.
    pub fn setup(
        maps: &mut Maps,
        netns: Option<&str>,
        iface: &str,
        family: Family,
        vrid: u8,
        place: VipScope,
        vips: &[IpAddr],
    ) -> Result<Self, AgentError> {
        let fam = family_code(family);
        let (ifindex, iface_mac) = link_of(netns, iface)?;
        let rows: Vec<u32> = maps
            .attachments
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, a)| a.scope == place.scope)
            .map(|(_, a)| a.slot)
            .collect();
        if rows.is_empty() {
            return Err(err(iface, "find the data plane's attachment")(
                std::io::Error::other(format!(
                    "no attachment has scope {}; the data plane is not attached",
                    place.scope
                )),
            ));
        }
        let vm = Self {
            netns: netns.map(str::to_owned),
            iface: iface.to_owned(),
            ifindex,
            family: fam,
            vrid,
            mac: tr7_common::vmac(fam, vrid),
            iface_mac,
            rows,
            place,
            vips: vips.to_vec(),
        };
        vm.filter(true)
            .map_err(err(iface, "add the virtual MAC to the unicast filter"))?;
        let dp = |e| AgentError::Dataplane {
            iface: iface.to_owned(),
            source: Box::new(e),
        };
        for &row in &vm.rows {
            maps.set_vmac(row, fam, vrid, iface_mac, None).map_err(dp)?;
        }
        for &vip in vips {
            maps.set_vip_virtual_mac(place, vip, Some(vrid))
                .map_err(dp)?;
        }
        info!(%iface, vrid, mac = %fmt_mac(&vm.mac), iface_mac = %fmt_mac(&iface_mac),
            attachments = ?vm.rows, vips = ?vips, "virtual MAC set up");
        Ok(vm)
    }

    /// Writes the rows owned or not; returns how many writes failed.
    pub fn own(&self, maps: &mut Maps, owned: bool) -> usize {
        let mut failed = 0;
        for &row in &self.rows {
            if let Err(e) = maps.own_vmac(row, self.family, self.vrid, owned) {
                failed += 1;
                warn!(iface = %self.iface, vrid = self.vrid, row, owned,
                    error = %super::chain(&e), "cannot write the virtual MAC's ownership");
            }
        }
        failed
    }

    /// Gives the rows the interface's MAC if it changed since they were written (a bond
    /// with `fail_over_mac` changes it on failover; an operator may `ip link set address`):
    /// frames to the virtual MAC must get the MAC the stack now takes as its own, or it
    /// drops them. The ownership of each row stays. `link` is the interface's MAC now.
    pub fn follow_interface_mac(
        &mut self,
        maps: &mut Maps,
        link: [u8; 6],
    ) -> Result<(), AgentError> {
        if link == self.iface_mac {
            return Ok(());
        }
        for &row in &self.rows {
            maps.set_vmac(row, self.family, self.vrid, link, None)
                .map_err(|e| AgentError::Dataplane {
                    iface: self.iface.clone(),
                    source: Box::new(e),
                })?;
        }
        info!(iface = %self.iface, vrid = self.vrid, mac = %fmt_mac(&self.mac),
            was = %fmt_mac(&self.iface_mac), now = %fmt_mac(&link),
            "the interface's MAC changed: frames to the virtual MAC now get the new one");
        self.iface_mac = link;
        Ok(())
    }

    /// The interface's MAC now, as [`Self::follow_interface_mac`] takes it.
    pub fn interface_mac(&self) -> Result<[u8; 6], AgentError> {
        link_of(self.netns.as_deref(), &self.iface).map(|(_, mac)| mac)
    }

    /// Undoes [`Self::setup`]; failures are logged, not fatal (the router is gone).
    pub fn remove(&self, maps: &mut Maps) {
        for &row in &self.rows {
            if let Err(e) = maps.clear_vmac(row, self.family, self.vrid) {
                warn!(iface = %self.iface, vrid = self.vrid, row, error = %super::chain(&e),
                    "cannot clear the virtual MAC row");
            }
        }
        for &vip in &self.vips {
            // A VIP the reload removed is gone from the map already: nothing to undo.
            let _ = maps.set_vip_virtual_mac(self.place, vip, None);
        }
        if let Err(error) = self.filter(false) {
            warn!(iface = %self.iface, %error,
                "cannot remove the virtual MAC from the unicast filter");
        }
        info!(iface = %self.iface, vrid = self.vrid, mac = %fmt_mac(&self.mac),
            "virtual MAC removed");
    }

    /// Adds the MAC to the interface's unicast filter, or removes it. Adding one that is
    /// there (a previous agent's) and removing one that is not both succeed.
    fn filter(&self, add: bool) -> std::io::Result<()> {
        crate::netlink::conn::on_own_thread(|| {
            filter_async(self.netns.as_deref(), self.ifindex, self.mac, add)
        })
    }
}

async fn filter_async(
    netns: Option<&str>,
    ifindex: u32,
    mac: [u8; 6],
    add: bool,
) -> std::io::Result<()> {
    let (conn, handle, _) =
        netns::within(netns, rtnetlink::new_connection).map_err(std::io::Error::other)??;
    tokio::spawn(conn);
    let result = if add {
        handle
            .neighbours()
            .add_bridge(ifindex, &mac)
            .flags(NeighbourFlags::Own)
            .execute()
            .await
    } else {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = ifindex;
        msg.header.state = NeighbourState::Permanent;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        handle.neighbours().del(msg).execute().await
    };
    match result {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(e))
            if (add && e.raw_code() == -(Errno::EEXIST as i32))
                || (!add && e.raw_code() == -(Errno::ENOENT as i32)) =>
        {
            Ok(())
        }
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// The ifindex and MAC of `iface` in `netns`.
fn link_of(netns: Option<&str>, iface: &str) -> Result<(u32, [u8; 6]), AgentError> {
    let found = netns::within(netns, || {
        nix::ifaddrs::getifaddrs().map(|addrs| {
            addrs
                .filter(|a| a.interface_name == iface)
                .find_map(|a| a.address.as_ref()?.as_link_addr().copied())
        })
    })
    .map_err(|e| err(iface, "enter its namespace")(std::io::Error::other(e)))?
    .map_err(|e| err(iface, "list its addresses")(e.into()))?;
    let link = found.ok_or_else(|| {
        err(iface, "read its MAC")(std::io::Error::other(
            "no such interface, or no link-layer address",
        ))
    })?;
    match link.addr() {
        Some(mac) if link.halen() == 6 => Ok((link.ifindex() as u32, mac)),
        _ => Err(err(iface, "read its MAC")(std::io::Error::other(
            "not an Ethernet interface: a virtual MAC needs a 6-byte MAC",
        ))),
    }
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}
