//! Run ids and UTC timestamps, from the one wall-clock reading the binary
//! takes at start (calendar fields from the `time` crate, the workspace's
//! one date implementation).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

/// UTC calendar fields of `t` (seconds precision; before 1970 reads as 1970).
fn utc_fields(t: SystemTime) -> (i32, u8, u8, u8, u8, u8) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let utc = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
    )
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
