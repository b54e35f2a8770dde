//! The ABI shared by TR7's eBPF programs and user space: map names, map keys and values,
//! counter indices. Every type is `#[repr(C)]`, `Copy`, has no `bool` and no implicit padding,
//! and its size is asserted at compile time, because both sides read the same bytes.
#![no_std]

/// Names of the programs in the eBPF object.
pub mod program {
    /// XDP ingress: drops traffic, ARP and NS for VIPs this node does not own.
    pub const GATE: &str = "tr7_gate";
    /// TC egress: drops frames that would speak for a VIP this node does not own.
    pub const GUARD: &str = "tr7_guard";
    /// fexit on `netif_carrier_off` (the carrier object, `tr7-carrier`).
    pub const CARRIER_OFF: &str = "tr7_carrier_off";
    /// fexit on `netif_carrier_on`.
    pub const CARRIER_ON: &str = "tr7_carrier_on";
}

/// Names of the maps in the eBPF object. They are pinned by these names.
pub mod map {
    /// Array of [`crate::VipSlot`]: the open-addressing VIP table the programs look VIPs up
    /// in (see [`crate::vip_home`]). (Named apart from the `TR7_VIP_TABLE` of earlier
    /// builds, which placed keys by another hash: a new program must not adopt it.)
    pub const VIP_TABLE: &str = "TR7_VIP_SLOTS";
    /// Pins of maps earlier builds made and this one replaced under a new name. The agent
    /// removes them; programs still using such a map keep it until they are replaced.
    pub const RETIRED: &[&str] = &["TR7_VIP_TABLE", "TR7_FENCE"];
    /// [`crate::VipKey`] → [`crate::VipState`]: the directory of VIPs, for user space
    /// (listing, counter indexes). The programs never read it.
    pub const VIPS: &str = "TR7_VIPS";
    /// Per-CPU array, index 0 → [`crate::Fence`]: the agent's heartbeat and the fence
    /// interval, with each CPU's cached verdict. (Named apart from the single-copy
    /// `TR7_FENCE` of earlier builds, whose pin a new program must not adopt.)
    pub const FENCE: &str = "TR7_FENCE_CPU";
    /// Per-CPU array, attachment slot ([`crate::Attachment::slot`]) → [`crate::IfaceCounters`].
    pub const IFACE_STATS: &str = "TR7_IFACE_STATS";
    /// Per-CPU array, VIP index ([`crate::VipState::index`]) → [`crate::VipCounters`].
    pub const VIP_STATS: &str = "TR7_VIP_STATS";
    /// [`crate::IfaceKey`] → [`crate::Attachment`]: which counter slot and scope each
    /// attachment was given. Written and read by user space only.
    pub const ATTACHMENTS: &str = "TR7_ATTACHMENTS";
    /// Array of [`crate::VmacState`], indexed by [`crate::vmac_index`]: the virtual MACs
    /// each attachment answers to, and whether this node owns them now.
    pub const VMACS: &str = "TR7_VMACS";
    /// Ring buffer of [`crate::CarrierEvent`] (the carrier object; not pinned).
    pub const CARRIER_EVENTS: &str = "CARRIER_EVENTS";
}

/// Globals set by the loader in each program instance. One instance is loaded per attached
/// interface, so these are constants to the verifier and the JIT: the hot path spends no
/// map lookup on finding out where it runs.
pub mod global {
    /// `u32`: the scope of the VIPs this attachment serves ([`crate::VipKey::scope`]).
    pub const SCOPE: &str = "TR7_SCOPE";
    /// `u32`: this attachment's row in the per-interface counters.
    pub const SLOT: &str = "TR7_SLOT";
    /// `u32`: offset of `ifindex` in the kernel's `struct net_device` (carrier object),
    /// found in the running kernel's BTF.
    pub const IFINDEX_OFFSET: &str = "TR7_IFINDEX_OFFSET";
}

/// Capacity of the VIP directory and of the per-VIP counter array.
pub const MAX_VIPS: u32 = 131_072;
/// Slots of the VIP table: a power of two, four times [`MAX_VIPS`], so the table is at most
/// a quarter full and linear-probe runs stay short (20 MiB at 40 bytes a slot).
pub const VIP_TABLE_SIZE: u32 = 1 << VIP_TABLE_BITS;
/// A VIP sits at most this many slots after its home slot ([`vip_home`]);
/// lookups stop there, and an insert that finds no free slot within it fails. At a quarter
/// load a run this long is vanishingly rare; lookups usually end after one or two slots.
pub const VIP_TABLE_PROBES: u32 = 32;
/// [`VipSlot::flags`]: never used. A lookup stops here.
pub const SLOT_EMPTY: u32 = 0;
/// [`VipSlot::flags`]: holds a VIP.
pub const SLOT_USED: u32 = 1;
/// [`VipSlot::flags`]: held a VIP that was removed. A lookup probes on; an insert may reuse it.
pub const SLOT_TOMBSTONE: u32 = 2;
/// Capacity of the per-attachment counters and of the attachment table.
pub const MAX_ATTACHMENTS: u32 = 1_024;

/// Address family of a [`VipKey`].
pub const FAMILY_IPV4: u8 = 4;
/// Address family of a [`VipKey`].
pub const FAMILY_IPV6: u8 = 6;

/// Marks a VLAN id in [`VipKey`] that came with an 802.1ad (S-tag, 0x88a8) TPID rather
/// than 802.1Q (0x8100): a trunk configured for one must not match frames tagged the other way.
pub const VLAN_8021AD: u16 = 0x8000;
/// The VLAN id bits of a tag's TCI.
pub const VLAN_VID_MASK: u16 = 0x0fff;

/// A VIP as the data plane sees it: the scope it lives in, the VLAN tags it is reached
/// with, and its address. The same address may be a VIP in two VLANs or two namespaces at
/// once, owned differently: the scope and tags keep them apart.
///
/// A scope is a number the agent gives each L2 domain of its model (an interface with its
/// ports, in its namespace); every port of that domain is attached with the same scope, so a
/// VIP has one entry however many ports reach it, and a takeover is one map write per VIP.
/// The address is kept as four words holding the network-order bytes in memory order
/// (`u32::from_ne_bytes` of each 4-byte chunk, see [`VipKey::addr_words`]): what 32-bit
/// loads from the packet give, so the data plane builds, hashes and compares keys word by
/// word. IPv4 addresses occupy the first word, the rest zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    pub scope: u32,
    /// VID of the outer tag, with [`VLAN_8021AD`] set for an S-tag; 0 when untagged.
    pub outer_vlan: u16,
    /// VID of the inner tag; 0 when there is at most one tag.
    pub inner_vlan: u16,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    pub _pad: [u8; 3],
    /// The address bytes in network order, as four words (see above).
    pub addr: [u32; 4],
}

impl VipKey {
    /// The words of `addr` for a 16-byte address (IPv4: its 4 bytes, then zeros).
    pub const fn addr_words(bytes: &[u8; 16]) -> [u32; 4] {
        let b = bytes;
        [
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        ]
    }

    /// The address bytes of `addr`, in network order.
    pub const fn addr_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            let w = self.addr[i].to_ne_bytes();
            out[4 * i] = w[0];
            out[4 * i + 1] = w[1];
            out[4 * i + 2] = w[2];
            out[4 * i + 3] = w[3];
            i += 1;
        }
        out
    }
}

/// Whether this node owns a VIP, which link-layer address it speaks with, and where its
/// counters live.
///
/// The layout keeps `owned` in the first byte, where the earlier `owned: u32` had its
/// value: entries pinned by an older agent read as "interface MAC", which is what they were.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipState {
    /// 1 when this node answers for the VIP, 0 when it must stay silent.
    pub owned: u8,
    /// 1 when the VIP speaks with the VRRP virtual MAC of `vrid` (RFC 9568 7.3): the guard
    /// gives the frames that speak for it, while owned, that source MAC (and ARP sender /
    /// neighbour discovery link-layer address). 0: the interface MAC, untouched.
    pub virtual_mac: u8,
    /// The virtual router the VIP belongs to; meaningful with `virtual_mac`.
    pub vrid: u8,
    pub _pad: u8,
    /// Index into the per-VIP counter array; below [`MAX_VIPS`].
    pub index: u32,
}

/// The first four bytes of every VRRP virtual MAC, 00-00-5E-00 (RFC 9568 7.3).
pub const VMAC_PREFIX: [u8; 4] = [0x00, 0x00, 0x5e, 0x00];
/// The fifth byte of an IPv4 virtual router's MAC (00-00-5E-00-01-{VRID}).
pub const VMAC_IPV4: u8 = 0x01;
/// The fifth byte of an IPv6 virtual router's MAC (00-00-5E-00-02-{VRID}).
pub const VMAC_IPV6: u8 = 0x02;

/// The virtual MAC of `vrid` for `family` ([`FAMILY_IPV4`] or [`FAMILY_IPV6`]).
#[inline(always)]
pub const fn vmac(family: u8, vrid: u8) -> [u8; 6] {
    let kind = if family == FAMILY_IPV6 {
        VMAC_IPV6
    } else {
        VMAC_IPV4
    };
    [
        VMAC_PREFIX[0],
        VMAC_PREFIX[1],
        VMAC_PREFIX[2],
        VMAC_PREFIX[3],
        kind,
        vrid,
    ]
}

/// Rows of [`map::VMACS`] per attachment: one per (family, VRID).
pub const VMACS_PER_ATTACHMENT: u32 = 512;
/// Entries of [`map::VMACS`].
pub const VMACS_SIZE: u32 = MAX_ATTACHMENTS * VMACS_PER_ATTACHMENT;

/// The row of [`map::VMACS`] for a virtual MAC seen on attachment `slot`
/// ([`Attachment::slot`]). Out of range (never a valid row) when `slot` is.
#[inline(always)]
pub const fn vmac_index(slot: u32, family: u8, vrid: u8) -> u32 {
    let half = if family == FAMILY_IPV6 { 256 } else { 0 };
    slot.wrapping_mul(VMACS_PER_ATTACHMENT) + half + vrid as u32
}

/// [`VmacState::state`]: no virtual router of this node uses the MAC on this attachment;
/// frames to it pass untouched (and the kernel discards them as not for this host).
pub const VMAC_UNUSED: u8 = 0;
/// The virtual router is backup here: frames to its MAC are dropped.
pub const VMAC_BACKUP: u8 = 1;
/// The virtual router is master here: frames to its MAC are given the interface MAC as
/// destination (so the stack takes them as its own), then judged like any other frame, and
/// its adverts leave with the virtual MAC as source.
pub const VMAC_OWNED: u8 = 2;

/// One virtual MAC on one attachment.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VmacState {
    /// The MAC of the interface the VIPs live on: the destination a frame to the virtual
    /// MAC is rewritten to.
    pub iface_mac: [u8; 6],
    /// [`VMAC_UNUSED`], [`VMAC_BACKUP`] or [`VMAC_OWNED`].
    pub state: u8,
    pub _pad: u8,
}

/// One slot of the VIP table.
///
/// The table lives in an array map because array lookups are inlined by the verifier: a
/// hash map lookup is a chain of kernel function calls, and with return-thunk mitigations
/// (AMD SRSO, retbleed) each return costs more than the rest of the gate together
/// (docs/performance.md).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipSlot {
    pub key: VipKey,
    pub state: VipState,
    /// [`SLOT_EMPTY`], [`SLOT_USED`] or [`SLOT_TOMBSTONE`].
    pub flags: u32,
}

/// log2 of [`VIP_TABLE_SIZE`].
pub const VIP_TABLE_BITS: u32 = 19;

impl VipKey {
    /// The key as the four 64-bit words its memory holds (the last one half used): what the
    /// data plane hashes and compares, so a key is built once, in registers.
    #[inline(always)]
    pub const fn words(&self) -> [u64; 4] {
        let a = &self.addr;
        [
            self.scope as u64 | (self.outer_vlan as u64) << 32 | (self.inner_vlan as u64) << 48,
            self.family as u64
                | (self._pad[0] as u64) << 8
                | (self._pad[1] as u64) << 16
                | (self._pad[2] as u64) << 24
                | (a[0] as u64) << 32,
            a[1] as u64 | (a[2] as u64) << 32,
            a[3] as u64,
        ]
    }
}

/// The home slot of a key in the VIP table. Kernel and user space must agree bit for bit:
/// both call this. Each word of the key is multiplied by its own odd constant and the
/// products summed (independent multiplies, so the data plane pays about two multiply
/// latencies); the slot is the top [`VIP_TABLE_BITS`] bits of the sum, which every bit of
/// the key reaches (multiplicative hashing). Both sides run little-endian (x86_64 and
/// `bpfel`), so the words agree.
#[inline(always)]
pub const fn vip_home(key: &VipKey) -> u32 {
    let [w0, w1, w2, w3] = key.words();
    let h = w0
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(w1.wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        .wrapping_add(w2.wrapping_mul(0x1656_67b1_9e37_79f9))
        .wrapping_add(w3.wrapping_mul(0x85eb_ca77_c2b2_ae63));
    (h >> (64 - VIP_TABLE_BITS)) as u32
}

/// The liveness fence: when `now - heartbeat_ns > interval_ns`, every VIP counts as not
/// owned, so a dead agent cannot keep claiming VIPs its peer has taken over.
/// Times are `CLOCK_MONOTONIC` nanoseconds (what `bpf_ktime_get_ns` returns).
///
/// The map holds one copy per CPU, all written together by the agent, so that each CPU
/// also keeps its last verdict next to them ([`Fence::verdict`]) and a frame costs one
/// lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fence {
    pub heartbeat_ns: u64,
    /// 0 disables the fence.
    pub interval_ns: u64,
    /// The programs' verdict on this CPU, valid for one tick: `jiffies << 1 | fenced`, from
    /// the first frame of the tick. 0 (what every agent write leaves) means none yet, so a
    /// new heartbeat or interval counts from the next frame on. Never 0 once set: jiffies
    /// start above zero.
    pub verdict: u64,
}

/// An attached interface: its namespace (inode) and ifindex.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct IfaceKey {
    pub netns: u32,
    pub ifindex: u32,
}

/// What an attachment was loaded with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// Row of [`map::IFACE_STATS`], below [`MAX_ATTACHMENTS`].
    pub slot: u32,
    pub scope: u32,
}

/// Why a frame was passed or dropped. Every verdict increments exactly one reason.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Ingress to a VIP this node owns.
    PassedOwned = 0,
    /// Not addressed to any VIP (ordinary traffic, or a VLAN without VIPs).
    PassedNotVip = 1,
    /// Neither IPv4, IPv6 nor ARP (after VLAN tags).
    PassedOtherProtocol = 2,
    /// Ingress IP traffic to a VIP this node does not own.
    DroppedNotOwned = 3,
    /// ARP for a VIP this node does not own.
    ArpSuppressed = 4,
    /// Neighbour solicitation for a VIP this node does not own.
    NdSuppressed = 5,
    /// Egress frame speaking for a VIP this node does not own.
    EgressGuarded = 6,
    /// Truncated or inconsistent headers: passed to the kernel untouched.
    Malformed = 7,
    /// Dropped because the agent's heartbeat is older than the fence.
    Fenced = 8,
    /// Egress frame that does not speak for any VIP, or for one this node owns.
    EgressPassed = 9,
}

/// Number of [`Reason`] values; the length of [`IfaceCounters::packets`].
pub const REASONS: usize = 10;

impl Reason {
    pub const ALL: [Reason; REASONS] = [
        Reason::PassedOwned,
        Reason::PassedNotVip,
        Reason::PassedOtherProtocol,
        Reason::DroppedNotOwned,
        Reason::ArpSuppressed,
        Reason::NdSuppressed,
        Reason::EgressGuarded,
        Reason::Malformed,
        Reason::Fenced,
        Reason::EgressPassed,
    ];

    /// The label used in metrics and CLI output.
    pub const fn label(self) -> &'static str {
        match self {
            Reason::PassedOwned => "passed_owned",
            Reason::PassedNotVip => "passed_not_vip",
            Reason::PassedOtherProtocol => "passed_other_protocol",
            Reason::DroppedNotOwned => "dropped_not_owned",
            Reason::ArpSuppressed => "arp_suppressed",
            Reason::NdSuppressed => "nd_suppressed",
            Reason::EgressGuarded => "egress_guarded",
            Reason::Malformed => "malformed",
            Reason::Fenced => "fenced",
            Reason::EgressPassed => "egress_passed",
        }
    }

    /// Whether the frame was dropped for this reason.
    pub const fn is_drop(self) -> bool {
        matches!(
            self,
            Reason::DroppedNotOwned
                | Reason::ArpSuppressed
                | Reason::NdSuppressed
                | Reason::EgressGuarded
                | Reason::Fenced
        )
    }
}

/// Packets per [`Reason`] on one interface (per CPU in the map; summed by user space).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    pub packets: [u64; REASONS],
}

/// Traffic of one VIP (per CPU in the map; summed by user space).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipCounters {
    pub rx_passed_packets: u64,
    pub rx_passed_bytes: u64,
    pub rx_dropped_packets: u64,
    pub rx_dropped_bytes: u64,
    pub tx_guarded_packets: u64,
    pub tx_guarded_bytes: u64,
}

/// One carrier change, from the fexit programs on `netif_carrier_off`/`netif_carrier_on`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CarrierEvent {
    /// `dev->ifindex` (in the device's own namespace).
    pub ifindex: u32,
    /// 1: `netif_carrier_on`, 0: `netif_carrier_off`.
    pub carrier: u32,
}

const _: () = {
    assert!(core::mem::size_of::<CarrierEvent>() == 8);
    assert!(core::mem::size_of::<VipKey>() == 28);
    assert!(core::mem::size_of::<Attachment>() == 8);
    assert!(core::mem::size_of::<VipState>() == 8);
    assert!(core::mem::size_of::<VmacState>() == 8);
    assert!(core::mem::size_of::<VipSlot>() == 40);
    assert!(VIP_TABLE_SIZE.is_power_of_two() && VIP_TABLE_SIZE >= 4 * MAX_VIPS);
    assert!(core::mem::size_of::<Fence>() == 24);
    assert!(core::mem::size_of::<IfaceKey>() == 8);
    assert!(core::mem::size_of::<IfaceCounters>() == 8 * REASONS);
    assert!(core::mem::size_of::<VipCounters>() == 48);
};

#[cfg(feature = "user")]
mod pod {
    //! The types are plain old data: `repr(C)`, no padding (asserted above), every bit
    //! pattern valid.
    use super::*;

    // SAFETY: repr(C), integer fields only, sizes asserted equal to the sum of the fields.
    unsafe impl aya::Pod for VipKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Attachment {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VipState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VipSlot {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Fence {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VmacState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for IfaceKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for IfaceCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VipCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for CarrierEvent {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;

    /// The longest probe run (slots past the home slot) when `keys` go into an empty table
    /// with linear probing, as the agent inserts them.
    fn longest_run(keys: impl Iterator<Item = VipKey>) -> u32 {
        let mut used = vec![false; VIP_TABLE_SIZE as usize];
        let mut longest = 0;
        for key in keys {
            let home = vip_home(&key);
            let run = (0..VIP_TABLE_SIZE)
                .find(|i| !used[(home.wrapping_add(*i) & (VIP_TABLE_SIZE - 1)) as usize])
                .expect("table full");
            used[(home.wrapping_add(run) & (VIP_TABLE_SIZE - 1)) as usize] = true;
            longest = longest.max(run);
        }
        longest
    }

    fn key(scope: u32, vlan: u16, family: u8, addr: [u8; 16]) -> VipKey {
        VipKey {
            scope,
            outer_vlan: vlan,
            inner_vlan: 0,
            family,
            _pad: [0; 3],
            addr: VipKey::addr_words(&addr),
        }
    }

    /// Map keys only (nothing is configured or sent): a directory's worth of consecutive
    /// IPv4 addresses does not fit the documentation ranges.
    fn v4(n: u32) -> [u8; 16] {
        let mut a = [0; 16];
        a[..4].copy_from_slice(&0xc000_0000u32.wrapping_add(n).to_be_bytes());
        a
    }

    fn v6(n: u32) -> [u8; 16] {
        let mut a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        a[12..].copy_from_slice(&n.to_be_bytes());
        a
    }

    /// A full directory of the address plans operators use (consecutive addresses, one
    /// scope; the same addresses in many VLANs or scopes), and one scattered like random
    /// addresses, fills the table with runs far below the probe limit, so an insert never
    /// fails for want of a slot.
    #[test]
    fn realistic_vip_sets_leave_short_probe_runs() {
        let n = MAX_VIPS;
        let sets: Vec<(&str, Vec<VipKey>)> = vec![
            (
                "consecutive IPv4",
                (0..n).map(|i| key(1, 0, FAMILY_IPV4, v4(i))).collect(),
            ),
            (
                "consecutive IPv6",
                (0..n).map(|i| key(1, 0, FAMILY_IPV6, v6(i))).collect(),
            ),
            (
                "scattered IPv4",
                (0..n)
                    .map(|i| key(1, 0, FAMILY_IPV4, v4(i.wrapping_mul(0x9e37_79b1))))
                    .collect(),
            ),
            (
                "IPv4 x 1024 VLANs",
                (0..n)
                    .map(|i| key(1, (i % 1024) as u16 + 1, FAMILY_IPV4, v4(i / 1024)))
                    .collect(),
            ),
            (
                "IPv6 x 512 scopes",
                (0..n)
                    .map(|i| key(i % 512, 0, FAMILY_IPV6, v6(i / 512)))
                    .collect(),
            ),
        ];
        for (name, keys) in sets {
            let longest = longest_run(keys.into_iter());
            std::println!("{name}: longest probe run {longest} of {VIP_TABLE_PROBES}");
            assert!(
                longest < VIP_TABLE_PROBES / 2,
                "{name}: a run of {longest} slots (limit {VIP_TABLE_PROBES})"
            );
        }
    }
}
