//! Issue 18: a command's recompute reads the payee's facts (suspensions,
//! closures, coverage, moves, engagement) in one statement, on SQLite and on
//! PostgreSQL (a scratch database: see `steplab_testkit::scratch`), and both
//! backends answer the same accrual from them. Every statement the service's
//! connections run is counted through diesel's instrumentation.
//!
//! One test in this binary: the instrumentation is process-wide.

use chrono::NaiveDate;
use steplab_payments::domain::schedule::ScheduleBook;
use steplab_payments::service::Payments;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::Database;
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::payments::v1 as pb;
use steplab_testkit::scratch::ScratchPostgres;
use steplab_testkit::scratch::counted::{self, statements_of};

fn service() -> Caller {
    Caller { sub: "participant-service".into(), scope: Scope::Service }
}

fn day(y: i32, m: u32, d: u32) -> Option<Date> {
    Some(steplab_platform::date::to_proto(NaiveDate::from_ymd_opt(y, m, d).expect("date")))
}

const PAYEE: &str = "0190d9a0-0000-7000-8000-000000000001";

fn engagement(key: &str, on: Option<Date>) -> pb::RecordEngagementRequest {
    pb::RecordEngagementRequest {
        participant_id: PAYEE.into(),
        occurred_on: on,
        kind: pb::EngagementKind::ModuleCompleted as i32,
        idempotency_key: key.into(),
        note: String::new(),
    }
}

fn suspension(key: &str, from: Option<Date>, until: Option<Date>) -> pb::SuspendAccrualRequest {
    pb::SuspendAccrualRequest {
        idempotency_key: key.into(),
        participant_id: PAYEE.into(),
        suspension_id: key.into(),
        start_date: from,
        until,
    }
}

/// A payee with every kind of fact, then one more suspension, counted: the
/// statements of that suspension and the accrual answered after it.
async fn suspension_on(db: Database) -> (Vec<String>, pb::GetAccrualResponse) {
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let payments = Payments::new(db, Clock::Pinned(today), ScheduleBook::generated().expect("book"));
    payments.prepare().await.expect("prepare");
    payments
        .enrol_payee(
            service(),
            pb::EnrolPayeeRequest {
                idempotency_key: "enrol".into(),
                participant_id: PAYEE.into(),
                delivery_partner_id: "0190d9a0-0000-7000-8000-0000000000d1".into(),
                schedule: "ecf-standard-september".into(),
                cohort: 2025,
                funding_eligible: Some(true),
                participant_kind: ParticipantKind::Ect as i32,
                school_id: "0190d9a0-0000-7000-8000-0000000000a1".into(),
            },
        )
        .await
        .expect("enrol");
    // Two engagements on one day (the facts keep the day once), and more.
    for (key, on) in
        [("e1", day(2025, 9, 10)), ("e2", day(2025, 9, 10)), ("e3", day(2026, 1, 12)), ("e4", day(2026, 5, 4))]
    {
        payments.record_engagement(service(), engagement(key, on)).await.expect("engagement");
    }
    payments
        .set_participant_scope(
            service(),
            pb::SetParticipantScopeRequest {
                idempotency_key: "move".into(),
                participant_id: PAYEE.into(),
                school_id: "0190d9a0-0000-7000-8000-0000000000a2".into(),
                delivery_partner_id: "0190d9a0-0000-7000-8000-0000000000d2".into(),
                start_date: day(2026, 1, 5),
            },
        )
        .await
        .expect("move");
    payments
        .set_area_covered(
            service(),
            pb::SetAreaCoveredRequest {
                idempotency_key: "coverage".into(),
                participant_id: PAYEE.into(),
                covered: Some(false),
                start_date: day(2026, 2, 2),
            },
        )
        .await
        .expect("coverage");
    payments
        .suspend_accrual(service(), suspension("s1", day(2025, 11, 3), day(2025, 12, 1)))
        .await
        .expect("suspension");
    payments
        .end_accrual(
            service(),
            pb::EndAccrualRequest {
                idempotency_key: "end".into(),
                participant_id: PAYEE.into(),
                effective_date: day(2026, 3, 2),
            },
        )
        .await
        .expect("end");
    payments
        .reopen_accrual(
            service(),
            pb::ReopenAccrualRequest {
                idempotency_key: "reopen".into(),
                participant_id: PAYEE.into(),
                effective_date: day(2026, 4, 13),
            },
        )
        .await
        .expect("reopen");
    let (suspended, statements) =
        statements_of(payments.suspend_accrual(service(), suspension("s2", day(2026, 6, 1), day(2026, 9, 7)))).await;
    suspended.expect("the counted suspension");
    let accrual = payments
        .get_accrual(
            Caller { sub: "admin".into(), scope: Scope::Admin },
            pb::GetAccrualRequest { participant_id: PAYEE.into(), as_of: day(2026, 11, 28) },
        )
        .await
        .expect("accrual");
    (statements, accrual)
}

/// The statements that read one of the facts' tables.
fn fact_reads(statements: &[String]) -> Vec<&String> {
    const TABLES: [&str; 5] =
        ["suspensions", "accrual_closures", "coverage_changes", "placement_changes", "engagements"];
    statements
        .iter()
        .filter(|s| s.trim_start().to_uppercase().starts_with("SELECT") || s.trim_start().starts_with('('))
        .filter(|s| TABLES.iter().any(|t| s.contains(t)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_recompute_reads_the_payees_facts_in_one_statement_on_both_backends() {
    counted::install();
    let dir = tempfile::tempdir().expect("dir");
    let sqlite =
        Database::open(&DatabaseUrl::Sqlite(dir.path().join("payments.sqlite3")), &steplab_payments::MIGRATIONS)
            .await
            .expect("sqlite");
    let (statements, on_sqlite) = suspension_on(sqlite).await;
    let mut runs = vec![("sqlite", statements)];
    if let Some(scratch) = ScratchPostgres::create("payments_statements") {
        let db = Database::open(&scratch.url, &steplab_payments::MIGRATIONS).await.expect("postgres");
        let (statements, on_postgres) = suspension_on(db).await;
        assert_eq!(on_postgres, on_sqlite, "both backends answer the same accrual from the same facts");
        runs.push(("postgres", statements));
    }
    // The facts loaded shaped the answer (a fact lost by the load would be
    // lost on both backends alike): the move, the coverage change and the
    // engagement in the `started` window.
    assert_eq!(on_sqlite.delivery_partner_id, "0190d9a0-0000-7000-8000-0000000000d2", "the move: {on_sqlite:?}");
    assert!(!on_sqlite.area_covered, "the coverage change: {on_sqlite:?}");
    assert!(!on_sqlite.milestones.is_empty(), "the engagement earned a milestone: {on_sqlite:?}");
    for (backend, statements) in runs {
        // The command itself reads the payee's suspensions before it
        // changes them; the recompute reads all five tables once.
        let together: Vec<_> = fact_reads(&statements)
            .into_iter()
            .filter(|s| {
                ["accrual_closures", "coverage_changes", "placement_changes", "engagements"]
                    .iter()
                    .all(|t| s.contains(t))
            })
            .collect();
        assert_eq!(together.len(), 1, "{backend}: one statement reads the facts:\n  {}", statements.join("\n  "));
        let apart = fact_reads(&statements).len() - together.len();
        assert!(
            apart <= 1,
            "{backend}: {apart} more statements read the facts' tables:\n  {}",
            statements.join("\n  ")
        );
    }
}
