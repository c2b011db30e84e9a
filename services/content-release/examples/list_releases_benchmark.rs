//! Benchmark of the release feed (R4): how fast `ListReleases` answers for
//! one day over a national cohort. Not a test: run it by hand and read the
//! numbers.
//!
//! ```text
//! cargo run -p steplab-content-release --example list_releases_benchmark -- [LEARNERS] [DATABASE_URL]
//! ```
//!
//! Seeds LEARNERS (default 200,000) learners into a fresh SQLite file (or the
//! `postgres://` database given, which must be empty), with C1's spread of
//! release starts and a realistic share of pauses, deferrals and withdrawals,
//! each learner's feed computed by the release engine. Seeding writes
//! multi-row INSERTs for speed; the service itself writes row by row. Then it
//! times the `ListReleases` use case (database included, gRPC excluded) for
//! the busiest day: the first page, every page of the day, and a quiet day.

// A hand-run tool: a failed setup should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use chrono::{Days, NaiveDate};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use steplab_content_release::MIGRATIONS;
use steplab_content_release::domain::release::{ReleaseFacts, schedule};
use steplab_content_release::domain::{Curriculum, Hold, HoldKind, Programme, Revocation};
use steplab_content_release::service::ContentRelease;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbConn, DbError};
use steplab_platform::{Caller, Clock, Scope, date};
use steplab_proto::steplab::content::v1 as pb;

/// A small deterministic generator (xorshift64*), so every run seeds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("date")
}

fn plus(day: NaiveDate, days: u64) -> NaiveDate {
    day.checked_add_days(Days::new(days)).expect("date")
}

struct Seeded {
    participant_id: String,
    programme: Programme,
    release_start: NaiveDate,
    holds: Vec<Hold>,
    revocations: Vec<Revocation>,
}

/// C1's spread for the 2026 cohort: most start on 1 September, some on their
/// registration date in September-October, then the January and April starts.
fn learner(i: usize, rng: &mut Rng) -> Seeded {
    let release_start = match rng.below(100) {
        0..=49 => ymd(2026, 9, 1),
        50..=64 => plus(ymd(2026, 9, 2), rng.below(60)),
        65..=84 => ymd(2027, 1, 1),
        85..=89 => plus(ymd(2027, 1, 2), rng.below(58)),
        _ => ymd(2027, 4, 1),
    };
    let programme = if rng.below(10) < 7 { Programme::Ect } else { Programme::Mentor };
    let mut holds = Vec::new();
    let mut revocations = Vec::new();
    match rng.below(100) {
        0..=3 => {
            let from = plus(release_start, rng.below(600));
            holds.push(Hold {
                hold_id: "pause-1".into(),
                kind: HoldKind::Pause,
                from,
                until: plus(from, 7 + rng.below(35)),
            });
        }
        4..=6 => {
            let from = plus(release_start, rng.below(600));
            holds.push(Hold {
                hold_id: "deferral-1".into(),
                kind: HoldKind::Deferral,
                from,
                until: plus(from, 90 + rng.below(275)),
            });
        }
        7..=8 => revocations.push(Revocation { revoked_from: plus(release_start, rng.below(600)), restored_on: None }),
        _ => {}
    }
    Seeded {
        participant_id: format!("{:08x}-0000-7000-8000-{:012x}", i, rng.below(1 << 48)),
        programme,
        release_start,
        holds,
        revocations,
    }
}

async fn run_sql(db: &Database, sql: String) {
    db.write(move |conn: &mut DbConn| {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&sql).map_err(DbError::from)
    })
    .await
    .expect("seed statement");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let learners: usize = args.next().map(|a| a.parse().expect("LEARNERS is a number")).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match args.next() {
        Some(url) => DatabaseUrl::parse("DATABASE_URL", &url).expect("database url"),
        None => DatabaseUrl::Sqlite(dir.path().join("content-release.sqlite3")),
    };
    println!("database: {url:?}");
    let db = Database::open(&url, &MIGRATIONS).await.expect("database");
    let curriculum = Arc::new(Curriculum::built_in().expect("curriculum"));

    let started = Instant::now();
    let mut rng = Rng(0x5EED_5EED_5EED_5EED);
    let mut per_day: HashMap<NaiveDate, u64> = HashMap::new();
    let mut total_rows = 0u64;
    const CHUNK: usize = 2_000;
    for chunk_start in (0..learners).step_by(CHUNK) {
        let mut learner_values = Vec::new();
        let mut release_values = Vec::new();
        let mut hold_values = Vec::new();
        let mut revocation_values = Vec::new();
        for i in chunk_start..(chunk_start + CHUNK).min(learners) {
            let l = learner(i, &mut rng);
            learner_values.push(format!(
                "('{}', '{}', '{}', 'school', 'dp', 0, '2026-06-01 00:00:00', '2026-06-01 00:00:00')",
                l.participant_id,
                l.programme.as_str(),
                l.release_start
            ));
            for h in &l.holds {
                hold_values.push(format!(
                    "('{}', '{}', '{}', '{}', '{}', '2026-06-01 00:00:00')",
                    l.participant_id,
                    h.hold_id,
                    h.kind.as_str(),
                    h.from,
                    h.until
                ));
            }
            for r in &l.revocations {
                revocation_values
                    .push(format!("('{}', '{}', '2026-06-01 00:00:00')", l.participant_id, r.revoked_from));
            }
            let s = schedule(
                curriculum.programme(l.programme),
                ReleaseFacts { release_start: l.release_start, holds: &l.holds, revocations: &l.revocations },
            );
            for m in s.modules() {
                let Some(day) = m.release_date else { continue };
                *per_day.entry(day).or_default() += 1;
                total_rows += 1;
                release_values.push(format!(
                    "('{}', '{}', '{}', {})",
                    l.participant_id,
                    m.module.module_id,
                    day,
                    if m.optional { "TRUE" } else { "FALSE" }
                ));
            }
        }
        let mut sql = format!(
            "INSERT INTO learners (participant_id, programme, release_start, school_id, delivery_partner_id, version, enrolled_at, updated_at) VALUES {};",
            learner_values.join(",")
        );
        if !hold_values.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO holds (participant_id, hold_id, kind, from_date, until_date, updated_at) VALUES {};",
                hold_values.join(",")
            ));
        }
        if !revocation_values.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO revocations (participant_id, revoked_from, recorded_at) VALUES {};",
                revocation_values.join(",")
            ));
        }
        for rows in release_values.chunks(5_000) {
            sql.push_str(&format!(
                "INSERT INTO releases (participant_id, module_id, release_date, is_optional) VALUES {};",
                rows.join(",")
            ));
        }
        run_sql(&db, sql).await;
    }
    // Mark the feed as computed with this curriculum, as a real start would.
    let service = ContentRelease::new(db.clone(), Clock::Pinned(ymd(2026, 11, 28)), curriculum);
    service.reconcile_curriculum().await.ok();
    // Fresh statistics, as a database that grew over months would have.
    run_sql(&db, "ANALYZE".into()).await;
    println!(
        "seeded {learners} learners, {total_rows} releases over {} days in {:.1?}",
        per_day.len(),
        started.elapsed()
    );

    let caller = Caller { sub: "steplab".into(), scope: Scope::Service };
    let list = |day: NaiveDate, token: String| pb::ListReleasesRequest {
        from: Some(date::to_proto(day)),
        to: Some(date::to_proto(day)),
        page_size: 1000,
        page_token: token,
    };
    let (busiest, busiest_rows) = per_day
        .iter()
        .max_by_key(|(day, rows)| (**rows, std::cmp::Reverse(**day)))
        .map(|(d, r)| (*d, *r))
        .expect("some releases");
    let quiet = ymd(2027, 2, 20);

    // The first page of the busiest day, 20 times.
    let mut first_page = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let page = service.list_releases(caller.clone(), list(busiest, String::new())).await.expect("page");
        first_page.push(t.elapsed());
        assert_eq!(page.releases.len(), 1000);
    }
    // Every page of that day, following the tokens.
    let mut pages = Vec::new();
    let mut rows = 0usize;
    let mut token = String::new();
    let whole_day = Instant::now();
    loop {
        let t = Instant::now();
        let page = service.list_releases(caller.clone(), list(busiest, token)).await.expect("page");
        pages.push(t.elapsed());
        rows += page.releases.len();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let whole_day = whole_day.elapsed();
    assert_eq!(rows as u64, busiest_rows);
    let t = Instant::now();
    let quiet_page = service.list_releases(caller.clone(), list(quiet, String::new())).await.expect("quiet page");
    let quiet_time = t.elapsed();

    println!("busiest day {busiest}: {busiest_rows} releases");
    println!(
        "  first page (1000 rows): median {:.2?}, max {:.2?} over 20 calls",
        median(first_page.clone()),
        first_page.iter().max().expect("samples")
    );
    println!(
        "  all {} pages: {:.2?} in total; per page median {:.2?}, max {:.2?} (the last pages are as fast as the first)",
        pages.len(),
        whole_day,
        median(pages.clone()),
        pages.iter().max().expect("samples")
    );
    println!("another day {quiet}: first page ({} rows) in {:.2?}", quiet_page.releases.len(), quiet_time);
}
