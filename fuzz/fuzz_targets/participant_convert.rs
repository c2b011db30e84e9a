//! Arbitrary bytes, decoded (prost) as each participant request that
//! carries free text, dates and enums, through the request converters. A
//! converter must never panic; every field violation it reports names a
//! field of its request; and what it accepts keeps the documented bounds: a
//! canonical id, a name of 1..=200 chars without control characters, a note
//! of at most 2,000 chars, dates in the years 1..=9999, an end after its
//! start, a known enum value.
//!
//! Run with nightly and cargo-fuzz (not in CI):
//!   cargo +nightly fuzz run participant_convert -- -max_total_time=60

#![no_main]

use chrono::Datelike;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use steplab_participant::convert;
use steplab_platform::FieldViolations;
use steplab_proto::steplab::participant::v1 as pb;

/// Every violation names a field of the request it came from.
fn names_fields<T>(answer: &Result<T, FieldViolations>, fields: &[&str]) {
    if let Err(violations) = answer {
        assert!(!violations.0.is_empty(), "an Err without a violation");
        for v in &violations.0 {
            assert!(fields.contains(&v.field.as_str()), "`{}` is not a request field", v.field);
            assert!(!v.description.is_empty(), "`{}` has no description", v.field);
        }
    }
}

fn in_range(date: chrono::NaiveDate) {
    assert!((1..=9999).contains(&date.year()), "{date} accepted");
}

fn canonical_id(id: &str) {
    assert_eq!(id.len(), 36, "{id:?} is not a canonical id");
    assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id:?}");
}

fn note(note: &str) {
    assert!(note.chars().count() <= convert::MAX_NOTE_CHARS);
    assert_eq!(note, note.trim());
}

fn register(bytes: &[u8]) {
    let Ok(req) = pb::RegisterParticipantRequest::decode(bytes) else { return };
    let answer = convert::register(&req);
    names_fields(
        &answer,
        &["school_id", "kind", "full_name", "trn", "registered_on", "previous_pilot_mentor", "idempotency_key"],
    );
    if let Ok(r) = answer {
        canonical_id(&r.school_id);
        assert!((1..=convert::MAX_NAME_CHARS).contains(&r.full_name.chars().count()));
        assert!(!r.full_name.chars().any(char::is_control));
        assert!(r.trn.as_ref().is_none_or(|t| t.len() == 7 && t.bytes().all(|b| b.is_ascii_digit())));
        if let Some(date) = r.registered_on {
            in_range(date);
        }
    }
}

fn pause(bytes: &[u8]) {
    let Ok(req) = pb::PauseParticipantRequest::decode(bytes) else { return };
    let answer = convert::pause(&req);
    names_fields(&answer, &["participant_id", "start_date", "expected_end_date", "note", "idempotency_key"]);
    if let Ok(p) = answer {
        canonical_id(&p.participant_id);
        in_range(p.start);
        in_range(p.expected_end);
        assert!(p.start < p.expected_end);
        note(&p.note);
    }
    // The single-date converters the other pause RPCs use, on the same fields.
    let extend = pb::ExtendPauseRequest {
        participant_id: req.participant_id.clone(),
        expected_end_date: req.start_date,
        ..Default::default()
    };
    let answer = convert::extend_pause(&extend);
    names_fields(&answer, &["participant_id", "expected_end_date"]);
    if let Ok(change) = answer {
        canonical_id(&change.participant_id);
        in_range(change.date);
    }
    let end = pb::EndPauseRequest {
        participant_id: req.participant_id.clone(),
        end_date: req.start_date,
        ..Default::default()
    };
    let answer = convert::end_pause(&end);
    names_fields(&answer, &["participant_id", "end_date"]);
    if let Ok(change) = answer {
        canonical_id(&change.participant_id);
        if let Some(date) = change.date {
            in_range(date);
        }
    }
}

fn defer(bytes: &[u8]) {
    let Ok(req) = pb::DeferParticipantRequest::decode(bytes) else { return };
    let answer = convert::defer(&req);
    names_fields(
        &answer,
        &["participant_id", "reason", "deferral_date", "expected_return_date", "note", "idempotency_key"],
    );
    if let Ok(command) = answer {
        canonical_id(&command.participant_id);
        let d = command.deferral;
        in_range(d.deferral_date);
        in_range(d.expected_return);
        assert!(d.deferral_date < d.expected_return);
        note(&d.note);
    }
}

fn withdraw(bytes: &[u8]) {
    let Ok(req) = pb::WithdrawParticipantRequest::decode(bytes) else { return };
    let answer = convert::withdraw(&req);
    names_fields(&answer, &["participant_id", "reason", "withdrawal_date", "note", "idempotency_key"]);
    if let Ok(command) = answer {
        canonical_id(&command.participant_id);
        if let Some(date) = command.withdrawal_date {
            in_range(date);
        }
        note(&command.note);
    }
    // The free-text converters on the same fields.
    let _ = convert::id_and_note("participant_id", &req.participant_id, &req.note);
    if let Ok(name) = convert::name("full_name", &req.note) {
        assert!((1..=convert::MAX_NAME_CHARS).contains(&name.chars().count()));
    }
    if let Ok(id) = convert::id("participant_id", &req.participant_id) {
        canonical_id(&id);
    }
}

fuzz_target!(|data: &[u8]| {
    // The same bytes as each message: prost skips fields it does not know,
    // so one input exercises several converters.
    register(data);
    pause(data);
    defer(data);
    withdraw(data);
});
