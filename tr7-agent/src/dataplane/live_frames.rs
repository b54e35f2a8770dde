//! Sending pre-built frames from the data plane: BPF_PROG_TEST_RUN with
//! `BPF_F_TEST_XDP_LIVE_FRAMES` (Linux 5.18) runs the `tr7_announce` XDP program on a frame
//! we supply; the program returns XDP_TX, and in live mode the kernel then really transmits
//! the frame out of the interface named by `ingress_ifindex` in the `xdp_md` context, through
//! the driver's `ndo_xdp_xmit` (no qdisc, no TC hook, no socket buffer).
//!
//! aya 0.14 keeps its test-run wrapper private and has neither the flags nor the context, so
//! the one syscall is issued here through libc, with the attribute layout of
//! `union bpf_attr`'s `test` member (include/uapi/linux/bpf.h).
//!
//! Whether an interface can take the frames is decided by [`LiveFrames::probe`], which the
//! announcer runs on a background thread after the cheap [`device_transmits`] check (so a
//! router's start never waits for the program load): the kernel must know the flag, and
//! the device must advertise
//! `NETDEV_XDP_ACT_NDO_XMIT` in its XDP features (netdev generic netlink family, Linux 6.3).
//! The second check matters: a redirect to a device that cannot transmit XDP frames is
//! dropped silently, the test run still returns 0. A veth, for one, only transmits XDP
//! frames when its peer has an XDP program or GRO on.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};
use std::sync::OnceLock;

use aya::Ebpf;
use aya::programs::Xdp;
use nix::libc;
use socket2::{Domain, Protocol, Socket, Type};

use super::DataplaneError;
use super::object::ANNOUNCE;

/// `enum bpf_cmd`: BPF_PROG_TEST_RUN.
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_F_TEST_XDP_LIVE_FRAMES`.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
/// The kernel's `TEST_XDP_MAX_BATCH`: one more is refused with E2BIG, by kernels that know
/// the live flag only (older ones refuse the flag itself with EINVAL).
const TEST_XDP_MAX_BATCH: u32 = 256;
/// `enum netdev_xdp_act`: the device can transmit frames redirected to it.
const NETDEV_XDP_ACT_NDO_XMIT: u64 = 1 << 2;

/// The `test` member of `union bpf_attr` (BPF_PROG_TEST_RUN).
#[repr(C, align(8))]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so it is zero: the kernel refuses non-zero bytes after the last field.
    _pad: u32,
}

/// `struct xdp_md`, the context given to the program; only `data_end` and
/// `ingress_ifindex` are set (the frame has no metadata, `data` is 0).
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Why an interface does not get live frames; logged as the reason for the AF_PACKET path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// `TR7_ANNOUNCE_PATH=af_packet` asks for the socket path.
    Forced,
    /// The announce program could not be loaded (no object, verifier, permissions).
    NoProgram(String),
    /// The kernel refuses the live-frames flag (before 5.18).
    Kernel(String),
    /// The kernel cannot tell the device's XDP features (no netdev family, before 6.3).
    NoFeatures(String),
    /// The device does not transmit XDP frames (a veth whose peer has no XDP program nor GRO).
    NoXmit { features: u64 },
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Forced => write!(f, "TR7_ANNOUNCE_PATH=af_packet"),
            Self::NoProgram(e) => write!(f, "the announce XDP program does not load: {e}"),
            Self::Kernel(e) => write!(f, "the kernel refuses BPF_F_TEST_XDP_LIVE_FRAMES: {e}"),
            Self::NoFeatures(e) => write!(f, "the device's XDP features are unknown: {e}"),
            Self::NoXmit { features } => write!(
                f,
                "the device does not transmit XDP frames (xdp_features {features:#x} lacks \
                 NDO_XMIT; on a veth, the peer needs an XDP program or GRO)"
            ),
        }
    }
}

/// The loaded `tr7_announce` program. One per process, loaded on first use.
pub struct LiveFrames {
    _ebpf: Ebpf,
    fd: RawFd,
}

static SHARED: OnceLock<Result<LiveFrames, String>> = OnceLock::new();

impl LiveFrames {
    /// Loads the program from the embedded object.
    pub fn load() -> Result<Self, DataplaneError> {
        if ANNOUNCE.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let mut ebpf = Ebpf::load(ANNOUNCE).map_err(|e| DataplaneError::Load(Box::new(e)))?;
        let program: &mut Xdp = ebpf
            .program_mut("tr7_announce")
            .ok_or(DataplaneError::MissingProgram("tr7_announce"))?
            .try_into()
            .map_err(|source| DataplaneError::Program {
                name: "tr7_announce",
                source,
            })?;
        program.load().map_err(|source| DataplaneError::Program {
            name: "tr7_announce",
            source,
        })?;
        let fd = program
            .fd()
            .map_err(|source| DataplaneError::Program {
                name: "tr7_announce",
                source,
            })?
            .as_fd()
            .as_raw_fd();
        // `fd` stays valid as long as `ebpf` owns the program, which is as long as `self`.
        Ok(Self { _ebpf: ebpf, fd })
    }

    /// The process's program, loaded by the first caller; the error (as text) is kept too,
    /// so a failed load is tried once and reported by each prober.
    pub fn shared() -> Result<&'static Self, Unavailable> {
        SHARED
            .get_or_init(|| Self::load().map_err(|e| format!("{:#}", anyhow::Error::new(e))))
            .as_ref()
            .map_err(|e| Unavailable::NoProgram(e.clone()))
    }

    /// Can frames be sent out of `ifindex` (in the calling thread's network namespace)?
    /// Sends nothing.
    pub fn probe(&self, ifindex: u32) -> Result<(), Unavailable> {
        // A batch size over the limit: E2BIG from a kernel that knows the flag, before any
        // frame is built; EINVAL from one that does not.
        let frame = [0u8; 60];
        match self.run(ifindex, &frame, 1, TEST_XDP_MAX_BATCH + 1) {
            Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {}
            Err(e) => return Err(Unavailable::Kernel(e.to_string())),
            Ok(()) => {
                return Err(Unavailable::Kernel(
                    "an oversized batch was accepted".into(),
                ));
            }
        }
        device_transmits(ifindex)
    }

    /// Transmits `frame` `repeat` times out of `ifindex` (in the calling thread's network
    /// namespace). The frame leaves unchanged: the program only returns XDP_TX.
    pub fn transmit(&self, ifindex: u32, frame: &[u8], repeat: u32) -> io::Result<()> {
        self.run(ifindex, frame, repeat.max(1), 0)
    }

    fn run(&self, ifindex: u32, frame: &[u8], repeat: u32, batch_size: u32) -> io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let ctx = XdpMd {
            data_end: len,
            ingress_ifindex: ifindex,
            ..XdpMd::default()
        };
        let attr = TestRunAttr {
            prog_fd: self.fd as u32,
            data_size_in: len,
            data_in: frame.as_ptr() as u64,
            repeat,
            ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
            ctx_in: &ctx as *const XdpMd as u64,
            flags: BPF_F_TEST_XDP_LIVE_FRAMES,
            batch_size,
            ..TestRunAttr::default()
        };
        // SAFETY: `attr` is a valid `bpf_attr.test` of the size given; the kernel reads
        // `frame` and `ctx` (both alive for the call) and writes only into `attr`
        // (retval, duration), which is ours; no output buffers are given (live mode forbids
        // them).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_TEST_RUN,
                &attr as *const TestRunAttr,
                std::mem::size_of::<TestRunAttr>(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Whether `ifindex` transmits XDP frames (`NETDEV_XDP_ACT_NDO_XMIT` in its `xdp_features`):
/// one generic-netlink query, so callers ask it before loading the program (the announcer
/// asks it at construction, and loads and probes the program on a background thread only
/// when it passes).
pub fn device_transmits(ifindex: u32) -> Result<(), Unavailable> {
    let features = xdp_features(ifindex).map_err(|e| Unavailable::NoFeatures(e.to_string()))?;
    if features & NETDEV_XDP_ACT_NDO_XMIT == 0 {
        return Err(Unavailable::NoXmit { features });
    }
    Ok(())
}

/// The device's `xdp_features` (NETDEV_A_DEV_XDP_FEATURES) from the netdev generic netlink
/// family, asked in the calling thread's network namespace.
pub fn xdp_features(ifindex: u32) -> io::Result<u64> {
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_GENERIC)),
    )?;
    // CTRL_CMD_GETFAMILY (3) on GENL_ID_CTRL (0x10), CTRL_ATTR_FAMILY_NAME (2).
    let reply = genl_request(&socket, 0x10, 3, &attr(2, b"netdev\0"))?;
    let family = find_attr(&reply, 1) // CTRL_ATTR_FAMILY_ID
        .and_then(|v| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
        .ok_or_else(|| io::Error::other("no netdev family id in the reply"))?;
    // NETDEV_CMD_DEV_GET (1), NETDEV_A_DEV_IFINDEX (1).
    let reply = genl_request(&socket, family, 1, &attr(1, &ifindex.to_ne_bytes()))?;
    find_attr(&reply, 3) // NETDEV_A_DEV_XDP_FEATURES
        .and_then(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
        .ok_or_else(|| io::Error::other("no xdp_features in the reply"))
}

/// One netlink attribute, padded to 4 bytes.
fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + value.len() + 3);
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

/// Sends one generic netlink request and returns the attributes of its reply.
fn genl_request(socket: &Socket, family: u16, cmd: u8, attrs: &[u8]) -> io::Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(20 + attrs.len());
    msg.extend_from_slice(&((20 + attrs.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&family.to_ne_bytes());
    msg.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    msg.extend_from_slice(&[cmd, 1, 0, 0]); // genlmsghdr: cmd, version
    msg.extend_from_slice(attrs);
    socket.send(&msg)?;
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 8192];
    let n = socket.recv(&mut buf)?;
    // SAFETY: `recv` initialised the first `n` bytes.
    let reply: Vec<u8> = buf[..n]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    let kind = reply
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .ok_or_else(|| io::Error::other("short netlink reply"))?;
    if kind == 2 {
        // NLMSG_ERROR: a negative errno after the header.
        let errno = reply
            .get(16..20)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(-libc::EIO);
        return Err(io::Error::from_raw_os_error(-errno));
    }
    Ok(reply.get(20..).unwrap_or_default().to_vec())
}

/// The value of the first top-level attribute of `kind`.
fn find_attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let this = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if this == kind {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the attribute layout matches `union bpf_attr`'s `test` member as the kernel
    // reads it (offsets of include/uapi/linux/bpf.h).
    #[test]
    fn test_run_attr_layout() {
        assert_eq!(std::mem::offset_of!(TestRunAttr, data_in), 16);
        assert_eq!(std::mem::offset_of!(TestRunAttr, repeat), 32);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(TestRunAttr, flags), 64);
        assert_eq!(std::mem::offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::size_of::<XdpMd>(), 24);
    }

    // Proves attributes are walked with their padding and a truncated one ends the walk.
    #[test]
    fn netlink_attributes() {
        let mut attrs = attr(2, b"net\0\0");
        attrs.extend(attr(3, &7u64.to_ne_bytes()));
        assert_eq!(find_attr(&attrs, 3), Some(&7u64.to_ne_bytes()[..]));
        assert_eq!(find_attr(&attrs, 2), Some(&b"net\0\0"[..]));
        assert_eq!(find_attr(&attrs[..10], 3), None);
    }
}
