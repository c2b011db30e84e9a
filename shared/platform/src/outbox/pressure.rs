//! How far the relay is behind, for backpressure (issue 18).
//!
//! The signal is the relay's own, the older of two ages:
//! - after each claim, how long the most overdue command it found had been
//!   due (`now - next_attempt_at` of the due group heads on their first
//!   attempt; zero when none was due): commands waiting for the relay;
//! - for as long as a claimed batch is being delivered and recorded, how long
//!   its oldest first-attempt command has been due, growing in real time:
//!   commands on their way. Without it a receiver slower than the bound
//!   (a batch of hundreds on a busy PostgreSQL) kept the claims finding
//!   nothing overdue while the lag grew to seconds, and nothing was refused.
//!
//! That measures delivery capacity only. A target that is down does not count:
//! its group heads back off (not due), the commands behind them are never
//! heads, and a head due again after its backoff is a retry, not counted
//! (the relay notices it at its next wake-up or poll, up to a second later,
//! which is its timer, not its capacity: counting it made a target that was
//! down refuse changes in tests/backpressure.rs). So an outage
//! fills the outbox, as it must (nothing is lost, everything is delivered
//! later), without refusing new changes; a flood the relay cannot keep up
//! with makes the overdue time grow, and the service refuses mutating calls
//! ([`Admission`], checked first thing by the participant service's and
//! payments' changes) until the relay catches up.
//!
//! Refusing rather than queuing: a refused call costs the service nothing
//! (no database work, no audit row, like the other RESOURCE_EXHAUSTED
//! sheds), and the caller's retry after the RetryInfo delay is the queue,
//! held where it costs this service no memory. Accepting everything and
//! letting the outbox grow would keep the lag unbounded under a flood, which
//! is what issue 18 asks to bound.

use crate::config::Backpressure;
use crate::error::ServiceError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The relay's latest overdue time per lane, shared between the relay (which
/// writes it after every claim) and the admission check (which reads it on
/// every mutating call). Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Pressure {
    lanes: Arc<RwLock<HashMap<String, Duration>>>,
    /// The batches being delivered: since when each one's oldest
    /// first-attempt command has been due.
    delivering: Arc<Mutex<Delivering>>,
}

#[derive(Debug, Default)]
struct Delivering {
    next: u64,
    /// Per batch: since when its oldest first-attempt command has been due,
    /// and how many first-attempt commands it carries.
    due_since: HashMap<u64, (Instant, usize)>,
}

/// A batch on its way, counted in [`Pressure::lag`] until dropped (after its
/// outcomes are recorded).
#[derive(Debug)]
#[must_use = "the batch counts only while this is held"]
pub struct OnItsWay {
    delivering: Arc<Mutex<Delivering>>,
    key: u64,
}

impl Drop for OnItsWay {
    fn drop(&mut self) {
        let mut delivering = self.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        delivering.due_since.remove(&self.key);
    }
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

    /// A claimed batch of `commands` first-attempt commands whose oldest had
    /// been due for `overdue` when claimed: its age counts in the lag, and its
    /// commands in the backlog, until the returned guard is dropped.
    pub fn on_its_way(&self, overdue: Duration, commands: usize) -> OnItsWay {
        let now = Instant::now();
        let since = now.checked_sub(overdue).unwrap_or(now);
        let mut delivering = self.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = delivering.next;
        delivering.next = delivering.next.wrapping_add(1);
        delivering.due_since.insert(key, (since, commands));
        OnItsWay { delivering: Arc::clone(&self.delivering), key }
    }

    /// How far delivery is behind acceptance right now: the largest overdue
    /// time any lane last reported, or the age of the oldest first-attempt
    /// command on its way, whichever is larger.
    pub fn lag(&self) -> Duration {
        let waiting = {
            let lanes = self.lanes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            lanes.values().copied().max().unwrap_or_default()
        };
        let on_its_way = {
            let delivering = self.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            delivering.due_since.values().map(|(since, _)| since).min().map(Instant::elapsed).unwrap_or_default()
        };
        waiting.max(on_its_way)
    }

    /// How many first-attempt commands are on their way in claimed batches.
    pub fn backlog(&self) -> usize {
        let delivering = self.delivering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        delivering.due_since.values().map(|(_, commands)| commands).sum()
    }
}

impl Pressure {
    /// Sets the `steplab_relay_lag_seconds` gauge of `service` (no label
    /// when empty, as the outbox gauges) to the current lag.
    pub fn record_gauge(&self, service: &'static str) {
        let lag = self.lag().as_secs_f64();
        if service.is_empty() {
            metrics::gauge!(crate::observability::RELAY_LAG).set(lag);
        } else {
            metrics::gauge!(crate::observability::RELAY_LAG, "service" => service).set(lag);
        }
    }
}

/// The admission check of backpressure: turns changes away as the relay
/// reporting into `pressure` falls behind, a growing share of them from half
/// of `max_lag` on and every one of them at `max_lag` and beyond (see
/// [`refusal_chance`]). Checked before any database work, so a refusal costs
/// one read lock. Reads, dry runs and the operator's recovery RPCs (which
/// exist to drain the backlog) do not call it. Cloning shares the pressure.
#[derive(Debug, Clone)]
pub struct Admission {
    pressure: Pressure,
    /// `None`: backpressure is off (`STEPLAB_BACKPRESSURE_MAX_LAG_MS=0`).
    max_lag: Option<Duration>,
    /// No more first-attempt commands than this on their way: nothing is
    /// refused (`STEPLAB_BACKPRESSURE_MIN_BACKLOG`).
    min_backlog: usize,
    /// The `service` label of the metrics; empty: none.
    service: &'static str,
}

/// The share of changes refused while the relay is `lag` behind, under a
/// bound of `max_lag`: none up to half the bound, then rising in proportion
/// to all of them at the bound.
///
/// Why not all-or-nothing at the bound: every caller was then refused at
/// once and told to wait about the lag, so the relay caught up and sat idle
/// while they all waited, then they all came back together and pushed it
/// past the bound again. Below capacity that turned 60% of one core into
/// refusals and idle time (`steplab-bench` at 16 and 64 callers, issue 18).
/// Refusing a share that grows with the lag slows acceptance down before
/// the bound, as far as the relay needs and no further, and keeps the lag
/// at or under the bound.
pub fn refusal_chance(lag: Duration, max_lag: Duration) -> f64 {
    let soft = max_lag / 2;
    if lag <= soft {
        0.0
    } else if lag >= max_lag {
        1.0
    } else {
        (lag - soft).as_secs_f64() / (max_lag - soft).as_secs_f64()
    }
}

impl Admission {
    /// Turns changes away as `pressure.lag()` nears the bound's `max_lag`
    /// (`None`: never) while more than its `min_backlog` commands are on
    /// their way.
    pub fn new(pressure: Pressure, bound: Backpressure, service: &'static str) -> Self {
        Self { pressure, max_lag: bound.max_lag, min_backlog: bound.min_backlog, service }
    }

    /// Admits every change: for a service run without a relay to watch.
    pub fn always() -> Self {
        Self::new(Pressure::new(), Backpressure { max_lag: None, min_backlog: 0 }, "")
    }

    /// The pressure this admission reads, to hand to the relay that reports it.
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// `Ok` when a change of `rpc` may go ahead now; otherwise
    /// RESOURCE_EXHAUSTED `DELIVERY_BACKLOG` with a RetryInfo of about the
    /// lag, spread at random, counted in `steplab_backpressure_refusals_total`.
    pub fn admit(&self, rpc: &'static str) -> Result<(), ServiceError> {
        self.admit_drawing(rpc, rand::random::<f64>, || rand::random_range(0.5..1.5))
    }

    /// [`Admission::admit`] with its two random draws given: `draw` (in
    /// 0..1) against the refusal chance, and `spread` for the retry delay.
    fn admit_drawing(
        &self,
        rpc: &'static str,
        draw: impl FnOnce() -> f64,
        spread: impl FnOnce() -> f64,
    ) -> Result<(), ServiceError> {
        let Some(max_lag) = self.max_lag else { return Ok(()) };
        // A few commands slow to arrive are the receiver's latency: refusing
        // callers would not make them arrive sooner, only turn away a lone
        // operator whose last change is still on its way.
        if self.pressure.backlog() <= self.min_backlog {
            return Ok(());
        }
        let lag = self.pressure.lag();
        let chance = refusal_chance(lag, max_lag);
        if chance <= 0.0 || (chance < 1.0 && draw() >= chance) {
            return Ok(());
        }
        use crate::observability::BACKPRESSURE_REFUSALS_TOTAL;
        if self.service.is_empty() {
            metrics::counter!(BACKPRESSURE_REFUSALS_TOTAL, "rpc" => rpc).increment(1);
        } else {
            metrics::counter!(BACKPRESSURE_REFUSALS_TOTAL, "service" => self.service, "rpc" => rpc).increment(1);
        }
        // Fresh while refusing, whatever the relay's gauge interval.
        self.pressure.record_gauge(self.service);
        let retry_after = crate::error::backlog_retry_delay(lag, spread());
        Err(ServiceError::DeliveryBacklog { lag, max_lag, retry_after })
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

    #[test]
    fn a_batch_on_its_way_counts_with_its_age_until_it_is_recorded() {
        let pressure = Pressure::new();
        pressure.observe("content-release", Duration::ZERO);
        let batch = pressure.on_its_way(Duration::from_millis(300), 20);
        let young = pressure.on_its_way(Duration::ZERO, 3);
        assert_eq!(pressure.backlog(), 23, "the commands of both batches");
        assert!(pressure.lag() >= Duration::from_millis(300), "the oldest batch's age: {:?}", pressure.lag());
        std::thread::sleep(Duration::from_millis(20));
        assert!(pressure.lag() >= Duration::from_millis(320), "it grows while on its way: {:?}", pressure.lag());
        drop(batch);
        assert!(pressure.lag() < Duration::from_millis(300), "recorded: only the young one counts");
        assert_eq!(pressure.backlog(), 3);
        drop(young);
        assert_eq!(pressure.lag(), Duration::ZERO, "nothing waits and nothing is on its way");
        assert_eq!(pressure.backlog(), 0);
    }

    #[test]
    fn a_growing_share_of_changes_is_refused_from_half_the_bound_and_all_at_it() {
        let ms = Duration::from_millis;
        let max = ms(250);
        assert_eq!(refusal_chance(Duration::ZERO, max), 0.0);
        assert_eq!(refusal_chance(ms(125), max), 0.0, "half the bound: none");
        assert!((refusal_chance(ms(150), max) - 0.2).abs() < 1e-9);
        assert!((refusal_chance(ms(200), max) - 0.6).abs() < 1e-9);
        assert_eq!(refusal_chance(ms(250), max), 1.0, "at the bound: all");
        assert_eq!(refusal_chance(ms(9_000), max), 1.0);
    }

    #[test]
    fn a_change_is_refused_by_its_draw_with_a_retry_spread_around_the_lag() {
        let pressure = Pressure::new();
        let admission = Admission::new(pressure.clone(), bound(250, 0), "participant");
        let _batch = pressure.on_its_way(Duration::ZERO, 1);
        let never = || -> f64 { panic!("no draw is needed") };
        assert!(admission.admit_drawing("DeferParticipant", never, never).is_ok(), "nothing reported yet");
        pressure.observe("content-release", Duration::from_millis(100));
        assert!(admission.admit_drawing("DeferParticipant", never, never).is_ok(), "under half the bound");

        // 200 ms: a chance of 0.6, so a draw under 0.6 is refused.
        pressure.observe("content-release", Duration::from_millis(200));
        assert!(admission.admit_drawing("DeferParticipant", || 0.7, never).is_ok());
        match admission.admit_drawing("DeferParticipant", || 0.5, || 1.5) {
            Err(ServiceError::DeliveryBacklog { lag, max_lag, retry_after }) => {
                assert_eq!((lag, max_lag), (Duration::from_millis(200), Duration::from_millis(250)));
                assert_eq!(retry_after, Duration::from_millis(300), "the lag times the spread");
            }
            other => panic!("expected a delivery backlog refusal, got {other:?}"),
        }

        // At or past the bound every change is refused, whatever the draw.
        pressure.observe("content-release", Duration::from_millis(900));
        match admission.admit_drawing("DeferParticipant", never, || 0.5) {
            Err(ServiceError::DeliveryBacklog { lag, retry_after, .. }) => {
                assert_eq!((lag, retry_after), (Duration::from_millis(900), Duration::from_millis(450)));
            }
            other => panic!("expected a delivery backlog refusal, got {other:?}"),
        }
        pressure.observe("content-release", Duration::ZERO);
        assert!(admission.admit("DeferParticipant").is_ok(), "caught up");
    }

    #[test]
    fn the_random_draws_stay_in_their_ranges() {
        let pressure = Pressure::new();
        let admission = Admission::new(pressure.clone(), bound(250, 0), "");
        let _batch = pressure.on_its_way(Duration::ZERO, 1);
        pressure.observe("payments", Duration::from_secs(1));
        for _ in 0..1_000 {
            let Err(ServiceError::DeliveryBacklog { retry_after, .. }) = admission.admit("RecordEngagement") else {
                panic!("past the bound every change is refused");
            };
            assert!(
                (Duration::from_millis(500)..=Duration::from_millis(1_500)).contains(&retry_after),
                "{retry_after:?}"
            );
        }
    }

    #[test]
    fn without_a_bound_nothing_is_refused() {
        let pressure = Pressure::new();
        pressure.observe("payments", Duration::from_secs(3_600));
        let _batch = pressure.on_its_way(Duration::from_secs(3_600), 1_000);
        let off = Backpressure { max_lag: None, min_backlog: 0 };
        assert!(Admission::new(pressure, off, "").admit("RegisterParticipant").is_ok());
        assert!(Admission::always().admit("RegisterParticipant").is_ok());
    }

    #[test]
    fn a_backlog_no_larger_than_the_minimum_is_never_refused_however_late() {
        let pressure = Pressure::new();
        let admission = Admission::new(pressure.clone(), bound(250, 30), "participant");
        let never = || -> f64 { panic!("no draw is needed") };
        // A lone caller's changes, slow to arrive: the receiver's latency.
        let slow = pressure.on_its_way(Duration::from_secs(5), 28);
        let slower = pressure.on_its_way(Duration::from_secs(9), 2);
        assert!(pressure.lag() >= Duration::from_secs(9));
        assert!(admission.admit_drawing("DeferParticipant", never, never).is_ok(), "30 on their way: admitted");
        // One more command on its way and the same lag refuses every change.
        let more = pressure.on_its_way(Duration::ZERO, 1);
        assert!(matches!(
            admission.admit_drawing("DeferParticipant", never, || 1.0),
            Err(ServiceError::DeliveryBacklog { .. })
        ));
        drop((slow, slower, more));
        assert!(admission.admit_drawing("DeferParticipant", never, never).is_ok(), "all recorded");
    }

    fn bound(max_lag_ms: u64, min_backlog: usize) -> Backpressure {
        Backpressure { max_lag: Some(Duration::from_millis(max_lag_ms)), min_backlog }
    }
}
