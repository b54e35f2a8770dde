//! The lab the plan/apply and diag tests share: a namespace standing in for the node's host
//! namespace with an "ethernet" port `eth1` (one end of a veth whose other end `wire` the
//! file does not declare), and a cluster file: bridge br0 (MTU 9000) over eth1 and veth-red,
//! veth-red's peer `eth0` in a tenant namespace TR7 creates, IPv4+IPv6 addresses and VIPs.
//! The file is removed with the lab.

use std::path::PathBuf;

use crate::lab::{Lab, ip};

pub struct BridgeLab {
    pub lab: Lab,
    /// The namespace standing in for node `a`'s host namespace (`--netns`).
    pub host: String,
    /// The tenant namespace the file names (created by `tr7 apply`, removed with the lab).
    pub red: String,
    pub file: PathBuf,
}

impl BridgeLab {
    /// `gateway`: also declare an IPv4 gateway check on br0 whose target, 192.0.2.1, has no
    /// host behind it.
    pub fn new(tag: &str, gateway: bool) -> Self {
        let mut lab = Lab::new(tag);
        let host = lab.netns("host");
        let red = lab.reserve("red");
        ip(&[
            "-n", &host, "link", "add", "eth1", "type", "veth", "peer", "name", "wire",
        ]);
        let gateway = if gateway {
            "    gateway:\n      ipv4: {target: 192.0.2.1}\n"
        } else {
            ""
        };
        let yaml = format!(
            "\
name: lab
nodes: [{{name: a}}, {{name: b}}]
interfaces:
  - {{name: eth1, type: ethernet, mtu: 9000}}
  - name: br0
    type: bridge
    members: [eth1, veth-red]
    mtu: 9000
    addresses:
      a: [192.0.2.2/24, 2001:db8::2/64]
      b: [192.0.2.3/24, 2001:db8::3/64]
    vips:
      master: [{{address: 192.0.2.10}}, {{address: 2001:db8::10}}]
{gateway}  - {{name: veth-red, type: veth, peer: {red}/eth0, mtu: 9000}}
  - name: eth0
    type: veth-peer
    namespace: {red}
    peer: veth-red
    mtu: 9000
    addresses:
      a: [198.51.100.2/24, 2001:db8:1::2/64]
"
        );
        let file = std::env::temp_dir().join(format!("{host}.yaml"));
        std::fs::write(&file, yaml).expect("write cluster file");
        Self {
            lab,
            host,
            red,
            file,
        }
    }
}

impl Drop for BridgeLab {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}
