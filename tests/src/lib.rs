//! Support for TR7's privileged integration tests: a packet builder for BPF_PROG_TEST_RUN
//! tables, network-namespace labs that always clean up, a data plane loaded into a
//! private bpffs directory so tests never touch a real deployment's pins, keepalived as a
//! peer, and a capture of VRRP adverts.

pub mod agents;
pub mod bpf;
pub mod capture;
pub mod cluster_lab;
pub mod failover;
pub mod keepalived;
pub mod lab;
pub mod packet;

/// These tests create namespaces, load BPF programs and attach them: they need root.
/// Without it they fail with this message rather than skip, because a suite that quietly
/// skips its data plane tests proves nothing.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "TR7 integration tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): run them through `cargo xtask test`"
    );
}

/// Refuses to run outside the guest kernel (`cargo xtask vm-test` sets `TR7_GUEST=1`):
/// `cargo test -- --ignored` on the host would otherwise fail on missing VLAN and bonding
/// support with less helpful messages.
pub fn require_guest() {
    assert!(
        std::env::var("TR7_GUEST").is_ok_and(|v| v == "1"),
        "guest-only test: run it with `cargo xtask vm-test`, which boots a kernel with 8021q and bonding"
    );
}

/// Why the guest-only tests are ignored on the host: `#[ignore = tr7_tests::guest_only!()]`.
#[macro_export]
macro_rules! guest_only {
    () => {
        "needs the guest kernel (8021q, bonding): run by cargo xtask vm-test"
    };
}

/// An error and all its sources, `: `-separated, for panic messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
