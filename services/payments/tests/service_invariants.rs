//! The service layer on a real SQLite database: the statement totals kept
//! beside the window outcomes never drift from the lines (F6), and a new
//! schedules file recomputes every stored outcome at start-up (F1, F5), and
//! declares (X5) the milestones earned before declarations existed.

use chrono::NaiveDate;
use steplab_payments::domain::schedule::ScheduleBook;
use steplab_payments::service::Payments;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbError};
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::ParticipantKind;
use steplab_proto::steplab::payments::v1 as pb;
use steplab_testkit::scratch::XorShift;

fn caller(scope: Scope) -> Caller {
    Caller { sub: "test".into(), scope }
}

fn date(d: NaiveDate) -> Option<Date> {
    Some(steplab_platform::date::to_proto(d))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A day of the 900 from 1 June 2024.
fn a_day(rng: &mut XorShift) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 1).expect("date") + chrono::Days::new(rng.next(900))
}

async fn open(dir: &tempfile::TempDir) -> Database {
    let url = DatabaseUrl::Sqlite(dir.path().join("payments.sqlite3"));
    Database::open(&url, &steplab_payments::MIGRATIONS).await.expect("open")
}

async fn whole_statement(payments: &Payments, window: &str, dp: &str) -> (i64, i64, usize) {
    let admin = caller(Scope::Admin);
    let (mut sum, mut count, mut token) = (0i64, 0usize, String::new());
    loop {
        let page = payments
            .get_statement(
                admin.clone(),
                pb::GetStatementRequest {
                    window: window.into(),
                    delivery_partner_id: dp.into(),
                    page_size: 7,
                    page_token: token,
                },
            )
            .await
            .expect("statement");
        sum += page.lines.iter().map(|l| l.amount_pence).sum::<i64>();
        count += page.lines.len() + page.exclusions.len();
        if page.next_page_token.is_empty() {
            return (page.total_pence, sum, count);
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_kept_totals_equal_the_sum_of_lines_after_any_sequence_of_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let payments = Payments::new(open(&dir).await, Clock::Pinned(today), ScheduleBook::generated().expect("book"));
    payments.prepare().await.expect("prepare");
    let service = caller(Scope::Service);
    let dps = [new_id(), new_id(), new_id()];
    let mut rng = XorShift(0x0bad_cafe_1234_5678);
    let mut payees = Vec::new();
    for n in 0..24 {
        let id = new_id();
        let kind = if n % 4 == 0 { ParticipantKind::Mentor } else { ParticipantKind::Ect };
        payments
            .enrol_payee(
                service.clone(),
                pb::EnrolPayeeRequest {
                    idempotency_key: new_id(),
                    participant_id: id.clone(),
                    delivery_partner_id: dps[n % 3].clone(),
                    schedule: "ecf-standard-september".into(),
                    cohort: 2024,
                    funding_eligible: Some(n % 7 != 0 || kind == ParticipantKind::Ect),
                    participant_kind: kind as i32,
                    school_id: new_id(),
                },
            )
            .await
            .expect("enrol");
        // F5: the schedule's total at the programme's price.
        payees.push((id, if kind == ParticipantKind::Mentor { 60_000 } else { 72_000 }));
    }
    for _ in 0..400 {
        let id = payees[rng.next(payees.len() as u64) as usize].0.clone();
        let idempotency_key = new_id();
        let on = a_day(&mut rng).min(today);
        match rng.next(10) {
            0 | 1 => {
                let until = on + chrono::Days::new(1 + rng.next(300));
                let _ = payments
                    .suspend_accrual(
                        service.clone(),
                        pb::SuspendAccrualRequest {
                            idempotency_key,
                            participant_id: id,
                            suspension_id: format!("s{}", rng.next(2)),
                            start_date: date(on),
                            until: date(until),
                        },
                    )
                    .await;
            }
            2 => {
                let _ = payments
                    .end_accrual(
                        service.clone(),
                        pb::EndAccrualRequest { idempotency_key, participant_id: id, effective_date: date(on) },
                    )
                    .await;
            }
            3 => {
                // Refused (REOPEN_BEFORE_END) or acknowledged: either is fine here.
                let _ = payments
                    .reopen_accrual(
                        service.clone(),
                        pb::ReopenAccrualRequest { idempotency_key, participant_id: id, effective_date: date(on) },
                    )
                    .await;
            }
            4 => {
                payments
                    .set_area_covered(
                        service.clone(),
                        pb::SetAreaCoveredRequest {
                            idempotency_key,
                            participant_id: id,
                            covered: Some(rng.next(2) == 0),
                            start_date: date(on),
                        },
                    )
                    .await
                    .expect("coverage");
            }
            5 => {
                payments
                    .set_participant_scope(
                        service.clone(),
                        pb::SetParticipantScopeRequest {
                            idempotency_key,
                            participant_id: id,
                            school_id: new_id(),
                            delivery_partner_id: dps[rng.next(3) as usize].clone(),
                            start_date: date(on),
                        },
                    )
                    .await
                    .expect("scope");
            }
            _ => {
                payments
                    .record_engagement(
                        service.clone(),
                        pb::RecordEngagementRequest {
                            participant_id: id,
                            occurred_on: date(on),
                            kind: pb::EngagementKind::CoachingSession as i32,
                            idempotency_key,
                            note: String::new(),
                        },
                    )
                    .await
                    .expect("engagement");
            }
        }
    }
    let book = ScheduleBook::generated().expect("book");
    let mut windows: Vec<String> = Vec::new();
    for id in ["ecf-standard-september", "ecf-extended-september"] {
        let s = book.schedule(id, 2024).expect("schedule");
        windows.extend(s.windows.iter().map(|w| w.id.clone()));
    }
    let mut grand = 0i64;
    for window in &windows {
        let (total, sum, count) = whole_statement(&payments, window, "").await;
        assert_eq!(total, sum, "{window}: the kept total equals the lines");
        let mut by_dp = 0i64;
        let mut payees_by_dp = 0usize;
        for dp in &dps {
            let (t, s, c) = whole_statement(&payments, window, dp).await;
            assert_eq!(t, s, "{window} for {dp}");
            by_dp += t;
            payees_by_dp += c;
        }
        assert_eq!(by_dp, total, "{window}: the delivery partners' totals add up to the whole");
        assert_eq!(payees_by_dp, count, "{window}: each payee under exactly one delivery partner");
        grand += total;
    }
    let mut accrued = 0i64;
    for (id, schedule_total) in &payees {
        let a = payments
            .get_accrual(caller(Scope::Admin), pb::GetAccrualRequest { participant_id: id.clone(), as_of: None })
            .await
            .expect("accrual");
        assert!(a.total_pence <= *schedule_total, "never more than the schedule's total");
        accrued += a.total_pence;
    }
    assert_eq!(grand, accrued, "every statement line is some payee's earned milestone, and back");
}

/// A payments service on a fresh SQLite file with one cohort-2025 ECT on the
/// September schedule who engaged in the `started` window.
async fn a_2025_ect_engaged_in_the_started_window(
    dir: &tempfile::TempDir,
    today: NaiveDate,
) -> (Database, Payments, String) {
    let db = open(dir).await;
    let first = Payments::new(db.clone(), Clock::Pinned(today), ScheduleBook::generated().expect("book"));
    first.prepare().await.expect("prepare");
    let id = new_id();
    first
        .enrol_payee(
            caller(Scope::Service),
            pb::EnrolPayeeRequest {
                idempotency_key: new_id(),
                participant_id: id.clone(),
                delivery_partner_id: new_id(),
                schedule: "ecf-standard-september".into(),
                cohort: 2025,
                funding_eligible: Some(true),
                participant_kind: ParticipantKind::Ect as i32,
                school_id: new_id(),
            },
        )
        .await
        .expect("enrol");
    first
        .record_engagement(
            caller(Scope::Service),
            pb::RecordEngagementRequest {
                participant_id: id.clone(),
                occurred_on: date(NaiveDate::from_ymd_opt(2025, 9, 10).expect("date")),
                kind: pb::EngagementKind::ModuleCompleted as i32,
                idempotency_key: new_id(),
                note: String::new(),
            },
        )
        .await
        .expect("engagement");
    (db, first, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_f5_a_new_schedules_file_recomputes_every_stored_outcome_at_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let (db, first, _id) = a_2025_ect_engaged_in_the_started_window(&dir, today).await;
    let window = "ecf-standard-september/2025/started";
    assert_eq!(whole_statement(&first, window, "").await.0, 14_400);

    // The deployment's contract price changes: £1,500.00 per ECT.
    let mut file = ScheduleBook::generated().expect("book").to_file_form();
    file.prices_pence.ect = 150_000;
    let repriced = ScheduleBook::from_file_form(file.clone()).expect("valid");
    let second = Payments::new(db.clone(), Clock::Pinned(today), repriced);
    second.prepare().await.expect("recompute under the new schedules");
    assert_eq!(whole_statement(&second, window, "").await, (18_000, 18_000, 1));

    // A file without the schedule a payee is on fails start-up saying which.
    file.schedules.retain(|s| !(s.cohort == 2025 && s.schedule_id == "ecf-standard-september"));
    let third = Payments::new(db, Clock::Pinned(today), ScheduleBook::from_file_form(file).expect("valid"));
    let err = third.prepare().await.expect_err("a schedule in use is missing").to_string();
    assert!(err.contains("ecf-standard-september/2025"), "{err}");
}

/// The declarations (X5) payments has enqueued for the DfE gateway, as
/// `(rpc, participant)`.
async fn dfe_commands(db: &Database) -> Vec<(String, String)> {
    db.read(|conn| {
        use diesel::prelude::*;
        use steplab_platform::outbox::{OutboxRow, outbox};
        outbox::table.order(outbox::id).select(OutboxRow::as_select()).load::<OutboxRow>(conn).map_err(DbError::from)
    })
    .await
    .expect("outbox")
    .iter()
    .map(|row| {
        assert_eq!(row.target, "dfe-gateway");
        (row.rpc().to_owned(), row.participant_id.clone())
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x5_milestones_earned_before_declarations_existed_are_declared_at_the_next_start_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let today = NaiveDate::from_ymd_opt(2026, 11, 28).expect("date");
    let (db, _first, id) = a_2025_ect_engaged_in_the_started_window(&dir, today).await;
    assert_eq!(dfe_commands(&db).await, [("DeclareMilestone".to_owned(), id.clone())]);
    // A start-up with nothing new declares nothing again.
    Payments::new(db.clone(), Clock::Pinned(today), ScheduleBook::generated().expect("book"))
        .prepare()
        .await
        .expect("prepare");
    assert_eq!(dfe_commands(&db).await.len(), 1, "once each");

    // As the database stood before this version: outcomes earned, nothing
    // declared, and the migration forgets the schedules fingerprint.
    db.write(|conn| {
        use diesel::RunQueryDsl;
        for sql in ["DELETE FROM declarations", "DELETE FROM outbox", "DELETE FROM schedule_book_state"] {
            diesel::sql_query(sql).execute(conn)?;
        }
        Ok::<_, DbError>(())
    })
    .await
    .expect("as before");
    let upgraded = Payments::new(db.clone(), Clock::Pinned(today), ScheduleBook::generated().expect("book"));
    upgraded.prepare().await.expect("prepare");
    assert_eq!(dfe_commands(&db).await, [("DeclareMilestone".to_owned(), id.clone())]);
    let accrual = upgraded
        .get_accrual(caller(Scope::Service), pb::GetAccrualRequest { participant_id: id, as_of: None })
        .await
        .expect("accrual");
    assert!(accrual.milestones.iter().all(|m| m.dfe_declared), "{accrual:?}");
}
