//! ListReleases for one day and GetStatement for one window, every page, as
//! the seeded population grows; resident memory of each service at a size.

use crate::seed::{self, Conn};
use crate::stack::Stack;
use crate::stats::{Figure, Latencies, round};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use steplab_content_release::domain::Curriculum;
use steplab_payments::domain::schedule::ScheduleBook;
use steplab_platform::auth::Role;
use steplab_proto::steplab::content::v1::ListReleasesRequest;
use steplab_proto::steplab::payments::v1::GetStatementRequest;

/// Grows the seeded population of a running stack's databases.
pub struct Seeder {
    content: Option<Conn>,
    payments: Option<Conn>,
    curriculum: Curriculum,
    book: ScheduleBook,
    started: seed::accrual_window::Started,
    pub seeded: usize,
    pub per_day: HashMap<NaiveDate, u64>,
    totals: HashMap<(String, String), i64>,
}

impl Seeder {
    pub fn new(stack: &Stack) -> anyhow::Result<Seeder> {
        let book = ScheduleBook::generated().map_err(|e| anyhow::anyhow!("schedules: {e:?}"))?;
        let started = seed::started_window(&book)?;
        Ok(Seeder {
            content: Some(Conn::open(&stack.content_db)?),
            payments: Some(Conn::open(&stack.payments_db)?),
            curriculum: Curriculum::built_in().map_err(|e| anyhow::anyhow!("curriculum: {e:?}"))?,
            book,
            started,
            seeded: 0,
            per_day: HashMap::new(),
            totals: HashMap::new(),
        })
    }

    /// Seeds learners up to `target` in both databases at once (two threads
    /// allowed on every CPU: the services are idle meanwhile).
    pub async fn grow_to(mut self, target: usize) -> anyhow::Result<(Seeder, Duration)> {
        let started_at = Instant::now();
        if target <= self.seeded {
            return Ok((self, Duration::ZERO));
        }
        let (from, to) = (self.seeded, target);
        let mut content = self.content.take().ok_or_else(|| anyhow::anyhow!("no content connection"))?;
        let mut payments = self.payments.take().ok_or_else(|| anyhow::anyhow!("no payments connection"))?;
        let mut totals = std::mem::take(&mut self.totals);
        let started = self.started;
        let (curriculum, book) = (self.curriculum, self.book);
        let joined = tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                let c = s.spawn(|| {
                    seed::unpin_this_thread();
                    let per_day = seed::seed_content(&mut content, &curriculum, started, from, to)?;
                    content.settle()?;
                    anyhow::Ok(per_day)
                });
                let p = s.spawn(|| {
                    seed::unpin_this_thread();
                    seed::seed_payments(&mut payments, &book, started, from, to, &mut totals)?;
                    payments.settle()?;
                    anyhow::Ok(())
                });
                let per_day = c.join().map_err(|_| anyhow::anyhow!("content seeding panicked"))?;
                let paid = p.join().map_err(|_| anyhow::anyhow!("payments seeding panicked"))?;
                let per_day = per_day?;
                paid?;
                anyhow::Ok(per_day)
            })
            .map(|per_day| (per_day, content, payments, totals, curriculum, book))
        })
        .await??;
        let (per_day, content, payments, totals, curriculum, book) = joined;
        let mut next = Seeder {
            content: Some(content),
            payments: Some(payments),
            curriculum,
            book,
            started,
            seeded: target,
            per_day: self.per_day,
            totals,
        };
        for (day, n) in per_day {
            *next.per_day.entry(day).or_default() += n;
        }
        Ok((next, started_at.elapsed()))
    }

    /// The day with the most releases so far.
    pub fn busiest_day(&self) -> Option<(NaiveDate, u64)> {
        self.per_day.iter().max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d))).map(|(d, n)| (*d, *n))
    }
}

/// Every page of one day's releases (page size 1000, the maximum).
pub async fn list_day(stack: &Stack, day: NaiveDate, participants: usize) -> anyhow::Result<Figure> {
    let token = stack.token(Role::Service, &[]);
    let mut content = stack.content(&token).await?;
    let date = steplab_platform::date::to_proto(day);
    let req = |page_token: String| ListReleasesRequest {
        start_date: Some(date),
        end_date: Some(date),
        page_size: 1000,
        page_token,
    };
    // One untimed first page: connection set-up and a cold first query.
    content.list_releases(req(String::new())).await?;
    let mut pages = Latencies::new();
    let (mut rows, mut n_pages, mut token) = (0u64, 0u64, String::new());
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let page = content.list_releases(req(token)).await?.into_inner();
        pages.record(t.elapsed());
        rows += page.releases.len() as u64;
        n_pages += 1;
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok(paged_figure("list_releases_day", stack, participants, started.elapsed(), rows, n_pages, &pages)
        .with("day", day.to_string()))
}

/// Every page of one window's statement (page size 1000, the maximum).
pub async fn statement(stack: &Stack, participants: usize) -> anyhow::Result<Figure> {
    let token = stack.token(Role::Admin, &[]);
    let mut payments = stack.payments(&token).await?;
    let window = seed::statement_window();
    let req = |page_token: String| GetStatementRequest {
        window: window.clone(),
        delivery_partner_id: String::new(),
        page_size: 1000,
        page_token,
    };
    payments.get_statement(req(String::new())).await?;
    let mut pages = Latencies::new();
    let (mut rows, mut n_pages, mut token) = (0u64, 0u64, String::new());
    let started = Instant::now();
    loop {
        let t = Instant::now();
        let page = payments.get_statement(req(token)).await?.into_inner();
        pages.record(t.elapsed());
        rows += (page.lines.len() + page.exclusions.len()) as u64;
        n_pages += 1;
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok(paged_figure("get_statement_window", stack, participants, started.elapsed(), rows, n_pages, &pages)
        .with("window", window))
}

fn paged_figure(
    name: &str,
    stack: &Stack,
    participants: usize,
    took: Duration,
    rows: u64,
    pages: u64,
    latencies: &Latencies,
) -> Figure {
    let secs = took.as_secs_f64().max(1e-6);
    let mut f = Figure::new(name, stack.backend.as_str(), 1);
    f.n = pages;
    f.per_s = rows as f64 / secs;
    f.p50_ms = latencies.ms(0.5);
    f.p99_ms = latencies.ms(0.99);
    f.with("participants", participants)
        .with("rows", rows)
        .with("pages", pages)
        .with("total_ms", round(secs * 1000.0, 1))
        .with("us_per_participant", round(secs * 1e6 / participants.max(1) as f64, 3))
        .with("pages_per_s", round(pages as f64 / secs, 1))
        .with("per_s_unit", "rows/s; p50/p99 per page; ratio_to_echo = pages/s over echo calls/s at 1 client")
}

/// VmRSS of each service process now.
pub fn memory(stack: &Stack, participants: usize) -> Vec<Figure> {
    stack
        .pids()
        .into_iter()
        .map(|(name, pid)| {
            Figure::new(&format!("rss_{name}"), stack.backend.as_str(), 0)
                .with("service", name)
                .with("participants", participants)
                .with("rss_mb", round(crate::procs::rss_mb(pid).unwrap_or(0.0), 1))
        })
        .collect()
}
