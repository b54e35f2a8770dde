//! Real `tr7 agent` processes for namespace labs: the binary built for the test's profile,
//! one process per node with its own pin directory, log and control socket, killed on drop
//! (also on panic, when the log is printed); and the segment the two-agent labs share.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tr7::agent::StatusReport;
use tr7::agent::metrics::{Sample, parse_exposition};
use tr7::dataplane::Maps;

use crate::bpf::PinDir;
use crate::lab::Lab;

/// The `tr7` binary of this test's profile and target directory, built once per process.
pub fn tr7_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/agent_lab-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target directory");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", "tr7-agent", "--bin", "tr7"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for the tr7 binary");
        assert!(
            status.success(),
            "cargo build -p tr7-agent --bin tr7 failed"
        );
        let bin = profile_dir.join("tr7");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// One agent process; killed (SIGKILL) and reaped on drop, also when the test panics.
pub struct Agent {
    pub name: &'static str,
    /// The node's namespace (`--netns`).
    pub netns: String,
    pub file: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
    pub pins: PinDir,
    /// Its control socket, in a directory of the test that the agent creates (0700).
    pub socket: PathBuf,
}

impl Agent {
    /// Starts `tr7 agent` for node `name` in namespace `netns` with cluster file `file`;
    /// its log and control socket go in `dir`.
    pub fn start(name: &'static str, netns: &str, file: &Path, dir: &Path) -> Self {
        let pins = PinDir::new(&format!("agent-{name}"));
        let log = dir.join(format!("{name}.log"));
        File::create(&log).expect("create agent log");
        let mut agent = Self {
            name,
            netns: netns.to_owned(),
            file: file.to_owned(),
            child: None,
            log,
            pins,
            socket: dir.join(format!("ctl-{name}")).join("tr7.sock"),
        };
        agent.spawn();
        agent
    }

    /// Starts the process (again, after an exit: same file, namespace and pins; the log
    /// is appended to).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let out = File::options()
            .append(true)
            .open(&self.log)
            .expect("open agent log");
        // /metrics stays at its default address: each agent binds it in its own namespace.
        let child = Command::new(tr7_binary())
            .args(["agent", "--config"])
            .arg(&self.file)
            .args(["--node", self.name, "--netns", &self.netns, "--pin-dir"])
            .arg(&self.pins.path)
            .arg("--control-socket")
            .arg(&self.socket)
            .env("TR7_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("spawn tr7 agent");
        self.child = Some(child);
    }

    /// `tr7 status --socket <ours> [--format json]`.
    pub fn status_command(&self, json: bool) -> std::process::Output {
        let mut cmd = Command::new(tr7_binary());
        cmd.arg("status").arg("--socket").arg(&self.socket);
        if json {
            cmd.args(["--format", "json"]);
        }
        cmd.output().expect("run tr7 status")
    }

    /// The agent's status report, or `tr7 status`'s error message.
    pub fn status(&self) -> Result<StatusReport, String> {
        let out = self.status_command(true);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(
            serde_json::from_slice(&out.stdout)
                .expect("tr7 status --format json is a StatusReport"),
        )
    }

    /// `tr7 status --format json` as plain JSON (fields a test reads by name).
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.status_command(true);
        assert!(
            out.status.success(),
            "{}: tr7 status: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("tr7 status --format json is JSON")
    }

    /// The state (`up`, `down`, `unknown`) of the tracked signal `name` as `tr7 status`
    /// shows it on any router, with its mechanism.
    pub fn signal_state(&self, name: &str) -> Option<(String, String)> {
        let report = self.status_json();
        report["routers"]
            .as_array()?
            .iter()
            .flat_map(|r| r["signals"].as_array().cloned().unwrap_or_default())
            .find(|s| s["name"] == name)
            .map(|s| {
                (
                    s["state"].as_str().unwrap_or_default().to_owned(),
                    s["mechanism"].as_str().unwrap_or_default().to_owned(),
                )
            })
    }

    /// One HTTP request to the agent's /metrics listener at its default address, from
    /// inside the node's namespace: the whole response.
    pub fn http(&self, request: &str) -> String {
        let mut stream = tr7::netns::within(Some(&self.netns), || {
            TcpStream::connect(tr7::agent::metrics::DEFAULT_LISTEN)
        })
        .expect("enter the node's namespace")
        .unwrap_or_else(|e| panic!("{}: connect to /metrics: {e}", self.name));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set timeout");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut out = String::new();
        stream.read_to_string(&mut out).expect("read response");
        out
    }

    /// GET /metrics, checked as Prometheus text: its samples.
    pub fn scrape(&self) -> Vec<Sample> {
        let response = self.http("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{}: {head}", self.name);
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        parse_exposition(body)
            .unwrap_or_else(|e| panic!("{}: /metrics does not parse: {e}", self.name))
    }

    /// Sends `signal` (`TERM`, `QUIT`, `HUP`) to the agent.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} failed");
    }

    /// The log from byte `from` on (a mark taken with `log_len`).
    pub fn log_since(&self, from: usize) -> String {
        self.log_text().get(from..).unwrap_or_default().to_owned()
    }

    pub fn log_len(&self) -> usize {
        self.log_text().len()
    }

    /// Waits (at most `limit`) until the log after `from` contains `what`.
    pub fn wait_log(&self, from: usize, what: &str, limit: Duration) -> Duration {
        wait_for(limit, &format!("{} logs `{what}`", self.name), || {
            self.log_since(from).contains(what)
        })
    }

    /// Whether the map has an entry for `vip` at all (owned or not).
    pub fn has_entry(&self, vip: &str) -> bool {
        let vip: IpAddr = vip.parse().unwrap();
        Maps::open(&self.pins.path)
            .ok()
            .and_then(|m| m.vips().ok())
            .is_some_and(|v| v.iter().any(|e| e.addr == vip))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Whether this node's ownership map says it owns `vip` (the agent's view; the fence
    /// may still withdraw it in the data plane).
    pub fn owns(&self, vip: &str) -> bool {
        let vip: IpAddr = vip.parse().unwrap();
        Maps::open(&self.pins.path)
            .ok()
            .and_then(|m| m.vips().ok())
            .is_some_and(|v| v.iter().any(|e| e.addr == vip && e.owned))
    }

    pub fn owns_all(&self, vips: &[&str]) -> bool {
        vips.iter().all(|v| self.owns(v))
    }

    pub fn owns_none(&self, vips: &[&str]) -> bool {
        vips.iter().all(|v| !self.owns(v))
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM; the caller then waits with [`Agent::wait_exit`].
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Waits (at most 5 s) for the exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("agent running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for agent") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{} did not exit within 5 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "----- {} agent log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// A directory for the cluster file and the logs; removed on drop unless a test failed.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Polls `cond` every 2 ms until it holds or `limit` passes; returns the time it took.
pub fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// The segment the two-agent labs share: a switch namespace with bridge `br0`, and
/// node-a, node-b and a client each with an `eth0` on it (bridge ports `pa`, `pb`, `pc`);
/// the client has 192.0.2.1/24 and 2001:db8::1/64, and every `eth0`'s IPv6 is usable.
pub struct Segment {
    pub lab: Lab,
    pub sw: String,
    pub node_a: String,
    pub node_b: String,
    pub client: String,
}

impl Segment {
    pub fn new(tag: &str) -> Self {
        let mut lab = Lab::new(tag);
        let sw = lab.netns("sw");
        let node_a = lab.netns("a");
        let node_b = lab.netns("b");
        let client = lab.netns("client");
        lab.bridge(&sw, "br0");
        lab.veth_to_bridge(&node_a, "eth0", &sw, "pa", "br0");
        lab.veth_to_bridge(&node_b, "eth0", &sw, "pb", "br0");
        lab.veth_to_bridge(&client, "eth0", &sw, "pc", "br0");
        lab.addr(&client, "eth0", "192.0.2.1/24");
        lab.addr(&client, "eth0", "2001:db8::1/64");
        for ns in [&node_a, &node_b, &client] {
            lab.wait_ipv6_ready(ns, "eth0");
        }
        Self {
            lab,
            sw,
            node_a,
            node_b,
            client,
        }
    }

    /// Writes `yaml` as `cluster.yaml` in a directory of its own (for the agents' logs
    /// too): the directory, removed on drop unless the test failed, and the file's path.
    pub fn cluster_file(&self, yaml: &str) -> (TempDir, PathBuf) {
        let dir = std::env::temp_dir().join(format!("{}-cluster", self.node_a));
        std::fs::create_dir_all(&dir).expect("create test directory");
        let file = dir.join("cluster.yaml");
        std::fs::write(&file, yaml).expect("write cluster file");
        (TempDir(dir), file)
    }

    /// The client's neighbour entry for `vip` on its `eth0`.
    pub fn client_neighbour(&self, vip: &str) -> Option<String> {
        self.lab.neighbour(&self.client, "eth0", vip)
    }

    /// One ping from the client.
    pub fn client_ping(&self, vip: &str) -> bool {
        self.lab.ping_once(&self.client, vip)
    }
}
