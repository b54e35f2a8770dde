//! Durations as operators write them: `10ms`, `1s`, `2.5s`, `1m`, `1h`.
//!
//! A tiny parser instead of a crate: the grammar is one number and one unit, and the model
//! needs millisecond resolution only (VRRP carries centiseconds).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};

/// A duration of the cluster file, written `<number><unit>` with unit `ms`, `s`, `m` or `h`.
/// Fractions are allowed (`2.5s`) down to one millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing but a number: the unit is ambiguous.
    #[error("`{0}` has no unit")]
    NoUnit(String),
    /// Not `<number><unit>`.
    #[error("`{0}` is not a duration")]
    Malformed(String),
    /// A unit other than ms, s, m, h.
    #[error("`{input}` has unknown unit `{unit}`")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// Finer than a millisecond.
    #[error("`{0}` is finer than one millisecond")]
    TooPrecise(String),
    /// Larger than the model handles (about 49 days).
    #[error("`{0}` is too long")]
    TooLong(String),
}

/// The hint shown with every duration error.
pub const DURATION_HINT: &str = "write a number and a unit: 10ms, 1s, 2.5s, 1m, 1h";

impl HumanDuration {
    /// Parses `10ms`, `1s`, `2.5s`, `1m`, `1h`.
    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let s = input.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(DurationError::Malformed(input.to_owned()));
        }
        if unit.is_empty() {
            return Err(DurationError::NoUnit(input.to_owned()));
        }
        let ms_per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: unit.to_owned(),
                });
            }
        };
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if frac.contains('.') {
            return Err(DurationError::Malformed(input.to_owned()));
        }
        // Exact decimal arithmetic: `0.1s` must be 100 ms, not 99.999... ms.
        let too_long = || DurationError::TooLong(input.to_owned());
        let whole: u128 = whole.parse().map_err(|_| too_long())?;
        let mut total = whole.checked_mul(ms_per_unit).ok_or_else(too_long)?;
        if !frac.is_empty() {
            if frac.len() > 9 {
                return Err(DurationError::TooPrecise(input.to_owned()));
            }
            let scale = 10u128.pow(frac.len() as u32);
            let frac: u128 = frac.parse().map_err(|_| too_long())?;
            let scaled = frac * ms_per_unit;
            if !scaled.is_multiple_of(scale) {
                return Err(DurationError::TooPrecise(input.to_owned()));
            }
            total += scaled / scale;
        }
        let ms = u64::try_from(total).map_err(|_| too_long())?;
        if ms > u64::from(u32::MAX) {
            return Err(too_long());
        }
        Ok(Self(Duration::from_millis(ms)))
    }

    /// Whole milliseconds (the model never holds finer durations).
    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl fmt::Display for HumanDuration {
    /// The shortest exact form: `1m`, `2s`, `2500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        if ms == 0 {
            f.write_str("0s")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$",
            "description": "A duration: a number and a unit (ms, s, m, h), e.g. 10ms, 1s, 2.5s, 1m.",
            "examples": ["100ms", "1s", "2.5s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the accepted forms and their exact values.
    #[test]
    fn parses_units_and_fractions() {
        let ms = |s: &str| HumanDuration::parse(s).map(HumanDuration::as_millis);
        assert_eq!(ms("10ms"), Ok(10));
        assert_eq!(ms("1s"), Ok(1_000));
        assert_eq!(ms("2.5s"), Ok(2_500));
        assert_eq!(ms("0.1s"), Ok(100));
        assert_eq!(ms("40.95s"), Ok(40_950));
        assert_eq!(ms("1m"), Ok(60_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
    }

    // Proves that malformed input is refused with the reason, never a panic.
    #[test]
    fn refuses_bad_input() {
        assert!(matches!(
            HumanDuration::parse("10"),
            Err(DurationError::NoUnit(_))
        ));
        assert!(matches!(
            HumanDuration::parse("10 sec"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            HumanDuration::parse("1.0005s"),
            Err(DurationError::TooPrecise(_))
        ));
        assert!(matches!(
            HumanDuration::parse("s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            HumanDuration::parse("1..2s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            HumanDuration::parse("-1s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            HumanDuration::parse("99999999999999999999999999999999999999999h"),
            Err(DurationError::TooLong(_))
        ));
    }

    // Proves that Display is the inverse of parse.
    #[test]
    fn display_round_trips() {
        for s in ["0s", "10ms", "2500ms", "3s", "2m", "1h", "90s"] {
            let d = HumanDuration::parse(s).expect(s);
            assert_eq!(HumanDuration::parse(&d.to_string()), Ok(d), "{s}");
        }
    }
}
