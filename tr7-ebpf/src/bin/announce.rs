//! The announcement emitter: the agent runs this program with BPF_PROG_TEST_RUN and
//! `BPF_F_TEST_XDP_LIVE_FRAMES` on a gratuitous ARP or unsolicited NA it built at start-up;
//! XDP_TX makes the kernel transmit the frame, unchanged, out of the interface named in the
//! test run's context. It is never attached to an interface.
// Built for the BPF target by aya-build; on the host it compiles as an empty program.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

#[xdp]
pub fn tr7_announce(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

tr7_ebpf::program_binary!();
