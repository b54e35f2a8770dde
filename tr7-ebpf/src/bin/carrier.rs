//! The fast carrier hook: fexit programs on `netif_carrier_off` and `netif_carrier_on` that
//! report every carrier change of every device through a ring buffer (tr7-agent's
//! `signals::hook` reads it and wakes the link watchers at once, without waiting for the
//! kernel's linkwatch batching or the next poll).
//!
//! fexit rather than fentry: both run on the same BPF trampoline (same kernel support), but
//! at function exit the `__LINK_STATE_NOCARRIER` bit is already changed, so the RTM_GETLINK
//! dump the agent makes when woken reads the new carrier; at entry it could read the old.
//!
//! Rust eBPF has no CO-RE relocations, so `dev->ifindex` is read at an offset the agent
//! finds in the running kernel's BTF (`struct net_device`, member `ifindex`) and writes into
//! `TR7_IFINDEX_OFFSET` before loading; the read is `bpf_probe_read_kernel`, so a wrong offset
//! yields a wrong number, never a fault.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        helpers::bpf_probe_read_kernel,
        macros::{fexit, map},
        maps::RingBuf,
        programs::FExitContext,
    };
    use tr7_common::CarrierEvent;

    /// Offset of `ifindex` in `struct net_device`, set by the agent from kernel BTF.
    #[unsafe(no_mangle)]
    static TR7_IFINDEX_OFFSET: u32 = 0;

    /// Carrier events, one `CarrierEvent` each.
    #[map]
    static CARRIER_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 4096, 0);

    fn report(ctx: &FExitContext, carrier: u32) -> i32 {
        let dev: *const u8 = ctx.arg(0);
        // SAFETY: a volatile read of a global the loader rewrote; no reference escapes.
        let offset = unsafe { core::ptr::read_volatile(&TR7_IFINDEX_OFFSET) };
        // SAFETY: bpf_probe_read_kernel checks the address; a bad one returns an error.
        let ifindex =
            unsafe { bpf_probe_read_kernel(dev.wrapping_add(offset as usize).cast::<i32>()) }
                .unwrap_or(0);
        let event = CarrierEvent {
            ifindex: ifindex as u32,
            carrier,
        };
        // A full ring drops the event; the agent's poll still sees the change.
        let _ = CARRIER_EVENTS.output::<CarrierEvent>(event, 0);
        0
    }

    #[fexit(function = "netif_carrier_off")]
    pub fn tr7_carrier_off(ctx: FExitContext) -> i32 {
        report(&ctx, 0)
    }

    #[fexit(function = "netif_carrier_on")]
    pub fn tr7_carrier_on(ctx: FExitContext) -> i32 {
        report(&ctx, 1)
    }
}

tr7_ebpf::program_binary!();
