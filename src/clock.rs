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

impl Timestamp {
    /// Parses the text [`Timestamp::to_isoformat`] writes, and the variants
    /// Python's `datetime.fromisoformat()` accepts for an aware time:
    /// `YYYY-MM-DDTHH:MM:SS[.f{1,6}](+HH:MM|-HH:MM|Z)` (a space may stand for
    /// the `T`). Returns `None` for anything else, including a naive time.
    #[must_use]
    pub fn parse_isoformat(text: &str) -> Option<Self> {
        let field = |start: usize, end: usize| digits(text.get(start..end)?);
        let bytes = text.as_bytes();
        if bytes.len() < 20
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b' ')
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return None;
        }
        let (year, month, day) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
        let (hour, minute, second) = (field(11, 13)?, field(14, 16)?, field(17, 19)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut rest = text.get(19..)?;
        let mut micros = 0;
        if let Some(frac) = rest.strip_prefix('.') {
            let n = frac.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 || n > 6 {
                return None;
            }
            micros = format!("{:0<6}", &frac[..n]).parse::<u32>().ok()?;
            rest = &frac[n..];
        }
        let offset = if rest == "Z" {
            0
        } else {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (digits(rest.get(1..3)?)?, digits(rest.get(4..6)?)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        };
        Some(Self {
            unix_seconds: days_from_civil(year, month, day) * 86_400
                + hour * 3600
                + minute * 60
                + second
                - offset,
            micros,
        })
    }
}

/// A run of ASCII digits as a number (`None` when empty or not all digits).
fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// (year, month, day) in the proleptic Gregorian calendar to days since
/// 1970-01-01 (Howard Hinnant's `days_from_civil`, the inverse of
/// [`civil_from_days`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn isoformat_parses_back() {
        for (unix_seconds, micros) in [
            (0, 0),
            (1_767_225_600, 0),
            (1_795_869_296, 123_456),
            (951_782_400, 7),
            (-86_400 * 400, 5),
        ] {
            let t = Timestamp {
                unix_seconds,
                micros,
            };
            assert_eq!(
                Timestamp::parse_isoformat(&t.to_isoformat()),
                Some(t),
                "round trip of {}",
                t.to_isoformat()
            );
        }
        let z = Timestamp::parse_isoformat("2026-01-01T01:00:00.5Z");
        let plus = Timestamp::parse_isoformat("2026-01-01T02:00:00.500000+01:00");
        assert_eq!(z, plus, "offsets are applied");
        assert_eq!(z.map(|t| t.micros), Some(500_000), "fraction is padded");
        for bad in [
            "",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00+00:00",
            "2026-01-01T00:00:00.+00:00",
            "2026-01-01T00:00:00+0000",
            "2026-01-01X00:00:00+00:00",
            "２026-01-01T00:00:00+00:00",
        ] {
            assert_eq!(Timestamp::parse_isoformat(bad), None, "{bad:?} is refused");
        }
    }
}
