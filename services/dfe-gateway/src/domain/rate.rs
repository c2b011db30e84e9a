//! The DfE's rate limit (X8): at most `limit` requests in any rolling
//! window (5 minutes). A log of the send times in the window, rather than a
//! token bucket, so the limit holds for every window, not on average.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The DfE counts requests per 5 minutes.
pub const WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct RollingLimit {
    limit: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl RollingLimit {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit: (limit as usize).max(1), window, sent: VecDeque::new() }
    }

    /// Takes a slot at `now`, or says how long until one frees.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        while self.sent.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            return Ok(());
        }
        let oldest = self.sent.front().copied().unwrap_or(now);
        Err((oldest + self.window).saturating_duration_since(now).max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x8_at_most_the_limit_in_any_rolling_window() {
        let start = Instant::now();
        let mut limit = RollingLimit::new(3, Duration::from_secs(300));
        for i in 0..3 {
            assert_eq!(limit.try_take(start + Duration::from_secs(i)), Ok(()));
        }
        // The fourth waits until the first leaves the window.
        assert_eq!(limit.try_take(start + Duration::from_secs(10)), Err(Duration::from_secs(290)));
        assert_eq!(limit.try_take(start + Duration::from_secs(299)), Err(Duration::from_secs(1)));
        assert_eq!(limit.try_take(start + Duration::from_secs(300)), Ok(()));
        assert!(limit.try_take(start + Duration::from_secs(300)).is_err());
    }
}
