//! The content-release tables and queries. Every function takes a connection
//! and runs inside the caller's unit of work, so one RPC's changes commit
//! together or not at all. Only types and statements common to SQLite and
//! PostgreSQL are used (no upsert, no batch insert: diesel's MultiConnection
//! has neither), so one code path serves both.

mod holds;
mod learners;
mod progress;
mod releases;

pub use holds::{insert_hold, insert_revocation, open_revocation, restore, update_hold_dates};
pub use learners::{
    Progress, insert_learner, insert_scope_change, learner_ids_after, load_learner, load_learner_with_progress,
    lock_learner, set_release_start,
};
pub use progress::{attendances, insert_attendance, insert_module_access, module_accesses};
pub use releases::{list_releases, move_releases_from, replace_releases, save_curriculum, stored_curriculum};

pub mod schema {
    diesel::table! {
        learners (participant_id) {
            participant_id -> Text,
            programme -> Text,
            release_start -> Date,
            school_id -> Text,
            delivery_partner_id -> Text,
            version -> BigInt,
            enrolled_at -> Timestamp,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        holds (participant_id, hold_id) {
            participant_id -> Text,
            hold_id -> Text,
            kind -> Text,
            from_date -> Date,
            until_date -> Date,
            updated_at -> Timestamp,
        }
    }

    diesel::table! {
        revocations (id) {
            id -> BigInt,
            participant_id -> Text,
            revoked_from -> Date,
            restored_on -> Nullable<Date>,
            recorded_at -> Timestamp,
        }
    }

    diesel::table! {
        scope_changes (id) {
            id -> BigInt,
            participant_id -> Text,
            school_id -> Text,
            delivery_partner_id -> Text,
            from_date -> Date,
            recorded_at -> Timestamp,
        }
    }

    diesel::table! {
        module_accesses (id) {
            id -> BigInt,
            participant_id -> Text,
            module_id -> Text,
            accessed_on -> Date,
            recorded_at -> Timestamp,
        }
    }

    diesel::table! {
        attendances (participant_id, event_id) {
            participant_id -> Text,
            event_id -> Text,
            attended_on -> Date,
            recorded_at -> Timestamp,
        }
    }

    diesel::table! {
        releases (participant_id, module_id) {
            participant_id -> Text,
            module_id -> Text,
            release_date -> Date,
            is_optional -> Bool,
        }
    }

    diesel::table! {
        curriculum_state (name) {
            name -> Text,
            canonical -> Text,
            updated_at -> Timestamp,
        }
    }

    diesel::allow_tables_to_appear_in_same_query!(
        learners,
        holds,
        revocations,
        scope_changes,
        module_accesses,
        attendances,
        releases,
        curriculum_state
    );
}
