//! The agent's [`Ownership`]: what one virtual router's transitions do to the data plane.
//!
//! Becoming master writes the slot's VIPs of that family as owned in the pinned map and
//! then sends the announcement burst; the map comes first so that a client that follows
//! the announcement finds the VIP owned (and the TC guard lets the announcement itself
//! out). Leaving master writes them not owned. No netlink call on this path: the VIP
//! addresses are configured on every node all the time.

use std::net::IpAddr;

use tracing::{error, info};

use super::announce::Announcer;
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
}

impl SlotOwnership {
    fn write(&mut self, owned: bool) -> usize {
        let mut failed = 0;
        for &vip in &self.vips {
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
        self.announcer.announce();
        info!(
            iface = %self.iface, slot = %self.slot.as_str(), family = %self.family,
            vrid = self.vrid, ?reason, path = "af_packet", vips = ?self.vips,
            "VIPs announced"
        );
    }
}
