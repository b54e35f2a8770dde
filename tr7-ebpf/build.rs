//! Code generation options for the BPF target, passed to bpf-linker (rustc emits bitcode for
//! BPF; bpf-linker's LLVM generates the code). They go in as link arguments because
//! aya-build sets `CARGO_ENCODED_RUSTFLAGS` itself, which replaces any rustflags from config.
//!
//! `allows-misaligned-mem-access`: headers sit at 2-byte alignment (after the 14-byte
//! Ethernet header), and without it LLVM splits every multi-byte packet read into byte
//! loads. x86_64 and arm64 kernels (`CONFIG_HAVE_EFFICIENT_UNALIGNED_ACCESS`) let the
//! verifier accept misaligned packet and map-value reads (on other architectures the
//! programs would fail to load); stack accesses must stay aligned whatever the
//! architecture. The packet tables (tests/tests/gate_table.rs, guard_table.rs) load both
//! programs through the verifier, so a build that breaks either rule fails there. Needs the
//! LLVM 22 of the pinned nightly (older LLVMs do not know the feature).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
    }
}
