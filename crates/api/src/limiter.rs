//! Request budgets: one per API key, and one per client address for failed authentication.
//!
//! Both are GCRA limiters (governor) held in process memory. Handlers only see the
//! [`KeyRateLimiter`] trait, so a shared backend can replace [`LocalRateLimiter`] when
//! several marketd instances must share one budget per key.
//!
//! Every store here is bounded. Keyed limiters grow with every distinct key they see, and
//! an attacker chooses the keys (addresses, made-up key ids), so each store has a hard cap
//! and is swept periodically; when sweeping does not make room, the state is dropped and a
//! warning logged rather than letting memory grow.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{NotUntil, Quota, RateLimiter};

/// The window every per-key policy is expressed in.
const WINDOW: Duration = Duration::from_secs(60);

/// Default cap on key ids tracked by [`LocalRateLimiter`].
pub const DEFAULT_MAX_TRACKED_KEYS: usize = 100_000;
/// Default failed authentications allowed per client address and minute (also the burst).
pub const DEFAULT_FAILURES_PER_MINUTE: u32 = 10;
/// Default cap on client addresses tracked by [`FailureLimiter`].
pub const DEFAULT_MAX_TRACKED_CLIENTS: usize = 200_000;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers-10).
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The policy name clients see in both headers.
const POLICY_NAME: &str = "minute";

/// Counts requests per API key against that key's own policy.
pub trait KeyRateLimiter: Send + Sync + 'static {
    /// Counts one request of `key_id` against a policy of `per_minute` requests per 60 s
    /// window (GCRA, burst = per_minute).
    fn check(&self, key_id: &str, per_minute: u32) -> RateDecision;
    /// Entries tracked, for a metric.
    fn tracked(&self) -> usize;
    /// Drops state that no longer constrains anyone; called periodically.
    fn sweep(&self);
}

/// The outcome of one [`KeyRateLimiter::check`], with what the response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The policy's quota: requests per 60 s window.
    pub limit: u32,
    /// Requests still available right now, after this one.
    pub remaining: u32,
    /// Whole seconds until the quota is fully replenished (0 when full). On a refusal it
    /// equals `retry_after_secs`, so the reset a client reads never contradicts Retry-After.
    pub reset_secs: u64,
    /// Whole seconds until the next request would be allowed; 0 when allowed, at least 1
    /// when refused.
    pub retry_after_secs: u64,
}

/// The two rate-limit headers of draft-ietf-httpapi-ratelimit-headers-10 for `d`:
/// `RateLimit-Policy: "minute";q=600;w=60` and `RateLimit: "minute";r=598;t=41`.
pub fn rate_limit_headers(d: &RateDecision) -> [(HeaderName, HeaderValue); 2] {
    // Both values are quotes, letters, digits, `;` and `=`, which a header value always
    // accepts; the fallbacks only keep this function infallible.
    [
        (
            RATELIMIT_POLICY.clone(),
            HeaderValue::from_str(&policy_item(
                ["q", "w"],
                [u64::from(d.limit), WINDOW.as_secs()],
            ))
            .unwrap_or(HeaderValue::from_static("\"minute\";w=60")),
        ),
        (
            RATELIMIT.clone(),
            HeaderValue::from_str(&policy_item(
                ["r", "t"],
                [u64::from(d.remaining), d.reset_secs],
            ))
            .unwrap_or(HeaderValue::from_static("\"minute\";r=0")),
        ),
    ]
}

/// `"minute";a=1;b=2`, written without the formatting machinery: these go out on every
/// authenticated answer.
fn policy_item(names: [&str; 2], values: [u64; 2]) -> String {
    let mut text = String::with_capacity(POLICY_NAME.len() + 32);
    text.push('"');
    text.push_str(POLICY_NAME);
    text.push('"');
    let mut digits = itoa::Buffer::new();
    for (name, value) in names.into_iter().zip(values) {
        text.push(';');
        text.push_str(name);
        text.push('=');
        text.push_str(digits.format(value));
    }
    text
}

type KeyedLimiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

fn keyed_limiter<K>(per_minute: NonZeroU32) -> KeyedLimiter<K>
where
    K: std::hash::Hash + Eq + Clone,
{
    RateLimiter::keyed(Quota::per_minute(per_minute))
        .with_middleware::<StateInformationMiddleware>()
}

/// Whole seconds in `d`, rounded up, so a client that waits that long is never early.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// How long after now the refused request would have been allowed. Callers round it up to
/// at least a second: a zero Retry-After would invite an immediate retry.
fn retry_after<K>(
    limiter: &KeyedLimiter<K>,
    refusal: &NotUntil<<DefaultClock as Clock>::Instant>,
) -> Duration
where
    K: std::hash::Hash + Eq + Clone,
{
    refusal.wait_time_from(limiter.clock().now())
}

/// Keeps an upper bound on the keys a store holds, so the hard cap is enforced without
/// counting the store (a lock per shard) on every request.
///
/// Each admission adds one to the bound, since a check inserts at most one key. Only when
/// the bound reaches the cap is the store counted, under a lock, and room made if it really
/// is full. Keys inserted while a recount runs may be missed by it, so the cap can be
/// overshot by about the number of requests in flight at that moment, never more.
struct Occupancy {
    max: usize,
    upper_bound: AtomicUsize,
    recount: Mutex<()>,
}

impl Occupancy {
    fn new(max: usize) -> Self {
        Self {
            // A cap of 0 would recount and clear on every request.
            max: max.max(1),
            upper_bound: AtomicUsize::new(0),
            recount: Mutex::new(()),
        }
    }

    /// Called before a check that may insert a key. `count` counts the store exactly;
    /// `make_room` runs only when it is full and returns the count it left behind.
    fn admit(&self, count: impl Fn() -> usize, make_room: impl FnOnce() -> usize) {
        if self.upper_bound.fetch_add(1, Ordering::Relaxed) < self.max {
            return;
        }
        let _recount = self.recount.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.upper_bound.load(Ordering::Relaxed);
        if before <= self.max {
            // Another request made room while this one waited for the lock.
            return;
        }
        let mut exact = count();
        if exact >= self.max {
            exact = make_room();
        }
        // The `+ 1` is this request's key, about to be inserted.
        self.lower_to(before, exact + 1);
    }

    /// Re-bases the bound after `maintain` has shrunk the store (a periodic sweep).
    fn resync(&self, maintain: impl FnOnce() -> usize) {
        let _recount = self.recount.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.upper_bound.load(Ordering::Relaxed);
        let exact = maintain();
        self.lower_to(before, exact);
    }

    /// Lowers the bound from `before` to `exact` while keeping the admissions that
    /// happened since `before` was read. Only called with `recount` held, and the bound
    /// only grows outside it, so the subtraction cannot wrap.
    fn lower_to(&self, before: usize, exact: usize) {
        self.upper_bound
            .fetch_sub(before.saturating_sub(exact), Ordering::Relaxed);
    }
}

impl fmt::Debug for Occupancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Occupancy")
            .field("max", &self.max)
            .field("upper_bound", &self.upper_bound.load(Ordering::Relaxed))
            .finish()
    }
}

/// The in-process [`KeyRateLimiter`].
///
/// governor's keyed limiter has a single quota, while every key carries its own, so there
/// is one keyed limiter per distinct `per_minute` value. A key whose policy changes starts
/// with a full budget under the new one.
pub struct LocalRateLimiter {
    tiers: RwLock<HashMap<u32, Arc<KeyedLimiter<String>>>>,
    occupancy: Occupancy,
}

impl LocalRateLimiter {
    /// A limiter that tracks at most about `max_tracked` key ids at once.
    pub fn new(max_tracked: usize) -> Self {
        Self {
            tiers: RwLock::new(HashMap::new()),
            occupancy: Occupancy::new(max_tracked),
        }
    }

    fn tier(&self, per_minute: NonZeroU32) -> Arc<KeyedLimiter<String>> {
        let existing = self
            .tiers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&per_minute.get())
            .cloned();
        if let Some(limiter) = existing {
            return limiter;
        }
        let mut tiers = self.tiers.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            tiers
                .entry(per_minute.get())
                .or_insert_with(|| Arc::new(keyed_limiter(per_minute))),
        )
    }

    fn snapshot(&self) -> Vec<Arc<KeyedLimiter<String>>> {
        self.tiers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn count(&self) -> usize {
        self.tiers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|limiter| limiter.len())
            .sum()
    }

    /// Sweeps every tier and forgets the tiers left empty; returns the keys still tracked.
    fn sweep_now(&self) -> usize {
        for limiter in self.snapshot() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let mut tiers = self.tiers.write().unwrap_or_else(PoisonError::into_inner);
        // A tier still referenced elsewhere belongs to a check in progress; dropping it
        // would lose that request's count, so it waits for the next sweep.
        tiers.retain(|_, limiter| !limiter.is_empty() || Arc::strong_count(limiter) > 1);
        tiers.values().map(|limiter| limiter.len()).sum()
    }

    /// Runs when the cap is reached: sweep, and if every tracked key is still live, drop
    /// the busiest tier. Its keys get a fresh budget, which beats unbounded memory.
    fn make_room(&self) -> usize {
        let remaining = self.sweep_now();
        if remaining < self.occupancy.max {
            return remaining;
        }
        let mut tiers = self.tiers.write().unwrap_or_else(PoisonError::into_inner);
        let mut remaining = remaining;
        while remaining >= self.occupancy.max {
            let Some((per_minute, dropped)) = tiers
                .iter()
                .map(|(per_minute, limiter)| (*per_minute, limiter.len()))
                .max_by_key(|(_, len)| *len)
            else {
                break;
            };
            tracing::warn!(
                per_minute,
                dropped,
                max_tracked = self.occupancy.max,
                "rate limiter full of live keys; resetting the budgets of the largest policy"
            );
            tiers.remove(&per_minute);
            remaining = tiers.values().map(|limiter| limiter.len()).sum();
        }
        remaining
    }
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_TRACKED_KEYS)
    }
}

impl KeyRateLimiter for LocalRateLimiter {
    fn check(&self, key_id: &str, per_minute: u32) -> RateDecision {
        // A policy of 0 cannot be expressed as a GCRA quota; the smallest real one is used.
        let quota = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        self.occupancy.admit(|| self.count(), || self.make_room());
        let limiter = self.tier(quota);
        match limiter.check_key(&key_id.to_owned()) {
            Ok(snapshot) => allowed(quota, &snapshot),
            Err(refusal) => refused(quota, retry_after(&limiter, &refusal)),
        }
    }

    fn tracked(&self) -> usize {
        self.count()
    }

    fn sweep(&self) {
        self.occupancy.resync(|| self.sweep_now());
    }
}

impl fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("tracked", &self.count())
            .field("occupancy", &self.occupancy)
            .finish_non_exhaustive()
    }
}

fn allowed(quota: NonZeroU32, snapshot: &StateSnapshot) -> RateDecision {
    let limit = quota.get();
    let remaining = snapshot.remaining_burst_capacity().min(limit);
    // governor does not expose when the bucket will be full again, only how many whole
    // requests fit now; each missing request takes one interval (60 s / limit) to come
    // back, so this is exact to within one interval and never early.
    let used = u64::from(limit - remaining);
    let reset_secs = (used * WINDOW.as_secs()).div_ceil(u64::from(limit));
    RateDecision {
        allowed: true,
        limit,
        remaining,
        reset_secs,
        retry_after_secs: 0,
    }
}

fn refused(quota: NonZeroU32, wait: Duration) -> RateDecision {
    let retry_after_secs = ceil_secs(wait).max(1);
    RateDecision {
        allowed: false,
        limit: quota.get(),
        remaining: 0,
        reset_secs: retry_after_secs,
        retry_after_secs,
    }
}

/// Who a failed authentication is charged to.
///
/// An IPv6 client usually controls a whole /64, so counting single IPv6 addresses would
/// give it 2^64 budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientBucket {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

impl ClientBucket {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientBucket::V4(v4),
            // A dual-stack listener reports IPv4 peers as `::ffff:a.b.c.d`; they must land
            // in the same bucket as when reported plainly.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientBucket::V4(v4),
                None => ClientBucket::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Limits failed authentications per client address.
///
/// It sits in front of the key lookup: a client that keeps guessing keys is answered 429
/// before any lookup, and it never touches the per-key budgets, so guessing at a victim's
/// key id cannot use up that victim's quota. Successful authentications never reach it.
pub struct FailureLimiter {
    per_minute: NonZeroU32,
    failures: RwLock<Arc<KeyedLimiter<ClientBucket>>>,
    occupancy: Occupancy,
    /// When each blocked client may try again. governor cannot be asked without counting,
    /// so `blocked` reads this instead. It is a cache: an entry it declines to keep only
    /// means that client's next failure is refused by governor instead of before the lookup.
    blocked_until: moka::sync::Cache<ClientBucket, Instant>,
    overflows: AtomicU64,
}

impl FailureLimiter {
    /// Allows `failures_per_minute` failures per client (also the burst) and tracks at most
    /// about `max_tracked` clients.
    pub fn new(failures_per_minute: u32, max_tracked: usize) -> Self {
        let per_minute = NonZeroU32::new(failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let occupancy = Occupancy::new(max_tracked);
        let blocked_until = moka::sync::Cache::builder()
            .max_capacity(occupancy.max as u64)
            // A block lasts at most one replenish interval (60 s / per_minute), so a
            // full window outlives every block.
            .time_to_live(WINDOW)
            .build();
        Self {
            per_minute,
            failures: RwLock::new(Arc::new(keyed_limiter(per_minute))),
            occupancy,
            blocked_until,
            overflows: AtomicU64::new(0),
        }
    }

    /// Before any key lookup: `Some(retry_after_secs >= 1)` when this client is currently
    /// blocked. Counts nothing.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let until = self.blocked_until.get(&ClientBucket::of(ip))?;
        let wait = until.checked_duration_since(Instant::now())?;
        Some(ceil_secs(wait).max(1))
    }

    /// After a failed authentication: counts it, and returns `Some(retry_after_secs >= 1)`
    /// when this failure used up the client's budget; the caller then answers 429 instead
    /// of 401.
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        let bucket = ClientBucket::of(ip);
        self.occupancy.admit(|| self.count(), || self.make_room());
        let limiter = self.limiter();
        let wait = match limiter.check_key(&bucket) {
            Ok(snapshot) if snapshot.remaining_burst_capacity() > 0 => return None,
            // The last failure the budget allowed. governor does not say when the next one
            // fits, but it is at most one replenish interval away.
            Ok(_) => WINDOW / self.per_minute.get(),
            Err(refusal) => retry_after(&limiter, &refusal),
        };
        // A zero wait would block no one; one second keeps the answer and the block equal.
        let wait = wait.max(Duration::from_secs(1));
        self.blocked_until.insert(bucket, Instant::now() + wait);
        Some(ceil_secs(wait))
    }

    /// Clients currently tracked, for a metric.
    pub fn tracked(&self) -> usize {
        self.count()
    }

    /// Drops clients whose failures have been forgiven; called periodically.
    pub fn sweep(&self) {
        self.occupancy.resync(|| self.sweep_now());
    }

    /// How many times the store was full of live clients and had to be cleared.
    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    fn limiter(&self) -> Arc<KeyedLimiter<ClientBucket>> {
        Arc::clone(&self.failures.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn count(&self) -> usize {
        self.limiter().len()
    }

    fn sweep_now(&self) -> usize {
        let limiter = self.limiter();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        limiter.len()
    }

    /// Runs when the cap is reached. Clearing forgives every tracked client, but clients
    /// already blocked stay blocked through `blocked_until`, and memory stays bounded under
    /// a flood from more addresses than the cap.
    fn make_room(&self) -> usize {
        let remaining = self.sweep_now();
        if remaining < self.occupancy.max {
            return remaining;
        }
        let overflows = self.overflows.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            tracked = remaining,
            max_tracked = self.occupancy.max,
            overflows,
            "failed-authentication limiter full of live clients; clearing it"
        );
        *self
            .failures
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keyed_limiter(self.per_minute));
        0
    }
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_FAILURES_PER_MINUTE, DEFAULT_MAX_TRACKED_CLIENTS)
    }
}

impl fmt::Debug for FailureLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureLimiter")
            .field("per_minute", &self.per_minute)
            .field("tracked", &self.count())
            .field("blocked", &self.blocked_until.entry_count())
            .field("overflows", &self.overflows())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_policy_allows_exactly_its_burst_then_refuses() {
        let limiter = LocalRateLimiter::default();
        // 5 per minute replenishes one request every 12 s, far longer than this test.
        let decisions: Vec<_> = (0..5).map(|_| limiter.check("key000000001", 5)).collect();
        assert!(decisions.iter().all(|d| d.allowed && d.limit == 5));
        let remaining: Vec<_> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        assert!(decisions.iter().all(|d| d.retry_after_secs == 0));
        let resets: Vec<_> = decisions.iter().map(|d| d.reset_secs).collect();
        assert!(resets.windows(2).all(|w| w[0] < w[1]), "{resets:?}");
        assert!(resets[0] >= 1 && resets[4] <= 60, "{resets:?}");

        let refused = limiter.check("key000000001", 5);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!((1..=12).contains(&refused.retry_after_secs), "{refused:?}");
        assert_eq!(refused.reset_secs, refused.retry_after_secs);
    }

    #[test]
    fn keys_and_policies_are_independent() {
        let limiter = LocalRateLimiter::default();
        assert!(limiter.check("keyA", 2).allowed);
        assert!(limiter.check("keyA", 2).allowed);
        assert!(!limiter.check("keyA", 2).allowed);

        let other = limiter.check("keyB", 2);
        assert!(other.allowed);
        assert_eq!(other.remaining, 1);

        let bigger = limiter.check("keyC", 600);
        assert!(bigger.allowed);
        assert_eq!((bigger.limit, bigger.remaining), (600, 599));

        assert_eq!(limiter.tracked(), 3);
    }

    #[test]
    fn a_policy_of_zero_is_treated_as_one() {
        let limiter = LocalRateLimiter::default();
        assert!(limiter.check("key", 0).allowed);
        assert!(!limiter.check("key", 0).allowed);
    }

    #[test]
    fn sweep_forgets_keys_that_no_longer_constrain() {
        let limiter = LocalRateLimiter::default();
        // One request every 60 µs: a few milliseconds later the key is back to full.
        limiter.check("fast", 1_000_000);
        limiter.check("slow", 1);
        std::thread::sleep(Duration::from_millis(20));
        limiter.sweep();
        assert_eq!(limiter.tracked(), 1);
        assert_eq!(limiter.tiers.read().unwrap().len(), 1);
    }

    #[test]
    fn key_limiter_stays_under_its_cap() {
        let limiter = LocalRateLimiter::new(1000);
        for n in 0..20_000 {
            let per_minute = 10 + n % 3;
            assert!(limiter.check(&format!("key{n:09}"), per_minute).allowed);
            assert!(limiter.tracked() <= 1000);
        }
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let decision = RateDecision {
            allowed: true,
            limit: 600,
            remaining: 598,
            reset_secs: 41,
            retry_after_secs: 0,
        };
        let [(policy_name, policy), (state_name, state)] = rate_limit_headers(&decision);
        assert_eq!(policy_name.as_str(), "ratelimit-policy");
        assert_eq!(policy, "\"minute\";q=600;w=60");
        assert_eq!(state_name.as_str(), "ratelimit");
        assert_eq!(state, "\"minute\";r=598;t=41");
    }

    #[test]
    fn ten_failures_block_that_client_only() {
        let limiter = FailureLimiter::default();
        let attacker = ip("203.0.113.7");
        for _ in 0..100 {
            assert_eq!(limiter.blocked(attacker), None, "blocked must not count");
        }
        for _ in 0..9 {
            assert_eq!(limiter.record_failure(attacker), None);
        }
        let retry = limiter
            .record_failure(attacker)
            .expect("tenth failure blocks");
        assert!(retry >= 1);
        assert!(limiter.blocked(attacker).is_some_and(|s| s >= 1));
        assert!(limiter.record_failure(attacker).is_some_and(|s| s >= 1));

        assert_eq!(limiter.blocked(ip("203.0.113.8")), None);
        assert_eq!(limiter.record_failure(ip("203.0.113.8")), None);
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let limiter = FailureLimiter::default();
        for n in 0..10u16 {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, n, 0, 0, 1);
            let outcome = limiter.record_failure(IpAddr::V6(addr));
            assert_eq!(outcome.is_some(), n == 9);
        }
        assert!(limiter.blocked(ip("2001:db8::ffff")).is_some());
        assert_eq!(limiter.blocked(ip("2001:db8:0:1::1")), None);
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn mapped_ipv4_is_the_ipv4_client() {
        let limiter = FailureLimiter::default();
        for _ in 0..5 {
            limiter.record_failure(ip("::ffff:1.2.3.4"));
            limiter.record_failure(ip("1.2.3.4"));
        }
        assert!(limiter.blocked(ip("1.2.3.4")).is_some());
        assert!(limiter.blocked(ip("::ffff:1.2.3.4")).is_some());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn failure_limiter_stays_under_its_cap() {
        let limiter = FailureLimiter::new(10, 1000);
        let attacker = ip("2001:db8::1");
        for _ in 0..10 {
            limiter.record_failure(attacker);
        }
        assert!(limiter.blocked(attacker).is_some());
        for n in 0..100_000 {
            limiter.record_failure(v4(n));
            assert!(limiter.tracked() <= 1000);
        }
        assert!(limiter.overflows() > 0);
        // Clearing forgives the counts, not the blocks already handed out.
        assert!(limiter.blocked(attacker).is_some());
    }

    #[test]
    fn the_cap_holds_under_concurrent_requests() {
        const THREADS: u32 = 4;
        let keys = LocalRateLimiter::new(1000);
        let failures = FailureLimiter::new(10, 1000);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (keys, failures) = (&keys, &failures);
                scope.spawn(move || {
                    for n in 0..25_000 {
                        keys.check(&format!("key{t}-{n}"), 100);
                        failures.record_failure(v4(t << 24 | n));
                    }
                });
            }
        });
        // Keys inserted while a recount runs may be missed by it: one per thread at most.
        assert!(keys.tracked() <= 1000 + THREADS as usize);
        assert!(failures.tracked() <= 1000 + THREADS as usize);
    }
}
