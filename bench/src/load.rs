//! A closed-loop load generator: N callers, each making its next call as
//! soon as the last one answers, for a warm-up and then a measured window.
//! Only calls that start and end inside the window are counted.

use crate::procs::{CpuWindow, clock_ticks};
use crate::stats::{Figure, Latencies};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tonic_types::StatusExt;

pub enum Outcome {
    Ok,
    Error(String),
    /// Nothing left to do (e.g. the pool of fresh participants ran out).
    Stop,
}

pub struct LoadResult {
    pub latencies: Latencies,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub cpu: serde_json::Map<String, serde_json::Value>,
    pub stopped_early: bool,
}

impl LoadResult {
    pub fn figure(&self, figure: &str, backend: &str, clients: u64) -> Figure {
        let mut f = Figure::new(figure, backend, clients);
        f.n = self.latencies.len();
        f.per_s = if self.secs > 0.0 { self.latencies.len() as f64 / self.secs } else { 0.0 };
        f.p50_ms = self.latencies.ms(0.5);
        f.p99_ms = self.latencies.ms(0.99);
        f.set("errors", self.errors);
        f.set("seconds", crate::stats::round(self.secs, 2));
        f.set("cpu_pct", serde_json::Value::Object(self.cpu.clone()));
        if let Some(e) = &self.first_error {
            f.set("first_error", e.chars().take(300).collect::<String>());
        }
        if self.stopped_early {
            f.set("note", "stopped early: the pool of fresh participants ran out");
        }
        f
    }
}

/// Runs `clients` callers; `make(i)` builds caller i's call function, which
/// gets the caller's call count.
pub async fn closed_loop<M, C, Fut>(
    clients: usize,
    warmup: Duration,
    duration: Duration,
    cpu_pids: Vec<(String, u32)>,
    mut make: M,
) -> LoadResult
where
    M: FnMut(usize) -> C,
    C: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let start = Instant::now();
    let t_measure = start + warmup;
    let t_end = t_measure + duration;
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let stopped_at = std::sync::Arc::new(std::sync::Mutex::new(None::<Instant>));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut call = make(i);
        let (stop, stopped_at) = (stop.clone(), stopped_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::new();
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = 0u64;
            loop {
                let t0 = Instant::now();
                if t0 >= t_end {
                    break;
                }
                let outcome = call(n).await;
                n += 1;
                let t1 = Instant::now();
                let counted = t0 >= t_measure && t1 <= t_end;
                match outcome {
                    Outcome::Ok if counted => lat.record(t1 - t0),
                    Outcome::Ok => {}
                    Outcome::Error(e) => {
                        if counted {
                            errors += 1;
                        }
                        first_error.get_or_insert(e);
                    }
                    Outcome::Stop => {
                        if let Ok(mut s) = stopped_at.lock() {
                            s.get_or_insert(t1);
                        }
                        stop.notify_one();
                        break;
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    // CPU over the measured window (or until the work ran out).
    tokio::select! {
        () = tokio::time::sleep_until(t_measure) => {}
        () = stop.notified() => {}
    }
    let cpu = CpuWindow::start(cpu_pids);
    let measuring_from = Instant::now().max(t_measure);
    tokio::select! {
        () = tokio::time::sleep_until(t_end) => {}
        () = stop.notified() => {}
    }
    let cpu = cpu.finish(clock_ticks());
    let mut result =
        LoadResult { latencies: Latencies::new(), errors: 0, first_error: None, secs: 0.0, cpu, stopped_early: false };
    for t in tasks {
        if let Ok((lat, errors, first_error)) = t.await {
            result.latencies.add(&lat);
            result.errors += errors;
            if result.first_error.is_none() {
                result.first_error = first_error;
            }
        }
    }
    let stopped = stopped_at.lock().ok().and_then(|s| *s);
    let end = match stopped {
        Some(s) if s < t_end => {
            result.stopped_early = true;
            s
        }
        _ => t_end,
    };
    result.secs = end.saturating_duration_since(measuring_from).as_secs_f64();
    result
}

/// Makes a call until it is admitted: a RESOURCE_EXHAUSTED answer (the
/// service's backpressure, or its load shedding) is counted in `refusals`
/// and the call is made again after the google.rpc.RetryInfo delay (50 ms
/// when none), as a well-behaved client does, until `give_up`.
pub async fn admitted<T, F, Fut>(refusals: &AtomicU64, give_up: Instant, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    loop {
        match call().await {
            Err(status) if status.code() == tonic::Code::ResourceExhausted && Instant::now() < give_up => {
                refusals.fetch_add(1, Ordering::Relaxed);
                let wait = status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay)
                    .unwrap_or(Duration::from_millis(50))
                    .min(Duration::from_secs(1));
                tokio::time::sleep(wait).await;
            }
            answer => return answer,
        }
    }
}
