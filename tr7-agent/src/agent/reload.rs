//! SIGHUP: re-read the cluster file and apply only the differences.
//!
//! First everything that can refuse the file, with no change made: reading and validating
//! it, this node's view, every IPv4 router's source address, a look at the kernel (observe
//! and plan, as the apply will). A refusal is logged with the reason and the agent runs on
//! exactly as before. Then the differences, in an order that never lets a node answer for
//! a VIP it does not own:
//! 1. routers gone from the file are stopped as on SIGTERM (priority 0 if master, VIPs
//!    released); routers that changed (other than their priority) are ended without
//!    Shutdown, so their VIPs stay owned while they are replaced;
//! 2. priority changes are made in place (a master advertises the new one at once);
//! 3. VIP addresses gone from the file are removed from their interfaces (TR7 put them
//!    there), then their map entries; new VIPs get a NOT owned map entry before the
//!    topology adds their addresses (as at startup);
//! 4. the data plane is attached to new VIP interfaces, the topology applied;
//! 5. new routers start from Startup; replaced routers that were master resume as master
//!    (advert at once, announcement only for VIPs they did not own), others from Startup;
//! 6. the fence is recomputed and the heartbeat restarted if it changed.
//!
//! Routers whose spec did not change are not touched at all: no transition, no
//! announcement, no map write.

use std::collections::BTreeMap;
use std::time::Instant;

use tracing::{error, info};

use super::heartbeat::{self, Heartbeat};
use super::routers::{self, Change, RouterKey, RouterSpec};
use super::run::{AgentError, apply_topology, dp_err};
use crate::config::{Cidr, Cluster, NodeView};
use crate::dataplane::Maps;
use crate::netlink;
use crate::netlink::plan::{Action, Plan, Step};
use crate::vrrp::State;

/// A file that passed every check, ready to apply.
struct Prepared {
    cluster: Cluster,
    view: NodeView,
    specs: BTreeMap<RouterKey, RouterSpec>,
}

impl super::run::Agent {
    /// Handles SIGHUP. Never fails: a refused file or a failed step is logged.
    pub(super) fn reload(&mut self, runtime: &tokio::runtime::Runtime) {
        let started = Instant::now();
        let file = self.args.config.display().to_string();
        info!(%file, "SIGHUP: reloading the cluster file");
        let new = match self.prepare(runtime) {
            Ok(p) => p,
            Err(e) => {
                error!(%file, error = %super::chain(&e),
                    "reload refused, nothing changed; fix the file and send SIGHUP again");
                return;
            }
        };
        let old = self.routers.specs();
        let changes = routers::diff(&old, &new.specs);
        let unchanged = new.specs.len()
            - changes
                .iter()
                .filter(|c| !matches!(c, Change::Remove(_)))
                .count();
        for change in &changes {
            info!(%change, "reload: router change");
        }
        let restarted = self.apply(runtime, &old, new, &changes);
        let count = |f: fn(&Change) -> bool| changes.iter().filter(|c| f(c)).count();
        info!(
            added = count(|c| matches!(c, Change::Add(_))),
            removed = count(|c| matches!(c, Change::Remove(_))),
            restarted,
            priority_changed = count(|c| matches!(c, Change::Priority { .. })),
            unchanged,
            routers = self.routers.len(),
            fence_ms = self.fence.as_secs_f64() * 1000.0,
            reload_ms = started.elapsed().as_secs_f64() * 1000.0,
            "reload done"
        );
    }

    fn prepare(&self, runtime: &tokio::runtime::Runtime) -> Result<Prepared, AgentError> {
        let cluster = crate::config::load(&self.args.config)?;
        let view = cluster.node_view(&self.node)?;
        let specs = routers::specs(&view, &self.target);
        if let Some(e) = routers::missing_source(&specs) {
            return Err(e);
        }
        // The kernel can be read and the topology planned; conflicts are only reported
        // (as at startup), and the plan is made again after the VIPs are removed.
        let want = netlink::desired(&view);
        runtime.block_on(netlink::observe(&self.target, &want.namespaces()))?;
        Ok(Prepared {
            cluster,
            view,
            specs,
        })
    }

    /// Carries out `changes`; returns how many routers were restarted.
    fn apply(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        old: &BTreeMap<RouterKey, RouterSpec>,
        new: Prepared,
        changes: &[Change],
    ) -> usize {
        // 1. and 2.
        let mut replaced: Vec<(RouterKey, bool)> = Vec::new();
        for change in changes {
            match change {
                Change::Remove(key) => {
                    self.routers.stop(key);
                }
                Change::Restart { key, .. } => {
                    if let Some((old_spec, state, vmac)) = self.routers.abandon(key) {
                        // The replacement adopts a virtual MAC it keeps (same VRID); one it
                        // drops or changes is removed now, before it marks its VIPs.
                        let kept = new.specs.get(key).is_some_and(|n| {
                            n.virtual_mac && n.vrid == old_spec.vrid && n.place == old_spec.place
                        });
                        if let (Some(vmac), false) = (vmac, kept) {
                            vmac.remove(&mut self.maps);
                        }
                        replaced.push((key.clone(), state == State::Master));
                    }
                }
                Change::Priority { key, new, .. } => self.routers.set_priority(key, *new),
                Change::Add(_) => {}
            }
        }
        // 3. Addresses, then map entries.
        let gone_addrs: Vec<_> = routers::vip_addresses(old)
            .difference(&routers::vip_addresses(&new.specs))
            .cloned()
            .collect();
        if !gone_addrs.is_empty() {
            let plan = Plan {
                actions: gone_addrs
                    .iter()
                    .map(|(link, addr)| Action {
                        step: Step::RemoveAddress {
                            link: link.clone(),
                            address: Cidr {
                                addr: *addr,
                                prefix: Cidr::max_prefix(*addr),
                            },
                        },
                        reason: format!("VIP {addr} is no longer in the file"),
                    })
                    .collect(),
                conflicts: Vec::new(),
            };
            match runtime.block_on(netlink::apply(&plan, &self.target)) {
                Ok(report) => {
                    for action in &report.applied {
                        info!(%action, "topology changed");
                    }
                }
                Err(e) => error!(error = %super::chain(&e), "reload: cannot remove VIP addresses"),
            }
        }
        let old_entries = routers::map_entries(old);
        let new_entries = routers::map_entries(&new.specs);
        for &(place, vip) in new_entries.difference(&old_entries) {
            if let Err(e) = self.maps.set_vip(place, vip, false) {
                error!(%vip, error = %super::chain(&e), "reload: cannot add the VIP to the map");
            }
        }
        for &(place, vip) in old_entries.difference(&new_entries) {
            match self.maps.remove_vip(place, vip) {
                Ok(()) => info!(%vip, scope = place.scope, "VIP removed from the map"),
                Err(e) => {
                    error!(%vip, error = %super::chain(&e), "reload: cannot remove the VIP from the map");
                }
            }
        }
        // 4.
        self.catalog = super::run::catalog(&new.view, &self.target);
        let vip_ifaces = routers::vip_interfaces(&new.view, &self.target);
        let topology = self
            .attach(&vip_ifaces, false)
            .and_then(|()| apply_topology(runtime, &new.view, &self.target))
            .and_then(|()| self.attach(&vip_ifaces, true));
        if let Err(e) = topology {
            error!(error = %super::chain(&e), "reload: topology or data plane not fully applied");
        }
        // 5.
        let mut new_specs = new.specs;
        let maps = &mut self.maps;
        let mut start = |key: &RouterKey, resume: bool, routers: &mut routers::Routers| {
            let Some(spec) = new_specs.remove(key) else {
                return;
            };
            let vips = (spec.place, spec.vips.clone());
            if let Err(e) = routers.start(key.clone(), spec, resume) {
                error!(router = %key, error = %super::chain(&e),
                    "reload: router not started; its VIPs are released");
                // A replaced master left its VIPs owned: with no router to defend them,
                // this node must not keep answering for them.
                for vip in vips.1 {
                    if let Err(e) = maps.set_vip(vips.0, vip, false) {
                        error!(%vip, error = %super::chain(&e), "cannot release VIP");
                    }
                }
            }
        };
        for (key, was_master) in &replaced {
            start(key, *was_master, &mut self.routers);
        }
        for change in changes {
            if let Change::Add(key) = change {
                start(key, false, &mut self.routers);
            }
        }
        // The started routers join their signals. The monitor tracks what the file said at
        // startup: a reload that changes the tracked signals says so and keeps them.
        for key in replaced
            .iter()
            .map(|(k, _)| k)
            .chain(changes.iter().filter_map(|c| match c {
                Change::Add(k) => Some(k),
                _ => None,
            }))
        {
            if let Err(e) = self.bind_signals(key) {
                error!(router = %key, error = %super::chain(&e), "reload: router not bound to its signals");
            }
        }
        let plan = super::run::signal_plan(&new.view, &self.target, self.args.carrier_poll_ms);
        if super::run::plan_fingerprint(&plan) != self.signal_plan {
            tracing::warn!(
                "reload: the tracked links or gateway checks changed; they take effect at the next start of the agent (SIGQUIT, then start it: no VIP moves)"
            );
        }
        // 6.
        let fence = heartbeat::fence(&new.cluster, &self.node);
        if fence != self.fence {
            drop(self.heartbeat.take());
            match Maps::open(&self.args.pin_dir).and_then(|maps| Heartbeat::start(maps, fence)) {
                Ok(h) => {
                    info!(
                        old_ms = self.fence.as_secs_f64() * 1000.0,
                        new_ms = fence.as_secs_f64() * 1000.0,
                        "fence changed"
                    );
                    self.heartbeat = Some(h);
                    self.fence = fence;
                }
                Err(e) => {
                    // The fence will withdraw every VIP: the safe outcome, loudly.
                    let e = dp_err("(heartbeat)")(e);
                    error!(error = %super::chain(&e), "reload: cannot restart the heartbeat");
                }
            }
        }
        replaced.len()
    }
}
