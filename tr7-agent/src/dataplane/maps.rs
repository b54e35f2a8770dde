//! Typed access to the data plane's pinned maps: ownership and segment writers, the
//! heartbeat/fence writer, and counter readers that sum the per-CPU values.

use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues};
use tr7_common::{
    FAMILY_IPV4, FAMILY_IPV6, Fence, IfaceCounters, IfaceKey, MAX_VIPS, REASONS, Reason,
    SegmentKey, VipCounters, VipKey, VipState, map,
};

use super::DataplaneError;

/// The key of a VIP in segment `segment`.
pub fn vip_key(segment: u32, addr: IpAddr) -> VipKey {
    let mut key = VipKey {
        segment,
        ..VipKey::default()
    };
    match addr {
        IpAddr::V4(a) => {
            key.family = FAMILY_IPV4;
            key.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            key.family = FAMILY_IPV6;
            key.addr = a.octets();
        }
    }
    key
}

/// The address of a VIP key.
pub fn key_addr(key: &VipKey) -> IpAddr {
    if key.family == FAMILY_IPV4 {
        IpAddr::from([key.addr[0], key.addr[1], key.addr[2], key.addr[3]])
    } else {
        IpAddr::from(key.addr)
    }
}

/// Handles on every map of the data plane, opened from their pins.
pub struct Maps {
    pub segments: HashMap<MapData, SegmentKey, u32>,
    pub vips: HashMap<MapData, VipKey, VipState>,
    pub fence: Array<MapData, Fence>,
    pub iface_stats: PerCpuHashMap<MapData, IfaceKey, IfaceCounters>,
    pub vip_stats: PerCpuArray<MapData, VipCounters>,
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
    pub segment: u32,
    pub addr: IpAddr,
    pub owned: bool,
    pub index: u32,
    pub counters: VipCounters,
}

/// Summed per-reason packet counts of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceEntry {
    pub netns: u32,
    pub ifindex: u32,
    pub packets: [u64; REASONS],
}

impl IfaceEntry {
    pub fn get(&self, reason: Reason) -> u64 {
        self.packets[reason as usize]
    }
}

impl Maps {
    /// Opens the maps pinned under `pin_dir` (see [`super::PinLayout`]).
    pub fn open(pin_dir: &Path) -> Result<Self, DataplaneError> {
        Ok(Self {
            segments: typed(pin_dir, map::SEGMENTS)?,
            vips: typed(pin_dir, map::VIPS)?,
            fence: typed(pin_dir, map::FENCE)?,
            iface_stats: typed(pin_dir, map::IFACE_STATS)?,
            vip_stats: typed(pin_dir, map::VIP_STATS)?,
        })
    }

    /// Declares that frames seen on `key` belong to segment `segment`.
    pub fn set_segment(&mut self, key: SegmentKey, segment: u32) -> Result<(), DataplaneError> {
        self.segments
            .insert(key, segment, 0)
            .map_err(|source| DataplaneError::map_write(map::SEGMENTS, source))
    }

    pub fn remove_segment(&mut self, key: &SegmentKey) -> Result<(), DataplaneError> {
        ignore_missing(self.segments.remove(key))
            .map_err(|source| DataplaneError::map_write(map::SEGMENTS, source))
    }

    /// Sets whether this node owns the VIP `addr` in `segment`, adding it if new. A new VIP
    /// gets the lowest free counter index, with its counters zeroed. This is the whole
    /// failover path of the data plane: one map write.
    pub fn set_vip(
        &mut self,
        segment: u32,
        addr: IpAddr,
        owned: bool,
    ) -> Result<VipState, DataplaneError> {
        let key = vip_key(segment, addr);
        let index = match self.vips.get(&key, 0) {
            Ok(state) => state.index,
            Err(MapError::KeyNotFound) => {
                let index = self.free_index()?;
                self.zero_vip_counters(index)?;
                index
            }
            Err(source) => return Err(DataplaneError::map_read(map::VIPS, source)),
        };
        let state = VipState {
            owned: u32::from(owned),
            index,
        };
        self.vips
            .insert(key, state, 0)
            .map_err(|source| DataplaneError::map_write(map::VIPS, source))?;
        Ok(state)
    }

    /// Writes a VIP with a caller-chosen counter index (bulk loads that number VIPs
    /// themselves). The caller keeps indexes unique and below [`MAX_VIPS`].
    pub fn set_vip_indexed(
        &mut self,
        segment: u32,
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
        let state = VipState {
            owned: u32::from(owned),
            index,
        };
        self.vips
            .insert(vip_key(segment, addr), state, 0)
            .map_err(|source| DataplaneError::map_write(map::VIPS, source))
    }

    pub fn remove_vip(&mut self, segment: u32, addr: IpAddr) -> Result<(), DataplaneError> {
        ignore_missing(self.vips.remove(&vip_key(segment, addr)))
            .map_err(|source| DataplaneError::map_write(map::VIPS, source))
    }

    fn free_index(&self) -> Result<u32, DataplaneError> {
        let used: BTreeSet<u32> = self
            .vips
            .iter()
            .filter_map(Result::ok)
            .map(|(_, state)| state.index)
            .collect();
        (0..MAX_VIPS)
            .find(|i| !used.contains(i))
            .ok_or(DataplaneError::Full {
                what: "VIP map",
                max: MAX_VIPS,
            })
    }

    fn zero_vip_counters(&mut self, index: u32) -> Result<(), DataplaneError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, source)| DataplaneError::Cpus(source))?;
        let zero = PerCpuValues::try_from(vec![VipCounters::default(); cpus])
            .map_err(DataplaneError::Cpus)?;
        self.vip_stats
            .set(index, zero, 0)
            .map_err(|source| DataplaneError::map_write(map::VIP_STATS, source))
    }

    /// Refreshes the liveness heartbeat to `now_ns` (`CLOCK_MONOTONIC`) and sets the fence
    /// interval; an interval of 0 disables the fence.
    pub fn heartbeat(&mut self, now_ns: u64, interval_ns: u64) -> Result<(), DataplaneError> {
        self.fence
            .set(
                0,
                Fence {
                    heartbeat_ns: now_ns,
                    interval_ns,
                },
                0,
            )
            .map_err(|source| DataplaneError::map_write(map::FENCE, source))
    }

    pub fn fence(&self) -> Result<Fence, DataplaneError> {
        self.fence
            .get(&0, 0)
            .map_err(|source| DataplaneError::map_read(map::FENCE, source))
    }

    /// Every VIP in the map with its counters summed over CPUs, sorted by segment and address.
    pub fn vips(&self) -> Result<Vec<VipEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.vips.iter() {
            let (key, state) =
                item.map_err(|source| DataplaneError::map_read(map::VIPS, source))?;
            out.push(VipEntry {
                segment: key.segment,
                addr: key_addr(&key),
                owned: state.owned != 0,
                index: state.index,
                counters: self.vip_counters(state.index)?,
            });
        }
        out.sort_by_key(|v| (v.segment, v.addr));
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

    /// Per-interface counters summed over CPUs, sorted by namespace and ifindex.
    pub fn ifaces(&self) -> Result<Vec<IfaceEntry>, DataplaneError> {
        let mut out = Vec::new();
        for item in self.iface_stats.iter() {
            let (key, per_cpu) =
                item.map_err(|source| DataplaneError::map_read(map::IFACE_STATS, source))?;
            let mut packets = [0u64; REASONS];
            for c in per_cpu.iter() {
                for (sum, v) in packets.iter_mut().zip(c.packets) {
                    *sum += v;
                }
            }
            out.push(IfaceEntry {
                netns: key.netns,
                ifindex: key.ifindex,
                packets,
            });
        }
        out.sort_by_key(|e| (e.netns, e.ifindex));
        Ok(out)
    }

    /// Counters of one interface; all zero when it has seen no frame yet.
    pub fn iface(&self, netns: u32, ifindex: u32) -> Result<IfaceEntry, DataplaneError> {
        Ok(self
            .ifaces()?
            .into_iter()
            .find(|e| e.netns == netns && e.ifindex == ifindex)
            .unwrap_or(IfaceEntry {
                netns,
                ifindex,
                packets: [0; REASONS],
            }))
    }
}

fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
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
}
