//! keepalived (the Debian package) as a real VRRP peer: one instance in a namespace, run in
//! the foreground in its own process group and killed (the whole group) on drop, also on
//! panic. Shared by the interop tests (`tests/vrrp_wire.rs`) and `tr7-bench failover`.
//!
//! The settings every instance gets, and why:
//! - `vrrp_version 3`;
//! - `old_unicast_checksum never`: keepalived 2.2.7's strict checksum setting, which turns
//!   off its auto-detection (and acceptance) of the pre-1.3.6 unicast checksum, so only
//!   the correct VRRPv3 checksum is accepted (2.2.7 has no other checksum keyword);
//! - in unicast mode `check_unicast_src` (adverts from anyone but the peers are dropped,
//!   as TR7 does) and `unicast_ttl 255`: keepalived 2.2.7 sends IPv6 unicast adverts with
//!   hop limit 64 unless told, and RFC 9568 5.1.2.2 receivers (TR7 among them) drop those.

use std::fs;
use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One keepalived VRRP instance.
#[derive(Clone, Debug)]
pub struct KeepalivedConfig {
    pub iface: String,
    pub vrid: u8,
    pub priority: u8,
    /// Advert interval in centiseconds (keepalived's `advert_int` is in seconds).
    pub interval_cs: u16,
    /// `unicast_src_ip`; `None` lets keepalived choose (IPv6: the link-local address).
    pub unicast_src: Option<IpAddr>,
    /// `unicast_peer`; empty: multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    pub vip: IpAddr,
    /// Leave `unicast_ttl` out (keepalived's own default), to show what it does.
    pub default_unicast_ttl: bool,
}

/// What a keepalived instance tracks besides VRRP (`tr7-bench failover`, issue 6): the
/// carrier of interfaces (`track_interface`, from rtnetlink events) and a `track_script`
/// that pings a gateway. Without weights, a failure puts the instance in FAULT: it sends
/// priority 0 and removes its VIPs.
#[derive(Clone, Debug, Default)]
pub struct Tracking {
    pub interfaces: Vec<String>,
    /// `ping -c1 -W0.5 TARGET` every `interval_s` seconds (keepalived's minimum is 1),
    /// failed after `fall` failures in a row, up after `rise` successes.
    pub ping: Option<PingScript>,
}

#[derive(Clone, Debug)]
pub struct PingScript {
    pub target: IpAddr,
    pub interval_s: u32,
    pub fall: u32,
    pub rise: u32,
}

impl Tracking {
    fn global(&self) -> String {
        let Some(p) = &self.ping else {
            return String::new();
        };
        format!(
            "vrrp_script gateway {{
    script \"/usr/bin/ping -c1 -n -q -W0.5 {target}\"
    interval {interval}
    timeout 1
    fall {fall}
    rise {rise}
}}
",
            target = p.target,
            interval = p.interval_s,
            fall = p.fall,
            rise = p.rise,
        )
    }

    fn instance(&self) -> String {
        let mut s = String::new();
        if !self.interfaces.is_empty() {
            s.push_str("    track_interface {\n");
            for i in &self.interfaces {
                s.push_str(&format!("        {i}\n"));
            }
            s.push_str("    }\n");
        }
        if self.ping.is_some() {
            s.push_str("    track_script {\n        gateway\n    }\n");
        }
        s
    }
}

impl KeepalivedConfig {
    /// The configuration file's text.
    pub fn render(&self) -> String {
        self.render_tracked(&Tracking::default())
    }

    /// The configuration file's text with `tracking`.
    pub fn render_tracked(&self, tracking: &Tracking) -> String {
        let mut unicast = String::new();
        if let Some(src) = self.unicast_src {
            unicast.push_str(&format!("    unicast_src_ip {src}\n"));
        }
        if !self.unicast_peers.is_empty() {
            unicast.push_str("    unicast_peer {\n");
            for p in &self.unicast_peers {
                unicast.push_str(&format!("        {p}\n"));
            }
            unicast.push_str("    }\n    check_unicast_src\n");
            if !self.default_unicast_ttl {
                unicast.push_str("    unicast_ttl 255\n");
            }
        }
        let prefix = if self.vip.is_ipv4() { 32 } else { 128 };
        format!(
            "global_defs {{
    router_id tr7-peer
    vrrp_version 3
    script_user root
}}
{global}vrrp_instance tr7 {{
    state BACKUP
    interface {iface}
    virtual_router_id {vrid}
    priority {priority}
    advert_int {interval}
{unicast}{track}    old_unicast_checksum never
    virtual_ipaddress {{
        {vip}/{prefix}
    }}
}}
",
            iface = self.iface,
            vrid = self.vrid,
            priority = self.priority,
            interval = f64::from(self.interval_cs) / 100.0,
            vip = self.vip,
            global = tracking.global(),
            track = tracking.instance(),
        )
    }
}

/// A running keepalived.
pub struct Keepalived {
    child: Option<Child>,
    dir: PathBuf,
    ns: String,
    config: KeepalivedConfig,
}

impl Keepalived {
    /// Starts keepalived in namespace `ns`; `tag` names its directory (config, pid files,
    /// log) under the temporary directory.
    pub fn start(ns: &str, tag: &str, config: KeepalivedConfig) -> Self {
        Self::start_tracked(ns, tag, config, &Tracking::default())
    }

    /// [`Keepalived::start`] with `tracking`.
    pub fn start_tracked(
        ns: &str,
        tag: &str,
        config: KeepalivedConfig,
        tracking: &Tracking,
    ) -> Self {
        assert!(
            Command::new("keepalived").arg("--version").output().is_ok(),
            "keepalived is not installed: run `cargo xtask setup`"
        );
        let dir = std::env::temp_dir().join(format!("{ns}-{tag}-keepalived"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the keepalived directory");
        let conf = dir.join("keepalived.conf");
        fs::write(&conf, config.render_tracked(tracking)).expect("write keepalived.conf");
        let log = fs::File::create(dir.join("log")).expect("create the keepalived log");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "keepalived",
                "-n",
                "-l",
                "-D",
                "-P",
                "-f",
            ])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            // Its own group, so the VRRP child dies with it on kill and in Drop.
            .process_group(0)
            .spawn()
            .expect("spawn keepalived");
        Self {
            child: Some(child),
            dir,
            ns: ns.to_owned(),
            config,
        }
    }

    /// Whether keepalived is master: the VIP is on its interface.
    pub fn is_master(&self) -> bool {
        let family = if self.config.vip.is_ipv4() {
            "-4"
        } else {
            "-6"
        };
        let out = Command::new("ip")
            .args([
                "-n",
                &self.ns,
                family,
                "-o",
                "addr",
                "show",
                "dev",
                &self.config.iface,
            ])
            .output()
            .expect("run ip addr show");
        let prefix = if self.config.vip.is_ipv4() { 32 } else { 128 };
        String::from_utf8_lossy(&out.stdout).contains(&format!("{}/{prefix}", self.config.vip))
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// SIGTERM to the parent (keepalived then sends priority 0 and removes its VIPs), and
    /// wait (at most 5 s) for it to exit.
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(&format!("{}", child.id()), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.child = Some(child);
        panic!(
            "keepalived did not exit within 5 s of SIGTERM:\n{}",
            self.log()
        );
    }

    /// SIGKILL to the whole process group: no priority 0, and the VIP stays on the
    /// interface (keepalived has no chance to remove it).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&format!("-{}", child.id()), "KILL");
            let _ = child.wait();
        }
    }

    /// The live (not zombie) processes of this instance: the parent and its VRRP child,
    /// found by this instance's configuration file on their command line, so that a child
    /// that left the process group would be found too.
    pub fn processes(&self) -> Vec<u32> {
        let conf = self.dir.join("keepalived.conf");
        let conf = conf.to_string_lossy();
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // A zombie's command line is empty; its state is `Z` after `(comm)`.
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let zombie = stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
                !zombie && cmdline.split(|&b| b == 0).any(|arg| arg == conf.as_bytes())
            })
            .collect()
    }
}

/// `kill -SIG TARGET`, with the procps `kill` (a negative target is a process group).
pub fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stderr(Stdio::null())
        .status();
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("----- keepalived log ({}) -----\n{}", self.ns, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
