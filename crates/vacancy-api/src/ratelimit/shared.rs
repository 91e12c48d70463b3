//! Rate limits shared by every replica: the same GCRA, its state in Redis.
//!
//! One key per client (`<prefix><client>`) holds the bucket's "theoretical arrival time" in
//! microseconds of Redis's clock; a Lua script reads, decides and writes it atomically, so
//! replicas never race and their clocks do not matter. Keys expire once their bucket is full
//! again. One key per script call, so it works on a Redis Cluster node's slot too.
//!
//! Redis is never a dependency: every call is bounded by a timeout, and after a failure the
//! replica uses its local buckets for a while ([`BACKOFF`]) before trying Redis again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use super::{Decision, Headers, ceil_secs};

/// Longest one Redis call may take before the local buckets answer instead.
const CALL_TIMEOUT: Duration = Duration::from_millis(25);
/// How long a replica leaves Redis alone after a failed call.
const BACKOFF: Duration = Duration::from_secs(1);

/// GCRA in one step. KEYS[1]: the bucket; ARGV[1]: emission interval (µs); ARGV[2]: burst.
/// Returns `{1, µs until the bucket is full}` when allowed, `{0, µs until allowed}` when not.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > capacity then
  return {0, new_tat - capacity - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now}
";

pub(super) struct SharedBuckets {
    conn: ConnectionManager,
    script: Script,
    prefix: String,
    interval_us: u64,
    burst: u32,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried.
    skip_until_ms: AtomicU64,
}

impl SharedBuckets {
    pub(super) fn new(
        url: &str,
        prefix: &str,
        interval: Duration,
        burst: u32,
    ) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1);
        Ok(Self {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            script: Script::new(GCRA),
            prefix: prefix.to_owned(),
            interval_us: u64::try_from(interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
            burst,
            started: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The shared bucket's decision, or `None` when Redis cannot answer now.
    pub(super) async fn check(&self, client: &str) -> Option<Decision> {
        if self.elapsed_ms() < self.skip_until_ms.load(Ordering::Relaxed) {
            return None;
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!("{}{client}", self.prefix));
        invocation.arg(self.interval_us).arg(self.burst);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => return self.failed(&error.to_string()),
            Err(_) => return self.failed("timeout"),
        };
        Some(self.decision(outcome))
    }

    fn failed(&self, error: &str) -> Option<Decision> {
        let until = self.elapsed_ms() + BACKOFF.as_millis() as u64;
        let previous = self.skip_until_ms.swap(until, Ordering::Relaxed);
        metrics::counter!("vacancy_rate_limit_redis_errors_total").increment(1);
        if previous == 0 || previous < self.elapsed_ms() {
            tracing::warn!(
                error,
                "shared rate limits unavailable; using this replica's buckets"
            );
        }
        None
    }

    fn decision(&self, (allowed, micros): (i64, i64)) -> Decision {
        let micros = u64::try_from(micros).unwrap_or(0);
        let span = Duration::from_micros(micros);
        if allowed == 1 {
            let capacity = self.interval_us.saturating_mul(u64::from(self.burst));
            let remaining = capacity.saturating_sub(micros) / self.interval_us;
            Decision::Allowed(Headers {
                limit: self.burst,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX).min(self.burst),
                reset_secs: ceil_secs(span),
            })
        } else {
            let retry_after = ceil_secs(span).max(1);
            Decision::Limited {
                retry_after_secs: retry_after,
                headers: Headers {
                    limit: self.burst,
                    remaining: 0,
                    reset_secs: retry_after,
                },
            }
        }
    }
}
