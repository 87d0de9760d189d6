//! The SigV4 timestamp: `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC), as sent
//! in `X-Amz-Date` and shown in AWS's skew messages (PROTOCOL.md §1.4).
//!
//! Hand-rolled rather than pulling a date crate: SigV4 needs exactly one format,
//! and the simulator parses it on every request.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A whole-second UTC instant, as SigV4 carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AmzDate {
    /// Seconds since the Unix epoch; SigV4 dates before 1970 do not occur.
    secs: u64,
}

const SECS_PER_DAY: u64 = 86_400;

impl AmzDate {
    /// The timestamp of `time`, truncated to the second (as the signers do).
    pub(crate) fn from_system_time(time: SystemTime) -> Self {
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        AmzDate { secs }
    }

    /// The instant as a `SystemTime`.
    pub(crate) fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs)
    }

    /// Parses `YYYYMMDDTHHMMSSZ`; anything else is `None`.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u64> {
            b[range].iter().try_fold(0u64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
            })
        };
        let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(AmzDate {
            secs: days * SECS_PER_DAY + hour * 3600 + minute * 60 + second,
        })
    }

    /// The `YYYYMMDD` date part, as used in the credential scope.
    pub(crate) fn date_stamp(self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.to_bytes()[..8]);
        out
    }

    /// The 16-byte `YYYYMMDDTHHMMSSZ` form.
    pub(crate) fn to_bytes(self) -> [u8; 16] {
        let (year, month, day) = civil_from_days(self.secs / SECS_PER_DAY);
        let rem = self.secs % SECS_PER_DAY;
        let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
        let mut out = *b"00000000T000000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[4..6], month);
        put_digits(&mut out[6..8], day);
        put_digits(&mut out[9..11], hour);
        put_digits(&mut out[11..13], minute);
        put_digits(&mut out[13..15], second);
        out
    }

    /// This instant plus or minus `secs` seconds (saturating at the epoch).
    pub(crate) fn offset(self, secs: i64) -> Self {
        AmzDate {
            secs: self.secs.saturating_add_signed(secs),
        }
    }
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // The buffer holds only ASCII digits, 'T' and 'Z'.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's `days_from_civil`, for years >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        let d = AmzDate::parse("20250101T000000Z").unwrap();
        assert_eq!(d.secs, 1_735_689_600);
        assert_eq!(d.to_string(), "20250101T000000Z");
        assert_eq!(&d.date_stamp(), b"20250101");
        let d = AmzDate::parse("20150830T123600Z").unwrap();
        assert_eq!(d.secs, 1_440_938_160);
        assert_eq!(
            AmzDate::parse("20240229T235959Z").unwrap().to_string(),
            "20240229T235959Z"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "20250101T000000",
            "2025-01-01T00:00:00Z",
            "20250230T000000Z",
            "20250101T240000Z",
            "20250101X000000Z",
            "2025010aT000000Z",
            "19690101T000000Z",
        ] {
            assert_eq!(AmzDate::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(secs in 0u64..8_000_000_000) {
            let d = AmzDate { secs };
            prop_assert_eq!(AmzDate::parse(&d.to_string()), Some(d));
        }
    }
}
