//! Typed access to the data plane's pinned maps: ownership and attachment writers, the
//! heartbeat/fence writer, and counter readers that sum the per-CPU values.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues};
use tr7_common::{
    Attachment, FAMILY_IPV4, FAMILY_IPV6, Fence, IfaceCounters, IfaceKey, MAX_ATTACHMENTS,
    MAX_VIPS, REASONS, Reason, SLOT_EMPTY, SLOT_TOMBSTONE, SLOT_USED, VIP_TABLE_PROBES,
    VIP_TABLE_SIZE, VLAN_8021AD, VLAN_VID_MASK, VMAC_BACKUP, VMAC_OWNED, VMAC_UNUSED, VipCounters,
    VipKey, VipSlot, VipState, VmacState, map, vip_home, vmac_index,
};

use super::DataplaneError;

/// Serialises the read-modify-writes of virtual-MAC rows within the agent: the routers'
/// threads flip a row's ownership ([`Maps::own_vmac`]) while the main loop may give it the
/// interface's new MAC ([`Maps::set_vmac`]), each through its own [`Maps`]; each reads the
/// row and writes it whole, so without this one could undo the other.
static VMAC_ROWS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn vmac_rows() -> std::sync::MutexGuard<'static, ()> {
    // The guard protects no data: a panic while holding it leaves nothing half-written.
    VMAC_ROWS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a VIP lives: the scope of its L2 domain and the VLAN tags it is reached with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VipScope {
    pub scope: u32,
    /// Outer VID, [`VLAN_8021AD`] set for an S-tag; 0 untagged.
    pub outer_vlan: u16,
    /// Inner VID; 0 with at most one tag.
    pub inner_vlan: u16,
}

impl VipScope {
    pub const fn untagged(scope: u32) -> Self {
        Self {
            scope,
            outer_vlan: 0,
            inner_vlan: 0,
        }
    }

    /// Reached with one 802.1Q tag.
    pub const fn vlan(scope: u32, vid: u16) -> Self {
        Self {
            scope,
            outer_vlan: vid & VLAN_VID_MASK,
            inner_vlan: 0,
        }
    }

    /// Reached with an 802.1ad S-tag outside an 802.1Q C-tag.
    pub const fn qinq(scope: u32, outer: u16, inner: u16) -> Self {
        Self {
            scope,
            outer_vlan: (outer & VLAN_VID_MASK) | VLAN_8021AD,
            inner_vlan: inner & VLAN_VID_MASK,
        }
    }
}

impl std::fmt::Display for VipScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scope {}", self.scope)?;
        let vid = |v: u16| {
            let ad = if v & VLAN_8021AD != 0 { "ad:" } else { "" };
            format!("{ad}{}", v & VLAN_VID_MASK)
        };
        match (self.outer_vlan, self.inner_vlan) {
            (0, _) => Ok(()),
            (o, 0) => write!(f, " vlan {}", vid(o)),
            (o, i) => write!(f, " vlan {}.{}", vid(o), vid(i)),
        }
    }
}

/// The key of VIP `addr` in `place`.
pub fn vip_key(place: VipScope, addr: IpAddr) -> VipKey {
    let mut key = VipKey {
        scope: place.scope,
        outer_vlan: place.outer_vlan,
        inner_vlan: place.inner_vlan,
        ..VipKey::default()
    };
    match addr {
        IpAddr::V4(a) => {
            key.family = FAMILY_IPV4;
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&a.octets());
            key.addr = VipKey::addr_words(&bytes);
        }
        IpAddr::V6(a) => {
            key.family = FAMILY_IPV6;
            key.addr = VipKey::addr_words(&a.octets());
        }
    }
    key
}

/// The address of a VIP key.
pub fn key_addr(key: &VipKey) -> IpAddr {
    if key.family == FAMILY_IPV4 {
        let b = key.addr_bytes();
        IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        IpAddr::from(key.addr_bytes())
    }
}

/// Handles on every map of the data plane, opened from their pins.
pub struct Maps {
    pub table: Array<MapData, VipSlot>,
    pub vips: HashMap<MapData, VipKey, VipState>,
    /// One copy per CPU (see [`Fence`]); written together, read from CPU 0's.
    pub fence: PerCpuArray<MapData, Fence>,
    pub iface_stats: PerCpuArray<MapData, IfaceCounters>,
    pub vip_stats: PerCpuArray<MapData, VipCounters>,
    pub attachments: HashMap<MapData, IfaceKey, Attachment>,
    pub vmacs: Array<MapData, VmacState>,
    /// Counter indexes known free, once [`Self::free_index`] has read the directory.
    free: Option<FreeIndexes>,
}

struct FreeIndexes {
    /// Free indexes below `next`.
    free: BTreeSet<u32>,
    /// Every index from here on is free.
    next: u32,
}

fn open(dir: &Path, name: &'static str) -> Result<Map, DataplaneError> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path).map_err(|source| DataplaneError::OpenMap {
        path: path.clone(),
        source,
    })?;
    Map::from_map_data(data).map_err(|source| DataplaneError::OpenMap { path, source })
}

fn typed<T: TryFrom<Map, Error = MapError>>(
    dir: &Path,
    name: &'static str,
) -> Result<T, DataplaneError> {
    let path = dir.join(name);
    T::try_from(open(dir, name)?).map_err(|source| DataplaneError::OpenMap { path, source })
}

/// One VIP as read back from the map, with its summed counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipEntry {
    pub place: VipScope,
    pub addr: IpAddr,
    pub owned: bool,
    /// The VRID whose virtual MAC the VIP speaks with; `None`: the interface MAC.
    pub virtual_mac: Option<u8>,
    pub index: u32,
    pub counters: VipCounters,
}

/// Summed per-reason packet counts of one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceEntry {
    pub netns: u32,
    pub ifindex: u32,
    pub attachment: Attachment,
    pub packets: ReasonCounts,
}

/// Packets per [`Reason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReasonCounts(pub [u64; REASONS]);

impl ReasonCounts {
    pub fn get(&self, reason: Reason) -> u64 {
        self.0[reason as usize]
    }
}

impl Maps {
    /// Opens the maps pinned under `pin_dir` (see [`super::PinLayout`]).
    pub fn open(pin_dir: &Path) -> Result<Self, DataplaneError> {
        Ok(Self {
            table: typed(pin_dir, map::VIP_TABLE)?,
            vips: typed(pin_dir, map::VIPS)?,
            fence: typed(pin_dir, map::FENCE)?,
            iface_stats: typed(pin_dir, map::IFACE_STATS)?,
            vip_stats: typed(pin_dir, map::VIP_STATS)?,
            attachments: typed(pin_dir, map::ATTACHMENTS)?,
            vmacs: typed(pin_dir, map::VMACS)?,
            free: None,
        })
    }

    /// The attachment recorded for an interface, if any.
    pub fn attachment(&self, key: IfaceKey) -> Result<Option<Attachment>, DataplaneError> {
        match self.attachments.get(&key, 0) {
            Ok(a) => Ok(Some(a)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(DataplaneError::map_read(map::ATTACHMENTS, source)),
        }
    }

    /// Records that `key` is attached with `scope`: keeps the interface's counter slot when
    /// it has one, else takes the lowest free slot and zeroes its counters.
    pub fn reserve_attachment(
        &mut self,
        key: IfaceKey,
        scope: u32,
    ) -> Result<Attachment, DataplaneError> {
        let slot = match self.attachment(key)? {
            Some(existing) => existing.slot,
            None => {
                let used: BTreeSet<u32> = self
                    .attachments
                    .iter()
                    .filter_map(Result::ok)
                    .map(|(_, a)| a.slot)
                    .collect();
                let slot = (0..MAX_ATTACHMENTS).find(|s| !used.contains(s)).ok_or(
                    DataplaneError::Full {
                        what: "attachment table",
                        max: MAX_ATTACHMENTS,
                    },
                )?;
                self.zero_iface_counters(slot)?;
                slot
            }
        };
        let att = Attachment { slot, scope };
        self.attachments
            .insert(key, att, 0)
            .map_err(|source| DataplaneError::map_write(map::ATTACHMENTS, source))?;
        Ok(att)
    }

    pub fn release_attachment(&mut self, key: IfaceKey) -> Result<(), DataplaneError> {
        ignore_missing(self.attachments.remove(&key))
            .map_err(|source| DataplaneError::map_write(map::ATTACHMENTS, source))
    }

    fn zero_iface_counters(&mut self, slot: u32) -> Result<(), DataplaneError> {
        let zero = per_cpu_zero::<IfaceCounters>()?;
        self.iface_stats
            .set(slot, zero, 0)
            .map_err(|source| DataplaneError::map_write(map::IFACE_STATS, source))
    }

    /// Sets whether this node owns the VIP `addr` in `place`, adding it if new. A new VIP
    /// gets the lowest free counter index, with its counters zeroed. This is the whole
    /// failover path of the data plane: one map write.
    pub fn set_vip(
        &mut self,
        place: VipScope,
        addr: IpAddr,
        owned: bool,
    ) -> Result<VipState, DataplaneError> {
        let key = vip_key(place, addr);
        let state = match self.vips.get(&key, 0) {
            Ok(state) => VipState {
                owned: u8::from(owned),
                ..state
            },
            Err(MapError::KeyNotFound) => {
                let index = self.free_index()?;
                self.zero_vip_counters(index)?;
                VipState {
                    owned: u8::from(owned),
                    index,
                    ..VipState::default()
                }
            }
            Err(source) => return Err(DataplaneError::map_read(map::VIPS, source)),
        };
        self.put(key, state)?;
        Ok(state)
    }

    /// Sets which link-layer address an existing VIP speaks with: the virtual MAC of
    /// `vrid` (`Some`) or the interface MAC (`None`). Ownership is left as it is.
    pub fn set_vip_virtual_mac(
        &mut self,
        place: VipScope,
        addr: IpAddr,
        vrid: Option<u8>,
    ) -> Result<(), DataplaneError> {
        let key = vip_key(place, addr);
        let state = self
            .vips
            .get(&key, 0)
            .map_err(|source| DataplaneError::map_read(map::VIPS, source))?;
        let state = VipState {
            virtual_mac: u8::from(vrid.is_some()),
            vrid: vrid.unwrap_or(0),
            ..state
        };
        self.put(key, state)
    }

    /// The virtual MAC of (`family`, `vrid`) on attachment `slot`.
    pub fn vmac(&self, slot: u32, family: u8, vrid: u8) -> Result<VmacState, DataplaneError> {
        self.vmacs
            .get(&vmac_index(slot, family, vrid), 0)
            .map_err(|source| DataplaneError::map_read(map::VMACS, source))
    }

    /// Makes attachment `slot` answer to the virtual MAC of (`family`, `vrid`), rewriting
    /// it to `iface_mac`, owned or not. `owned: None` keeps the ownership an entry already
    /// has (a resumed router), and makes a new entry not owned.
    pub fn set_vmac(
        &mut self,
        slot: u32,
        family: u8,
        vrid: u8,
        iface_mac: [u8; 6],
        owned: Option<bool>,
    ) -> Result<(), DataplaneError> {
        let _rows = vmac_rows();
        let was_owned = self.vmac(slot, family, vrid)?.state == VMAC_OWNED;
        let state = if owned.unwrap_or(was_owned) {
            VMAC_OWNED
        } else {
            VMAC_BACKUP
        };
        self.write_vmac(
            slot,
            family,
            vrid,
            VmacState {
                iface_mac,
                state,
                _pad: 0,
            },
        )
    }

    /// Flips the ownership of an entry [`Self::set_vmac`] made (the failover path).
    pub fn own_vmac(
        &mut self,
        slot: u32,
        family: u8,
        vrid: u8,
        owned: bool,
    ) -> Result<(), DataplaneError> {
        let _rows = vmac_rows();
        let mut entry = self.vmac(slot, family, vrid)?;
        entry.state = if owned { VMAC_OWNED } else { VMAC_BACKUP };
        self.write_vmac(slot, family, vrid, entry)
    }

    /// Stops attachment `slot` answering to the virtual MAC of (`family`, `vrid`).
    pub fn clear_vmac(&mut self, slot: u32, family: u8, vrid: u8) -> Result<(), DataplaneError> {
        let _rows = vmac_rows();
        self.write_vmac(
            slot,
            family,
            vrid,
            VmacState {
                state: VMAC_UNUSED,
                ..VmacState::default()
            },
        )
    }

    fn write_vmac(
        &mut self,
        slot: u32,
        family: u8,
        vrid: u8,
        entry: VmacState,
    ) -> Result<(), DataplaneError> {
        if slot >= MAX_ATTACHMENTS {
            return Err(DataplaneError::Full {
                what: "attachment table",
                max: MAX_ATTACHMENTS,
            });
        }
        self.vmacs
            .set(vmac_index(slot, family, vrid), entry, 0)
            .map_err(|source| DataplaneError::map_write(map::VMACS, source))
    }

    /// Writes a VIP to the table the programs read, then to the directory.
    fn put(&mut self, key: VipKey, state: VipState) -> Result<(), DataplaneError> {
        self.table_put(key, state)?;
        self.vips
            .insert(key, state, 0)
            .map_err(|source| DataplaneError::map_write(map::VIPS, source))
    }

    fn slot(&self, index: u32) -> Result<VipSlot, DataplaneError> {
        self.table
            .get(&index, 0)
            .map_err(|source| DataplaneError::map_read(map::VIP_TABLE, source))
    }

    fn write_slot(&mut self, index: u32, slot: VipSlot) -> Result<(), DataplaneError> {
        self.table
            .set(index, slot, 0)
            .map_err(|source| DataplaneError::map_write(map::VIP_TABLE, source))
    }

    /// Where `key` is in the table (`Ok(index)`), or else the first reusable slot of its probe
    /// run (`Err(Some(index))`), or `Err(None)` when the run has no room.
    fn probe(&self, key: &VipKey) -> Result<Result<u32, Option<u32>>, DataplaneError> {
        let home = vip_home(key);
        let mut free = None;
        for i in 0..VIP_TABLE_PROBES {
            let index = home.wrapping_add(i) & (VIP_TABLE_SIZE - 1);
            let slot = self.slot(index)?;
            match slot.flags {
                SLOT_USED if slot.key == *key => return Ok(Ok(index)),
                SLOT_EMPTY => return Ok(Err(free.or(Some(index)))),
                SLOT_TOMBSTONE => free = free.or(Some(index)),
                _ => {}
            }
        }
        Ok(Err(free))
    }

    /// Programs read slots while this writes them, and a slot write is a memcpy, not atomic.
    /// So every write leaves the readers a consistent view: an ownership change rewrites
    /// only `state` of a used slot; an insert first fills key and state under the slot's old
    /// (not used) flag, which readers skip or stop at, and only then marks it used.
    fn table_put(&mut self, key: VipKey, state: VipState) -> Result<(), DataplaneError> {
        match self.probe(&key)? {
            Ok(index) => self.write_slot(
                index,
                VipSlot {
                    key,
                    state,
                    flags: SLOT_USED,
                },
            ),
            Err(Some(index)) => {
                let old = self.slot(index)?.flags;
                self.write_slot(
                    index,
                    VipSlot {
                        key,
                        state,
                        flags: old,
                    },
                )?;
                self.write_slot(
                    index,
                    VipSlot {
                        key,
                        state,
                        flags: SLOT_USED,
                    },
                )
            }
            Err(None) => Err(DataplaneError::TableCrowded {
                probes: VIP_TABLE_PROBES,
            }),
        }
    }

    /// Turns the key's slot into a tombstone, key and state untouched (see [`Self::table_put`]).
    fn table_remove(&mut self, key: &VipKey) -> Result<(), DataplaneError> {
        if let Ok(index) = self.probe(key)? {
            let mut slot = self.slot(index)?;
            slot.flags = SLOT_TOMBSTONE;
            self.write_slot(index, slot)?;
        }
        Ok(())
    }

    /// Writes a VIP with a caller-chosen counter index (bulk loads that number VIPs
    /// themselves). The caller keeps indexes unique and below [`MAX_VIPS`].
    pub fn set_vip_indexed(
        &mut self,
        place: VipScope,
        addr: IpAddr,
        owned: bool,
        index: u32,
    ) -> Result<(), DataplaneError> {
        if index >= MAX_VIPS {
            return Err(DataplaneError::Full {
                what: "VIP counter index",
                max: MAX_VIPS,
            });
        }
        if let Some(f) = self.free.as_mut() {
            f.free.remove(&index);
            if index >= f.next {
                f.free.extend(f.next..index);
                f.next = index + 1;
            }
        }
        let state = VipState {
            owned: u8::from(owned),
            index,
            ..VipState::default()
        };
        self.put(vip_key(place, addr), state)
    }

    pub fn remove_vip(&mut self, place: VipScope, addr: IpAddr) -> Result<(), DataplaneError> {
        let key = vip_key(place, addr);
        if let (Ok(state), Some(f)) = (self.vips.get(&key, 0), self.free.as_mut()) {
            f.free.insert(state.index);
        }
        self.table_remove(&key)?;
        ignore_missing(self.vips.remove(&key))
            .map_err(|source| DataplaneError::map_write(map::VIPS, source))
    }

    /// The lowest VIP counter index no VIP uses. The first call reads the directory; later
    /// ones use what this handle remembers, so bulk inserts stay linear.
    fn free_index(&mut self) -> Result<u32, DataplaneError> {
        if self.free.is_none() {
            let used: BTreeSet<u32> = self
                .vips
                .iter()
                .filter_map(Result::ok)
                .map(|(_, state)| state.index)
                .collect();
            let next = used.last().map_or(0, |m| m + 1);
            let free = (0..next).filter(|i| !used.contains(i)).collect();
            self.free = Some(FreeIndexes { free, next });
        }
        let Some(f) = self.free.as_mut() else {
            unreachable!("filled above");
        };
        if let Some(index) = f.free.pop_first() {
            return Ok(index);
        }
        if f.next >= MAX_VIPS {
            return Err(DataplaneError::Full {
                what: "VIP map",
                max: MAX_VIPS,
            });
        }
        f.next += 1;
        Ok(f.next - 1)
    }

    fn zero_vip_counters(&mut self, index: u32) -> Result<(), DataplaneError> {
        let zero = per_cpu_zero::<VipCounters>()?;
        self.vip_stats
            .set(index, zero, 0)
            .map_err(|source| DataplaneError::map_write(map::VIP_STATS, source))
    }

    /// Refreshes the liveness heartbeat to `now_ns` (`CLOCK_MONOTONIC`) and sets the fence
    /// interval; an interval of 0 disables the fence. Every CPU's copy is written, with its
    /// cached verdict cleared, so the programs count the new values from their next frame.
    pub fn heartbeat(&mut self, now_ns: u64, interval_ns: u64) -> Result<(), DataplaneError> {
        let fence = Fence {
            heartbeat_ns: now_ns,
            interval_ns,
            verdict: 0,
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::Cpus(source))?;
        let copies = PerCpuValues::try_from(vec![fence; cpus]).map_err(DataplaneError::Cpus)?;
        self.fence
            .set(0, copies, 0)
            .map_err(|source| DataplaneError::map_write(map::FENCE, source))
    }

    /// The heartbeat and interval last written (CPU 0's copy; all copies hold the same).
    pub fn fence(&self) -> Result<Fence, DataplaneError> {
        let copies = self
            .fence
            .get(&0, 0)
            .map_err(|source| DataplaneError::map_read(map::FENCE, source))?;
        Ok(copies.first().copied().unwrap_or_default())
    }

    /// Every VIP in the map with its counters summed over CPUs, sorted by place and address.
    pub fn vips(&self) -> Result<Vec<VipEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.vips.iter() {
            let (key, state) =
                item.map_err(|source| DataplaneError::map_read(map::VIPS, source))?;
            out.push(VipEntry {
                place: VipScope {
                    scope: key.scope,
                    outer_vlan: key.outer_vlan,
                    inner_vlan: key.inner_vlan,
                },
                addr: key_addr(&key),
                owned: state.owned != 0,
                virtual_mac: (state.virtual_mac != 0).then_some(state.vrid),
                index: state.index,
                counters: self.vip_counters(state.index)?,
            });
        }
        out.sort_by_key(|v| (v.place, v.addr));
        Ok(out)
    }

    /// Counters of the VIP at counter index `index`, summed over CPUs.
    pub fn vip_counters(&self, index: u32) -> Result<VipCounters, DataplaneError> {
        let per_cpu = self
            .vip_stats
            .get(&index, 0)
            .map_err(|source| DataplaneError::map_read(map::VIP_STATS, source))?;
        Ok(per_cpu.iter().fold(VipCounters::default(), |mut sum, c| {
            sum.rx_passed_packets += c.rx_passed_packets;
            sum.rx_passed_bytes += c.rx_passed_bytes;
            sum.rx_dropped_packets += c.rx_dropped_packets;
            sum.rx_dropped_bytes += c.rx_dropped_bytes;
            sum.tx_guarded_packets += c.tx_guarded_packets;
            sum.tx_guarded_bytes += c.tx_guarded_bytes;
            sum
        }))
    }

    /// Per-reason counters of one attachment slot, summed over CPUs.
    pub fn slot_counters(&self, slot: u32) -> Result<ReasonCounts, DataplaneError> {
        let per_cpu = self
            .iface_stats
            .get(&slot, 0)
            .map_err(|source| DataplaneError::map_read(map::IFACE_STATS, source))?;
        let mut packets = [0u64; REASONS];
        for c in per_cpu.iter() {
            for (sum, v) in packets.iter_mut().zip(c.packets) {
                *sum += v;
            }
        }
        Ok(ReasonCounts(packets))
    }

    /// Every attachment with its counters, sorted by namespace and ifindex.
    pub fn ifaces(&self) -> Result<Vec<IfaceEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.attachments.iter() {
            let (key, attachment) =
                item.map_err(|source| DataplaneError::map_read(map::ATTACHMENTS, source))?;
            out.push(IfaceEntry {
                netns: key.netns,
                ifindex: key.ifindex,
                attachment,
                packets: self.slot_counters(attachment.slot)?,
            });
        }
        out.sort_by_key(|e| (e.netns, e.ifindex));
        Ok(out)
    }
}

fn per_cpu_zero<T: aya::Pod + Default + Clone>() -> Result<PerCpuValues<T>, DataplaneError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::Cpus(source))?;
    PerCpuValues::try_from(vec![T::default(); cpus]).map_err(DataplaneError::Cpus)
}

/// Removing what is not there is success (aya reports it as either variant).
fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        other => other,
    }
}

/// Where the data plane's objects are pinned on bpffs.
#[derive(Clone, Debug)]
pub struct PinLayout {
    pub dir: PathBuf,
}

impl PinLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Directory of the links of one namespace's attachments.
    pub fn links_dir(&self, netns: u32) -> PathBuf {
        self.dir.join("links").join(netns.to_string())
    }

    /// Directory of one interface's links. Keyed by ifindex, not name: bpffs refuses names
    /// with a dot (`bond0.100`), and a re-created interface is a new attachment anyway.
    pub fn iface_dir(&self, netns: u32, ifindex: u32) -> PathBuf {
        self.links_dir(netns).join(ifindex.to_string())
    }

    pub fn gate_link(&self, netns: u32, ifindex: u32) -> PathBuf {
        self.iface_dir(netns, ifindex).join("gate")
    }

    pub fn guard_link(&self, netns: u32, ifindex: u32) -> PathBuf {
        self.iface_dir(netns, ifindex).join("guard")
    }

    /// What the attach turned off of the interface's VLAN offloads (a one-value array), so
    /// that detach turns exactly that back on.
    pub fn offload_record(&self, netns: u32, ifindex: u32) -> PathBuf {
        self.iface_dir(netns, ifindex).join("vlan_offload")
    }
}
