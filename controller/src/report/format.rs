//! How the report prints numbers: durations with a unit chosen by size,
//! counts with thousands separators, rates and dollars with enough digits.

/// A duration in nanoseconds with a sensible unit: `850ns`, `12.3µs`,
/// `45.6ms`, `1.23s`, `2m03.4s`.
pub fn duration_ns(ns: u64) -> String {
    let x = ns as f64;
    // Cut-offs sit where three significant digits would round up to 1000
    // of the smaller unit (999,700 ns prints as 1.00ms, not 1000µs).
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 999_500 {
        three_digits(x / 1e3, "µs")
    } else if ns < 999_500_000 {
        three_digits(x / 1e6, "ms")
    } else if ns < 59_995_000_000 {
        three_digits(x / 1e9, "s")
    } else {
        // Whole tenths first, so 59.99 s of a minute cannot print as 60.0.
        let tenths = (ns + 50_000_000) / 100_000_000;
        let (m, rest) = (tenths / 600, tenths % 600);
        format!("{m}m{:02}.{}s", rest / 10, rest % 10)
    }
}

/// Three significant digits (two or one decimals) plus `unit`.
fn three_digits(v: f64, unit: &str) -> String {
    if v < 10.0 {
        format!("{v:.2}{unit}")
    } else if v < 100.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// An integer with `,` between thousands: `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number without a trailing `.0` and with at most 3 decimals.
pub fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A rate with digits by size: `0.0123`, `1.23`, `12.3`, `1,234`.
pub fn rate(v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    let a = v.abs();
    if a >= 1000.0 {
        count(v.round() as u64)
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 0.999_95 {
        // From just under 1, so 0.99996 prints as 1.00, not 1.0000.
        format!("{v:.2}")
    } else if a == 0.0 {
        "0".to_owned()
    } else {
        format!("{v:.4}")
    }
}

/// A percentage of `part` in `whole` with two decimals.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.2}%", 100.0 * part as f64 / whole as f64)
}

/// US dollars: cents from a dollar up (`$1.23`, `$1,234.57`), four
/// significant digits below (`$0.4927`, `$0.0001234`).
pub fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".to_owned()
    } else if v >= 1000.0 {
        format!(
            "${}.{:02}",
            count(v.trunc() as u64),
            ((v.fract() * 100.0).round() as u64).min(99)
        )
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        // Enough decimals for four significant digits.
        let decimals = (-v.log10()).ceil() as usize + 3;
        format!("${v:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_unit() {
        assert_eq!(duration_ns(0), "0ns");
        assert_eq!(duration_ns(850), "850ns");
        assert_eq!(duration_ns(12_345), "12.3µs");
        assert_eq!(duration_ns(999_499), "999µs");
        assert_eq!(duration_ns(999_700), "1.00ms");
        assert_eq!(duration_ns(59_999_000_000), "1m00.0s");
        assert_eq!(duration_ns(1_234_567), "1.23ms");
        assert_eq!(duration_ns(45_600_000), "45.6ms");
        assert_eq!(duration_ns(456_000_000), "456ms");
        assert_eq!(duration_ns(1_230_000_000), "1.23s");
        assert_eq!(duration_ns(123_400_000_000), "2m03.4s");
    }

    #[test]
    fn counts_rates_and_money() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rate(0.012345), "0.0123");
        assert_eq!(rate(12.345), "12.35");
        assert_eq!(rate(123.45), "123.5");
        assert_eq!(rate(12_345.6), "12,346");
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(1, 0), "-");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(1.234), "$1.23");
        assert_eq!(usd(0.000_123_46), "$0.0001235");
        assert_eq!(usd(0.001_2), "$0.001200");
        assert_eq!(usd(0.011_82), "$0.01182");
        assert_eq!(rate(0.999_96), "1.00");
        assert_eq!(usd(1234.567), "$1,234.57");
    }
}
