//! What a closed-loop virtual user does after a throttled request.
//!
//! A closed loop refills its slot the moment a request is recorded, and a
//! throttle comes back in milliseconds: at the quota wall every user fires
//! 429s as fast as they return (thousands a second), which measures the
//! wall and little else. That stays the default, because it is what a
//! client without pacing does to Bedrock. A spec may instead have each user
//! pause after a throttle, the way a well-behaved client would: the SDK's
//! standard back-off, or a fixed think time.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exec::retry;

/// A closed-loop user's pause after a throttled request (part of the
/// [`crate::RunPlan`]; a share that paces requires
/// [`crate::FEATURE_THROTTLE_PACING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThrottlePacing {
    /// Send the next request at once (a client without pacing).
    #[default]
    None,
    /// The AWS SDK standard back-off (full jitter under `initial` ×
    /// 2^(n−1), capped at `max`), where n counts the user's throttles in a
    /// row; a request that is not throttled resets it.
    Backoff {
        /// The ceiling after the first throttle (SDK: 1 s).
        initial: Duration,
        /// The largest ceiling (SDK: 20 s).
        max: Duration,
    },
    /// A fixed pause after every throttle.
    Think {
        /// How long.
        pause: Duration,
    },
}

impl ThrottlePacing {
    /// The SDK standard back-off's constants (aws-sdk-rust
    /// `RetryConfig::standard()`): 1 s, capped at 20 s.
    pub fn sdk_backoff() -> Self {
        ThrottlePacing::Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(20),
        }
    }

    /// True for the default (no pause).
    pub fn is_none(&self) -> bool {
        *self == ThrottlePacing::None
    }

    /// The pause after a user's `in_a_row`-th throttle in a row (from 1);
    /// `seed` makes the jitter reproducible.
    pub fn pause(&self, in_a_row: u32, seed: u64) -> Option<Duration> {
        match *self {
            ThrottlePacing::None => None,
            ThrottlePacing::Backoff { initial, max } => {
                Some(retry::backoff(in_a_row.max(1), initial, max, None, seed))
            }
            ThrottlePacing::Think { pause } => Some(pause),
        }
    }

    /// How the report and the plan name it: `none`, `backoff (1s..20s)`,
    /// `think 1s`.
    pub fn describe(&self) -> String {
        match self {
            ThrottlePacing::None => "none".to_owned(),
            ThrottlePacing::Backoff { initial, max } => format!(
                "backoff (SDK standard: full jitter under {initial:?} x 2^(n-1), at most {max:?})"
            ),
            ThrottlePacing::Think { pause } => format!("think {pause:?} after each throttle"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_follow_the_choice() {
        assert_eq!(ThrottlePacing::None.pause(3, 1), None);
        let think = ThrottlePacing::Think {
            pause: Duration::from_millis(1500),
        };
        assert_eq!(think.pause(1, 1), Some(Duration::from_millis(1500)));
        assert_eq!(think.pause(9, 2), Some(Duration::from_millis(1500)));
        let backoff = ThrottlePacing::sdk_backoff();
        for n in 1..=8u32 {
            let ceiling = Duration::from_secs(1 << (n - 1).min(5)).min(Duration::from_secs(20));
            for seed in 0..20 {
                let wait = backoff.pause(n, seed).unwrap();
                assert!(wait <= ceiling, "throttle {n}: {wait:?} > {ceiling:?}");
            }
        }
        assert_eq!(backoff.pause(3, 7), backoff.pause(3, 7), "seeded");
    }

    #[test]
    fn the_default_is_none_and_round_trips() {
        assert!(ThrottlePacing::default().is_none());
        for p in [
            ThrottlePacing::None,
            ThrottlePacing::sdk_backoff(),
            ThrottlePacing::Think {
                pause: Duration::from_secs(1),
            },
        ] {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<ThrottlePacing>(&json).unwrap(), p);
        }
    }
}
