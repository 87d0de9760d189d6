//! Numbers as a plan writes them: thousands separators, few decimals, money
//! in dollars. Used in the arithmetic written into figures (`how`) and in the
//! text report, so both read the same.

/// `1234567.891` → `1,234,568`; `12.3456` → `12.35`; `0.012345` → `0.01235`.
pub(crate) fn num(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let abs = value.abs();
    let decimals = if abs >= 100.0 || abs == 0.0 || value.fract() == 0.0 {
        0
    } else if abs >= 1.0 {
        2
    } else {
        // Four significant digits below 1.
        (3 - abs.log10().floor() as i32).clamp(1, 12) as usize
    };
    let text = format!("{value:.decimals$}");
    let text = if decimals > 0 {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    group_thousands(&text)
}

/// US dollars: `$1,234`, `$12.35`, `$0.0012`.
pub(crate) fn usd(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let abs = value.abs();
    let body = if abs >= 100.0 {
        group_thousands(&format!("{abs:.0}"))
    } else if abs >= 1.0 || abs == 0.0 {
        format!("{abs:.2}")
    } else {
        num(abs)
    };
    format!("{sign}${body}")
}

/// A fraction as a percentage: `0.253` → `25.3%`.
pub(crate) fn pct(value: f64) -> String {
    let p = value * 100.0;
    if p.abs() >= 10.0 || p.fract() == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

fn group_thousands(text: &str) -> String {
    let (sign, rest) = text.strip_prefix('-').map_or(("", text), |r| ("-", r));
    let (int, frac) = rest
        .split_once('.')
        .map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::with_capacity(int.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(2_592_000.0), "2,592,000");
        assert_eq!(num(1_234_567.891), "1,234,568");
        assert_eq!(num(12.3456), "12.35");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(0.012_345), "0.01235");
        assert_eq!(num(-1500.0), "-1,500");
        assert_eq!(num(0.0), "0");
        assert_eq!(usd(1234.4), "$1,234");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(0.092_07), "$0.09207");
        assert_eq!(usd(0.001_234), "$0.001234");
        assert_eq!(usd(-250.0), "-$250");
        assert_eq!(pct(0.253), "25%");
        assert_eq!(pct(0.013), "1.3%");
    }
}
