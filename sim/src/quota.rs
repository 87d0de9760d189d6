//! Token quotas per account × model × route (PROTOCOL.md §5.1–§5.2): the
//! pools, their windows, admission (reservation) and settlement.
//!
//! # How admission decides
//!
//! A request reserves `R = input + cacheRead + cacheWrite + max_tokens`
//! (`quarry_bedrock::reservation`; the model's output limit when
//! `max_tokens` is absent). Checks run in this order, the first that fails
//! answers with a `ThrottlingException`:
//! 1. the pool's tokens-per-day: `day_used + R <= tpd`, else
//!    "Too many tokens per day…" (waiting seconds will not help);
//! 2. the account's cross-model tokens-per-day cap, if configured, same test
//!    and message;
//! 3. requests-per-minute, if configured: `requests_in_window + 1 <= rpm`,
//!    else "Too many requests…";
//! 4. tokens-per-minute: `minute_used + R <= tpm`, else "Too many tokens…".
//!
//! When all pass, R is added to every window. At the end, the request is
//! settled at `S = input + cacheWrite + output × burndown`
//! (`quarry_bedrock::settlement`): `S − R` is added to the buckets the
//! reservation went into, if they are still inside their windows.
//!
//! # Windows
//!
//! * `sliding` (default): the minute window is 60 one-second buckets, the
//!   current (partial) second plus the 59 before it; the day window is 1440
//!   one-minute buckets. Tokens leave the window whole seconds after they
//!   entered, so capacity comes back gradually.
//! * `fixed`: the minute window is the current clock minute since the
//!   simulator started (`floor(t / 60 s)`) and the day window the current
//!   24 h period; both empty completely at the boundary.
//!
//! # Pools
//!
//! One on-demand pool per (account, base model), one cross-Region pool per
//! (account, base model, geography) for `us.`/`eu.`/`global.` ids, each with
//! its own limits. Provisioned-throughput ids never reach this module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use quarry_bedrock::{ErrorCode, messages};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::catalog::ModelIdx;

/// How quota windows are cut (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Sliding 60 s (1 s buckets) and 24 h (1 min buckets).
    #[default]
    Sliding,
    /// Fixed minutes and days counted from simulator start.
    Fixed,
}

/// The limits of one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolLimits {
    /// Tokens per minute.
    pub tpm: u64,
    /// Tokens per day.
    pub tpd: u64,
    /// Requests per minute, when enforced.
    pub rpm: Option<u64>,
}

/// Which quota a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottleReason {
    /// The pool's tokens-per-minute.
    TokensPerMinute,
    /// The pool's requests-per-minute.
    RequestsPerMinute,
    /// The pool's tokens-per-day.
    TokensPerDay,
    /// The account's cross-model tokens-per-day.
    AccountTokensPerDay,
}

impl ThrottleReason {
    /// Every reason, in report order.
    pub const ALL: [ThrottleReason; 4] = [
        ThrottleReason::TokensPerMinute,
        ThrottleReason::RequestsPerMinute,
        ThrottleReason::TokensPerDay,
        ThrottleReason::AccountTokensPerDay,
    ];

    /// The snake_case name used in stats.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::TokensPerMinute => "tokens_per_minute",
            ThrottleReason::RequestsPerMinute => "requests_per_minute",
            ThrottleReason::TokensPerDay => "tokens_per_day",
            ThrottleReason::AccountTokensPerDay => "account_tokens_per_day",
        }
    }

    /// The exact message Bedrock sends (PROTOCOL.md §4.3).
    pub fn message(self) -> &'static str {
        match self {
            ThrottleReason::TokensPerMinute => messages::TOO_MANY_TOKENS,
            ThrottleReason::RequestsPerMinute => messages::TOO_MANY_REQUESTS,
            ThrottleReason::TokensPerDay | ThrottleReason::AccountTokensPerDay => {
                messages::TOO_MANY_TOKENS_PER_DAY
            }
        }
    }
}

/// A request refused by a quota: answer `ThrottlingException` with `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Throttle {
    /// The quota that refused it.
    pub reason: ThrottleReason,
    /// The wire message.
    pub message: &'static str,
}

impl Throttle {
    fn new(reason: ThrottleReason) -> Self {
        Throttle {
            reason,
            message: reason.message(),
        }
    }

    /// Always `ThrottlingException` (HTTP 429).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ThrottlingException
    }
}

/// Which pool of a model a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolScope {
    /// Single-Region (on-demand) invocation.
    OnDemand,
    /// A cross-Region profile of this geography.
    CrossRegion(&'static str),
    /// The account's Reserved-tier capacity for the model (its own TPM;
    /// requests overflow to the Standard pool when it is full).
    Reserved,
}

/// Identifies a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PoolKey {
    /// Account index in the configuration.
    pub account: u32,
    /// The base model.
    pub model: ModelIdx,
    /// On-demand or cross-Region.
    pub scope: PoolScope,
}

/// A ring of fixed-length buckets with a running total.
#[derive(Debug)]
struct TokenWindow {
    bucket_ms: u64,
    /// `(epoch, amount)`; slot `epoch % len`.
    buckets: Box<[(u64, u64)]>,
    total: u64,
    head: u64,
}

impl TokenWindow {
    fn new(bucket_ms: u64, buckets: usize) -> Self {
        TokenWindow {
            bucket_ms,
            buckets: vec![(0, 0); buckets].into_boxed_slice(),
            total: 0,
            head: 0,
        }
    }

    fn minute(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Sliding => TokenWindow::new(1_000, 60),
            WindowKind::Fixed => TokenWindow::new(60_000, 1),
        }
    }

    fn day(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Sliding => TokenWindow::new(60_000, 1_440),
            WindowKind::Fixed => TokenWindow::new(86_400_000, 1),
        }
    }

    fn epoch(&self, elapsed: Duration) -> u64 {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX) / self.bucket_ms
    }

    /// Moves the window to `elapsed`, expiring buckets that left it.
    fn advance(&mut self, elapsed: Duration) -> u64 {
        let epoch = self.epoch(elapsed);
        let len = self.buckets.len() as u64;
        if epoch > self.head {
            if epoch - self.head >= len {
                self.buckets.iter_mut().for_each(|b| *b = (epoch, 0));
                self.total = 0;
            } else {
                for e in self.head + 1..=epoch {
                    let slot = &mut self.buckets[(e % len) as usize];
                    self.total -= slot.1;
                    *slot = (e, 0);
                }
            }
            self.head = epoch;
        }
        epoch
    }

    fn add(&mut self, amount: u64) {
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(self.head % len) as usize];
        slot.0 = self.head;
        slot.1 += amount;
        self.total += amount;
    }

    /// Applies a settlement delta to the bucket of `epoch`, if still live.
    fn adjust(&mut self, epoch: u64, delta: i64) {
        let len = self.buckets.len() as u64;
        let slot = &mut self.buckets[(epoch % len) as usize];
        if slot.0 != epoch || self.head.saturating_sub(epoch) >= len {
            return;
        }
        let new = slot.1.saturating_add_signed(delta);
        self.total = self.total - slot.1 + new;
        slot.1 = new;
    }
}

/// One quota pool's state.
#[derive(Debug)]
struct QuotaPool {
    limits: PoolLimits,
    minute: TokenWindow,
    day: TokenWindow,
    requests: TokenWindow,
    in_flight: u64,
    reserved_total: u64,
    settled_total: u64,
}

/// An admitted request's hold on its pools, to settle at the end.
#[derive(Debug)]
pub struct Reservation {
    pool: Arc<Mutex<QuotaPool>>,
    account: Option<Arc<Mutex<TokenWindow>>>,
    reserved: u64,
    minute_epoch: u64,
    day_epoch: u64,
    account_epoch: u64,
}

impl Reservation {
    /// The quota tokens reserved at admission.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }
}

/// Usage of one pool, for stats.
#[derive(Debug, Clone, Serialize)]
pub struct PoolUsage {
    /// The pool.
    pub key: PoolKey,
    /// Its limits.
    pub limits: PoolLimits,
    /// Quota tokens in the current minute window.
    pub minute_tokens: u64,
    /// Quota tokens in the current day window.
    pub day_tokens: u64,
    /// Requests in the current minute window.
    pub minute_requests: u64,
    /// Admitted requests not yet settled.
    pub in_flight: u64,
    /// All tokens ever reserved.
    pub reserved_total: u64,
    /// All tokens ever settled.
    pub settled_total: u64,
}

/// All quota pools of the simulator.
#[derive(Debug)]
pub struct QuotaBook {
    window: WindowKind,
    start: Instant,
    pools: RwLock<HashMap<PoolKey, Arc<Mutex<QuotaPool>>>>,
    /// Cross-model daily windows, per account with a cap.
    accounts: RwLock<HashMap<u32, Arc<Mutex<TokenWindow>>>>,
}

/// Locks a mutex, ignoring poisoning: the counters stay meaningful after a
/// panic elsewhere, and a simulator must keep answering.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QuotaBook {
    /// An empty book whose windows count from `start`.
    pub fn new(window: WindowKind, start: Instant) -> Self {
        QuotaBook {
            window,
            start,
            pools: RwLock::default(),
            accounts: RwLock::default(),
        }
    }

    fn pool(&self, key: PoolKey, limits: PoolLimits) -> Arc<Mutex<QuotaPool>> {
        if let Some(p) = self
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Arc::clone(p);
        }
        let mut pools = self.pools.write().unwrap_or_else(PoisonError::into_inner);
        let pool = pools.entry(key).or_insert_with(|| {
            Arc::new(Mutex::new(QuotaPool {
                limits,
                minute: TokenWindow::minute(self.window),
                day: TokenWindow::day(self.window),
                requests: TokenWindow::minute(self.window),
                in_flight: 0,
                reserved_total: 0,
                settled_total: 0,
            }))
        });
        Arc::clone(pool)
    }

    fn account_window(&self, account: u32) -> Arc<Mutex<TokenWindow>> {
        if let Some(w) = self
            .accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&account)
        {
            return Arc::clone(w);
        }
        let mut accounts = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let w = accounts
            .entry(account)
            .or_insert_with(|| Arc::new(Mutex::new(TokenWindow::day(self.window))));
        Arc::clone(w)
    }

    /// Admits a request reserving `tokens` against `key`'s pool (created with
    /// `limits` on first use) and the account's cross-model daily cap, or
    /// says which quota refuses it.
    pub fn reserve(
        &self,
        key: PoolKey,
        limits: PoolLimits,
        account_daily_cap: Option<u64>,
        tokens: u64,
        now: Instant,
    ) -> Result<Reservation, Throttle> {
        let elapsed = now.saturating_duration_since(self.start);
        let pool_arc = self.pool(key, limits);
        let mut pool = lock(&pool_arc);
        let limits = pool.limits;
        let minute_epoch = pool.minute.advance(elapsed);
        let day_epoch = pool.day.advance(elapsed);
        pool.requests.advance(elapsed);
        if pool.day.total + tokens > limits.tpd {
            return Err(Throttle::new(ThrottleReason::TokensPerDay));
        }
        let account = account_daily_cap.map(|cap| (cap, self.account_window(key.account)));
        let mut account_guard = account.as_ref().map(|(cap, w)| (*cap, lock(w)));
        let mut account_epoch = 0;
        if let Some((cap, window)) = account_guard.as_mut() {
            account_epoch = window.advance(elapsed);
            if window.total + tokens > *cap {
                return Err(Throttle::new(ThrottleReason::AccountTokensPerDay));
            }
        }
        if limits.rpm.is_some_and(|rpm| pool.requests.total + 1 > rpm) {
            return Err(Throttle::new(ThrottleReason::RequestsPerMinute));
        }
        if pool.minute.total + tokens > limits.tpm {
            return Err(Throttle::new(ThrottleReason::TokensPerMinute));
        }
        pool.minute.add(tokens);
        pool.day.add(tokens);
        pool.requests.add(1);
        pool.in_flight += 1;
        pool.reserved_total += tokens;
        if let Some((_, window)) = account_guard.as_mut() {
            window.add(tokens);
        }
        drop(account_guard);
        drop(pool);
        Ok(Reservation {
            pool: pool_arc,
            account: account.map(|(_, w)| w),
            reserved: tokens,
            minute_epoch,
            day_epoch,
            account_epoch,
        })
    }

    /// Replaces a reservation by the settled amount `tokens`.
    pub fn settle(&self, reservation: Reservation, tokens: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        let delta = i64::try_from(tokens).unwrap_or(i64::MAX)
            - i64::try_from(reservation.reserved).unwrap_or(i64::MAX);
        let mut pool = lock(&reservation.pool);
        pool.minute.advance(elapsed);
        pool.day.advance(elapsed);
        pool.minute.adjust(reservation.minute_epoch, delta);
        pool.day.adjust(reservation.day_epoch, delta);
        pool.in_flight = pool.in_flight.saturating_sub(1);
        pool.settled_total += tokens;
        if let Some(w) = &reservation.account {
            let mut w = lock(w);
            w.advance(elapsed);
            w.adjust(reservation.account_epoch, delta);
        }
    }

    /// Usage of every pool that has seen a request, sorted by key.
    pub fn usage(&self, now: Instant) -> Vec<PoolUsage> {
        let elapsed = now.saturating_duration_since(self.start);
        let pools = self.pools.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<PoolUsage> = pools
            .iter()
            .map(|(key, pool)| {
                let mut p = lock(pool);
                p.minute.advance(elapsed);
                p.day.advance(elapsed);
                p.requests.advance(elapsed);
                PoolUsage {
                    key: *key,
                    limits: p.limits,
                    minute_tokens: p.minute.total,
                    day_tokens: p.day.total,
                    minute_requests: p.requests.total,
                    in_flight: p.in_flight,
                    reserved_total: p.reserved_total,
                    settled_total: p.settled_total,
                }
            })
            .collect();
        out.sort_by_key(|u| (u.key.account, u.key.model, format!("{:?}", u.key.scope)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_bedrock::{TokenUsage, output_burndown, reservation, settlement};

    const KEY: PoolKey = PoolKey {
        account: 0,
        model: ModelIdx(0),
        scope: PoolScope::OnDemand,
    };

    fn limits(tpm: u64) -> PoolLimits {
        PoolLimits {
            tpm,
            tpd: tpm * 1440,
            rpm: None,
        }
    }

    fn request(input: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn admitted_per_minute_is_what_reservation_predicts() {
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Sliding, start);
        let r = reservation(&request(1_000), 1_000);
        let mut held = Vec::new();
        let mut refused = None;
        for i in 0..10 {
            match book.reserve(
                KEY,
                limits(10_000),
                None,
                r,
                start + Duration::from_millis(i * 100),
            ) {
                Ok(res) => held.push(res),
                Err(t) => {
                    refused = Some(t);
                    break;
                }
            }
        }
        assert_eq!(held.len(), 5, "10,000 TPM / 2,000 per request");
        let t = refused.unwrap();
        assert_eq!(t.reason, ThrottleReason::TokensPerMinute);
        assert_eq!(
            t.message,
            "Too many tokens, please wait before trying again."
        );
        assert_eq!(t.code().status(), 429);
        // Settling at 1,000 in + 100 out frees 900 each: 4,500 → two more fit.
        let done = TokenUsage {
            input_tokens: 1_000,
            output_tokens: 100,
            ..TokenUsage::default()
        };
        for res in held.drain(..) {
            book.settle(res, settlement(&done, 1), start + Duration::from_secs(1));
        }
        let t1 = start + Duration::from_secs(2);
        assert!(book.reserve(KEY, limits(10_000), None, r, t1).is_ok());
        assert!(book.reserve(KEY, limits(10_000), None, r, t1).is_ok());
        assert!(book.reserve(KEY, limits(10_000), None, r, t1).is_err());
        // 60 s after the first bucket the sliding window has let it go.
        let later = start + Duration::from_secs(61);
        assert!(book.reserve(KEY, limits(10_000), None, r, later).is_ok());
    }

    #[test]
    fn burndown_five_applies_to_claude_3_7_and_newer_only() {
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Fixed, start);
        let done = TokenUsage {
            input_tokens: 100,
            output_tokens: 100,
            ..TokenUsage::default()
        };
        for (model, id, expected) in [
            (0, "anthropic.claude-3-7-sonnet-20250219-v1:0", 600),
            (1, "anthropic.claude-3-5-sonnet-20241022-v2:0", 200),
            (2, "meta.llama3-3-70b-instruct-v1:0", 200),
        ] {
            let key = PoolKey {
                model: ModelIdx(model),
                ..KEY
            };
            let res = book
                .reserve(key, limits(100_000), None, 1_100, start)
                .unwrap();
            book.settle(res, settlement(&done, output_burndown(id)), start);
            let usage = book
                .usage(start)
                .into_iter()
                .find(|u| u.key == key)
                .unwrap();
            assert_eq!(usage.minute_tokens, expected, "{id}");
            assert_eq!(usage.in_flight, 0);
        }
    }

    #[test]
    fn daily_cap_rejects_with_the_fixed_limit_message() {
        // Claude Opus on-demand: 2,592,000 tokens/day, 200,000 TPM.
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Sliding, start);
        let opus = PoolLimits {
            tpm: 200_000,
            tpd: 2_592_000,
            rpm: None,
        };
        let mut minute = 0;
        let err = loop {
            let now = start + Duration::from_secs(61 * minute);
            match book.reserve(KEY, opus, None, 100_000, now) {
                Ok(_) => {}
                Err(t) if t.reason == ThrottleReason::TokensPerMinute => minute += 1,
                Err(t) => break t,
            }
            assert!(minute < 100, "never hit the daily cap");
        };
        assert_eq!(err.reason, ThrottleReason::TokensPerDay);
        assert_eq!(
            err.message,
            "Too many tokens per day, please wait before trying again."
        );
        assert!(quarry_bedrock::is_daily_quota_message(err.message));
        // 25 admitted (2,500,000); the 26th would make 2,600,000 > cap.
        let usage = book
            .usage(start + Duration::from_secs(61 * minute))
            .remove(0);
        assert_eq!(usage.day_tokens, 2_500_000);
    }

    #[test]
    fn rpm_and_account_cap() {
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Sliding, start);
        let l = PoolLimits {
            tpm: 1_000_000,
            tpd: u64::MAX / 2,
            rpm: Some(2),
        };
        assert!(book.reserve(KEY, l, None, 1, start).is_ok());
        assert!(book.reserve(KEY, l, None, 1, start).is_ok());
        assert_eq!(
            book.reserve(KEY, l, None, 1, start).unwrap_err().reason,
            ThrottleReason::RequestsPerMinute
        );
        let other = PoolKey {
            model: ModelIdx(7),
            ..KEY
        };
        let l = limits(1_000_000);
        assert!(book.reserve(other, l, Some(1_000), 600, start).is_ok());
        let cross = PoolKey {
            model: ModelIdx(8),
            ..KEY
        };
        let err = book.reserve(cross, l, Some(1_000), 600, start).unwrap_err();
        assert_eq!(err.reason, ThrottleReason::AccountTokensPerDay);
        assert_eq!(err.message, messages::TOO_MANY_TOKENS_PER_DAY);
    }

    #[test]
    fn fixed_window_empties_at_the_minute_boundary() {
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Fixed, start);
        let near_end = start + Duration::from_millis(59_900);
        assert!(
            book.reserve(KEY, limits(1_000), None, 1_000, near_end)
                .is_ok()
        );
        assert!(book.reserve(KEY, limits(1_000), None, 1, near_end).is_err());
        assert!(
            book.reserve(
                KEY,
                limits(1_000),
                None,
                1_000,
                start + Duration::from_secs(60)
            )
            .is_ok()
        );
        // Sliding keeps it for a full minute instead.
        let sliding = QuotaBook::new(WindowKind::Sliding, start);
        assert!(
            sliding
                .reserve(KEY, limits(1_000), None, 1_000, near_end)
                .is_ok()
        );
        assert!(
            sliding
                .reserve(KEY, limits(1_000), None, 1, start + Duration::from_secs(60))
                .is_err()
        );
        assert!(
            sliding
                .reserve(
                    KEY,
                    limits(1_000),
                    None,
                    1,
                    start + Duration::from_secs(119)
                )
                .is_ok()
        );
    }

    #[test]
    fn cross_region_pools_are_separate() {
        let start = Instant::now();
        let book = QuotaBook::new(WindowKind::Sliding, start);
        let us = PoolKey {
            scope: PoolScope::CrossRegion("us"),
            ..KEY
        };
        assert!(book.reserve(KEY, limits(1_000), None, 1_000, start).is_ok());
        assert!(book.reserve(us, limits(1_000), None, 1_000, start).is_ok());
        assert!(book.reserve(KEY, limits(1_000), None, 1, start).is_err());
    }
}
