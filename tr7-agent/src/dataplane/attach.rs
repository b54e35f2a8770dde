//! Loading the eBPF object and attaching the gate (XDP) and guard (TC egress, TCX) to an
//! interface, with their bpf_links pinned so the attachment outlives this process.
//!
//! One program instance is loaded per attached interface, with the interface's scope and
//! counter slot baked in as globals: the hot path then spends no lookup on where it runs.
//! A second attach adopts what it finds: maps are reused from their pins with their contents
//! (aya's pin-by-name); a pinned link running the same program (kernel program tag) with the
//! same scope and slot is kept as it is, any other is switched atomically to the new
//! instance (`bpf_link_update`). Neither drops a frame.

use std::{io, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, MapInfo},
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
};
use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
use tr7_common::{IfaceKey, global, map, program};

use super::{
    DataplaneError,
    maps::{Maps, PinLayout},
    object::OBJECT,
    vlan_offload::{self, OffloadChange, OffloadRestore},
};
use crate::netns;

/// How the gate runs on an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpAttachMode {
    /// Native where the driver supports it, generic otherwise (the kernel decides).
    #[default]
    Auto,
    /// In the driver: fastest; fails where the driver has no XDP support.
    Native,
    /// In the kernel's generic receive path: works on every interface.
    Generic,
}

impl XdpAttachMode {
    fn flags(self) -> XdpMode {
        match self {
            XdpAttachMode::Auto => XdpMode::Default,
            XdpAttachMode::Native => XdpMode::Driver,
            XdpAttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// The per-instance constants of a program instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    pub scope: u32,
    pub slot: u32,
}

/// What attaching one program to an interface did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachOutcome {
    /// Nothing was attached; a new link was created and pinned.
    Attached,
    /// A pinned link ran the same program with the same scope and slot: left as it was.
    Adopted,
    /// A pinned link ran another version or configuration: switched atomically to this one.
    Replaced,
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    pub netns: u32,
    pub scope: u32,
    pub slot: u32,
    pub gate: AttachOutcome,
    pub guard: AttachOutcome,
    /// VLAN offloads turned off so tags stay in the frame (this interface, and a veth's
    /// other end); empty when they already were off.
    pub vlan_offload: Vec<OffloadChange>,
}

/// One loaded instance of the gate and guard, sharing the pinned maps.
pub struct Programs {
    ebpf: Ebpf,
}

/// Mounts bpffs on /sys/fs/bpf when nothing is mounted there (minimal hosts and containers);
/// pins need it.
pub fn ensure_bpffs() -> Result<(), DataplaneError> {
    let root = Path::new("/sys/fs/bpf");
    let is_bpffs = statfs(root).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC);
    if is_bpffs {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        root,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| DataplaneError::io(root, io::Error::from(e)))?;
    tracing::info!(path = %root.display(), "mounted bpffs");
    Ok(())
}

fn loader(pin_dir: &Path) -> Result<EbpfLoader<'_>, DataplaneError> {
    if OBJECT.is_empty() {
        return Err(DataplaneError::NoObject);
    }
    ensure_bpffs()?;
    check_pins(pin_dir)?;
    std::fs::create_dir_all(pin_dir).map_err(|e| DataplaneError::io(pin_dir, e))?;
    retire_pins(pin_dir)?;
    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(pin_dir);
    Ok(loader)
}

/// Refuses, before anything is created or loaded, a pinned map whose type or sizes differ
/// from this build's map of that name. aya opens whatever is pinned under a name, so such a
/// map would otherwise reach the verifier (an obscure refusal) or the programs. (A map whose
/// meaning changes while its shape stays gets a new name: `tr7_common::map::RETIRED`.)
fn check_pins(pin_dir: &Path) -> Result<(), DataplaneError> {
    let object = aya_obj::Object::parse(OBJECT).map_err(|e| DataplaneError::Object(Box::new(e)))?;
    for (name, def) in &object.maps {
        let path = pin_dir.join(name);
        if def.pinning() != aya_obj::maps::PinningType::ByName || !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|source| DataplaneError::OpenMap {
            path: path.clone(),
            source,
        })?;
        let have_type = info.map_type().map_or(u32::MAX, |t| t as u32);
        let shape = |ty: u32, key: u32, value: u32, entries: u32| {
            format!("map type {ty}, key {key} B, value {value} B, {entries} entries")
        };
        let want = shape(
            def.map_type(),
            def.key_size(),
            def.value_size(),
            def.max_entries(),
        );
        let have = shape(
            have_type,
            info.key_size(),
            info.value_size(),
            info.max_entries(),
        );
        if have != want {
            return Err(DataplaneError::PinLayout {
                path,
                name: name.clone(),
                have,
                want,
            });
        }
    }
    Ok(())
}

/// Removes the pins of maps an earlier build made under names this one no longer uses
/// (`tr7_common::map::RETIRED`: a layout this build's programs must not adopt). Programs
/// still using such a map keep it; nothing of this build reads it.
fn retire_pins(pin_dir: &Path) -> Result<(), DataplaneError> {
    for name in map::RETIRED {
        let path = pin_dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                pin = %path.display(),
                "removed the pin of a map an earlier build used (this build has its own, fresh)"
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(DataplaneError::io(&path, e)),
        }
    }
    Ok(())
}

/// Creates the pinned maps under `pin_dir` where they do not exist yet (loading no
/// program), and opens them.
pub fn create_maps(pin_dir: &Path) -> Result<Maps, DataplaneError> {
    let ebpf = loader(pin_dir)?
        .load(OBJECT)
        .map_err(|e| DataplaneError::Load(Box::new(e)))?;
    drop(ebpf);
    Maps::open(pin_dir)
}

fn program_tag(id: u32) -> Option<u64> {
    loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .map(|p| p.tag())
}

impl Programs {
    /// Loads one instance of the programs with `globals`, creating the maps or reusing the
    /// pinned ones under `pin_dir`. Loading runs the kernel verifier; nothing is attached.
    pub fn load(pin_dir: &Path, globals: Globals) -> Result<Self, DataplaneError> {
        let mut ebpf = loader(pin_dir)?
            .override_global(global::SCOPE, &globals.scope, true)
            .override_global(global::SLOT, &globals.slot, true)
            .load(OBJECT)
            .map_err(|e| DataplaneError::Load(Box::new(e)))?;
        let gate: &mut Xdp = program_mut(&mut ebpf, program::GATE)?;
        gate.load().map_err(|source| DataplaneError::Program {
            name: program::GATE,
            source,
        })?;
        let guard: &mut SchedClassifier = program_mut(&mut ebpf, program::GUARD)?;
        guard.load().map_err(|source| DataplaneError::Program {
            name: program::GUARD,
            source,
        })?;
        Ok(Self { ebpf })
    }

    /// The gate program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn gate(&mut self) -> Result<&mut Xdp, DataplaneError> {
        program_mut(&mut self.ebpf, program::GATE)
    }

    /// The guard program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn guard(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, program::GUARD)
    }
}

/// Attaches the gate to `iface`'s ingress and the guard to its egress, serving the VIPs of
/// `scope`. `netns` names the interface's namespace (`ip netns` name; `None`: the caller's).
/// Only the link creation runs inside that namespace; pins are made from the caller's, as
/// bpffs is shared by all network namespaces of a mount namespace.
pub fn attach(
    pin_dir: &Path,
    iface: &str,
    netns: Option<&str>,
    scope: u32,
    mode: XdpAttachMode,
) -> Result<Attachment, DataplaneError> {
    let netns_id = netns::inode(netns)?;
    let ifindex = netns::within(netns, || nix::net::if_::if_nametoindex(iface))?.map_err(|_| {
        DataplaneError::NoInterface {
            iface: iface.to_owned(),
        }
    })?;
    let mut maps = create_maps(pin_dir)?;
    let key = IfaceKey {
        netns: netns_id,
        ifindex,
    };
    let before = maps.attachment(key)?;
    let att = maps.reserve_attachment(key, scope)?;
    let unchanged = before == Some(att);
    let mut programs = Programs::load(
        pin_dir,
        Globals {
            scope,
            slot: att.slot,
        },
    )?;

    // Tags hidden in skb metadata would be keyed as untagged: keep them in the frame first.
    let offload = vlan_offload::keep_tags_in_frames(iface, ifindex, netns)?;

    let layout = PinLayout::new(pin_dir);
    let dir = layout.iface_dir(netns_id, ifindex);
    std::fs::create_dir_all(&dir).map_err(|e| DataplaneError::io(&dir, e))?;
    record_offload(
        &layout.offload_record(netns_id, ifindex),
        vlan_offload::record(&offload),
    )?;
    let gate = attach_pinned(
        programs.gate()?,
        &layout.gate_link(netns_id, ifindex),
        unchanged,
        |p| netns::within(netns, || p.attach_to_if_index(ifindex, mode.flags())),
        |p, link: XdpLink| p.attach_to_link(link),
        |p, id| p.take_link(id),
        program::GATE,
    )?;
    let guard = attach_pinned(
        programs.guard()?,
        &layout.guard_link(netns_id, ifindex),
        unchanged,
        |p| {
            netns::within(netns, || {
                p.attach_with_options(
                    iface,
                    TcAttachType::Egress,
                    TcAttachOptions::TcxOrder(LinkOrder::default()),
                )
            })
        },
        |p, link: SchedClassifierLink| p.attach_to_link(link),
        |p, id| p.take_link(id),
        program::GUARD,
    )?;
    tracing::info!(
        iface,
        ifindex,
        netns = netns_id,
        scope,
        slot = att.slot,
        ?gate,
        ?guard,
        ?mode,
        "data plane attached"
    );
    Ok(Attachment {
        iface: iface.to_owned(),
        ifindex,
        netns: netns_id,
        scope,
        slot: att.slot,
        gate,
        guard,
        vlan_offload: offload,
    })
}

/// What [`detach`] found and undid.
#[derive(Debug, Default)]
pub struct Detachment {
    /// Whether the gate or the guard was attached.
    pub found: bool,
    /// The VLAN offloads the attach had turned off, turned back on.
    pub vlan_offload: Vec<OffloadRestore>,
}

/// Removes the gate and guard from `iface` (in `ip netns` namespace `netns`, `None`: the
/// caller's) by unpinning their links (the kernel detaches a link when its last reference
/// goes), turns back on the VLAN offloads the attach turned off, and frees the counter slot.
pub fn detach(
    pin_dir: &Path,
    iface: &str,
    netns: Option<&str>,
) -> Result<Detachment, DataplaneError> {
    let netns_id = netns::inode(netns)?;
    let ifindex = netns::within(netns, || nix::net::if_::if_nametoindex(iface))?.map_err(|_| {
        DataplaneError::NoInterface {
            iface: iface.to_owned(),
        }
    })?;
    let layout = PinLayout::new(pin_dir);
    let mut done = Detachment::default();
    let dir = layout.iface_dir(netns_id, ifindex);
    for path in [
        layout.gate_link(netns_id, ifindex),
        layout.guard_link(netns_id, ifindex),
    ] {
        if !path.exists() {
            continue;
        }
        let link = PinnedLink::from_pin(&path).map_err(|source| DataplaneError::Link {
            path: path.clone(),
            source,
        })?;
        drop(link.unpin().map_err(|e| DataplaneError::io(&path, e))?);
        done.found = true;
    }
    // Only once the gate is gone: with the offloads back on, it would key tagged frames as
    // untagged.
    let record = layout.offload_record(netns_id, ifindex);
    if record.exists() {
        let bits = offload_bits(&offload_record(&record)?)?;
        done.vlan_offload = vlan_offload::restore(iface, ifindex, netns, bits)?;
        std::fs::remove_file(&record).map_err(|e| DataplaneError::io(&record, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir(&dir).map_err(|e| DataplaneError::io(&dir, e))?;
    }
    if let Ok(mut maps) = Maps::open(pin_dir) {
        maps.release_attachment(IfaceKey {
            netns: netns_id,
            ifindex,
        })?;
    }
    Ok(done)
}

/// Adds `bits` ([`vlan_offload::record`]) to the offload record of an attachment, a
/// one-value array pinned beside its links. Bits are only added: a second attach finds the
/// features off already and turns nothing off, and the first one's record must survive it.
fn record_offload(path: &Path, bits: u32) -> Result<(), DataplaneError> {
    if !path.exists() {
        let record = Array::<MapData, u32>::create(1, 0)
            .map_err(|source| DataplaneError::map_write(OFFLOAD_RECORD, source))?;
        record.pin(path).map_err(|source| DataplaneError::Pin {
            path: path.to_owned(),
            source,
        })?;
    }
    let mut record = offload_record(path)?;
    let old = offload_bits(&record)?;
    if old | bits != old {
        record
            .set(0, old | bits, 0)
            .map_err(|source| DataplaneError::map_write(OFFLOAD_RECORD, source))?;
    }
    Ok(())
}

const OFFLOAD_RECORD: &str = "VLAN offload record";

fn offload_bits(record: &Array<MapData, u32>) -> Result<u32, DataplaneError> {
    record
        .get(&0, 0)
        .map_err(|source| DataplaneError::map_read(OFFLOAD_RECORD, source))
}

fn offload_record(path: &Path) -> Result<Array<MapData, u32>, DataplaneError> {
    let open = |source| DataplaneError::OpenMap {
        path: path.to_owned(),
        source,
    };
    let data = MapData::from_pin(path).map_err(open)?;
    Array::try_from(Map::from_map_data(data).map_err(open)?).map_err(open)
}

fn program_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DataplaneError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?;
    prog.try_into()
        .map_err(|source| DataplaneError::Program { name, source })
}

/// Attach-or-adopt for one program and its link pin. `same_config`: the attachment keeps
/// the scope and slot it had, so an identical program may be left running.
fn attach_pinned<P, L, Id>(
    prog: &mut P,
    pin: &Path,
    same_config: bool,
    attach_new: impl FnOnce(
        &mut P,
    ) -> Result<Result<Id, aya::programs::ProgramError>, netns::NetnsError>,
    attach_to_link: impl FnOnce(&mut P, L) -> Result<Id, aya::programs::ProgramError>,
    take_link: impl FnOnce(&mut P, Id) -> Result<L, aya::programs::ProgramError>,
    name: &'static str,
) -> Result<AttachOutcome, DataplaneError>
where
    P: ProgramTag,
    L: TryFrom<FdLink, Error = LinkError> + TryInto<FdLink, Error = LinkError>,
{
    let program_err = |source| DataplaneError::Program { name, source };
    let link_err = |source| DataplaneError::Link {
        path: pin.to_owned(),
        source,
    };
    // A missing pin is the normal first attach; ask the file system rather than interpret
    // BPF_OBJ_GET's errno.
    if pin.exists() {
        let pinned = FdLink::from(PinnedLink::from_pin(pin).map_err(link_err)?);
        let old_prog = pinned.info().map_err(link_err)?.program_id();
        let new_tag = prog.tag().map_err(program_err)?;
        if same_config && program_tag(old_prog) == Some(new_tag) {
            // Same code, same globals: keep the running program; this instance goes unused.
            return Ok(AttachOutcome::Adopted);
        }
        let link = L::try_from(pinned).map_err(link_err)?;
        let id = attach_to_link(prog, link).map_err(program_err)?;
        // The link stays pinned where it was; only this process's handle goes.
        let _ = take_link(prog, id).map_err(program_err)?;
        return Ok(AttachOutcome::Replaced);
    }
    let id = attach_new(prog)?.map_err(program_err)?;
    let link: FdLink = take_link(prog, id)
        .map_err(program_err)?
        .try_into()
        .map_err(link_err)?;
    link.pin(pin).map_err(|source| DataplaneError::Pin {
        path: pin.to_owned(),
        source,
    })?;
    Ok(AttachOutcome::Attached)
}

/// The kernel tag of a loaded program, for both program types.
trait ProgramTag {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError>;
}

impl ProgramTag for Xdp {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError> {
        Ok(self.info()?.tag())
    }
}

impl ProgramTag for SchedClassifier {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError> {
        Ok(self.info()?.tag())
    }
}
