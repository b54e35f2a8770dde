//! VRRPv3 timer arithmetic (RFC 9568 6.1), in centiseconds as the RFC states it.
//!
//! The RFC's integer division is kept on purpose: two implementations that both follow
//! it compute the same Master_Down_Interval, which makes interop behaviour predictable.

use std::time::Duration;

/// A duration of `cs` centiseconds.
pub fn centiseconds(cs: u32) -> Duration {
    Duration::from_millis(u64::from(cs) * 10)
}

/// RFC 9568 6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256, in cs.
/// A higher priority waits less, so the best backup takes over first.
pub fn skew_time_cs(priority: u8, master_adver_interval_cs: u16) -> u32 {
    (256 - u32::from(priority)) * u32::from(master_adver_interval_cs) / 256
}

/// RFC 9568 6.1: Master_Down_Interval = (3 * Master_Adver_Interval) + Skew_Time, in cs.
pub fn master_down_interval_cs(priority: u8, master_adver_interval_cs: u16) -> u32 {
    3 * u32::from(master_adver_interval_cs) + skew_time_cs(priority, master_adver_interval_cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_formulas_in_centiseconds() {
        // Proves RFC 9568 6.1's formulas with its integer division: at the default
        // 100 cs interval, priority 100 skews by 156*100/256 = 60 cs (60.9 truncated).
        assert_eq!(skew_time_cs(100, 100), 60);
        assert_eq!(master_down_interval_cs(100, 100), 360);
        assert_eq!(skew_time_cs(255, 100), 0);
        assert_eq!(skew_time_cs(1, 100), 99);
        assert_eq!(master_down_interval_cs(254, 1), 3);
        assert_eq!(master_down_interval_cs(1, 4095), 3 * 4095 + 255 * 4095 / 256);
        assert_eq!(centiseconds(360), Duration::from_millis(3600));
    }
}
