//! The baseline of `cargo xtask bench dataplane`: an XDP program that passes every frame and
//! does nothing else. The gate's cost is reported as a ratio to this, measured in the same
//! run, because absolute BPF_PROG_TEST_RUN timings swing with the machine's load.
// Built for the BPF target by aya-build; on the host (clippy, `cargo test --workspace`)
// it compiles as an empty program so the whole workspace lints and builds.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn tr7_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

tr7_ebpf::program_binary!();
