//! Timestamps in the text forms the format uses.
//!
//! Muse writes times as Python's `datetime.isoformat()` of an aware UTC time:
//! `2026-01-01T00:00:00+00:00`, with `.ffffff` microseconds only when they are
//! not zero. Ids depend on that text, so it is produced in exactly one place.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub unix_seconds: i64,
    /// Microseconds within the second (0..1,000,000).
    pub micros: u32,
}

impl Timestamp {
    /// The current time.
    #[must_use]
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`] (times before 1970 clamp to the epoch).
    #[must_use]
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self {
            unix_seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            micros: since.subsec_micros(),
        }
    }

    /// This instant plus `seconds`.
    #[must_use]
    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self {
            unix_seconds: self.unix_seconds + seconds,
            micros: self.micros,
        }
    }

    /// Python's `isoformat()` of this instant as an aware UTC datetime.
    #[must_use]
    pub fn to_isoformat(self) -> String {
        let days = self.unix_seconds.div_euclid(86_400);
        let secs = self.unix_seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        if self.micros == 0 {
            format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+00:00")
        } else {
            format!(
                "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:06}+00:00",
                self.micros
            )
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
#[expect(
    clippy::cast_sign_loss,
    reason = "day is in 1..=31 and month in 1..=12 by construction"
)]
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isoformat_matches_python() {
        let t = Timestamp {
            unix_seconds: 1_767_225_600,
            micros: 0,
        };
        assert_eq!(t.to_isoformat(), "2026-01-01T00:00:00+00:00");
        let t = Timestamp {
            unix_seconds: 1_795_869_296,
            micros: 123_456,
        };
        assert_eq!(t.to_isoformat(), "2026-11-28T12:34:56.123456+00:00");
        let t = Timestamp {
            unix_seconds: 951_782_400,
            micros: 7,
        };
        assert_eq!(t.to_isoformat(), "2000-02-29T00:00:00.000007+00:00");
        assert_eq!(
            Timestamp {
                unix_seconds: 0,
                micros: 0
            }
            .to_isoformat(),
            "1970-01-01T00:00:00+00:00"
        );
    }
}
