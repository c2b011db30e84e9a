//! End-to-end deferrals (accepted by the participant service and applied in
//! content release and payments) and the single-participant reads.
//!
//! Deferrals: each caller defers a fresh ECT (registered beforehand through
//! the RPCs) as fast as the participant service answers. A deferral counts
//! end to end once both of its commands (PlaceHold, SuspendAccrual) are
//! applied: applied = accepted - growth of the outbox backlog over the
//! window / 2, read with GetSyncStatus at the window's start and end. A
//! deferral sends a third command (ReportStatusChange, to the DfE gateway),
//! and the backlog counts all three targets' alike: with N commands pending,
//! about N/3 per target, the deferrals still unapplied in content release
//! or payments number between N/3 (the same deferrals behind on both) and
//! 2N/3 (different ones), and N/2 is the middle of that. The
//! propagation lag (accepted -> visible in both services) is taken on a
//! sample (one deferral every 50 ms at most, whatever the lag, so the sample
//! is unbiased), by polling GetReleaseState and GetAccrual every tenth of the
//! lag so far (1 ms to 250 ms), so the watchers do not become the load.

use crate::load::{self, Outcome};
use crate::stack::{Participants, Stack};
use crate::stats::{Figure, Latencies, round};
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind};
use steplab_proto::steplab::content::v1::GetReleaseStateRequest;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1::{AccrualState, GetAccrualRequest};
use tokio::sync::Mutex;
use tokio::time::Instant;

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// A delivery partner, a covered school, and the ECF Lead's token.
pub struct World {
    pub school: String,
    pub lead: String,
}

pub async fn world(stack: &Stack) -> anyhow::Result<World> {
    let admin = stack.token(Role::Admin, &[]);
    let mut p = stack.participants(0, &admin).await?;
    let dp = p
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: "Bench Region".into(),
            idempotency_key: "".into(),
        })
        .await?
        .into_inner()
        .delivery_partner
        .context("no delivery partner")?
        .delivery_partner_id;
    let school = p
        .create_school(pb::CreateSchoolRequest {
            validate_only: false,
            urn: "900001".into(),
            name: "Bench School".into(),
            delivery_partner_id: dp.clone(),
            area_covered: Some(true),
            idempotency_key: String::new(),
        })
        .await?
        .into_inner()
        .school
        .context("no school")?
        .school_id;
    let lead = stack.token(Role::EcfLead, &[&dp]);
    Ok(World { school, lead })
}

/// Registers ECTs with `clients` parallel callers (spread over the
/// participant replicas) until `budget` has passed or `max` are registered.
pub async fn register_pool(
    stack: &Stack,
    w: &World,
    clients: usize,
    connections: usize,
    budget: Duration,
    max: usize,
) -> anyhow::Result<Registered> {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let refusals = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + budget;
    let mut tasks = Vec::new();
    let count = Arc::new(AtomicUsize::new(0));
    let shared = callers(stack, &w.lead, connections).await?;
    for c in 0..clients {
        let client = shared[c % shared.len()].clone();
        let (ids, count, school, refusals) = (ids.clone(), count.clone(), w.school.clone(), refusals.clone());
        tasks.push(tokio::spawn(async move {
            let mut errors = 0u32;
            while Instant::now() < deadline {
                let n = count.fetch_add(1, Ordering::Relaxed);
                if n >= max {
                    break;
                }
                let request = pb::RegisterParticipantRequest {
                    validate_only: false,
                    school_id: school.clone(),
                    kind: ParticipantKind::Ect as i32,
                    full_name: format!("Bench Teacher {n}"),
                    // Unique within the stack (each stack is fresh).
                    trn: format!("{:07}", 1_000_000 + n),
                    registered_on: date(2026, 9, 1),
                    previous_pilot_mentor: Some(false),
                    // Keyed, so a retry after a lost answer registers no one twice.
                    idempotency_key: format!("bench-register-{n}"),
                    dfe_participant_id: String::new(),
                };
                let answer = load::admitted(&refusals, deadline, || {
                    let (mut client, request) = (client.clone(), request.clone());
                    async move { client.register_participant(request).await }
                })
                .await;
                match answer {
                    Ok(r) => {
                        let r: tonic::Response<pb::RegisterParticipantResponse> = r;
                        if let Some(p) = r.into_inner().participant {
                            ids.lock().await.push(p.participant_id);
                        }
                    }
                    Err(e) => {
                        errors += 1;
                        if errors > 100 {
                            return Err(anyhow::anyhow!("RegisterParticipant keeps failing: {e:?}"));
                        }
                    }
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ids = std::mem::take(&mut *ids.lock().await);
    Ok(Registered { ids, refusals: refusals.load(Ordering::Relaxed) })
}

/// The participants a `register_pool` registered, and how often the
/// participant service asked it to slow down (RESOURCE_EXHAUSTED) meanwhile.
pub struct Registered {
    pub ids: Vec<String>,
    pub refusals: u64,
}

/// `connections` HTTP/2 connections to each participant replica, as the
/// ECF Lead; caller c uses `[c % len]`, so callers alternate replicas.
async fn callers(stack: &Stack, token: &str, connections: usize) -> anyhow::Result<Vec<Participants>> {
    let replicas = stack.participants.len();
    let mut out = Vec::new();
    for j in 0..replicas * connections.max(1) {
        out.push(stack.participants(j % replicas, token).await?);
    }
    Ok(out)
}

/// Undelivered commands (pending, parked) in the participant service's outbox.
async fn backlog(client: &mut Participants) -> anyhow::Result<(i64, i64)> {
    let s = client
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: String::new(),
            parked_only: false,
        })
        .await?
        .into_inner();
    Ok((s.pending, s.parked))
}

/// Waits until every command is delivered; answers how long it took.
pub async fn wait_drained(stack: &Stack, within: Duration) -> anyhow::Result<Duration> {
    let admin = stack.token(Role::Admin, &[]);
    let mut client = stack.participants(0, &admin).await?;
    let started = Instant::now();
    loop {
        let (pending, parked) = backlog(&mut client).await?;
        if pending == 0 && parked == 0 {
            return Ok(started.elapsed());
        }
        if parked > 0 {
            anyhow::bail!("{parked} commands parked (see the logs in {})", stack.log_dir().display());
        }
        if started.elapsed() > within {
            anyhow::bail!("{pending} commands still pending after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The fresh participants left to defer, shared by every caller.
pub struct Pool {
    ids: Vec<String>,
    next: AtomicUsize,
}

impl Pool {
    pub fn new(ids: Vec<String>) -> Arc<Pool> {
        Arc::new(Pool { ids, next: AtomicUsize::new(0) })
    }

    fn take(&self) -> Option<&str> {
        self.ids.get(self.next.fetch_add(1, Ordering::Relaxed)).map(String::as_str)
    }

    pub fn left(&self) -> usize {
        self.ids.len().saturating_sub(self.next.load(Ordering::Relaxed))
    }

    pub fn all(&self) -> &[String] {
        &self.ids
    }
}

/// Polls content release and payments until the deferral of `id` shows in
/// both; answers when (None after 30 s).
async fn visible(
    content: &mut crate::stack::Content,
    payments: &mut crate::stack::Payments,
    id: &str,
) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut in_content, mut in_payments) = (false, false);
    let started = Instant::now();
    loop {
        if !in_content {
            let r = content.get_release_state(GetReleaseStateRequest { participant_id: id.into(), as_of: None }).await;
            in_content = r.is_ok_and(|r| !r.into_inner().active_holds.is_empty());
        }
        if !in_payments {
            let r = payments.get_accrual(GetAccrualRequest { participant_id: id.into(), as_of: None }).await;
            in_payments = r.is_ok_and(|r| r.into_inner().state == AccrualState::Suspended as i32);
        }
        if in_content && in_payments {
            return Some(Instant::now());
        }
        if Instant::now() > deadline {
            return None;
        }
        // Polls no faster than a tenth of the lag so far (1 ms to 250 ms): the
        // error stays under 10% of the figure, and a backlog of seconds does
        // not turn the watchers themselves into the load that starves delivery.
        tokio::time::sleep((started.elapsed() / 10).clamp(Duration::from_millis(1), Duration::from_millis(250))).await;
    }
}

/// End-to-end deferrals at `clients` callers, spread over the replicas.
pub async fn deferrals(
    stack: &Stack,
    w: &World,
    pool: &Arc<Pool>,
    clients: usize,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Figure> {
    let admin = stack.token(Role::Admin, &[]);
    let service = stack.token(Role::Service, &[]);
    let callers = callers(stack, &w.lead, connections).await?;
    let content = stack.content(&service).await?;
    let payments = stack.payments(&service).await?;
    let lags = Arc::new(std::sync::Mutex::new(Latencies::new()));
    let lag_timeouts = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let last_sample = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let exhausted_notify = Arc::new(tokio::sync::Notify::new());
    let origin = Instant::now();
    let t_measure = origin + warmup;
    let t_end = t_measure + duration;

    // The backlog at the window's start and end (or when the pool ran out).
    let mut sync = stack.participants(0, &admin).await?;
    let notify = exhausted_notify.clone();
    let backlog_task = tokio::spawn(async move {
        tokio::time::sleep_until(t_measure).await;
        let start = backlog(&mut sync).await?;
        tokio::select! {
            () = tokio::time::sleep_until(t_end) => {}
            () = notify.notified() => {}
        }
        let end = backlog(&mut sync).await?;
        anyhow::Ok((start.0, end.0))
    });

    let watchers = Arc::new(Mutex::new(Vec::new()));
    let result = load::closed_loop(clients, warmup, duration, stack.cpu_pids(), |i| {
        let caller = callers[i % callers.len()].clone();
        let (pool, content, payments) = (pool.clone(), content.clone(), payments.clone());
        let (lags, lag_timeouts, accepted, last_sample) =
            (lags.clone(), lag_timeouts.clone(), accepted.clone(), last_sample.clone());
        let (exhausted, exhausted_notify, watchers) = (exhausted.clone(), exhausted_notify.clone(), watchers.clone());
        let refusals = refusals.clone();
        move |_n: u64| {
            let caller = caller.clone();
            let refusals = refusals.clone();
            let (pool, content, payments) = (pool.clone(), content.clone(), payments.clone());
            let (lags, lag_timeouts, accepted, last_sample) =
                (lags.clone(), lag_timeouts.clone(), accepted.clone(), last_sample.clone());
            let (exhausted, exhausted_notify, watchers) =
                (exhausted.clone(), exhausted_notify.clone(), watchers.clone());
            async move {
                let Some(id) = pool.take().map(str::to_owned) else {
                    if !exhausted.swap(true, Ordering::Relaxed) {
                        exhausted_notify.notify_one();
                    }
                    return Outcome::Stop;
                };
                let t0 = Instant::now();
                let answer = defer(&caller, &id, &refusals, t_end).await;
                let t1 = Instant::now();
                if let Err(e) = answer {
                    return Outcome::Error(format!("DeferParticipant: {e:?}"));
                }
                if t0 < t_measure || t1 > t_end {
                    return Outcome::Ok;
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                // One sample every 50 ms at most, whatever the lag.
                let now_ms = (t1 - origin).as_millis() as u64;
                let last = last_sample.load(Ordering::Relaxed);
                if (last == 0 || now_ms >= last + 50)
                    && last_sample.compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed).is_ok()
                {
                    let (mut content, mut payments) = (content.clone(), payments.clone());
                    let handle = tokio::spawn(async move {
                        match visible(&mut content, &mut payments, &id).await {
                            Some(at) => {
                                if let Ok(mut l) = lags.lock() {
                                    l.record(at - t1);
                                }
                            }
                            None => {
                                lag_timeouts.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    });
                    watchers.lock().await.push(handle);
                }
                Outcome::Ok
            }
        }
    })
    .await;
    let (pending_start, pending_end) = backlog_task.await??;
    for h in std::mem::take(&mut *watchers.lock().await) {
        let _ = h.await;
    }
    wait_drained(stack, Duration::from_secs(600)).await?;
    // From the window's end (or the pool running out) to an empty outbox.
    let drained =
        Instant::now().saturating_duration_since(t_end.min(origin + warmup + Duration::from_secs_f64(result.secs)));
    let accepted = accepted.load(Ordering::Relaxed);
    let secs = result.secs.max(1e-3);
    // Two commands per deferral of an ECT without a mentor.
    let growth = (pending_end - pending_start).max(0) as f64 / 2.0;
    let applied = (accepted as f64 - growth).max(0.0);
    let mut f = result.figure("deferrals_e2e", stack.backend.as_str(), clients as u64);
    f.per_s = applied / secs;
    let lags = lags.lock().map(|l| l.clone()).unwrap_or_default();
    f.set("accepted_per_s", round(accepted as f64 / secs, 1));
    f.set("backpressure_refusals", refusals.load(Ordering::Relaxed));
    f.set("lag_p50_ms", round(lags.ms(0.5), 2));
    f.set("lag_p99_ms", round(lags.ms(0.99), 2));
    f.set("lag_samples", lags.len());
    f.set("lag_timeouts", lag_timeouts.load(Ordering::Relaxed));
    f.set("backlog_growth_commands", pending_end - pending_start);
    f.set("drained_after_s", round(drained.as_secs_f64(), 2));
    f.set("replicas", stack.participants.len());
    f.set("rpc_latency", "p50_ms/p99_ms: DeferParticipant");
    Ok(f)
}

/// GetReleaseState (content release) or GetParticipant (participant) calls
/// by `clients` callers over the pool's participants, as the ECF Lead.
#[allow(clippy::too_many_arguments)] // the same knobs as `deferrals`, plus the RPC
pub async fn reads(
    stack: &Stack,
    w: &World,
    ids: &Arc<Pool>,
    rpc: &str,
    clients: usize,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Figure> {
    let mut content = Vec::new();
    let mut participants = Vec::new();
    for _ in 0..connections.max(1) {
        content.push(stack.content(&w.lead).await?);
        participants.push(stack.participants(0, &w.lead).await?);
    }
    let n_ids = ids.all().len().max(1);
    let result = load::closed_loop(clients, warmup, duration, stack.cpu_pids(), |i| {
        let (content, participants, ids) =
            (content[i % content.len()].clone(), participants[i % participants.len()].clone(), ids.clone());
        let rpc = rpc.to_owned();
        move |n: u64| {
            let id = ids.all().get((i * 7919 + n as usize * 31) % n_ids).cloned().unwrap_or_default();
            let (mut content, mut participants) = (content.clone(), participants.clone());
            let rpc = rpc.clone();
            async move {
                let r = if rpc == "GetReleaseState" {
                    content
                        .get_release_state(GetReleaseStateRequest { participant_id: id, as_of: None })
                        .await
                        .map(|_| ())
                } else {
                    participants
                        .get_participant(pb::GetParticipantRequest { participant_id: id, as_of: None })
                        .await
                        .map(|_| ())
                };
                match r {
                    Ok(()) => Outcome::Ok,
                    Err(e) => Outcome::Error(format!("{rpc}: {e:?}")),
                }
            }
        }
    })
    .await;
    Ok(result.figure(rpc, stack.backend.as_str(), clients as u64))
}

/// Defers `id` (parental leave, back in March), retrying while the
/// participant service asks to slow down, until `give_up`. Keyed, so a
/// retried call never defers twice.
async fn defer(caller: &Participants, id: &str, refusals: &AtomicU64, give_up: Instant) -> Result<(), tonic::Status> {
    let request = pb::DeferParticipantRequest {
        participant_id: id.to_owned(),
        reason: DeferralReason::ParentalLeave as i32,
        deferral_date: date(2026, 11, 28),
        expected_return_date: date(2027, 3, 28),
        idempotency_key: format!("bench-defer-{id}"),
        ..Default::default()
    };
    load::admitted(refusals, give_up, || {
        let (mut caller, request) = (caller.clone(), request.clone());
        async move { caller.defer_participant(request).await.map(|_| ()) }
    })
    .await
}

/// The cohort intake: `n` ECTs registered by `clients` callers (each
/// enrolled in content release and payments by the relay), timed from the
/// first call to the last command applied.
pub async fn cohort(
    stack: &Stack,
    w: &World,
    n: usize,
    clients: usize,
    connections: usize,
) -> anyhow::Result<(Figure, Vec<String>)> {
    let started = Instant::now();
    let registered = register_pool(stack, w, clients, connections, Duration::from_secs(600), n).await?;
    let accepted_in = started.elapsed();
    if registered.ids.len() < n {
        anyhow::bail!("only {} of {n} registrations were accepted in 600 s", registered.ids.len());
    }
    wait_drained(stack, Duration::from_secs(600)).await?;
    let applied_in = started.elapsed();
    let mut f = Figure::new("cohort_intake", stack.backend.as_str(), clients as u64);
    f.n = n as u64;
    f.per_s = n as f64 / applied_in.as_secs_f64().max(1e-3);
    f.set("registrations", n);
    f.set("accepted_s", round(accepted_in.as_secs_f64(), 2));
    f.set("applied_s", round(applied_in.as_secs_f64(), 2));
    f.set("backpressure_refusals", registered.refusals);
    f.set(
        "note",
        "per_s: registrations applied in content release and payments per second, first call to last command",
    );
    Ok((f, registered.ids))
}

/// The share of an offered rate that must be accepted, and of the accepted
/// rate applied, for the stack to have sustained it.
const SUSTAINED_SHARE: f64 = 0.95;

/// Whether the stack sustained an `offered` rate: it accepted nearly all of
/// it (backpressure refused few) and applied nearly all it accepted (no
/// backlog grew). The lag bound is asked of the highest rate it
/// sustains; past that rate, backpressure refuses the rest by design.
pub fn sustained(offered: f64, accepted: f64, applied: f64) -> bool {
    accepted >= SUSTAINED_SHARE * offered && applied >= SUSTAINED_SHARE * accepted
}

/// Deferrals offered at a fixed `rate` per second (an open loop: one call
/// starts every 1/rate s whatever the answers), for a warm-up and a measured
/// window. A call refused for load is retried after its RetryInfo delay, as
/// clients do. Reports what was accepted and applied in the window, the
/// refusals, and the propagation lag of a sample (as `deferrals`).
pub async fn offered(
    stack: &Stack,
    w: &World,
    pool: &Arc<Pool>,
    rate: u32,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Figure> {
    let admin = stack.token(Role::Admin, &[]);
    let service = stack.token(Role::Service, &[]);
    let callers = callers(stack, &w.lead, connections).await?;
    let content = stack.content(&service).await?;
    let payments = stack.payments(&service).await?;
    let lags = Arc::new(std::sync::Mutex::new(Latencies::new()));
    let answers = Arc::new(std::sync::Mutex::new(Latencies::new()));
    let (lag_timeouts, refusals, accepted, errors, offered) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let origin = Instant::now();
    let (t_measure, t_end) = (origin + warmup, origin + warmup + duration);
    let mut sync = stack.participants(0, &admin).await?;
    let mut calls = Vec::new();
    let mut watchers = Vec::new();
    let mut last_sample = None::<Instant>;
    let mut pending_start = None;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let cpu = crate::procs::CpuWindow::start(stack.cpu_pids());
    let mut n = 0usize;
    loop {
        let at = ticks.tick().await;
        if at >= t_end {
            break;
        }
        if pending_start.is_none() && at >= t_measure {
            pending_start = Some(backlog(&mut sync).await?.0);
        }
        let Some(id) = pool.take().map(str::to_owned) else {
            anyhow::bail!("the pool of fresh participants ran out at {rate}/s: register more");
        };
        let in_window = at >= t_measure;
        if in_window {
            offered.fetch_add(1, Ordering::Relaxed);
        }
        let sample = in_window && last_sample.is_none_or(|t: Instant| at >= t + Duration::from_millis(50));
        if sample {
            last_sample = Some(at);
        }
        let caller = callers[n % callers.len()].clone();
        n += 1;
        let (refusals, accepted, errors, answers, first_error) =
            (refusals.clone(), accepted.clone(), errors.clone(), answers.clone(), first_error.clone());
        let (lags, lag_timeouts, mut content, mut payments) =
            (lags.clone(), lag_timeouts.clone(), content.clone(), payments.clone());
        calls.push(tokio::spawn(async move {
            let answer = defer(&caller, &id, &refusals, t_end).await;
            let t1 = Instant::now();
            match answer {
                Ok(()) if in_window && t1 <= t_end => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut a) = answers.lock() {
                        a.record(t1 - at);
                    }
                }
                Ok(()) => {}
                Err(e) => {
                    if in_window {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Ok(mut first) = first_error.lock() {
                        first.get_or_insert(format!("DeferParticipant: {e:?}"));
                    }
                    return None;
                }
            }
            if !sample {
                return None;
            }
            Some(tokio::spawn(async move {
                match visible(&mut content, &mut payments, &id).await {
                    Some(seen) => {
                        if let Ok(mut l) = lags.lock() {
                            l.record(seen - t1);
                        }
                    }
                    None => {
                        lag_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }))
        }));
    }
    let pending_end = backlog(&mut sync).await?.0;
    let cpu = cpu.finish(crate::procs::clock_ticks());
    for call in calls {
        if let Ok(Some(watcher)) = call.await {
            watchers.push(watcher);
        }
    }
    for watcher in watchers {
        let _ = watcher.await;
    }
    let drain_from = Instant::now();
    wait_drained(stack, Duration::from_secs(600)).await?;
    let secs = duration.as_secs_f64().max(1e-3);
    let accepted = accepted.load(Ordering::Relaxed);
    let growth = (pending_end - pending_start.unwrap_or(pending_end)).max(0) as f64 / 2.0;
    let lags = lags.lock().map(|l| l.clone()).unwrap_or_default();
    let answers = answers.lock().map(|a| a.clone()).unwrap_or_default();
    let mut f = Figure::new("deferrals_offered", stack.backend.as_str(), 0);
    f.n = accepted;
    f.per_s = (accepted as f64 - growth).max(0.0) / secs;
    f.p50_ms = answers.ms(0.5);
    f.p99_ms = answers.ms(0.99);
    f.set("offered_per_s", rate);
    f.set("accepted_per_s", round(accepted as f64 / secs, 1));
    f.set("sustained", sustained(f64::from(rate), accepted as f64 / secs, f.per_s));
    f.set("backpressure_refusals", refusals.load(Ordering::Relaxed));
    f.set("errors", errors.load(Ordering::Relaxed));
    if let Ok(Some(e)) = first_error.lock().map(|e| e.clone()) {
        f.set("first_error", e.chars().take(300).collect::<String>());
    }
    f.set("lag_p50_ms", round(lags.ms(0.5), 2));
    f.set("lag_p99_ms", round(lags.ms(0.99), 2));
    f.set("lag_samples", lags.len());
    f.set("lag_timeouts", lag_timeouts.load(Ordering::Relaxed));
    f.set("backlog_growth_commands", pending_end - pending_start.unwrap_or(pending_end));
    f.set("drained_after_s", round(drain_from.elapsed().as_secs_f64(), 2));
    f.set("cpu_pct", serde_json::Value::Object(cpu));
    f.set("rpc_latency", "p50_ms/p99_ms: DeferParticipant from its scheduled start, retries included");
    Ok(f)
}
