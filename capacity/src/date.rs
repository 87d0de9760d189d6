//! Civil dates: a plan's start, the day a wall binds, the day to file a quota
//! request. A thin wrapper over the `time` crate's `Date` (proleptic Gregorian
//! calendar), written and read as `YYYY-MM-DD`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar day, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilDate(time::Date);

impl CivilDate {
    /// The date of `year`-`month`-`day`; `None` when no such day exists.
    pub fn from_ymd(year: i32, month: u8, day: u8) -> Option<Self> {
        let month = time::Month::try_from(month).ok()?;
        time::Date::from_calendar_date(year, month, day)
            .ok()
            .map(CivilDate)
    }

    /// Parses `YYYY-MM-DD` (four-digit year); anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            text.get(range)?.bytes().try_fold(0u32, |acc, c| {
                c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
            })
        };
        let year = i32::try_from(num(0..4)?).ok()?;
        let month = u8::try_from(num(5..7)?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        CivilDate::from_ymd(year, month, day)
    }

    /// This date `days` days later (earlier when negative); `None` past the
    /// calendar's range.
    pub fn add_days(self, days: i64) -> Option<Self> {
        let julian = i64::from(self.0.to_julian_day()).checked_add(days)?;
        time::Date::from_julian_day(i32::try_from(julian).ok()?)
            .ok()
            .map(CivilDate)
    }

    /// Days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: CivilDate) -> i64 {
        i64::from(later.0.to_julian_day()) - i64::from(self.0.to_julian_day())
    }
}

impl fmt::Display for CivilDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for CivilDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CivilDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CivilDate::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a YYYY-MM-DD date: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_iso_dates() {
        let d = CivilDate::parse("2026-02-28").unwrap();
        assert_eq!(d.to_string(), "2026-02-28");
        assert_eq!(d.add_days(1).unwrap().to_string(), "2026-03-01");
        assert_eq!(
            CivilDate::parse("2028-02-28")
                .unwrap()
                .add_days(1)
                .unwrap()
                .to_string(),
            "2028-02-29"
        );
        assert_eq!(d.add_days(-59).unwrap().to_string(), "2025-12-31");
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "26-01-01",
            "2026/01/01",
            "2026-1-01",
            "2026-01-0x",
        ] {
            assert_eq!(CivilDate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn counts_days_between_dates() {
        let a = CivilDate::parse("2026-01-01").unwrap();
        let b = CivilDate::parse("2027-01-01").unwrap();
        assert_eq!(a.days_until(b), 365);
        assert_eq!(b.days_until(a), -365);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"2026-01-01\"");
        assert_eq!(serde_json::from_str::<CivilDate>(&json).unwrap(), a);
    }
}
