//! What the DfE's answer means for a call (X8): accepted, worth retrying
//! (5xx, 429, no answer), or refused and parked for an operator (any other
//! 4xx).

use std::time::Duration;

/// What to do with a call after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: done.
    Delivered,
    /// 5xx, a 429, a timeout or no connection: try again later; `after` is
    /// the DfE's `Retry-After` when it gave one, else our backoff decides.
    Retry { after: Option<Duration> },
    /// Any other answer (a 4xx but 429, or a 1xx/3xx we did not ask for):
    /// waiting will not change it.
    Park,
}

/// The longest `Retry-After` honoured: a larger value is taken as this, so
/// a mistaken header does not stall a participant for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

pub fn classify(status: u16, retry_after: Option<&str>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        429 => Outcome::Retry { after: retry_after.and_then(parse_retry_after) },
        500..=599 => Outcome::Retry { after: None },
        _ => Outcome::Park,
    }
}

/// `Retry-After` in seconds (the DfE's form); an HTTP date is not honoured
/// (our backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// The exponential backoff before attempt `attempts + 1`, with up to half
/// of it taken off at random so retries of many calls spread out.
pub fn backoff(initial: Duration, max: Duration, attempts: i32) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let base = initial.saturating_mul(2u32.saturating_pow(exponent)).min(max);
    base.mul_f64(1.0 - rand::random_range(0.0..0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x8_5xx_and_429_are_retried_other_4xx_parked() {
        assert_eq!(classify(200, None), Outcome::Delivered);
        assert_eq!(classify(204, None), Outcome::Delivered);
        assert_eq!(classify(500, None), Outcome::Retry { after: None });
        assert_eq!(classify(503, Some("5")), Outcome::Retry { after: None });
        assert_eq!(classify(429, Some("7")), Outcome::Retry { after: Some(Duration::from_secs(7)) });
        assert_eq!(classify(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")), Outcome::Retry { after: None });
        assert_eq!(classify(429, Some("999999")), Outcome::Retry { after: Some(MAX_RETRY_AFTER) });
        for refused in [400, 401, 403, 404, 409, 422] {
            assert_eq!(classify(refused, None), Outcome::Park, "{refused}");
        }
    }

    #[test]
    fn x8_backoff_grows_to_its_cap_with_jitter() {
        let (initial, max) = (Duration::from_millis(200), Duration::from_secs(30));
        for attempts in 0..30 {
            let full = initial.saturating_mul(2u32.saturating_pow(attempts.clamp(0, 20) as u32)).min(max);
            let wait = backoff(initial, max, attempts);
            assert!(wait <= full && wait >= full / 2, "{attempts}: {wait:?} vs {full:?}");
        }
    }
}
