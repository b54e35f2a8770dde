//! VRRPv3 timer arithmetic (RFC 9568 6.1). Intervals are centiseconds on the wire and
//! in the configuration; the derived times are evaluated in microseconds.
//!
//! Why not truncate Skew_Time to whole centiseconds: at the short intervals TR7 is
//! built for, truncation erases the skew. At a 1 cs interval, ((256 - p) * 1) / 256 is
//! 0 for every priority, so all backups would fire in the same instant and the election
//! would rest on a race. Keepalived evaluates the same formula in microseconds; so do
//! we, which gives the RFC's values exactly (to the microsecond) at every interval.

use std::time::Duration;

/// A duration of `cs` centiseconds.
pub fn centiseconds(cs: u32) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// RFC 9568 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256.
/// A higher priority waits less, so the best backup takes over first.
pub fn skew_time(priority: u8, master_adver_interval_cs: u16) -> Duration {
    let interval_us = u64::from(master_adver_interval_cs) * 10_000;
    Duration::from_micros((256 - u64::from(priority)) * interval_us / 256)
}

/// RFC 9568 6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time.
pub fn master_down_interval(priority: u8, master_adver_interval_cs: u16) -> Duration {
    3 * centiseconds(u32::from(master_adver_interval_cs))
        + skew_time(priority, master_adver_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_formulas() {
        // Proves RFC 9568 6.1's formulas: at the default 100 cs interval, priority 100
        // skews by 156 * 1 s / 256 = 609.375 ms, and waits 3.609375 s for a master.
        assert_eq!(skew_time(100, 100), Duration::from_micros(609_375));
        assert_eq!(
            master_down_interval(100, 100),
            Duration::from_micros(3_609_375)
        );
        assert_eq!(skew_time(255, 100), Duration::from_micros(3_906));
        assert_eq!(skew_time(0, 100), Duration::from_secs(1));
        assert_eq!(
            master_down_interval(1, 4095),
            Duration::from_micros(3 * 40_950_000 + 255 * 40_950_000 / 256)
        );
        assert_eq!(centiseconds(360), Duration::from_millis(3600));
    }

    #[test]
    fn skew_survives_short_intervals() {
        // Proves the reason for microseconds: at a 1 cs interval, priorities 200 and 100
        // still get different Master_Down_Intervals (truncating to cs would give both 3).
        let hi = master_down_interval(200, 1);
        let lo = master_down_interval(100, 1);
        assert_eq!(hi, Duration::from_micros(30_000 + 2_187));
        assert_eq!(lo, Duration::from_micros(30_000 + 6_093));
        assert!(hi < lo);
    }
}
