//! The fast carrier mechanism: fexit programs on `netif_carrier_off` and `netif_carrier_on`
//! (tr7-ebpf `src/bin/carrier.rs`) that report every carrier change through a ring buffer.
//! One reader thread per agent wakes every link watcher that subscribed; the watcher then
//! dumps its namespace at once (the dump stays the source of truth: the event only says
//! "look now", so a dropped or foreign event costs one dump, never a wrong verdict).
//!
//! [`CarrierHook::start`] is also the probe: it needs kernel BTF, the offset of `ifindex` in
//! `struct net_device` (read from that BTF, because Rust eBPF has no CO-RE relocations), and
//! a kernel that loads and attaches tracing programs. Any step failing returns the reason,
//! and the agent falls back to netlink events plus the poll.

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use aya::maps::RingBuf;
use aya::programs::FExit;
use aya::{Btf, EbpfLoader};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use tr7_common::{CarrierEvent, global, map, program};

/// The carrier object built by build.rs; empty when built with `AYA_BUILD_SKIP=1`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tr7-carrier"));

/// Where the kernel's BTF is.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The loaded and attached hook and its reader thread. Dropping it detaches the programs.
pub struct CarrierHook {
    subscribers: Arc<Mutex<Vec<UnixDatagram>>>,
    events: Arc<Mutex<Vec<CarrierEvent>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// `ifindex` offset in `struct net_device` used by the programs.
    pub ifindex_offset: u32,
}

/// The receiving end of a wake-up: readable when a carrier changed somewhere.
pub struct Wake(pub UnixDatagram);

/// Events kept for [`CarrierHook::events`] (tests, diagnostics); older ones are dropped.
const KEEP_EVENTS: usize = 1024;

impl CarrierHook {
    /// Loads both programs, attaches them and starts the reader; the error says which step
    /// failed and why.
    pub fn start() -> Result<Self, String> {
        if OBJECT.is_empty() {
            return Err("the carrier eBPF object is empty (built with AYA_BUILD_SKIP=1)".into());
        }
        let raw = std::fs::read(VMLINUX_BTF)
            .map_err(|e| format!("no kernel BTF ({VMLINUX_BTF}: {e})"))?;
        let ifindex_offset =
            member_offset(&raw, "net_device", "ifindex").map_err(|e| format!("kernel BTF: {e}"))?;
        let btf = Btf::from_sys_fs().map_err(|e| format!("kernel BTF: {e}"))?;
        let mut ebpf = EbpfLoader::new()
            .override_global(global::IFINDEX_OFFSET, &ifindex_offset, true)
            .load(OBJECT)
            .map_err(|e| format!("loading the carrier object: {e}"))?;
        for (name, function) in [
            (program::CARRIER_OFF, "netif_carrier_off"),
            (program::CARRIER_ON, "netif_carrier_on"),
        ] {
            let prog: &mut FExit = ebpf
                .program_mut(name)
                .ok_or_else(|| format!("program {name} missing from the carrier object"))?
                .try_into()
                .map_err(|e| format!("program {name}: {e}"))?;
            prog.load(function, &btf)
                .map_err(|e| format!("fexit on {function}: load: {}", chain(&e)))?;
            prog.attach()
                .map_err(|e| format!("fexit on {function}: attach: {}", chain(&e)))?;
        }
        let ring = RingBuf::try_from(
            ebpf.take_map(map::CARRIER_EVENTS)
                .ok_or("map CARRIER_EVENTS missing from the carrier object")?,
        )
        .map_err(|e| format!("map CARRIER_EVENTS: {e}"))?;
        let subscribers: Arc<Mutex<Vec<UnixDatagram>>> = Arc::default();
        let events: Arc<Mutex<Vec<CarrierEvent>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            ebpf,
            ring,
            subscribers: subscribers.clone(),
            events: events.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("carrier-hook".into())
            .spawn(move || reader.run())
            .map_err(|e| format!("cannot spawn the ring buffer reader: {e}"))?;
        Ok(Self {
            subscribers,
            events,
            stop,
            thread: Some(thread),
            ifindex_offset,
        })
    }

    /// A wake-up for one link watcher.
    pub fn subscribe(&self) -> std::io::Result<Wake> {
        let (tx, rx) = UnixDatagram::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        Ok(Wake(rx))
    }

    /// The last events seen (at most 1024), oldest first.
    pub fn events(&self) -> Vec<CarrierEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for CarrierHook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

struct Reader {
    /// Keeps the programs attached while the reader runs.
    #[allow(dead_code)]
    ebpf: aya::Ebpf,
    ring: RingBuf<aya::maps::MapData>,
    subscribers: Arc<Mutex<Vec<UnixDatagram>>>,
    events: Arc<Mutex<Vec<CarrierEvent>>>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            let mut fds = [PollFd::new(self.ring.as_fd(), PollFlags::POLLIN)];
            // 50 ms bounds how long a stop waits.
            if nix::poll::poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) == 0 {
                continue;
            }
            let mut got = Vec::new();
            while let Some(item) = self.ring.next() {
                if item.len() >= size_of::<CarrierEvent>() {
                    // SAFETY: the programs write CarrierEvent (repr(C), integers only); the
                    // length is checked and the read is unaligned.
                    got.push(unsafe { item.as_ptr().cast::<CarrierEvent>().read_unaligned() });
                }
            }
            if got.is_empty() {
                continue;
            }
            for s in self
                .subscribers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                // A full socket already holds a pending wake-up; a closed one is a stopped
                // watcher.
                let _ = s.send(&[1]);
            }
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            events.extend(got);
            let excess = events.len().saturating_sub(KEEP_EVENTS);
            events.drain(..excess);
        }
    }
}

/// The byte offset of member `member` in struct `strukt` of a raw BTF blob (the format of
/// `/sys/kernel/btf/vmlinux`, kernel Documentation/bpf/btf.rst), looking through anonymous
/// struct and union members. aya's `Btf` keeps member offsets private, hence this reader.
pub fn member_offset(raw: &[u8], strukt: &str, member: &str) -> Result<u32, String> {
    let blob = RawBtf::parse(raw)?;
    for (id, &at) in blob.types.iter().enumerate().skip(1) {
        let info = blob.u32_at(at + 4)?;
        if (info >> 24) & 0x1f == 4 && blob.name(blob.u32_at(at)?) == strukt.as_bytes() {
            // Forward declarations and empty copies exist; take the first that has it.
            if let Some(o) = blob.offset_in(id as u32, member.as_bytes(), 0)? {
                return Ok(o);
            }
        }
    }
    Err(format!("no struct {strukt} with a member {member}"))
}

struct RawBtf<'a> {
    raw: &'a [u8],
    strings: &'a [u8],
    /// Byte position of each type by id (0, void, has none).
    types: Vec<usize>,
}

impl<'a> RawBtf<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, String> {
        if raw.len() < 24 || raw[0..2] != [0x9f, 0xeb] {
            return Err("not little-endian BTF (bad magic)".into());
        }
        let mut blob = Self {
            raw,
            strings: &[],
            types: vec![0],
        };
        let hdr_len = blob.u32_at(4)? as usize;
        let type_off = hdr_len + blob.u32_at(8)? as usize;
        let type_len = blob.u32_at(12)? as usize;
        let str_off = hdr_len + blob.u32_at(16)? as usize;
        let str_len = blob.u32_at(20)? as usize;
        blob.strings = raw
            .get(str_off..str_off + str_len)
            .ok_or("string section out of bounds")?;
        let mut off = type_off;
        let end = type_off + type_len;
        while off + 12 <= end {
            blob.types.push(off);
            let info = blob.u32_at(off + 4)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // int, var, decl_tag
                3 => 12,                      // array
                4 | 5 | 15 | 19 => vlen * 12, // struct, union, datasec, enum64
                6 | 13 => vlen * 8,           // enum, func_proto
                2 | 7..=12 | 16 | 18 => 0,
                k => return Err(format!("unknown BTF kind {k} at byte {off}")),
            };
            off += 12 + extra;
        }
        Ok(blob)
    }

    fn u32_at(&self, off: usize) -> Result<u32, String> {
        self.raw
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated at byte {off}"))
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        s.split(|b| *b == 0).next().unwrap_or(&[])
    }

    /// The offset of `want` in the struct or union of type `id`.
    fn offset_in(&self, id: u32, want: &[u8], depth: u32) -> Result<Option<u32>, String> {
        let Some(&at) = self.types.get(id as usize) else {
            return Ok(None);
        };
        let info = self.u32_at(at + 4)?;
        let kind = (info >> 24) & 0x1f;
        if !(kind == 4 || kind == 5) || depth > 8 {
            return Ok(None);
        }
        let bitfield = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = at + 12 + i * 12;
            let (m_name, m_type, m_off) =
                (self.u32_at(m)?, self.u32_at(m + 4)?, self.u32_at(m + 8)?);
            let bits = if bitfield { m_off & 0x00ff_ffff } else { m_off };
            let m_name = self.name(m_name);
            if m_name == want {
                return Ok(Some(bits / 8));
            }
            if m_name.is_empty()
                && let Some(o) = self.offset_in(m_type, want, depth + 1)?
            {
                return Ok(Some(bits / 8 + o));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the BTF reader finds members, including one inside an anonymous union, in a
    // blob built by hand: struct s { int a; union { int b; long c; }; }.
    #[test]
    fn member_offset_reads_btf() {
        let strings = b"\0s\0a\0b\0c\0int\0";
        let mut types = Vec::new();
        let mut t = |words: &[u32]| words.iter().for_each(|w| types.extend(w.to_le_bytes()));
        // 1: int (name "int" at 9), size 4, encoding word.
        t(&[9, 1 << 24, 4, 32]);
        // 2: struct s, 2 members, size 16: a (int, bit 0), anon (type 3, bit 64).
        t(&[1, (4 << 24) | 2, 16, 3, 1, 0, 0, 3, 64]);
        // 3: anonymous union, 2 members: b (int, 0), c (int, 0).
        t(&[0, (5 << 24) | 2, 8, 5, 1, 0, 7, 1, 0]);
        let mut raw = Vec::new();
        for w in [0xeb9f_u32 | (1 << 16), 24, 0, types.len() as u32] {
            raw.extend(w.to_le_bytes());
        }
        raw.extend((types.len() as u32).to_le_bytes());
        raw.extend((strings.len() as u32).to_le_bytes());
        raw.extend(&types);
        raw.extend(strings);
        assert_eq!(member_offset(&raw, "s", "a"), Ok(0));
        assert_eq!(member_offset(&raw, "s", "c"), Ok(8));
        assert!(member_offset(&raw, "s", "d").is_err());
        assert!(member_offset(&raw, "t", "a").is_err());
        assert!(member_offset(b"junk", "s", "a").is_err());
    }

    // Proves the reader walks the running kernel's whole BTF and finds net_device.ifindex at
    // a plausible place (the header fields before it take more than 100 bytes).
    #[test]
    fn ifindex_offset_of_the_running_kernel() {
        let Ok(raw) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF} on this kernel");
            return;
        };
        let off = member_offset(&raw, "net_device", "ifindex").expect("net_device.ifindex");
        assert!((100..4096).contains(&off), "offset {off}");
    }
}
