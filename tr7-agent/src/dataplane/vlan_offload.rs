//! Keeping VLAN tags in the frame, where the gate reads them.
//!
//! XDP sees the frame's bytes only. Where the kernel keeps a VLAN tag out of the frame, in
//! skb metadata, the gate would key a tagged frame as untagged (and QinQ as its inner VLAN).
//! Two offloads do that to frames arriving on an interface:
//!
//! - receive VLAN offload of the interface itself (`rx-vlan-hw-parse`,
//!   `rx-vlan-stag-hw-parse`): a NIC strips the outer tag into the descriptor;
//! - on a veth, transmit VLAN offload of its other end (`tx-vlan-hw-insert`,
//!   `tx-vlan-stag-hw-insert`): the sender's VLAN device leaves the tag in metadata and the
//!   veth hands the skb across as it is.
//!
//! On a bond, frames arrive through its members, so both apply to each member (and to the
//! other end of a member that is a veth).
//!
//! [`keep_tags_in_frames`] turns those off, through the ethtool ioctl (`ETHTOOL_SFEATURES`,
//! feature bits found by name as `ethtool -K` does), and says what it changed. The
//! alternative, the `bpf_xdp_metadata_rx_vlan_tag` kfunc, needs a device-bound program,
//! which runs in native mode only and on the few drivers that implement it; see
//! docs/dataplane.md. What an attach turned off is recorded with the attachment
//! ([`record`]), and a detach turns exactly that back on ([`restore`]); features that were
//! off before are left off.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd as _, OwnedFd},
};

use futures_util::{StreamExt as _, TryStreamExt as _};
use nix::libc;
use rtnetlink::{
    packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload},
    packet_route::{
        RouteNetlinkMessage,
        link::{InfoKind, LinkAttribute, LinkInfo},
        nsid::{NsidAttribute, NsidMessage},
    },
};

use super::DataplaneError;
use crate::netlink::conn;
use crate::netns::{self, NETNS_RUN_DIR};

/// Receive offloads that strip the outer tag of frames arriving on an interface.
pub const RX_STRIP: [&str; 2] = ["rx-vlan-hw-parse", "rx-vlan-stag-hw-parse"];
/// Transmit offloads that keep a sender's tag in metadata (across a veth).
pub const TX_INSERT: [&str; 2] = ["tx-vlan-hw-insert", "tx-vlan-stag-hw-insert"];

/// Which interface of an attachment an [`OffloadChange`] is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// The attached interface (its receive offloads).
    #[default]
    Interface,
    /// The other end of the attached veth (its transmit offloads).
    Peer,
    /// A member of the attached bond (its receive offloads).
    Member,
    /// The other end of a bond member that is a veth (its transmit offloads).
    MemberPeer,
}

/// What [`keep_tags_in_frames`] did on one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffloadChange {
    pub role: Role,
    /// The interface, and its `ip netns` namespace (`None`: the caller's).
    pub iface: String,
    pub netns: Option<String>,
    /// Features that were on and are off now.
    pub turned_off: Vec<String>,
    /// Features that are on and cannot be changed on this device (fixed by the driver).
    pub fixed_on: Vec<String>,
}

/// Turns off the VLAN offloads that would hide tags from the gate on `iface` (index
/// `ifindex` in namespace `netns`), and on its veth peer when it is one. Logs each change;
/// features already off are left alone, so a second attach changes nothing.
pub fn keep_tags_in_frames(
    iface: &str,
    ifindex: u32,
    netns: Option<&str>,
) -> Result<Vec<OffloadChange>, DataplaneError> {
    let mut changes = vec![disable(Role::Interface, iface, netns, &RX_STRIP)?];
    // A bond's frames arrive through its members first, tags stripped there.
    match bond_members(ifindex, netns) {
        Ok(members) => {
            for (member, member_index) in members {
                changes.push(disable(Role::Member, &member, netns, &RX_STRIP)?);
                if let Ok(Some(Peer::Found { name, netns: ns })) = veth_peer(member_index, netns) {
                    changes.push(disable(Role::MemberPeer, &name, ns.as_deref(), &TX_INSERT)?);
                }
            }
        }
        Err(error) => tracing::warn!(
            iface,
            %error,
            "cannot list the members of {iface}; if it is a bond, their receive VLAN offload stays as it is"
        ),
    }
    match veth_peer(ifindex, netns) {
        Ok(None) => {}
        Ok(Some(Peer::Found { name, netns: ns })) => {
            changes.push(disable(Role::Peer, &name, ns.as_deref(), &TX_INSERT)?);
        }
        Ok(Some(Peer::Unreachable { ifindex, nsid })) => tracing::warn!(
            iface,
            peer_ifindex = ifindex,
            peer_netnsid = nsid,
            "the other end of veth {iface} is in a namespace that is not under {NETNS_RUN_DIR}: \
             tr7 cannot turn its transmit VLAN offload off; tagged frames it sends reach the \
             gate as untagged unless you run `ethtool -K <peer> txvlan off tx-vlan-stag-hw-insert off` there"
        ),
        Err(error) => tracing::warn!(
            iface,
            %error,
            "cannot find the other end of veth {iface}; its transmit VLAN offload stays as it is"
        ),
    }
    for c in &changes {
        if !c.turned_off.is_empty() {
            tracing::info!(
                iface = %c.iface,
                netns = c.netns.as_deref().unwrap_or("(own)"),
                features = ?c.turned_off,
                "turned VLAN offload off so tags stay in the frames the gate reads"
            );
        }
        if !c.fixed_on.is_empty() {
            tracing::warn!(
                iface = %c.iface,
                netns = c.netns.as_deref().unwrap_or("(own)"),
                features = ?c.fixed_on,
                "VLAN offload is fixed on in this driver: the gate sees the outer tag of such frames as absent"
            );
        }
    }
    Ok(changes)
}

/// What an attach turned off, as the bits a detach reads back: `RX_STRIP[i]` on the
/// interface is bit `i`, `TX_INSERT[i]` on its veth peer `8 + i`; on a bond's members
/// `16 + i`, on their veth peers `24 + i` (members count as one: what was turned off on any
/// of them, all get back).
pub fn record(changes: &[OffloadChange]) -> u32 {
    let mut bits = 0;
    for c in changes {
        let (names, shift): (&[&str], u32) = match c.role {
            Role::Interface => (&RX_STRIP, 0),
            Role::Peer => (&TX_INSERT, 8),
            Role::Member => (&RX_STRIP, 16),
            Role::MemberPeer => (&TX_INSERT, 24),
        };
        for name in &c.turned_off {
            if let Some(i) = names.iter().position(|f| f == name) {
                bits |= 1 << (shift + i as u32);
            }
        }
    }
    bits
}

/// What [`restore`] turned back on, on one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffloadRestore {
    pub iface: String,
    pub netns: Option<String>,
    pub turned_on: Vec<String>,
}

/// Turns back on what an attach of `iface` turned off (`bits`, see [`record`]): the receive
/// offloads on the interface and on a bond's present members, the transmit ones on the veth
/// peers of the interface and of those members, where they can still be found. Logs each
/// change; a peer that cannot be found is a warning, as at attach.
pub fn restore(
    iface: &str,
    ifindex: u32,
    netns: Option<&str>,
    bits: u32,
) -> Result<Vec<OffloadRestore>, DataplaneError> {
    let pick = |names: &[&'static str], shift: u32| -> Vec<&'static str> {
        (0..names.len())
            .filter(|i| bits & (1 << (shift + *i as u32)) != 0)
            .map(|i| names[i])
            .collect()
    };
    let (rx, tx) = (pick(&RX_STRIP, 0), pick(&TX_INSERT, 8));
    let (member_rx, member_tx) = (pick(&RX_STRIP, 16), pick(&TX_INSERT, 24));
    let mut out = Vec::new();
    if !rx.is_empty() {
        out.push(enable(iface, netns, &rx)?);
    }
    if !member_rx.is_empty() || !member_tx.is_empty() {
        let members = bond_members(ifindex, netns).unwrap_or_else(|error| {
            tracing::warn!(iface, %error, "cannot list the members of {iface}: their VLAN offload turned off at attach stays off");
            Vec::new()
        });
        for (member, member_index) in members {
            if !member_rx.is_empty() {
                out.push(enable(&member, netns, &member_rx)?);
            }
            if member_tx.is_empty() {
                continue;
            }
            if let Ok(Some(Peer::Found { name, netns: ns })) = veth_peer(member_index, netns) {
                out.push(enable(&name, ns.as_deref(), &member_tx)?);
            }
        }
    }
    if !tx.is_empty() {
        match veth_peer(ifindex, netns) {
            Ok(Some(Peer::Found { name, netns: ns })) => {
                out.push(enable(&name, ns.as_deref(), &tx)?);
            }
            Ok(_) | Err(_) => tracing::warn!(
                iface,
                features = ?tx,
                "cannot reach the other end of veth {iface}: the transmit VLAN offload turned \
                 off at attach stays off there"
            ),
        }
    }
    for r in out.iter().filter(|r| !r.turned_on.is_empty()) {
        tracing::info!(
            iface = %r.iface,
            netns = r.netns.as_deref().unwrap_or("(own)"),
            features = ?r.turned_on,
            "turned VLAN offload back on (attach had turned it off)"
        );
    }
    Ok(out)
}

/// Turns `features` back on on `iface` where they are off and changeable.
fn enable(
    iface: &str,
    netns: Option<&str>,
    features: &[&str],
) -> Result<OffloadRestore, DataplaneError> {
    let (turned_on, _) = switch(iface, netns, features, true)?;
    Ok(OffloadRestore {
        iface: iface.to_owned(),
        netns: netns.map(str::to_owned),
        turned_on,
    })
}

/// Turns `features` off on `iface` where they are on and changeable.
fn disable(
    role: Role,
    iface: &str,
    netns: Option<&str>,
    features: &[&str],
) -> Result<OffloadChange, DataplaneError> {
    let (turned_off, fixed_on) = switch(iface, netns, features, false)?;
    Ok(OffloadChange {
        role,
        iface: iface.to_owned(),
        netns: netns.map(str::to_owned),
        turned_off,
        fixed_on,
    })
}

/// Sets `features` of `iface` to `on` where they differ and the driver lets them change;
/// confirms by reading them back. Returns the features changed, and those the driver keeps
/// fixed the other way.
fn switch(
    iface: &str,
    netns: Option<&str>,
    features: &[&str],
    on: bool,
) -> Result<(Vec<String>, Vec<String>), DataplaneError> {
    let sock =
        netns::within(netns, ethtool_socket)?.map_err(|e| ethtool_err(iface, "socket", e))?;
    let eth = Ethtool { sock, iface };
    let names = eth.feature_names()?;
    let bits: Vec<(String, usize)> = features
        .iter()
        .filter_map(|f| {
            names
                .iter()
                .position(|n| n == f)
                .map(|i| (f.to_string(), i))
        })
        .collect();
    let before = eth.features(names.len())?;
    let (mut changed, mut fixed) = (Vec::new(), Vec::new());
    let mut set = vec![[0u32; 2]; before.len()];
    for (name, bit) in &bits {
        let (word, mask) = (bit / 32, 1u32 << (bit % 32));
        if (before[word].active & mask != 0) == on {
            continue;
        }
        if before[word].available & mask == 0 {
            fixed.push(name.clone());
            continue;
        }
        set[word][0] |= mask; // valid: change this bit ...
        if on {
            set[word][1] |= mask; // ... to 1 (requested)
        }
        changed.push(name.clone());
    }
    if changed.is_empty() {
        return Ok((changed, fixed));
    }
    eth.set_features(&set)?;
    let after = eth.features(names.len())?;
    for (name, bit) in &bits {
        let (word, mask) = (bit / 32, 1u32 << (bit % 32));
        if changed.contains(name) && (after[word].active & mask != 0) != on {
            let state = if on {
                "off after turning it on"
            } else {
                "on after turning it off"
            };
            return Err(ethtool_err(
                iface,
                "ETHTOOL_SFEATURES",
                io::Error::other(format!("{name} is still {state}")),
            ));
        }
    }
    Ok((changed, fixed))
}

fn ethtool_err(iface: &str, what: &'static str, source: io::Error) -> DataplaneError {
    DataplaneError::Ethtool {
        iface: iface.to_owned(),
        what,
        source,
    }
}

fn ethtool_socket() -> io::Result<OwnedFd> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    Ok(sock.into())
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETHTOOL_GFEATURES: u32 = 0x3a;
const ETHTOOL_SFEATURES: u32 = 0x3b;
const ETH_SS_FEATURES: u32 = 4;
const ETH_GSTRING_LEN: usize = 32;

/// `struct ifreq` with `ifr_data` (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfreqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// One word of `struct ethtool_get_features_block`.
#[derive(Clone, Copy, Default)]
struct FeatureWord {
    available: u32,
    active: u32,
}

struct Ethtool<'a> {
    sock: OwnedFd,
    iface: &'a str,
}

impl Ethtool<'_> {
    /// `SIOCETHTOOL` with `buf` as the command buffer (its first word is the command).
    fn ioctl(&self, what: &'static str, buf: &mut [u32]) -> Result<(), DataplaneError> {
        let name = CString::new(self.iface)
            .map_err(|e| ethtool_err(self.iface, what, io::Error::other(e)))?;
        let bytes = name.as_bytes_with_nul();
        if bytes.len() > libc::IFNAMSIZ {
            return Err(ethtool_err(
                self.iface,
                what,
                io::Error::other("interface name longer than IFNAMSIZ"),
            ));
        }
        let mut req = IfreqData {
            name: [0; libc::IFNAMSIZ],
            data: buf.as_mut_ptr().cast(),
            _pad: [0; 16],
        };
        req.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: `req` is a valid ifreq whose data pointer points at `buf`, which is sized
        // for the command by the callers; the kernel writes only within it.
        let rc = unsafe { libc::ioctl(self.sock.as_raw_fd(), SIOCETHTOOL as _, &mut req) };
        if rc < 0 {
            return Err(ethtool_err(self.iface, what, io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The kernel's feature names (`ethtool -k`'s), in bit order.
    fn feature_names(&self) -> Result<Vec<String>, DataplaneError> {
        // struct ethtool_sset_info: cmd, reserved, u64 sset_mask, u32 data[1].
        let mut info = [ETHTOOL_GSSET_INFO, 0, 0, 0, 0];
        let mask = 1u64 << ETH_SS_FEATURES;
        info[2..4].copy_from_slice(&[mask as u32, (mask >> 32) as u32]);
        self.ioctl("ETHTOOL_GSSET_INFO", &mut info)?;
        let count = info[4] as usize;
        // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
        let mut buf = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
        buf[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32]);
        self.ioctl("ETHTOOL_GSTRINGS", &mut buf)?;
        let bytes: Vec<u8> = buf[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        Ok(bytes
            .chunks(ETH_GSTRING_LEN)
            .map(|c| {
                let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                String::from_utf8_lossy(&c[..end]).into_owned()
            })
            .collect())
    }

    fn features(&self, count: usize) -> Result<Vec<FeatureWord>, DataplaneError> {
        let words = count.div_ceil(32);
        // struct ethtool_gfeatures: cmd, size, then per word: available, requested,
        // active, never_changed.
        let mut buf = vec![0u32; 2 + words * 4];
        buf[..2].copy_from_slice(&[ETHTOOL_GFEATURES, words as u32]);
        self.ioctl("ETHTOOL_GFEATURES", &mut buf)?;
        Ok(buf[2..]
            .chunks(4)
            .map(|b| FeatureWord {
                available: b[0],
                active: b[2],
            })
            .collect())
    }

    /// `set[word] = [valid, requested]`.
    fn set_features(&self, set: &[[u32; 2]]) -> Result<(), DataplaneError> {
        let mut buf = vec![ETHTOOL_SFEATURES, set.len() as u32];
        buf.extend(set.iter().flatten());
        self.ioctl("ETHTOOL_SFEATURES", &mut buf)
    }
}

/// The other end of a veth.
enum Peer {
    Found {
        name: String,
        netns: Option<String>,
    },
    /// In a namespace with no name under /run/netns (a container's, say).
    Unreachable {
        ifindex: u32,
        nsid: i32,
    },
}

/// The members of `ifindex` in `netns` (name and index) when it is a bond; empty otherwise,
/// asked over route netlink like [`veth_peer`].
fn bond_members(ifindex: u32, netns: Option<&str>) -> io::Result<Vec<(String, u32)>> {
    conn::on_own_thread(|| bond_members_async(ifindex, netns))
}

async fn bond_members_async(ifindex: u32, netns: Option<&str>) -> io::Result<Vec<(String, u32)>> {
    let (conn, handle, _) =
        netns::within(netns, rtnetlink::new_connection).map_err(io::Error::other)??;
    tokio::spawn(conn);
    let mut links = handle.link().get().execute();
    let (mut is_bond, mut members) = (false, Vec::new());
    while let Some(msg) = links.try_next().await.map_err(io::Error::other)? {
        let index = msg.header.index;
        let (mut name, mut member) = (None, false);
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Controller(c) => member |= *c == ifindex,
                LinkAttribute::LinkInfo(infos) if index == ifindex => {
                    is_bond |= infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bond)));
                }
                _ => {}
            }
        }
        if let (true, Some(name)) = (member, name) {
            members.push((name, index));
        }
    }
    Ok(if is_bond { members } else { Vec::new() })
}

/// Whether `ifindex` in `netns` is a veth.
pub fn is_veth(ifindex: u32, netns: Option<&str>) -> io::Result<bool> {
    Ok(veth_peer(ifindex, netns)?.is_some())
}

/// The other end of `ifindex` in `netns` when it is a veth, asked over route netlink on a
/// thread of its own (its own runtime, so callers inside a tokio runtime are fine too).
fn veth_peer(ifindex: u32, netns: Option<&str>) -> io::Result<Option<Peer>> {
    // The caller's own namespace, a candidate for the peer; opened on the caller's thread.
    let own = File::open("/proc/thread-self/ns/net")?;
    conn::on_own_thread(|| veth_peer_async(ifindex, netns, &own))
}

async fn veth_peer_async(
    ifindex: u32,
    netns: Option<&str>,
    own: &File,
) -> io::Result<Option<Peer>> {
    let (conn, handle, _) =
        netns::within(netns, rtnetlink::new_connection).map_err(io::Error::other)??;
    tokio::spawn(conn);
    let msg = handle
        .link()
        .get()
        .match_index(ifindex)
        .execute()
        .try_next()
        .await
        .map_err(io::Error::other)?
        .ok_or_else(|| io::Error::other(format!("no link with ifindex {ifindex}")))?;
    let (mut veth, mut peer, mut nsid) = (false, None, None);
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Link(l) if *l != 0 => peer = Some(*l),
            LinkAttribute::LinkNetNsId(id) => nsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                veth |= infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            _ => {}
        }
    }
    let (true, Some(peer)) = (veth, peer) else {
        return Ok(None);
    };
    let peer_ns = match nsid {
        None => Some(netns.map(str::to_owned)),
        Some(id) => find_nsid(&handle, id, netns, own).await?,
    };
    let Some(peer_ns) = peer_ns else {
        return Ok(Some(Peer::Unreachable {
            ifindex: peer,
            nsid: nsid.unwrap_or(-1),
        }));
    };
    let name = netns::within(peer_ns.as_deref(), || nix::net::if_::if_indextoname(peer))
        .map_err(io::Error::other)?
        .map_err(io::Error::from)?;
    Ok(Some(Peer::Found {
        name: name.to_string_lossy().into_owned(),
        netns: peer_ns,
    }))
}

/// Which namespace has id `nsid` as seen from the namespace `handle` talks to: the caller's
/// own (`Some(None)`) or a named one (`Some(Some(name))`); `None` when no candidate has it.
async fn find_nsid(
    handle: &rtnetlink::Handle,
    nsid: i32,
    netns: Option<&str>,
    own: &File,
) -> io::Result<Option<Option<String>>> {
    if netns.is_some() && nsid_of(handle, own).await? == Some(nsid) {
        return Ok(Some(None));
    }
    let Ok(dir) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return Ok(None);
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        if nsid_of(handle, &file).await? == Some(nsid) {
            return Ok(Some(Some(name)));
        }
    }
    Ok(None)
}

/// `RTM_GETNSID` for the namespace file `ns`: its id as seen from `handle`'s namespace,
/// `None` when it has none there.
async fn nsid_of(handle: &rtnetlink::Handle, ns: &File) -> io::Result<Option<i32>> {
    let mut msg = NsidMessage::default();
    msg.attributes = vec![NsidAttribute::Fd(ns.as_raw_fd() as u32)];
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut answers = handle.clone().request(req).map_err(io::Error::other)?;
    while let Some(answer) = answers.next().await {
        match answer.payload {
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(io::Error::other(format!("RTM_GETNSID: {e}")));
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                let id = m.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(id) => Some(*id),
                    _ => None,
                });
                return Ok(id.filter(|id| *id >= 0));
            }
            _ => {}
        }
    }
    Ok(None)
}
