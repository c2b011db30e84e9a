//! Wire <-> domain. Requests become commands that cannot be invalid (every
//! malformed field is reported at once as a field violation); domain answers
//! become response messages. One module per kind of use case: the commands
//! of the participant service, progress and attendance, and the reads.

mod commands;
mod preview;
mod progress;
mod reads;

pub use commands::{
    AccessChange, Enrol, LiftHold, PlaceHold, ReleaseStartChange, ScopeMove, enrol, lift_hold, place_hold,
    restore_access, revoke_access, set_participant_scope, set_release_start,
};
pub use preview::{MAX_PREVIEW_COMMANDS, PreviewQuery, missing_command, preview_commands, within_command};
pub use progress::{ProgressRecord, attendance, module_ref, record_attendance, record_module_access};
pub use reads::{
    FEED_DEFAULT_PAGE_SIZE, FEED_MAX_PAGE_SIZE, FeedQuery, StateQuery, curriculum, feed_token, get_release_state,
    list_releases, release, release_state,
};

use crate::domain::{HoldKind, Programme};
use steplab_platform::FieldViolation;
use steplab_proto::steplab::common::v1 as common;
use steplab_proto::steplab::content::v1 as pb;

/// The longest id accepted: ids are issued elsewhere (UUIDs, curriculum ids).
pub const MAX_ID_LEN: usize = 100;

/// A required id issued by another system: printable ASCII, no spaces.
pub fn id(field: &str, value: &str) -> Result<String, FieldViolation> {
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if value.len() > MAX_ID_LEN || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(FieldViolation::new(
            field,
            format!("must be at most {MAX_ID_LEN} printable ASCII characters without spaces"),
        ));
    }
    Ok(value.to_owned())
}

pub fn programme(field: &str, value: i32) -> Result<Programme, FieldViolation> {
    match common::Programme::try_from(value) {
        Ok(common::Programme::Ect) => Ok(Programme::Ect),
        Ok(common::Programme::Mentor) => Ok(Programme::Mentor),
        Ok(common::Programme::Unspecified) | Err(_) => {
            Err(FieldViolation::new(field, "must be PROGRAMME_ECT or PROGRAMME_MENTOR"))
        }
    }
}

fn hold_kind(field: &str, value: i32) -> Result<HoldKind, FieldViolation> {
    match pb::HoldKind::try_from(value) {
        Ok(pb::HoldKind::Pause) => Ok(HoldKind::Pause),
        Ok(pb::HoldKind::Deferral) => Ok(HoldKind::Deferral),
        Ok(pb::HoldKind::Unspecified) | Err(_) => {
            Err(FieldViolation::new(field, "must be HOLD_KIND_PAUSE or HOLD_KIND_DEFERRAL"))
        }
    }
}

pub fn programme_to_proto(programme: Programme) -> common::Programme {
    match programme {
        Programme::Ect => common::Programme::Ect,
        Programme::Mentor => common::Programme::Mentor,
    }
}

fn hold_kind_to_proto(kind: HoldKind) -> pb::HoldKind {
    match kind {
        HoldKind::Pause => pb::HoldKind::Pause,
        HoldKind::Deferral => pb::HoldKind::Deferral,
    }
}

/// What the converters' unit tests build requests with and read refusals by.
#[cfg(test)]
pub(crate) mod test_support {
    use steplab_platform::FieldViolations;
    use steplab_proto::google::r#type::Date;

    pub fn date(year: i32, month: i32, day: i32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    pub fn fields(err: FieldViolations) -> Vec<String> {
        err.0.into_iter().map(|v| v.field).collect()
    }
}
