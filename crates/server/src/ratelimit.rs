//! Token-bucket rate limits, one bucket per API key and one per client
//! address. A limit of 0 turns that limit off.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
/// Buckets untouched this long are dropped when a shard is swept.
const IDLE_SECONDS: f64 = 60.0;
/// A shard holding more buckets than this is swept...
const SWEEP_ABOVE: usize = 10_000;
/// ...at most this often: with many clients all active, sweeping on every
/// request would make each request walk the whole shard under its lock.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Shard {
    buckets: HashMap<String, Bucket>,
    swept: Option<Instant>,
}

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    shards: Vec<Mutex<Shard>>,
}

impl RateLimiter {
    /// `per_second` requests a second, with a burst of one second's worth (at least 10).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(per_second.max(10)),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        buckets: HashMap::new(),
                        swept: None,
                    })
                })
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_second > 0.0
    }

    /// `Ok` if the request may go ahead, otherwise the seconds to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        if !self.enabled() {
            return Ok(());
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let Some(shard) = self.shards.get((h.finish() as usize) % SHARDS) else {
            return Ok(());
        };
        let Ok(mut shard) = shard.lock() else {
            return Ok(());
        };
        let due = shard
            .swept
            .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
        if shard.buckets.len() > SWEEP_ABOVE && due {
            shard
                .buckets
                .retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < IDLE_SECONDS);
            shard.swept = Some(now);
        }
        // The key is copied only for a new bucket, not on every request.
        if !shard.buckets.contains_key(key) {
            shard.buckets.insert(
                key.to_string(),
                Bucket {
                    tokens: self.burst,
                    last: now,
                },
            );
        }
        let Some(bucket) = shard.buckets.get_mut(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check("k", start).is_ok());
        }
        assert_eq!(limiter.check("k", start), Err(1));
        assert!(limiter.check("other", start).is_ok());
        assert!(
            limiter
                .check("k", start + Duration::from_millis(150))
                .is_ok()
        );
    }

    #[test]
    fn idle_buckets_are_swept_at_most_once_a_second() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        // Enough distinct clients to put every shard over the sweep threshold.
        for i in 0..(SWEEP_ABOVE * SHARDS * 2) {
            let _ = limiter.check(&format!("client-{i}"), start);
        }
        let total = |l: &RateLimiter| -> usize {
            l.shards
                .iter()
                .map(|s| s.lock().unwrap().buckets.len())
                .sum()
        };
        let before = total(&limiter);
        assert!(before > SWEEP_ABOVE * SHARDS, "{before}");
        // Not yet idle: a sweep keeps them, and the next sweep waits a second.
        let soon = start + Duration::from_millis(10);
        let _ = limiter.check("late", soon);
        assert!(total(&limiter) > SWEEP_ABOVE * SHARDS);
        let swept = |l: &RateLimiter| {
            l.shards
                .iter()
                .filter(|s| s.lock().unwrap().swept.is_some())
                .count()
        };
        assert!(swept(&limiter) >= 1);
        // Past the idle time, every shard touched sheds its idle buckets.
        let later = start + Duration::from_secs(61);
        for i in 0..1000 {
            let _ = limiter.check(&format!("new-{i}"), later);
        }
        assert!(total(&limiter) < before / 2, "{}", total(&limiter));
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..1000).all(|_| limiter.check("k", now).is_ok()));
    }
}
