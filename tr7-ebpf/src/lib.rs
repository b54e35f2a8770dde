//! The eBPF programs live in the binary targets: `tr7-dataplane` (src/main.rs, the gate and
//! guard), `tr7-baseline` (src/bin/baseline.rs, the benchmark's empty program) and
//! `tr7-announce` (src/bin/announce.rs, the announcement emitter for live frames). This
//! library target holds what both binaries need, and exists so tr7-agent can name this
//! crate as a build dependency, which makes cargo rebuild the agent when the programs change.
#![no_std]

/// What every program binary needs besides its programs: on the BPF target a panic handler
/// (the verifier guarantees no panic path is reachable; bounds are checked by hand) and the
/// license section the kernel reads to allow GPL-only helpers; on the host (clippy,
/// `cargo test --workspace`) a `main` that says where the programs go.
#[macro_export]
macro_rules! program_binary {
    () => {
        #[cfg(target_arch = "bpf")]
        #[panic_handler]
        fn panic(_info: &core::panic::PanicInfo) -> ! {
            loop {}
        }

        #[cfg(target_arch = "bpf")]
        #[unsafe(link_section = "license")]
        #[unsafe(no_mangle)]
        static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

        #[cfg(not(target_arch = "bpf"))]
        fn main() {
            eprintln!(
                "tr7-ebpf holds eBPF programs; tr7-agent's build script builds them for the BPF target"
            );
        }
    };
}
