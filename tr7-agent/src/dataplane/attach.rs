//! Loading the eBPF object and attaching the gate (XDP) and guard (TC egress, TCX) to an
//! interface, with their bpf_links pinned so the attachment outlives this process.
//!
//! A second load adopts what it finds: maps are reused from their pins with their contents
//! (aya's pin-by-name), and a pinned link is kept when it runs the same program (same kernel
//! program tag) or atomically switched to the new program otherwise (`bpf_link_update`), so
//! neither case drops a frame.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
};
use nix::sys::statfs::{BPF_FS_MAGIC, statfs};
use tr7_common::program;

use super::{DataplaneError, maps::PinLayout, object::OBJECT};

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

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// bpffs directory for the maps and links.
    pub pin_dir: PathBuf,
    /// Inode of the network namespace these programs will serve ([`crate::netns::current_inode`]).
    pub netns: u32,
}

/// What attaching one program to an interface did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachOutcome {
    /// Nothing was attached; a new link was created and pinned.
    Attached,
    /// A pinned link ran the same program: left exactly as it was.
    Adopted,
    /// A pinned link ran another version: switched atomically to this one.
    Replaced,
}

#[derive(Clone, Debug)]
pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    pub gate: AttachOutcome,
    pub guard: AttachOutcome,
}

/// The loaded programs and maps of one network namespace.
pub struct Dataplane {
    ebpf: Ebpf,
    layout: PinLayout,
    netns: u32,
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

fn program_tag(id: u32) -> Option<u64> {
    loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .map(|p| p.tag())
}

impl Dataplane {
    /// Loads the programs, creating the maps or reusing the pinned ones under
    /// `opts.pin_dir`. Loading runs the kernel verifier; nothing is attached yet.
    pub fn load(opts: &LoadOptions) -> Result<Self, DataplaneError> {
        if OBJECT.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        ensure_bpffs()?;
        std::fs::create_dir_all(&opts.pin_dir).map_err(|e| DataplaneError::io(&opts.pin_dir, e))?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&opts.pin_dir)
            .override_global("TR7_NETNS", &opts.netns, true)
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
        Ok(Self {
            ebpf,
            layout: PinLayout::new(&opts.pin_dir),
            netns: opts.netns,
        })
    }

    pub fn layout(&self) -> &PinLayout {
        &self.layout
    }

    /// The gate program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn gate(&mut self) -> Result<&mut Xdp, DataplaneError> {
        program_mut(&mut self.ebpf, program::GATE)
    }

    /// The guard program, e.g. for `BPF_PROG_TEST_RUN`.
    pub fn guard(&mut self) -> Result<&mut SchedClassifier, DataplaneError> {
        program_mut(&mut self.ebpf, program::GUARD)
    }

    /// Attaches the gate to `iface`'s ingress and the guard to its egress. `netns` names the
    /// interface's namespace (`ip netns` name; `None`: the caller's), which must be the one
    /// whose inode was given at load. Only the link creation runs inside that namespace:
    /// this kernel refuses bpffs pin operations from a non-initial network namespace.
    pub fn attach(
        &mut self,
        iface: &str,
        netns: Option<&str>,
        mode: XdpAttachMode,
    ) -> Result<Attachment, DataplaneError> {
        let ifindex = crate::netns::within(netns, || nix::net::if_::if_nametoindex(iface))?
            .map_err(|_| DataplaneError::NoInterface {
                iface: iface.to_owned(),
            })?;
        let links_dir = self.layout.iface_dir(self.netns, ifindex);
        std::fs::create_dir_all(&links_dir).map_err(|e| DataplaneError::io(&links_dir, e))?;
        let gate_pin = self.layout.gate_link(self.netns, ifindex);
        let guard_pin = self.layout.guard_link(self.netns, ifindex);

        let gate = {
            let prog = self.gate()?;
            attach_pinned(
                prog,
                &gate_pin,
                |p| crate::netns::within(netns, || p.attach_to_if_index(ifindex, mode.flags())),
                |p, link: XdpLink| p.attach_to_link(link),
                |p, id| p.take_link(id),
                program::GATE,
            )?
        };
        let guard = {
            let prog = self.guard()?;
            attach_pinned(
                prog,
                &guard_pin,
                |p| {
                    crate::netns::within(netns, || {
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
            )?
        };
        tracing::info!(iface, ifindex, ?gate, ?guard, ?mode, "data plane attached");
        Ok(Attachment {
            iface: iface.to_owned(),
            ifindex,
            gate,
            guard,
        })
    }
}

/// Removes the gate and guard from interface `ifindex` of namespace `netns` by unpinning
/// their links (the kernel detaches a link when its last reference goes). Returns whether
/// anything was attached.
pub fn detach(layout: &PinLayout, netns: u32, ifindex: u32) -> Result<bool, DataplaneError> {
    let mut found = false;
    let dir = layout.iface_dir(netns, ifindex);
    for path in [
        layout.gate_link(netns, ifindex),
        layout.guard_link(netns, ifindex),
    ] {
        if !path.exists() {
            continue;
        }
        match PinnedLink::from_pin(&path) {
            Ok(link) => {
                let fd = link.unpin().map_err(|e| DataplaneError::io(&path, e))?;
                drop(fd);
                found = true;
            }
            Err(source) => return Err(DataplaneError::Link { path, source }),
        }
    }
    if dir.exists() {
        std::fs::remove_dir(&dir).map_err(|e| DataplaneError::io(&dir, e))?;
    }
    Ok(found)
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

/// Attach-or-adopt for one program and its link pin.
fn attach_pinned<P, L, Id>(
    prog: &mut P,
    pin: &Path,
    attach_new: impl FnOnce(
        &mut P,
    )
        -> Result<Result<Id, aya::programs::ProgramError>, crate::netns::NetnsError>,
    attach_to_link: impl FnOnce(&mut P, L) -> Result<Id, aya::programs::ProgramError>,
    take_link: impl FnOnce(&mut P, Id) -> Result<L, aya::programs::ProgramError>,
    name: &'static str,
) -> Result<AttachOutcome, DataplaneError>
where
    P: ProgramInfoExt,
    L: TryFrom<FdLink, Error = LinkError> + TryInto<FdLink, Error = LinkError>,
{
    let program_err = |source| DataplaneError::Program { name, source };
    let link_err = |source| DataplaneError::Link {
        path: pin.to_owned(),
        source,
    };
    // A missing pin is the normal first-attach case; ask the file system rather than map
    // BPF_OBJ_GET's errno.
    let existing = if pin.exists() {
        Some(PinnedLink::from_pin(pin))
    } else {
        None
    };
    match existing {
        Some(Ok(pinned)) => {
            let pinned = FdLink::from(pinned);
            let old_prog = pinned.info().map_err(link_err)?.program_id();
            let new_tag = prog.tag().map_err(program_err)?;
            if program_tag(old_prog) == Some(new_tag) {
                // Same code: keep the running program; this instance is dropped unused.
                return Ok(AttachOutcome::Adopted);
            }
            let link = L::try_from(pinned).map_err(link_err)?;
            let id = attach_to_link(prog, link).map_err(program_err)?;
            // The link stays pinned where it was; only this process's handle goes.
            let _ = take_link(prog, id).map_err(program_err)?;
            Ok(AttachOutcome::Replaced)
        }
        None => {
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
        Some(Err(source)) => Err(link_err(source)),
    }
}

/// The kernel tag of a loaded program, for both program types.
trait ProgramInfoExt {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError>;
}

impl ProgramInfoExt for Xdp {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError> {
        Ok(self.info()?.tag())
    }
}

impl ProgramInfoExt for SchedClassifier {
    fn tag(&self) -> Result<u64, aya::programs::ProgramError> {
        Ok(self.info()?.tag())
    }
}
