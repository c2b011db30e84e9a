//! R4, issue 18: a hold or a lift rewrites only the feed rows it moved,
//! from the learner before and after it, without reading the stored feed.
//! Whatever sequence of pauses, deferrals, new dates and lifts arrives, the
//! stored feed stays exactly what the learner's facts give; and a stored
//! feed that is not what it should be (a row lost) is rewritten whole on the
//! next change. On SQLite and on PostgreSQL (a scratch database: see
//! `steplab_testkit::scratch`).

use chrono::NaiveDate;
use diesel::prelude::*;
use std::sync::Arc;
use steplab_content_release::MIGRATIONS;
use steplab_content_release::domain::{Curriculum, feed};
use steplab_content_release::service::ContentRelease;
use steplab_content_release::store;
use steplab_platform::config::DatabaseUrl;
use steplab_platform::db::{Database, DbError};
use steplab_platform::error::ServiceError;
use steplab_platform::{Caller, Clock, Scope};
use steplab_proto::google::r#type::Date;
use steplab_proto::steplab::common::v1::Programme;
use steplab_proto::steplab::content::v1 as pb;
use steplab_testkit::scratch::{ScratchPostgres, XorShift};

fn service_caller() -> Caller {
    Caller { sub: "participant-service".into(), scope: Scope::Service }
}

fn proto(day: NaiveDate) -> Option<Date> {
    Some(steplab_platform::date::to_proto(day))
}

/// A day in the programme's first 500 days.
fn a_day(rng: &mut XorShift) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 9, 1).expect("date") + chrono::Days::new(rng.next(500))
}

/// The learner's stored feed rows and those their facts give, each sorted.
async fn stored_and_computed(
    db: &Database,
    curriculum: &Arc<Curriculum>,
    participant_id: &str,
) -> (Vec<feed::Release>, Vec<feed::Release>) {
    let (curriculum, id) = (Arc::clone(curriculum), participant_id.to_owned());
    db.read(move |conn| {
        let far = |y| NaiveDate::from_ymd_opt(y, 1, 1).expect("date");
        let mut stored: Vec<_> = store::list_releases(conn, far(2000), far(2100), None, 100_000)?
            .into_iter()
            .filter(|r| r.participant_id == id)
            .collect();
        let learner = store::load_learner(conn, &id)?.expect("enrolled");
        let mut computed = feed::releases(&curriculum, &learner);
        let key = |r: &feed::Release| (r.module_id.clone(), r.release_date, r.optional);
        stored.sort_by_key(key);
        computed.sort_by_key(key);
        Ok::<_, ServiceError>((stored, computed))
    })
    .await
    .expect("feed read")
}

async fn enrol(service: &ContentRelease, participant_id: &str) {
    service
        .enrol_learner(
            service_caller(),
            pb::EnrolLearnerRequest {
                idempotency_key: format!("enrol-{participant_id}"),
                participant_id: participant_id.into(),
                programme: Programme::Ect as i32,
                release_start: proto(NaiveDate::from_ymd_opt(2026, 9, 1).expect("date")),
                school_id: "school".into(),
                delivery_partner_id: "dp".into(),
            },
        )
        .await
        .expect("enrol");
}

async fn random_holds_keep_the_feed_what_the_facts_give(db: Database) {
    let curriculum = Arc::new(Curriculum::built_in().expect("curriculum"));
    let clock = Clock::Pinned(NaiveDate::from_ymd_opt(2026, 11, 28).expect("day"));
    let service = ContentRelease::new(db.clone(), clock, Arc::clone(&curriculum));
    let learners = ["ada", "bea", "cai"];
    for id in learners {
        enrol(&service, id).await;
    }
    let mut rng = XorShift(0x5eed_f00d);
    let (mut applied, mut moved) = (0, 0);
    for step in 0..60 {
        let id = learners[usize::try_from(rng.next(3)).expect("index")];
        let hold_id = format!("hold-{}", rng.next(3));
        let key = format!("{step}-{id}");
        let (before, _) = stored_and_computed(&db, &curriculum, id).await;
        let done = if rng.next(3) == 0 {
            service
                .lift_hold(
                    service_caller(),
                    pb::LiftHoldRequest {
                        idempotency_key: key,
                        participant_id: id.into(),
                        hold_id,
                        on: proto(a_day(&mut rng)),
                    },
                )
                .await
        } else {
            let from = a_day(&mut rng);
            let until = from + chrono::Days::new(1 + rng.next(200));
            let kind = if hold_id == "hold-0" { pb::HoldKind::Pause } else { pb::HoldKind::Deferral };
            service
                .place_hold(
                    service_caller(),
                    pb::PlaceHoldRequest {
                        idempotency_key: key,
                        participant_id: id.into(),
                        hold_id,
                        kind: kind as i32,
                        start_date: proto(from),
                        until: proto(until),
                    },
                )
                .await
        };
        let (stored, computed) = stored_and_computed(&db, &curriculum, id).await;
        assert_eq!(stored, computed, "step {step} ({id}): the stored feed is what the facts give ({done:?})");
        applied += usize::from(done.is_ok());
        moved += usize::from(stored != before);
    }
    // The sequence exercised the path: most commands applied, many moved rows.
    assert!(applied >= 30 && moved >= 15, "{applied} commands applied, {moved} moved feed rows");

    // A stored feed that lost a row is rewritten whole on the next change.
    db.write(|conn| {
        steplab_platform::on_backend!(conn, |inner| diesel::sql_query(
            "DELETE FROM releases WHERE participant_id = 'ada' AND module_id = (SELECT MAX(module_id) FROM releases WHERE participant_id = 'ada')"
        )
        .execute(inner))?;
        Ok::<_, DbError>(())
    })
    .await
    .expect("a row lost");
    let (lost, computed) = stored_and_computed(&db, &curriculum, "ada").await;
    assert_eq!(lost.len() + 1, computed.len(), "one row is missing before the next change");
    service
        .place_hold(
            service_caller(),
            pb::PlaceHoldRequest {
                idempotency_key: "after-the-loss".into(),
                participant_id: "ada".into(),
                hold_id: "hold-late".into(),
                kind: pb::HoldKind::Deferral as i32,
                start_date: proto(NaiveDate::from_ymd_opt(2028, 3, 6).expect("date")),
                until: proto(NaiveDate::from_ymd_opt(2028, 6, 5).expect("date")),
            },
        )
        .await
        .expect("a late deferral");
    let (stored, computed) = stored_and_computed(&db, &curriculum, "ada").await;
    assert_eq!(stored, computed, "the feed was rewritten whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_holds_and_lifts_keep_the_stored_feed_what_the_facts_give_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let url = DatabaseUrl::Sqlite(dir.path().join("content.sqlite3"));
    random_holds_keep_the_feed_what_the_facts_give(Database::open(&url, &MIGRATIONS).await.expect("sqlite")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_holds_and_lifts_keep_the_stored_feed_what_the_facts_give_on_postgres() {
    let Some(scratch) = ScratchPostgres::create("feed_rewrite") else {
        return;
    };
    random_holds_keep_the_feed_what_the_facts_give(Database::open(&scratch.url, &MIGRATIONS).await.expect("postgres"))
        .await;
}
