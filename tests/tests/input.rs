//! Input the rest of the system cannot use (issue 14), over real gRPC on
//! SQLite and PostgreSQL: dates outside what the schedules cover, names
//! that show nothing or reorder what a reader sees, and tokens that live too
//! long, come from the future or carry a malformed `exp`. Each is refused
//! (INVALID_ARGUMENT naming the field, UNAUTHENTICATED for tokens) and
//! changes nothing: no participant, no command parked for good, nothing a
//! consistency check counts as in flight.

use std::time::Duration;
use steplab_platform::auth::Role;
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::{DeferralReason, ParticipantKind, WithdrawalReason};
use steplab_proto::steplab::content::v1 as content;
use steplab_proto::steplab::participant::v1 as pb;
use steplab_proto::steplab::payments::v1 as payments;
use steplab_tests::fixtures::{date, register, registration, world};
use steplab_tests::{Stack, on_both_backends, wait_until_delivered};
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| (v.field.clone(), v.description.clone())).collect())
        .unwrap_or_default()
}

fn fields(status: &Status) -> Vec<String> {
    violations(status).into_iter().map(|(field, _)| field).collect()
}

/// Asserts INVALID_ARGUMENT naming exactly `expected`, each description
/// naming the allowed range when `range` is given.
fn assert_refused(result: Result<impl std::fmt::Debug, Status>, expected: &[&str], range: Option<(&str, &str)>) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(fields(&status), expected, "{status:?}");
    if let Some((first, last)) = range {
        for (field, description) in violations(&status) {
            assert!(description.contains(first) && description.contains(last), "{field}: {description}");
        }
    }
}

const PROGRAMME_RANGE: Option<(&str, &str)> = Some(("2021-06-01", "2040-12-31"));
const REGISTRATION_RANGE: Option<(&str, &str)> = Some(("2021-06-01", "2031-05-31"));

async fn admin(stack: &Stack) -> steplab_tests::Participants {
    stack.participants(Some(&stack.admin_token())).await
}

/// Nothing pending or parked, and the consistency check sees nothing in
/// flight and no drift.
async fn assert_nothing_in_flight(stack: &Stack) {
    let mut client = admin(stack).await;
    let sync = client
        .get_sync_status(pb::GetSyncStatusRequest {
            page_size: 0,
            page_token: String::new(),
            participant_id: String::new(),
            parked_only: false,
        })
        .await
        .expect("sync status")
        .into_inner();
    assert_eq!((sync.pending, sync.parked), (0, 0), "{:?}", sync.commands);
    let check =
        client.check_consistency(pb::CheckConsistencyRequest::default()).await.expect("consistency").into_inner();
    assert!(check.in_flight.is_empty() && check.drifted.is_empty(), "{check:?}");
}

async fn participants_at(stack: &Stack, school: &str) -> usize {
    admin(stack)
        .await
        .list_participants(pb::ListParticipantsRequest { school_id: school.into(), ..Default::default() })
        .await
        .expect("list")
        .into_inner()
        .participants
        .len()
}

async fn c1_a_registration_dated_before_the_first_cohort_is_refused_and_parks_nothing(stack: &Stack) {
    let w = world(stack).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    for (year, month, day) in [(1, 1, 1), (2021, 5, 31), (1970, 1, 1)] {
        let request = registration(&w.school_a, ParticipantKind::Ect, "1234567", date(year, month, day));
        assert_refused(client.register_participant(request).await, &["registered_on"], REGISTRATION_RANGE);
    }
    assert_eq!(participants_at(stack, &w.school_a).await, 0);
    assert_nothing_in_flight(stack).await;
    let check = admin(stack).await.check_consistency(pb::CheckConsistencyRequest::default()).await.expect("check");
    assert_eq!(check.into_inner().checked_count, 0, "no participant was made");
}

async fn c1_a_registration_on_the_first_day_of_the_first_cohort_is_enrolled_in_payments(stack: &Stack) {
    let w = world(stack).await;
    let first_day = registration(&w.school_a, ParticipantKind::Ect, "1234567", date(2021, 6, 1));
    let ect = register(stack, &w.dp1, first_day).await;
    assert_eq!((ect.cohort, ect.schedule.as_str()), (2021, "ecf-standard-september"));
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    let service = stack.token(Role::Service, None, &[]);
    let accrual = stack
        .payments(Some(&service))
        .await
        .get_accrual(payments::GetAccrualRequest { participant_id: ect.participant_id.clone(), as_of: None })
        .await
        .expect("payments enrolled the payee")
        .into_inner();
    assert_eq!((accrual.cohort, accrual.schedule.as_str()), (2021, "ecf-standard-september"));
    assert_nothing_in_flight(stack).await;
}

async fn lifecycle_dates_outside_the_schedules_are_refused_and_change_nothing(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1234567", date(2026, 9, 1))).await;
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    let lead = stack.token(Role::EcfLead, None, &[&w.dp1]);
    let mut client = stack.participants(Some(&lead)).await;
    let id = ect.participant_id.clone();
    let pause = pb::PauseParticipantRequest {
        participant_id: id.clone(),
        start_date: date(1, 1, 1),
        expected_end_date: date(9999, 12, 31),
        ..Default::default()
    };
    assert_refused(client.pause_participant(pause).await, &["start_date", "expected_end_date"], PROGRAMME_RANGE);
    let defer = pb::DeferParticipantRequest {
        participant_id: id.clone(),
        reason: DeferralReason::ParentalLeave as i32,
        deferral_date: date(2026, 11, 1),
        expected_return_date: date(2041, 1, 1),
        ..Default::default()
    };
    assert_refused(client.defer_participant(defer).await, &["expected_return_date"], PROGRAMME_RANGE);
    let withdraw = pb::WithdrawParticipantRequest {
        participant_id: id.clone(),
        reason: WithdrawalReason::Other as i32,
        withdrawal_date: date(1, 1, 1),
        ..Default::default()
    };
    assert_refused(client.withdraw_participant(withdraw).await, &["withdrawal_date"], PROGRAMME_RANGE);
    let after = steplab_tests::fixtures::status_on(stack, &id, None).await;
    assert_eq!((after.status, after.version), (ect.status, ect.version), "nothing changed");
    assert_nothing_in_flight(stack).await;
}

async fn engagement_and_attendance_dated_outside_the_schedules_are_refused_and_store_nothing(stack: &Stack) {
    let w = world(stack).await;
    let ect =
        register(stack, &w.dp1, registration(&w.school_a, ParticipantKind::Ect, "1234567", date(2026, 9, 1))).await;
    wait_until_delivered(stack, Duration::from_secs(30)).await;
    let service = stack.token(Role::Service, None, &[]);
    let id = ect.participant_id;

    let mut pay = stack.payments(Some(&service)).await;
    let engagement = |on: Option<Date>| payments::RecordEngagementRequest {
        participant_id: id.clone(),
        occurred_on: on,
        kind: payments::EngagementKind::CoachingSession as i32,
        idempotency_key: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        note: String::new(),
    };
    for bad in [date(1, 1, 1), date(2021, 5, 31), date(9999, 12, 31)] {
        assert_refused(pay.record_engagement(engagement(bad)).await, &["occurred_on"], PROGRAMME_RANGE);
    }
    // The same request id is still unused: the refused calls kept nothing.
    let recorded = pay.record_engagement(engagement(date(2026, 10, 1))).await.expect("valid engagement").into_inner();
    assert!(!recorded.duplicate, "{recorded:?}");

    let mut release = stack.content(Some(&service)).await;
    let attendance = |on: Option<Date>| content::RecordAttendanceRequest {
        participant_id: id.clone(),
        event_id: "ect-clinic-1".into(),
        attended_on: on,
        idempotency_key: String::new(),
    };
    assert_refused(release.record_attendance(attendance(date(1, 1, 1))).await, &["attended_on"], PROGRAMME_RANGE);
    // A second record answers the first: the valid date, so none was kept before.
    let kept = release.record_attendance(attendance(date(2026, 10, 1))).await.expect("valid attendance").into_inner();
    assert_eq!(kept.attendance.and_then(|a| a.attended_on), date(2026, 10, 1));
    let access = content::RecordModuleAccessRequest {
        participant_id: id.clone(),
        module_id: "ect-01".into(),
        accessed_on: date(1, 1, 1),
        idempotency_key: String::new(),
    };
    assert_refused(release.record_module_access(access).await, &["accessed_on"], PROGRAMME_RANGE);
    assert_nothing_in_flight(stack).await;
}

async fn names_that_show_nothing_or_reorder_text_are_refused_and_create_nothing(stack: &Stack) {
    let w = world(stack).await;
    let mut client = admin(stack).await;
    for name in ["\u{200B}", "\u{200B}\u{200C}\u{200D}\u{2060}", " \u{FEFF} ", "North \u{202E}noigeR"] {
        let request = pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: name.into(),
            idempotency_key: String::new(),
        };
        assert_refused(client.create_delivery_partner(request).await, &["name"], None);
        let school = pb::CreateSchoolRequest {
            validate_only: false,
            urn: "300003".into(),
            name: name.into(),
            delivery_partner_id: w.dp1.clone(),
            area_covered: Some(true),
            idempotency_key: String::new(),
        };
        assert_refused(client.create_school(school).await, &["name"], None);
        let mut person = registration(&w.school_a, ParticipantKind::Ect, "1234567", date(2026, 9, 1));
        person.full_name = name.into();
        assert_refused(client.register_participant(person).await, &["full_name"], None);
    }
    let status = client
        .create_delivery_partner(pb::CreateDeliveryPartnerRequest {
            validate_only: false,
            name: "Ada \u{202E}ecalevoL".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect_err("bidi override");
    assert!(violations(&status)[0].1.contains("U+202E"), "{status:?}");
    assert_eq!(participants_at(stack, &w.school_a).await, 0);
    // A school with that URN was never made: the URN is still free.
    client
        .create_school(pb::CreateSchoolRequest {
            validate_only: false,
            urn: "300003".into(),
            name: "Hill School".into(),
            delivery_partner_id: w.dp1.clone(),
            area_covered: Some(true),
            idempotency_key: String::new(),
        })
        .await
        .expect("the URN was never taken");
    assert_nothing_in_flight(stack).await;
}

on_both_backends!(
    c1_a_registration_dated_before_the_first_cohort_is_refused_and_parks_nothing,
    c1_a_registration_on_the_first_day_of_the_first_cohort_is_enrolled_in_payments,
    lifecycle_dates_outside_the_schedules_are_refused_and_change_nothing,
    engagement_and_attendance_dated_outside_the_schedules_are_refused_and_store_nothing,
    names_that_show_nothing_or_reorder_text_are_refused_and_create_nothing,
);

/// Signs `claims` with the stack's HS256 secret, as `steplab token` would.
fn dev_token(claims: serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(steplab_tests::SECRET.as_bytes()).expect("key");
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).expect("sign")
}

fn admin_claims(iat: serde_json::Value, exp: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"sub": "intruder", "role": "admin", "iss": "steplab", "aud": "steplab", "iat": iat, "exp": exp})
}

/// Tokens are checked before any storage, so one backend is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_live_too_long_come_from_the_future_or_carry_a_malformed_exp_are_unauthenticated() {
    use serde_json::json;
    let stack = Stack::start(steplab_tests::Backend::Sqlite).await.expect("sqlite stack");
    let now = chrono::Utc::now().timestamp();
    let year_3000 = 32_503_680_000i64;
    let cases = [
        (admin_claims(json!(now), json!(year_3000)), "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS"),
        (admin_claims(json!(now), json!(now + 25 * 3600)), "STEPLAB_TOKEN_MAX_LIFETIME_SECONDS"),
        (admin_claims(json!(now + 3600), json!(now + 7200)), "`iat`"),
        (admin_claims(json!(now), json!(1e20)), "out of range"),
        (admin_claims(json!(now), json!(-1)), "out of range"),
        (admin_claims(json!(now), json!(now as f64 + 600.5)), "out of range"),
    ];
    for (claims, why) in cases {
        let token = dev_token(claims.clone());
        let participant = stack
            .participants(Some(&token))
            .await
            .list_participants(pb::ListParticipantsRequest::default())
            .await
            .expect_err("participant service");
        let release = stack
            .content(Some(&token))
            .await
            .get_curriculum(content::GetCurriculumRequest {
                programme: steplab_proto::steplab::common::v1::Programme::Ect as i32,
            })
            .await
            .expect_err("content release");
        let pay = stack
            .payments(Some(&token))
            .await
            .list_schedules(payments::ListSchedulesRequest::default())
            .await
            .expect_err("payments");
        for status in [participant, release, pay] {
            assert_eq!(status.code(), Code::Unauthenticated, "{claims}: {status:?}");
            assert!(status.message().contains(why), "{claims}: {}", status.message());
            assert!(!status.message().contains("no `exp` claim"), "{}", status.message());
        }
    }
    // A day-long token is still fine.
    let day = dev_token(admin_claims(json!(now), json!(now + 24 * 3600)));
    stack.participants(Some(&day)).await.list_participants(pb::ListParticipantsRequest::default()).await.expect("ok");
    stack.stop().await;
}
