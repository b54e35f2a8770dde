//! A data plane loaded for one test, with its maps and links pinned under a private bpffs
//! directory that is removed when the test ends (also on panic).

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use aya::programs::{TestRun, TestRunOptions, TestRunResult};
use tr7::dataplane::{Globals, Maps, Programs, ReasonCounts, ensure_bpffs};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique bpffs directory for one test; removed recursively on drop.
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new(tag: &str) -> Self {
        ensure_bpffs().expect("bpffs must be mountable on /sys/fs/bpf");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/sys/fs/bpf/tr7-test-{}-{tag}-{n}",
            std::process::id()
        ));
        Self { path }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The production object loaded for BPF_PROG_TEST_RUN with scope [`TEST_SCOPE`] and
/// counter slot [`TEST_SLOT`], its maps pinned in a private directory.
pub struct TestDataplane {
    pub programs: Programs,
    pub maps: Maps,
    // Dropped last: the directory goes after the handles.
    pub pins: PinDir,
}

pub const TEST_SCOPE: u32 = 1;

/// The three taggings the egress tables run each frame with: 0 untagged, 1 one 802.1Q tag
/// (VLAN 100), 2 QinQ (802.1ad 200 outside 802.1Q 100): the Ethernet header and tags,
/// for the caller to add the rest (see [`tagged_place`] for the VIP's place).
pub fn tagged(tags: u8) -> crate::packet::Frame {
    use crate::packet::Frame;
    match tags {
        0 => Frame::eth(),
        1 => Frame::eth().vlan(100),
        _ => Frame::eth().svlan(200).vlan(100),
    }
}

/// Where a VIP reached with the tagging `tags` of [`tagged`] lives, in [`TEST_SCOPE`].
pub fn tagged_place(tags: u8) -> tr7::dataplane::VipScope {
    use tr7::dataplane::VipScope;
    match tags {
        0 => VipScope::untagged(TEST_SCOPE),
        1 => VipScope::vlan(TEST_SCOPE, 100),
        _ => VipScope::qinq(TEST_SCOPE, 200, 100),
    }
}
pub const TEST_SLOT: u32 = 0;

impl TestDataplane {
    pub fn load(tag: &str) -> Self {
        crate::require_root();
        let pins = PinDir::new(tag);
        let programs = Programs::load(
            &pins.path,
            Globals {
                scope: TEST_SCOPE,
                slot: TEST_SLOT,
            },
        )
        .unwrap_or_else(|e| panic!("loading the data plane: {}", crate::error_chain(&e)));
        let maps = Maps::open(&pins.path).expect("open pinned maps");
        Self {
            programs,
            maps,
            pins,
        }
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pins.path
    }

    /// Per-reason counters of this instance.
    pub fn counters(&self) -> ReasonCounts {
        self.maps.slot_counters(TEST_SLOT).expect("read counters")
    }

    /// Runs the gate once on `frame`; returns the XDP action.
    pub fn run_gate(&mut self, frame: &[u8]) -> u32 {
        run(self.programs.gate().expect("gate"), frame, 1)
    }

    /// Runs the guard once on `frame`; returns the TC action.
    pub fn run_guard(&mut self, frame: &[u8]) -> u32 {
        run(self.programs.guard().expect("guard"), frame, 1)
    }

    /// Runs the gate once on `frame`; returns the XDP action and the frame as the program
    /// left it.
    pub fn run_gate_out(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        run_out(self.programs.gate().expect("gate"), frame)
    }

    /// Runs the guard once on `frame`; returns the TC action and the frame as it leaves.
    pub fn run_guard_out(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        run_out(self.programs.guard().expect("guard"), frame)
    }
}

/// Runs `prog` on `frame` `repeat` times through BPF_PROG_TEST_RUN; returns the verdict.
pub fn run<P>(prog: &P, frame: &[u8], repeat: u32) -> u32
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    run_timed(prog, frame, repeat).0
}

/// Runs `prog` once on `frame`; returns the verdict and the output frame.
pub fn run_out<P>(prog: &P, frame: &[u8]) -> (u32, Vec<u8>)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 256];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()));
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

/// Like [`run`], also returning the kernel's average time per run in nanoseconds.
pub fn run_timed<P>(prog: &P, frame: &[u8], repeat: u32) -> (u32, u64)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 256];
    let result = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat,
            ..TestRunOptions::default()
        })
        .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()));
    (
        result.return_value,
        u64::try_from(result.duration.as_nanos()).unwrap_or(u64::MAX),
    )
}
