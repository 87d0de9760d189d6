//! The SigV4 timestamp: `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC), as sent
//! in `X-Amz-Date` and shown in AWS's skew messages (PROTOCOL.md §1.4).
//!
//! The calendar arithmetic is the `time` crate's (the workspace's one date
//! implementation); the fixed 16-byte format is read and written here, since
//! the simulator parses it on every request.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A whole-second UTC instant, as SigV4 carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AmzDate {
    /// Seconds since the Unix epoch; SigV4 dates before 1970 do not occur.
    secs: u64,
}

const SECS_PER_DAY: u64 = 86_400;

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

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
        if year < 1970 || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::try_from(year).ok()?,
            month,
            u8::try_from(day).ok()?,
        )
        .ok()?;
        let days = u64::try_from(i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY).ok()?;
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

/// The calendar day `days` days after 1970-01-01, as (year, month, day);
/// past the calendar's range (year 9999) it reads as 9999-12-31.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let julian = i64::try_from(days)
        .ok()
        .and_then(|d| d.checked_add(UNIX_EPOCH_JULIAN_DAY))
        .and_then(|j| i32::try_from(j).ok());
    let date = julian
        .and_then(|j| time::Date::from_julian_day(j).ok())
        .unwrap_or(time::Date::MAX);
    let year = u64::try_from(date.year()).unwrap_or(0);
    (
        year,
        u64::from(u8::from(date.month())),
        u64::from(date.day()),
    )
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
