//! The liveness heartbeat: a thread that keeps refreshing the data plane's fence
//! timestamp. When the agent dies (kill -9, a crash, a hang of this thread) the
//! timestamp ages past the fence interval and the programs stop claiming every VIP
//! before the peer's Master_Down_Timer makes it take over.
//!
//! The fence ([`fence`]) is Master_Down_Interval(peer) + one advert interval. The peer
//! takes over Master_Down_Interval(peer) after the last advert it heard from us, which is
//! at most one advert interval before our death; our last heartbeat is at most a heartbeat
//! period before it. So after an agent death the data plane keeps answering until the peer
//! has taken over (no client-visible gap: the node's kernel is usually alive when only
//! the agent died), and stops at most about two advert intervals after the takeover, which
//! the takeover's announcement burst has already redirected clients. docs/agent.md has the
//! measurements and why a shorter fence (no overlap, but a gap) was dropped.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use tracing::{info, warn};

use crate::config::Cluster;
use crate::dataplane::{DataplaneError, Maps};
use crate::vrrp::timers;

/// The fence when no slot of this node carries VIPs (nothing to claim): as long as a
/// 1 s-interval Master_Down_Interval, never reached in practice.
pub const DEFAULT_FENCE: Duration = Duration::from_secs(3);

/// The liveness fence of `node`: the smallest `Master_Down_Interval(peer) + advert
/// interval` over the slots with VIPs, where the peer is the other node with the highest
/// priority for the slot (it takes over first). A slot without another node has no one
/// to overlap with and does not count.
pub fn fence(cluster: &Cluster, node: &str) -> Duration {
    cluster
        .interfaces
        .iter()
        .filter_map(|i| i.vrrp.as_ref())
        .flat_map(|v| v.slots().map(move |s| (v.advert_interval, s)))
        .filter(|(_, s)| !s.vips.is_empty())
        .filter_map(|(interval, s)| {
            let peer = s
                .priorities
                .iter()
                .filter(|(n, _)| *n != node)
                .map(|(_, p)| *p)
                .max()?;
            Some(peer_takeover_bound(peer.max(1), interval))
        })
        .min()
        .unwrap_or(DEFAULT_FENCE)
}

/// Master_Down_Interval of a peer at `priority` plus one advert `interval`: the latest the
/// peer takes over after our death is Master_Down_Interval after our last advert.
pub fn peer_takeover_bound(priority: u8, interval: Duration) -> Duration {
    let cs = u16::try_from(interval.as_millis() / 10)
        .unwrap_or(u16::MAX)
        .max(1);
    timers::master_down_interval(priority, cs) + timers::centiseconds(cs.into())
}

/// CLOCK_MONOTONIC in nanoseconds: what `bpf_ktime_get_ns` reads in the programs.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; a zero would only make the fence fire early.
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|ts| {
            u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000_000
                + u64::try_from(ts.tv_nsec()).unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The refresh period for a fence: a quarter of it (at most 1 s), so that three late
/// wake-ups in a row still do not fence a live agent.
pub fn refresh_period(fence: Duration) -> Duration {
    (fence / 4).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

/// The running heartbeat; dropping it stops the thread (the timestamp then ages out).
pub struct Heartbeat {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    /// Writes the first beat now (so the caller knows the map is writable) and starts
    /// the thread.
    pub fn start(mut maps: Maps, fence: Duration) -> Result<Self, DataplaneError> {
        let fence_ns = u64::try_from(fence.as_nanos()).unwrap_or(u64::MAX);
        maps.heartbeat(monotonic_ns(), fence_ns)?;
        let period = refresh_period(fence);
        info!(
            fence_ms = fence.as_secs_f64() * 1000.0,
            period_ms = period.as_secs_f64() * 1000.0,
            "liveness heartbeat started"
        );
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    match maps.heartbeat(monotonic_ns(), fence_ns) {
                        Ok(()) if failing => {
                            failing = false;
                            info!("liveness heartbeat written again");
                        }
                        Ok(()) => {}
                        // Logged once per episode: the fence will withdraw the VIPs,
                        // which is the safe outcome.
                        Err(error) if !failing => {
                            failing = true;
                            warn!(error = %crate::agent::chain(&error),
                                "cannot write the liveness heartbeat");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|e| DataplaneError::Io {
                path: "heartbeat thread".into(),
                source: e,
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the refresh period stays well inside the fence at the intervals TR7 runs
    // (10 ms to 40 s adverts) and never reaches zero.
    // Proves the fence bound: at a 100 ms interval a peer at priority 100 takes over
    // 360.9375 ms after our last advert, which is at most 100 ms before our death, so the
    // fence is 460.9375 ms; a peer at 255, 400.39 ms; a 1 s interval scales.
    #[test]
    fn fence_is_the_peer_takeover_bound() {
        let ms100 = Duration::from_millis(100);
        assert_eq!(
            peer_takeover_bound(100, ms100),
            Duration::from_micros(460_937)
        );
        assert_eq!(
            peer_takeover_bound(255, ms100),
            Duration::from_micros(400_390)
        );
        assert_eq!(
            peer_takeover_bound(100, Duration::from_secs(1)),
            Duration::from_micros(4_609_375)
        );
    }

    // Proves the fence takes, per slot with VIPs, the other node with the highest
    // priority, and the smallest bound over the slots: node-a's peer on the master slot is
    // node-b at 100 (460.9 ms), on the backup slot node-b at 200 (421.9 ms).
    #[test]
    fn fence_is_the_smallest_over_slots() {
        let file = "\
name: lab
nodes: [{name: node-a}, {name: node-b}]
interfaces:
  - name: eth0
    type: ethernet
    addresses:
      node-a: [192.0.2.2/24]
      node-b: [192.0.2.3/24]
    vrrp:
      advert_interval: 100ms
    vips:
      master: [{address: 192.0.2.10}]
      backup: [{address: 192.0.2.20}]
";
        let cluster = crate::config::parse(file, "lab.yaml").expect("valid file");
        assert_eq!(fence(&cluster, "node-a"), Duration::from_micros(421_875));
        assert_eq!(fence(&cluster, "node-b"), Duration::from_micros(421_875));
        let one_slot = file.replace("      backup: [{address: 192.0.2.20}]\n", "");
        let cluster = crate::config::parse(&one_slot, "lab.yaml").expect("valid file");
        // node-a's master-slot peer is node-b at 100; node-b's is node-a at 200.
        assert_eq!(fence(&cluster, "node-a"), Duration::from_micros(460_937));
        assert_eq!(fence(&cluster, "node-b"), Duration::from_micros(421_875));
    }

    #[test]
    fn refresh_period_is_a_quarter_of_the_fence() {
        assert_eq!(
            refresh_period(Duration::from_micros(321_875)),
            Duration::from_nanos(80_468_750)
        );
        assert_eq!(
            refresh_period(Duration::from_secs(120)),
            Duration::from_secs(1)
        );
        assert_eq!(refresh_period(Duration::ZERO), Duration::from_millis(1));
    }
}
