//! Network-namespace labs: namespaces and veth pairs made for one test with `ip`, and
//! removed when the lab drops, also when the test panics. Only documentation addresses.

use std::{
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Creates `PARENT.ID`, a VLAN device with id `id` on `parent` in namespace `ns`, and sets
/// it up; returns its name.
pub fn vlan_link(ns: &str, parent: &str, id: u16) -> String {
    let name = format!("{parent}.{id}");
    let id = id.to_string();
    ip(&[
        "-n", ns, "link", "add", "link", parent, "name", &name, "type", "vlan", "id", &id,
    ]);
    ip(&["-n", ns, "link", "set", &name, "up"]);
    name
}

/// Runs `ip ARGS`, panicking with its stderr when it fails.
pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A set of namespaces owned by one test.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        crate::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self {
            prefix: format!("tr7t{}{tag}{n}", std::process::id() % 100_000),
            namespaces: Vec::new(),
        }
    }

    /// Creates namespace `<prefix>-<name>` with `lo` up; returns its full name.
    pub fn netns(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        ip(&["netns", "add", &full]);
        self.namespaces.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"]);
        full
    }

    /// A namespace name `<prefix>-<name>` that the code under test creates; the lab removes
    /// it on drop like its own.
    pub fn reserve(&mut self, name: &str) -> String {
        let full = format!("{}-{name}", self.prefix);
        self.namespaces.push(full.clone());
        full
    }

    /// A veth pair between two namespaces, both ends up. Indexes are chosen by the caller
    /// when the test depends on the kernel's fast or slow carrier path.
    pub fn veth(&self, a_ns: &str, a: &str, b_ns: &str, b: &str) {
        ip(&[
            "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
        ]);
        ip(&["-n", a_ns, "link", "set", a, "up"]);
        ip(&["-n", b_ns, "link", "set", b, "up"]);
    }

    /// A bridge `name` in `ns`, up: the shared segment of labs with more than two nodes.
    pub fn bridge(&self, ns: &str, name: &str) {
        ip(&["-n", ns, "link", "add", name, "type", "bridge"]);
        ip(&["-n", ns, "link", "set", name, "up"]);
    }

    /// A veth pair from `a` in `a_ns` to port `port` of bridge `bridge` in `bridge_ns`,
    /// both ends up.
    pub fn veth_to_bridge(&self, a_ns: &str, a: &str, bridge_ns: &str, port: &str, bridge: &str) {
        self.veth(a_ns, a, bridge_ns, port);
        ip(&["-n", bridge_ns, "link", "set", port, "master", bridge]);
    }

    /// Adds an address; IPv6 ones without duplicate address detection, so they are usable
    /// at once.
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            ip(&["-n", ns, "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
        }
    }

    /// Waits (at most 5 s) until no IPv6 address of `dev` in `ns` is tentative: a fresh
    /// link's link-local address is for about a second (DAD), and IPv6 exchanges fail
    /// until then.
    pub fn wait_ipv6_ready(&self, ns: &str, dev: &str) {
        for _ in 0..50 {
            let out = self.exec(ns, &["ip", "-6", "addr", "show", "dev", dev, "tentative"]);
            if out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("IPv6 on {dev} in {ns} still tentative after 5 s");
    }

    /// Runs a command inside namespace `ns`; returns its output without judging it.
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {}: {e}", cmd.join(" ")))
    }

    /// Writes `value` to `/proc/sys/<path>` inside namespace `ns` (the `net/` entries are
    /// per network namespace). `path` uses slashes, so interface names may contain dots.
    pub fn proc_sys(&self, ns: &str, path: &str, value: &str) {
        let out = self.exec(
            ns,
            &["sh", "-c", &format!("echo {value} > /proc/sys/{path}")],
        );
        assert!(
            out.status.success(),
            "{ns}: /proc/sys/{path} = {value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The MAC address of `dev` in `ns`.
    pub fn mac(&self, ns: &str, dev: &str) -> String {
        let out = self.exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The MAC `ns` has for `addr` on `dev` in its neighbour table, if any (lower case).
    pub fn neighbour(&self, ns: &str, dev: &str, addr: &str) -> Option<String> {
        let out = self.exec(ns, &["ip", "neigh", "show", addr, "dev", dev]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        words.next().map(str::to_lowercase)
    }

    /// One ping from `ns` to `addr`, waiting a second at most: whether it was answered.
    pub fn ping_once(&self, ns: &str, addr: &str) -> bool {
        self.exec(ns, &["ping", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            // Deleting the namespace deletes the veths in it, and their peers with them.
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `nft -f -` with `script` in namespace `ns`; panics with nft's message when it fails.
pub fn nft(ns: &str, script: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run nft (Debian package nftables; `cargo xtask setup` installs it)");
    child
        .stdin
        .take()
        .expect("nft stdin")
        .write_all(script.as_bytes())
        .expect("write the nft script");
    let out = child.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft in {ns}: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}
