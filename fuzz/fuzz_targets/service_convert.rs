//! Arbitrary bytes, decoded (prost) as each request of content release and
//! payments, through that service's request converter. A converter must
//! never panic, and a refusal must name at least one field and say what is
//! wrong with it. The page tokens of ListReleases and GetStatement are
//! caller-supplied strings parsed by the converters, so they are fuzzed here
//! too.
//!
//! Run with nightly and cargo-fuzz (not in CI):
//!   cargo +nightly fuzz run service_convert -- -max_total_time=60

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use steplab_content_release::convert as content;
use steplab_payments::convert as payments;
use steplab_platform::FieldViolations;
use steplab_platform::paging::Pages;
use steplab_proto::steplab::content::v1 as cpb;
use steplab_proto::steplab::payments::v1 as ppb;

fn refusal_is_explained<T>(answer: Result<T, FieldViolations>) {
    if let Err(violations) = answer {
        assert!(!violations.0.is_empty(), "an Err without a violation");
        for v in &violations.0 {
            assert!(!v.field.is_empty(), "a violation without a field");
            assert!(!v.description.is_empty(), "`{}` has no description", v.field);
        }
    }
}

/// Decodes `data` as each request type and runs its converter.
macro_rules! each_request {
    ($data:expr; $($request:ty => $convert:expr),* $(,)?) => {$(
        if let Ok(request) = <$request>::decode($data) {
            refusal_is_explained($convert(&request));
        }
    )*};
}

fuzz_target!(|data: &[u8]| {
    // prost skips fields it does not know, so one input reaches several converters.
    each_request!(data;
        cpb::EnrolLearnerRequest => content::enrol,
        cpb::PlaceHoldRequest => content::place_hold,
        cpb::LiftHoldRequest => content::lift_hold,
        cpb::RevokeAccessRequest => content::revoke_access,
        cpb::RestoreAccessRequest => content::restore_access,
        cpb::SetReleaseStartRequest => content::set_release_start,
        cpb::SetParticipantScopeRequest => content::set_participant_scope,
        cpb::GetReleaseStateRequest => content::get_release_state,
        cpb::ListReleasesRequest => |r| content::list_releases(r, &Pages::of("fuzz", r)),
        cpb::RecordModuleAccessRequest => |r| content::record_module_access(r, "fuzz"),
        cpb::RecordAttendanceRequest => |r| content::record_attendance(r, "fuzz"),
        ppb::EnrolPayeeRequest => payments::enrol,
        ppb::SuspendAccrualRequest => payments::suspend,
        ppb::ResumeAccrualRequest => payments::resume,
        ppb::EndAccrualRequest => payments::end,
        ppb::ReopenAccrualRequest => payments::reopen,
        ppb::SetAreaCoveredRequest => payments::coverage,
        ppb::SetParticipantScopeRequest => payments::placement,
        ppb::RecordEngagementRequest => |r| payments::engagement(r, "fuzz"),
        ppb::GetAccrualRequest => payments::accrual_query,
        ppb::GetStatementRequest => |r| payments::statement_query(r, &Pages::of("fuzz", r)),
        ppb::ListSchedulesRequest => |r| payments::schedules_query(r, &Pages::of("fuzz", r)),
    );
});
