//! F6 benchmark: a statement over 200,000 enrolled payees on SQLite.
//!
//! Payees, engagement, deferrals and uncovered moves are bulk-inserted with
//! SQL; every payee's window outcomes are then computed by the real start-up
//! path (`Payments::prepare`, the same engine and store code every command
//! runs), and GetStatement is timed through the service layer: the first
//! page with the whole statement's total, one delivery partner's statement,
//! and the whole statement page by page. Run it with
//! `cargo nextest run -p steplab-payments --run-ignored only --no-capture`
//! (`STEPLAB_BENCH_PAYEES` changes the size).

use std::time::Instant;
use steplab_payments::domain::schedule::ScheduleBook;
use steplab_payments::service::Payments;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbError};
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::steplab::payments::v1 as pb;

fn id(prefix: u32, n: &str) -> String {
    format!("printf('{prefix:08x}-0000-7000-8000-%012d', {n})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo nextest run -p steplab-payments --run-ignored only --no-capture"]
async fn f6_a_statement_over_200_000_payees_on_sqlite() {
    let payees: u32 = std::env::var("STEPLAB_BENCH_PAYEES").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("payments.sqlite3"));
    let db = Database::open(&url, &steplab_payments::MIGRATIONS).await.expect("open");
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let started = Instant::now();
    let last = payees - 1;
    let statements = vec![
        // 20 delivery partners, 1,000 schools; every fifth payee a mentor,
        // one in 97 a pilot mentor (M4).
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO payees (participant_id, participant_kind, schedule_id, cohort, funding_eligible,
                                 school_id, delivery_partner_id, version, created_at)
             SELECT {}, CASE WHEN i % 5 = 0 OR i % 97 = 0 THEN 'mentor' ELSE 'ect' END,
                    'ecf-standard-september', 2025, i % 97 <> 0, {}, {}, 1, '2026-11-28 00:00:00' FROM n",
            id(0, "i"),
            id(1, "i % 1000"),
            id(2, "i % 20"),
        ),
        // Engagement: most payees in the started window, many in retained-1.
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO engagements (participant_id, occurred_on, kind, note, recorded_by, recorded_at)
             SELECT {}, printf('2025-%02d-%02d', 9 + i % 4, 1 + i % 28), 'module_completed', '', 'bench',
                    '2026-11-28 00:00:00' FROM n WHERE i % 10 <> 3",
            id(0, "i"),
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO engagements (participant_id, occurred_on, kind, note, recorded_by, recorded_at)
             SELECT {}, printf('2026-%02d-%02d', 1 + i % 3, 1 + i % 28), 'coaching_session', '', 'bench',
                    '2026-11-28 00:00:00' FROM n WHERE i % 3 <> 0",
            id(0, "i"),
        ),
        // One in twenty deferred over the autumn (D4), one in fifty moved
        // out of the covered area (S2).
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO suspensions (participant_id, suspension_id, from_date, until_date, updated_at)
             SELECT {}, 'deferral-1', '2025-10-01', '2026-02-01', '2026-11-28 00:00:00' FROM n WHERE i % 20 = 7",
            id(0, "i"),
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
             INSERT INTO coverage_changes (participant_id, from_date, covered, updated_at)
             SELECT {}, '2025-08-01', 0, '2026-11-28 00:00:00' FROM n WHERE i % 50 = 11",
            id(0, "i"),
        ),
    ];
    db.write(move |conn| {
        for sql in &statements {
            diesel::RunQueryDsl::execute(diesel::sql_query(sql.as_str()), conn)?;
        }
        Ok::<(), DbError>(())
    })
    .await
    .expect("bulk insert");
    eprintln!("bulk insert of {payees} payees with engagement: {:?}", started.elapsed());

    let book = ScheduleBook::generated().expect("book");
    let payments = Payments::new(db, Clock::Pinned(today), book);
    let started = Instant::now();
    payments.prepare().await.expect("compute every payee's window outcomes");
    eprintln!("accrual engine over every payee (start-up recompute): {:?}", started.elapsed());

    let admin = Caller { sub: "bench".into(), scope: Scope::Admin };
    let window = "ecf-standard-september/2025/started";
    let request = |page_token: String, page_size: i32, dp: &str| pb::GetStatementRequest {
        window: window.into(),
        delivery_partner_id: dp.into(),
        page_size,
        page_token,
    };

    let started = Instant::now();
    let first = payments.get_statement(admin.clone(), request(String::new(), 0, "")).await.expect("first page");
    let first_page = started.elapsed();
    eprintln!(
        "GetStatement, whole lead provider, first page of {} with the total of all {payees}: {first_page:?}",
        first.lines.len() + first.exclusions.len()
    );

    let dp = format!("{:08x}-0000-7000-8000-{:012}", 2, 3);
    let started = Instant::now();
    let mut token = String::new();
    let mut seen = 0usize;
    loop {
        let page = payments.get_statement(admin.clone(), request(token, 1000, &dp)).await.expect("dp page");
        seen += page.lines.len() + page.exclusions.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    eprintln!("GetStatement, one delivery partner ({seen} payees), every page: {:?}", started.elapsed());

    let started = Instant::now();
    let mut token = String::new();
    let (mut lines, mut exclusions, mut sum) = (0usize, 0usize, 0i64);
    let total = loop {
        let page = payments.get_statement(admin.clone(), request(token, 1000, "")).await.expect("page");
        lines += page.lines.len();
        exclusions += page.exclusions.len();
        sum += page.lines.iter().map(|l| l.amount_pence).sum::<i64>();
        assert_eq!(page.total_pence, first.total_pence, "the same total on every page");
        if page.next_page_token.is_empty() {
            break page.total_pence;
        }
        token = page.next_page_token;
    };
    let whole = started.elapsed();
    eprintln!(
        "GetStatement, whole lead provider, every page of 1,000: {whole:?} ({lines} lines, {exclusions} exclusions, total {total} pence)"
    );
    assert_eq!(lines + exclusions, payees as usize, "every payee once");
    assert_eq!(sum, total, "the total equals the sum of the lines");
    assert_eq!(first.total_pence, total);
    assert!(first_page.as_secs_f64() < 2.0, "first page took {first_page:?}");
}
