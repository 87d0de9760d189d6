//! Run ids and UTC timestamps, from the one wall-clock reading the binary
//! takes at start (no date library: the civil-from-days conversion is a
//! dozen lines).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

/// UTC calendar fields of `t` (seconds precision; before 1970 reads as 1970).
fn utc_fields(t: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// RFC 3339 UTC with second precision: `2026-11-21T23:47:22Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A run id: the UTC start time and a short random suffix, so two runs
/// started in the same second get different directories:
/// `20261121T234722Z-3fa9c1`.
pub fn run_id(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = utc_fields(t);
    // RandomState is seeded from the OS per process: random enough to tell
    // runs apart without a dependency.
    let suffix = RandomState::new().hash_one(t) & 0xff_ffff;
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z-{suffix:06x}")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_391_242);
        assert_eq!(rfc3339(t), "2026-11-22T23:47:22Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        let id = run_id(t);
        assert!(id.starts_with("20261122T234722Z-"), "{id}");
        assert_eq!(id.len(), "20261122T234722Z-".len() + 6);
    }
}
