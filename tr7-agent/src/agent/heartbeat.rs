//! The liveness heartbeat: a thread that keeps refreshing the data plane's fence
//! timestamp. When the agent dies (kill -9, a crash, a hang of this thread) the
//! timestamp ages past the fence interval and the programs stop claiming every VIP, at
//! about the moment the peer's Master_Down_Timer makes it take over.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use tracing::{info, warn};

use crate::dataplane::{DataplaneError, Maps};

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
