//! How far the relay is behind, for backpressure (issue 18).
//!
//! The signal is the relay's own: after each claim, how long the most
//! overdue command it found had been due (`now - next_attempt_at` of the
//! first due group head; zero when nothing was due). That measures delivery
//! capacity only. A target that is down does not count: its group heads back
//! off (not due), and the commands behind them are never heads. So an outage
//! fills the outbox, as it must (nothing is lost, everything is delivered
//! later), without refusing new changes; a flood the relay cannot keep up
//! with makes the overdue time grow, and the service refuses mutating calls
//! (see the participant service) until the relay catches up.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The relay's latest overdue time per lane, shared between the relay (which
/// writes it after every claim) and the admission check (which reads it on
/// every mutating call). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Pressure {
    lanes: Arc<RwLock<HashMap<String, Duration>>>,
}

impl Pressure {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what a claim of `lane` found: how long its most overdue
    /// command had been due (zero when it found nothing due).
    pub fn observe(&self, lane: &str, overdue: Duration) {
        let mut lanes = self.lanes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match lanes.get_mut(lane) {
            Some(value) => *value = overdue,
            None => {
                lanes.insert(lane.to_owned(), overdue);
            }
        }
    }

    /// The largest overdue time any lane last reported: how far delivery is
    /// behind acceptance right now.
    pub fn lag(&self) -> Duration {
        let lanes = self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        lanes.values().copied().max().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_most_overdue_lane_and_falls_when_it_catches_up() {
        let pressure = Pressure::new();
        assert_eq!(pressure.lag(), Duration::ZERO);
        pressure.observe("content-release", Duration::from_millis(300));
        pressure.observe("payments", Duration::from_millis(40));
        assert_eq!(pressure.lag(), Duration::from_millis(300));
        pressure.observe("content-release", Duration::ZERO);
        assert_eq!(pressure.lag(), Duration::from_millis(40));
    }
}
