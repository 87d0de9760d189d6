//! The classic HdrHistogram percentile-distribution text (`.hgrm`), as
//! Java's `AbstractHistogram.outputPercentileDistribution` prints it:
//! Value, Percentile, TotalCount, 1/(1-Percentile), then the
//! Mean/StdDeviation, Max/Total count and Buckets/SubBuckets footer. The
//! HdrHistogram plotter and most tooling read this format.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Percentile ticks per half distance to 100%, as Java's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Renders `h` with values divided by `scale` (1e6 prints nanoseconds as
/// milliseconds), with `h.sigfig()` decimals as Java does.
pub fn render_hgrm(h: &Histogram<u64>, scale: f64) -> String {
    let digits = usize::from(h.sigfig());
    let mut out = String::new();
    // `write!` to a String cannot fail; results are ignored throughout.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total += v.count_since_last_iteration();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.digits$} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.digits$} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.digits$}, StdDeviation   = {stdev:12.digits$}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.digits$}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h.sigfig())
    );
    out
}

/// The sub-bucket count HDR derives from the significant digits: the
/// smallest power of two holding 2 × 10^sigfig distinct values.
fn sub_buckets(sigfig: u8) -> u64 {
    let largest = 2 * 10u64.pow(u32::from(sigfig));
    largest.next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_classic_layout() {
        let mut h = quarry_engine::new_histogram();
        for v in 1..=100u64 {
            h.record(v * 1_000_000).unwrap();
        }
        let text = render_hgrm(&h, 1e6);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        // First row: the smallest value at percentile 0.
        assert_eq!(
            lines[2],
            "       1.000 0.000000000000          1           1.00"
        );
        // The 100% row has no 1/(1-Percentile) column.
        let last_row = lines[lines.len() - 4];
        assert!(
            last_row.starts_with("     100.008 1.000000000000        100"),
            "{last_row}"
        );
        assert_eq!(last_row.split_whitespace().count(), 3);
        assert_eq!(
            lines[lines.len() - 3],
            "#[Mean    =       50.499, StdDeviation   =       28.866]"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =      100.008, Total count    =          100]"
        );
        assert!(lines[lines.len() - 1].ends_with("SubBuckets     =         2048]"));
        // Total counts never decrease and end at the histogram's count.
        let counts: Vec<u64> = lines[2..lines.len() - 3]
            .iter()
            .map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*counts.last().unwrap(), 100);
    }

    #[test]
    fn empty_histogram_has_only_header_and_footer() {
        let text = render_hgrm(&quarry_engine::new_histogram(), 1e6);
        assert_eq!(text.lines().count(), 5);
        assert!(text.contains("Total count    =            0"));
    }
}
