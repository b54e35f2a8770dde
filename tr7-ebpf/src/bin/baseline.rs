//! The baseline of `cargo xtask bench dataplane`: an XDP program that passes every frame and
//! does nothing else. The gate's cost is reported as a ratio to this, measured in the same
//! run, because absolute BPF_PROG_TEST_RUN timings swing with the machine's load.
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn tr7_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
