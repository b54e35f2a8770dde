//! The agent's [`Ownership`]: what one virtual router's transitions do to the data plane.
//!
//! Becoming master writes the slot's VIPs of that family as owned in the pinned map and
//! then sends the announcement burst; the map comes first so that a client that follows
//! the announcement finds the VIP owned (and the TC guard lets the announcement itself
//! out). Leaving master writes them not owned. No netlink call on this path: the VIP
//! addresses are configured on every node all the time.
//!
//! Resuming (a restarted agent, a reloaded router that was master) writes only the VIPs
//! that are not owned yet (a VIP the reload added) and announces only if there was one:
//! the VIPs that stayed owned did not move, so neither the map nor the clients hear of
//! them.

use std::net::IpAddr;

use tracing::{error, info};

use super::announce::Announcer;
use super::vmac::VirtualMac;
use crate::config::SlotName;
use crate::dataplane::{Maps, VipScope};
use crate::vrrp::Ownership;
use crate::vrrp::packet::Family;
use crate::vrrp::state::{AnnounceReason, Reason, State};

/// The VIPs of one (interface, slot, family) and where they live in the map.
pub struct SlotOwnership {
    pub iface: String,
    pub slot: SlotName,
    pub family: Family,
    pub vrid: u8,
    pub place: VipScope,
    pub vips: Vec<IpAddr>,
    /// This virtual router's own handle on the pinned maps: ownership writes update
    /// existing entries only (the agent created them all at startup), so handles on
    /// several threads do not race on allocation.
    pub maps: Maps,
    pub announcer: Announcer,
    /// The router's virtual MAC, flipped with the VIPs; `None`: the interface MAC.
    pub vmac: Option<VirtualMac>,
}

impl SlotOwnership {
    fn write(&mut self, owned: bool) -> usize {
        let vips = self.vips.clone();
        self.write_some(&vips, owned) + self.write_vmac(owned)
    }

    fn write_vmac(&mut self, owned: bool) -> usize {
        self.vmac
            .as_ref()
            .map_or(0, |v| v.own(&mut self.maps, owned))
    }

    fn write_some(&mut self, vips: &[IpAddr], owned: bool) -> usize {
        let mut failed = 0;
        for &vip in vips {
            if let Err(e) = self.maps.set_vip(self.place, vip, owned) {
                failed += 1;
                error!(iface = %self.iface, slot = %self.slot.as_str(), %vip, owned,
                    error = %crate::agent::chain(&e), "cannot write VIP ownership");
            }
        }
        failed
    }
}

impl Ownership for SlotOwnership {
    fn own(&mut self, from: State, reason: Reason, accept_mode: bool) {
        if reason == Reason::Resumed {
            return self.resume(accept_mode);
        }
        let failed = self.write(true);
        info!(
            iface = %self.iface, slot = %self.slot.as_str(), family = %self.family,
            vrid = self.vrid, old = %from, new = "master", %reason, accept_mode,
            vips = ?self.vips, failed, "VIPs owned"
        );
    }

    fn release(&mut self, from: State, to: State, reason: Reason) {
        let failed = self.write(false);
        self.announcer.cancel();
        info!(
            iface = %self.iface, slot = %self.slot.as_str(), family = %self.family,
            vrid = self.vrid, old = %from, new = %to, %reason,
            vips = ?self.vips, failed, "VIPs released"
        );
    }

    fn announce(&mut self, reason: AnnounceReason) {
        let path = self.announcer.announce();
        info!(
            iface = %self.iface, slot = %self.slot.as_str(), family = %self.family,
            vrid = self.vrid, ?reason, path, vips = ?self.vips,
            "VIPs announced"
        );
    }
}

impl SlotOwnership {
    /// The resume event: own what is not owned yet, announce only that.
    fn resume(&mut self, accept_mode: bool) {
        let place = self.place;
        let missing: Vec<IpAddr> = self
            .vips
            .iter()
            .copied()
            .filter(|&vip| {
                self.maps
                    .vips
                    .get(&crate::dataplane::vip_key(place, vip), 0)
                    .map_or(true, |state| state.owned == 0)
            })
            .collect();
        let failed = self.write_some(&missing, true) + self.write_vmac(true);
        info!(
            iface = %self.iface, slot = %self.slot.as_str(), family = %self.family,
            vrid = self.vrid, old = "initialize", new = "master", reason = %Reason::Resumed,
            accept_mode, vips = ?self.vips, newly_owned = ?missing, failed, "VIPs kept"
        );
        if !missing.is_empty() {
            self.announce(AnnounceReason::BecameMaster);
        }
    }
}
