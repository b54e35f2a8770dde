//! Executes a plan through rtnetlink, one action at a time, in the plan's order.
//!
//! "Already so" is success (a link of the right kind already there, an address already
//! present or already gone), so a plan made from a slightly stale observation still
//! converges. The first real failure stops the run with the action, the kernel's answer and
//! the list of what had been applied.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::Path;

use futures_util::{StreamExt as _, TryStreamExt as _};
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags, AddressHeaderFlags, CacheInfo},
    link::{
        BondLacpRate, BondMode, BondXmitHashPolicy, BridgeStpState, InfoData, InfoVeth,
        LinkMessage, VlanProtocol as KernelVlanProtocol,
    },
};
use rtnetlink::{AddressAddRequest, Handle, LinkBond, LinkBridge, LinkUnspec, LinkVeth, LinkVlan};
use serde::Serialize;

use super::desired::{BondSpec, DesiredKind};
use super::observe::parse_link;
use super::plan::{Action, LACP_MIIMON_MS, Plan, Step, millis};
use super::{Target, conn};
use crate::config::{HashPolicy, IfaceRef, LacpRate, VlanProtocol};
use crate::netns::{self, NETNS_RUN_DIR};

/// What a successful run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Every action, in order (all of the plan's).
    pub applied: Vec<Action>,
}

/// The first action that failed, and what had been applied before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("action {number} of {total} failed: {failed}: {kernel} ({} applied before it)", applied.len())]
pub struct ApplyError {
    /// 1-based position of the failed action in the plan.
    pub number: usize,
    /// Number of actions in the plan.
    pub total: usize,
    /// The action that failed.
    pub failed: Action,
    /// The kernel's answer (or why the request could not be made).
    pub kernel: String,
    /// The actions applied before it, in order.
    pub applied: Vec<Action>,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            return writeln!(f, "nothing to do");
        }
        writeln!(f, "applied {} actions:", self.applied.len())?;
        for (n, a) in self.applied.iter().enumerate() {
            writeln!(f, "  {:>3}. {}", n + 1, a.step)?;
        }
        Ok(())
    }
}

/// Address additions in flight at once. One by one, each waits for its answer before the
/// next is sent, and the last phase of a large plan is thousands of them.
const ADDRESS_WINDOW: usize = 64;

/// Executes `plan` in the namespaces `target` maps the file's namespaces to. Must run inside
/// a tokio runtime with I/O enabled.
///
/// Consecutive address additions (the plan's last phase) are sent up to [`ADDRESS_WINDOW`]
/// at a time and their answers read in order; if one fails, the error names the first that
/// failed, and `applied` also lists the additions after it that the kernel accepted.
pub async fn apply(plan: &Plan, target: &Target) -> Result<ApplyReport, ApplyError> {
    let mut exec = Executor {
        target,
        handles: HashMap::new(),
        indexes: HashMap::new(),
    };
    let total = plan.actions.len();
    let mut applied = Vec::with_capacity(total);
    let mut n = 0;
    while n < total {
        let action = &plan.actions[n];
        tracing::debug!(step = %action.step, "applying");
        if matches!(action.step, Step::AddAddress { .. }) {
            let end = n + plan.actions[n..]
                .iter()
                .take_while(|a| matches!(a.step, Step::AddAddress { .. }))
                .count();
            if let Err((k, kernel)) = exec
                .add_addresses(&plan.actions[n..end], n, &mut applied)
                .await
            {
                return Err(ApplyError {
                    number: k + 1,
                    total,
                    failed: plan.actions[k].clone(),
                    kernel,
                    applied,
                });
            }
            n = end;
            continue;
        }
        if let Err(kernel) = exec.run(&action.step).await {
            return Err(ApplyError {
                number: n + 1,
                total,
                failed: action.clone(),
                kernel,
                applied,
            });
        }
        applied.push(action.clone());
        n += 1;
    }
    Ok(ApplyReport { applied })
}

struct Executor<'a> {
    target: &'a Target,
    /// One connection per kernel namespace, opened when first needed (a namespace may be
    /// created by an earlier action of the same plan).
    handles: HashMap<Option<String>, Handle>,
    /// ifindex by (kernel namespace, name), filled by one link dump per namespace and
    /// refilled on a miss: asking the kernel by name for every action made a 1,000-link
    /// apply pay one extra round trip per action.
    indexes: HashMap<(Option<String>, String), u32>,
}

/// The kernel's errno in a netlink error, if that is what `e` is.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn kernel_text(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
        other => other.to_string(),
    }
}

const EEXIST: i32 = 17;
const EADDRNOTAVAIL: i32 = 99;

impl Executor<'_> {
    fn handle(&mut self, ns: Option<&str>) -> Result<Handle, String> {
        let kernel_ns = self.target.resolve(ns).map(str::to_owned);
        if let Some(h) = self.handles.get(&kernel_ns) {
            return Ok(h.clone());
        }
        let h = conn::connect(kernel_ns.as_deref()).map_err(|e| e.to_string())?;
        self.handles.insert(kernel_ns, h.clone());
        Ok(h)
    }

    /// An open descriptor of the file's namespace `ns`, for IFLA_NET_NS_FD.
    fn ns_file(&self, ns: Option<&str>) -> Result<File, String> {
        let path = match self.target.resolve(ns) {
            Some(name) => Path::new(NETNS_RUN_DIR).join(name),
            // The host: this process's namespace as it was at start.
            None => Path::new("/proc/self/ns/net").to_owned(),
        };
        File::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))
    }

    async fn find(&mut self, id: &IfaceRef) -> Result<Option<LinkMessage>, String> {
        let h = self.handle(id.namespace.as_deref())?;
        let found = h
            .link()
            .get()
            .match_name(id.name.clone())
            .execute()
            .try_next()
            .await;
        match found {
            Ok(m) => Ok(m),
            // ENODEV: no link of that name.
            Err(e) if errno(&e) == Some(19) => Ok(None),
            Err(e) => Err(kernel_text(&e)),
        }
    }

    async fn index(&mut self, id: &IfaceRef) -> Result<u32, String> {
        let key = (
            self.target
                .resolve(id.namespace.as_deref())
                .map(str::to_owned),
            id.name.clone(),
        );
        if let Some(i) = self.indexes.get(&key) {
            return Ok(*i);
        }
        // A miss: the link was created since the last dump (or never was). One dump refills
        // every name of the namespace.
        let h = self.handle(id.namespace.as_deref())?;
        let links: Vec<LinkMessage> = h
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| kernel_text(&e))?;
        self.indexes.retain(|(ns, _), _| *ns != key.0);
        for m in &links {
            let l = parse_link(m);
            self.indexes.insert((key.0.clone(), l.name), l.ifindex);
        }
        self.indexes
            .get(&key)
            .copied()
            .ok_or_else(|| format!("{id} does not exist"))
    }

    /// Forgets the cached ifindex of `name` in both namespaces of a move.
    fn forget(&mut self, id: &IfaceRef, to: &str) {
        for ns in [id.namespace.as_deref(), Some(to)] {
            let kernel_ns = self.target.resolve(ns).map(str::to_owned);
            self.indexes.remove(&(kernel_ns, id.name.clone()));
        }
    }

    async fn set(&mut self, id: &IfaceRef, msg: LinkMessage) -> Result<(), String> {
        let h = self.handle(id.namespace.as_deref())?;
        h.link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| kernel_text(&e))
    }

    async fn run(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::CreateNamespace { namespace } => {
                let name = self.target.resolve(Some(namespace)).unwrap_or(namespace);
                netns::create(name).map_err(|e| e.to_string())
            }
            Step::CreateLink {
                link,
                kind,
                mtu,
                mac,
                peer,
            } => self.create(link, kind, *mtu, *mac, peer.as_ref()).await,
            Step::MoveLink { link, to } => {
                self.forget(link, to);
                let target_id = IfaceRef {
                    namespace: Some(to.clone()),
                    name: link.name.clone(),
                };
                let Some(found) = self.find(link).await? else {
                    // Already moved.
                    return match self.find(&target_id).await? {
                        Some(_) => Ok(()),
                        None => Err(format!("{link} does not exist")),
                    };
                };
                let fd = self.ns_file(Some(to))?;
                let msg = LinkUnspec::new_with_index(found.header.index)
                    .setns_by_fd(fd.as_raw_fd())
                    .build();
                self.set(link, msg).await
            }
            Step::SetMtu { link, to, .. } => {
                let i = self.index(link).await?;
                self.set(link, LinkUnspec::new_with_index(i).mtu(*to).build())
                    .await
            }
            Step::SetMac { link, to, .. } => {
                let i = self.index(link).await?;
                self.set(
                    link,
                    LinkUnspec::new_with_index(i).address(to.0.to_vec()).build(),
                )
                .await
            }
            Step::SetStp { link, stp } => {
                let i = self.index(link).await?;
                let msg = LinkBridge::new(&link.name)
                    .index(i)
                    .stp_state(stp_state(*stp))
                    .build();
                let h = self.handle(link.namespace.as_deref())?;
                h.link()
                    .change(msg)
                    .execute()
                    .await
                    .map_err(|e| kernel_text(&e))
            }
            Step::SetController { link, to, .. } => {
                let i = self.index(link).await?;
                let b = LinkUnspec::new_with_index(i);
                let msg = match to {
                    Some(c) => {
                        let ci = self
                            .index(&IfaceRef {
                                namespace: link.namespace.clone(),
                                name: c.clone(),
                            })
                            .await?;
                        b.controller(ci).build()
                    }
                    None => b.nocontroller().build(),
                };
                self.set(link, msg).await
            }
            Step::SetBond { link, change } => {
                let i = self.index(link).await?;
                let mut b = LinkBond::new(&link.name).index(i);
                if let Some(m) = change.miimon_ms {
                    b = b.miimon(m);
                }
                if let Some(p) = &change.primary {
                    // ifindex 0 clears the primary.
                    let pi = match p {
                        Some(name) => {
                            self.index(&IfaceRef {
                                namespace: link.namespace.clone(),
                                name: name.clone(),
                            })
                            .await?
                        }
                        None => 0,
                    };
                    b = b.primary(pi);
                }
                if let Some(r) = change.lacp_rate {
                    b = b.ad_lacp_rate(kernel_lacp_rate(r));
                }
                if let Some(h) = change.transmit_hash_policy {
                    b = b.xmit_hash_policy(hash_policy(h));
                }
                if let Some(m) = change.min_links {
                    b = b.min_links(m);
                }
                let h = self.handle(link.namespace.as_deref())?;
                h.link()
                    .change(b.build())
                    .execute()
                    .await
                    .map_err(|e| kernel_text(&e))
            }
            Step::SetDown { link } => {
                let i = self.index(link).await?;
                self.set(link, LinkUnspec::new_with_index(i).down().build())
                    .await
            }
            Step::SetUp { link } => {
                let i = self.index(link).await?;
                self.set(link, LinkUnspec::new_with_index(i).up().build())
                    .await
            }
            Step::AddAddress { .. } => {
                address_outcome(self.address_request(step).await?.execute().await)
            }
            Step::RemoveAddress { link, address } => {
                let i = self.index(link).await?;
                let h = self.handle(link.namespace.as_deref())?;
                let msgs: Vec<_> = h
                    .address()
                    .get()
                    .set_link_index_filter(i)
                    .execute()
                    .try_collect()
                    .await
                    .map_err(|e| kernel_text(&e))?;
                let Some(msg) = msgs
                    .into_iter()
                    .find(|m| super::observe::parse_address(m).is_some_and(|a| a.cidr == *address))
                else {
                    return Ok(()); // already gone
                };
                match h.address().del(msg).execute().await {
                    Ok(()) => Ok(()),
                    Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
                    Err(e) => Err(kernel_text(&e)),
                }
            }
        }
    }

    /// The request that adds the address of an `AddAddress` step (not sent).
    async fn address_request(&mut self, step: &Step) -> Result<AddressAddRequest, String> {
        let Step::AddAddress {
            link,
            address,
            nodad,
        } = step
        else {
            return Err(format!("not an address addition: {step}"));
        };
        let i = self.index(link).await?;
        let h = self.handle(link.namespace.as_deref())?;
        let mut req = h.address().add(i, address.addr, address.prefix);
        if *nodad {
            let m = req.message_mut();
            m.header.flags |= AddressHeaderFlags::Nodad;
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            if address.addr.is_ipv6() {
                // A VIP is a /128, and Linux caps source address selection's
                // longest-match rule at each candidate's prefix length, so a /128
                // outscores the interface's /64 and the node would send from the
                // VIP (replies then go to whichever node owns it). Deprecated
                // (preferred lifetime 0, valid forever), it still receives and
                // answers, but is never picked as a source (RFC 6724 rule 3).
                let mut lifetimes = CacheInfo::default();
                lifetimes.ifa_preferred = 0;
                lifetimes.ifa_valid = u32::MAX;
                m.attributes.push(AddressAttribute::CacheInfo(lifetimes));
            }
        }
        Ok(req)
    }

    /// Sends the additions `actions` (plan positions from `first`) up to [`ADDRESS_WINDOW`]
    /// at a time, reads the answers in order and pushes each accepted one to `applied`;
    /// returns the plan position and the kernel's answer of the first that failed.
    async fn add_addresses(
        &mut self,
        actions: &[Action],
        first: usize,
        applied: &mut Vec<Action>,
    ) -> Result<(), (usize, String)> {
        let mut requests = Vec::with_capacity(actions.len());
        let mut unsent = None;
        for (k, a) in actions.iter().enumerate() {
            match self.address_request(&a.step).await {
                Ok(r) => requests.push((k, r)),
                Err(e) => {
                    unsent = Some((first + k, e));
                    break;
                }
            }
        }
        let mut answers = futures_util::stream::iter(
            requests
                .into_iter()
                .map(|(k, r)| async move { (k, r.execute().await) }),
        )
        .buffered(ADDRESS_WINDOW);
        let mut failed = None;
        while let Some((k, answer)) = answers.next().await {
            match address_outcome(answer) {
                Ok(()) => applied.push(actions[k].clone()),
                Err(kernel) => {
                    failed.get_or_insert((first + k, kernel));
                }
            }
        }
        // A request that failed was sent before the one that could not be built.
        match failed.or(unsent) {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    async fn create(
        &mut self,
        link: &IfaceRef,
        kind: &DesiredKind,
        mtu: Option<u32>,
        mac: Option<crate::config::Mac>,
        peer: Option<&super::plan::PeerSpec>,
    ) -> Result<(), String> {
        let mut msg = match kind {
            DesiredKind::Veth { .. } => {
                let Some(p) = peer else {
                    return Err(format!("veth {link} has no peer in the plan"));
                };
                let mut pb = LinkUnspec::new_with_name(&p.id.name).mtu(p.mtu);
                if let Some(m) = p.mac {
                    pb = pb.address(m.0.to_vec());
                }
                // The peer is created directly in its namespace: creating it beside the veth
                // first could collide with a host link of the same name (tenants' `eth0`).
                let _fd_guard;
                if p.id.namespace != link.namespace {
                    let fd = self.ns_file(p.id.namespace.as_deref())?;
                    pb = pb.setns_by_fd(fd.as_raw_fd());
                    _fd_guard = fd;
                }
                let b = LinkVeth::new(&link.name, &p.id.name)
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(pb.build())));
                let b = match mtu {
                    Some(m) => b.mtu(m),
                    None => b,
                };
                let b = match mac {
                    Some(m) => b.address(m.0.to_vec()),
                    None => b,
                };
                let msg = b.build();
                return self.add_link(link, kind, msg).await;
            }
            DesiredKind::Bridge { stp } => LinkBridge::new(&link.name)
                .stp_state(stp_state(*stp))
                .build(),
            DesiredKind::Vlan {
                parent,
                id,
                protocol,
            } => {
                let pi = self
                    .index(&IfaceRef {
                        namespace: link.namespace.clone(),
                        name: parent.clone(),
                    })
                    .await?;
                LinkVlan::new(&link.name, pi, *id)
                    .protocol(match protocol {
                        VlanProtocol::Dot1Q => KernelVlanProtocol::Ieee8021Q,
                        VlanProtocol::Dot1Ad => KernelVlanProtocol::Ieee8021Ad,
                    })
                    .build()
            }
            DesiredKind::Bond(BondSpec::ActiveBackup { miimon, .. }) => {
                // The primary is a member: the plan sets it once the members are ports.
                LinkBond::new(&link.name)
                    .mode(BondMode::ActiveBackup)
                    .miimon(millis(*miimon))
                    .build()
            }
            DesiredKind::Bond(BondSpec::Lacp {
                lacp_rate,
                transmit_hash_policy,
                min_links,
            }) => LinkBond::new(&link.name)
                .mode(BondMode::Ieee8023Ad)
                .ad_lacp_rate(kernel_lacp_rate(*lacp_rate))
                .xmit_hash_policy(hash_policy(*transmit_hash_policy))
                .min_links(u32::from(*min_links))
                .miimon(LACP_MIIMON_MS)
                .build(),
            DesiredKind::Ethernet | DesiredKind::VethPeer { .. } => {
                return Err(format!(
                    "{link}: a {} is never created on its own",
                    kind.type_name()
                ));
            }
        };
        if let Some(m) = mac {
            msg.attributes
                .push(rtnetlink::packet_route::link::LinkAttribute::Address(
                    m.0.to_vec(),
                ));
        }
        self.add_link(link, kind, msg).await
    }

    async fn add_link(
        &mut self,
        link: &IfaceRef,
        kind: &DesiredKind,
        msg: LinkMessage,
    ) -> Result<(), String> {
        let h = self.handle(link.namespace.as_deref())?;
        match h.link().add(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(EEXIST) => {
                // Already so only if what exists is of the kind asked for.
                let existing = self.find(link).await?.map(|m| parse_link(&m));
                match existing {
                    Some(l) if l.kind.kernel_kind() == kind.kernel_kind() => Ok(()),
                    Some(l) => Err(format!(
                        "{} (a {} link named {} is in the way)",
                        kernel_text(&e),
                        l.kind.kernel_kind().unwrap_or("ethernet"),
                        link.name
                    )),
                    None => Err(kernel_text(&e)),
                }
            }
            Err(e) => Err(kernel_text(&e)),
        }
    }
}

fn stp_state(on: bool) -> BridgeStpState {
    if on {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    }
}

/// "Already so" is success for an address addition.
fn address_outcome(answer: Result<(), rtnetlink::Error>) -> Result<(), String> {
    match answer {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        Err(e) => Err(kernel_text(&e)),
    }
}

fn kernel_lacp_rate(r: LacpRate) -> BondLacpRate {
    match r {
        LacpRate::Slow => BondLacpRate::Slow,
        LacpRate::Fast => BondLacpRate::Fast,
    }
}

fn hash_policy(p: HashPolicy) -> BondXmitHashPolicy {
    match p {
        HashPolicy::Layer2 => BondXmitHashPolicy::Layer2,
        HashPolicy::Layer23 => BondXmitHashPolicy::Layer23,
        HashPolicy::Layer34 => BondXmitHashPolicy::Layer34,
        HashPolicy::Encap23 => BondXmitHashPolicy::Encap23,
        HashPolicy::Encap34 => BondXmitHashPolicy::Encap34,
        HashPolicy::VlanSrcMac => BondXmitHashPolicy::VlanSrcMac,
    }
}
