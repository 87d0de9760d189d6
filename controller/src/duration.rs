//! Durations as specs write them: `"90s"`, `"2m"`, `"1.5s"`, `"150ms"`, `"1m30s"`.

use std::time::Duration;

/// Units, longest suffix first so `ms` is not read as `m`.
const UNITS: [(&str, f64); 7] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Parses a duration: one or more `NUMBER UNIT` parts (`ns`, `us`, `ms`, `s`,
/// `m`, `h`; decimals allowed), summed. The error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{text:?} is not a duration: expected e.g. \"90s\", \"2m\", \"1.5s\", \"150ms\"")
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| rest.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or_else(bad)?;
        rest = rest[unit.len()..].trim_start();
        total += value * scale;
    }
    let d = Duration::try_from_secs_f64(total).map_err(|_| bad())?;
    if d > MAX_DURATION {
        return Err(format!(
            "{text:?} is longer than the longest duration accepted (366 days)"
        ));
    }
    Ok(d)
}

/// The longest duration a spec may give anything: 366 days. Longer is a
/// typo (`100000000h`), not a load test.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        let ok = |s, d| assert_eq!(parse_duration(s), Ok(d), "{s}");
        ok("90s", Duration::from_secs(90));
        ok("2m", Duration::from_secs(120));
        ok("1.5s", Duration::from_millis(1500));
        ok("150ms", Duration::from_millis(150));
        ok("1m30s", Duration::from_secs(90));
        ok("250us", Duration::from_micros(250));
        ok(" 1h ", Duration::from_secs(3600));
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "10",
            "s",
            "-1s",
            "1.2.3s",
            "5 parsecs",
            "1e3s",
            "ten seconds",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?}");
        }
    }
}
