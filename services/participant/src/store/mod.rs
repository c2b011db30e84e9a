//! The participant service's tables and queries. Every function takes a
//! connection and runs inside the caller's unit of work, so one RPC's changes
//! commit together or not at all. Rows stay private to this module: what
//! goes in and comes out are domain values.

mod approvals;
mod directory;
mod events;
pub mod journal;
mod participants;

pub use approvals::*;
pub use directory::*;
pub use events::*;
pub use participants::*;

pub mod schema {
    diesel::table! {
        delivery_partners (id) {
            id -> Text,
            name -> Text,
            created_at -> Timestamp,
        }
    }

    diesel::table! {
        schools (id) {
            id -> Text,
            urn -> Text,
            name -> Text,
            delivery_partner_id -> Text,
            area_covered -> Bool,
            created_at -> Timestamp,
        }
    }

    diesel::table! {
        participants (id) {
            id -> Text,
            kind -> Text,
            full_name -> Text,
            trn -> Nullable<Text>,
            school_id -> Text,
            delivery_partner_id -> Text,
            mentor_id -> Nullable<Text>,
            registered_on -> Date,
            previous_pilot_mentor -> Bool,
            version -> BigInt,
            created_at -> Timestamp,
            updated_at -> Timestamp,
            dfe_participant_id -> Nullable<Text>,
        }
    }

    diesel::table! {
        participant_events (id) {
            id -> BigInt,
            participant_id -> Text,
            sequence -> BigInt,
            event_type -> Text,
            effective_date -> Date,
            recorded_at -> Timestamp,
            actor -> Text,
            actor_role -> Text,
            payload -> Text,
            caused_by_participant_id -> Nullable<Text>,
            /// PostgreSQL's WatchEvents cursor (see `store::events`); NULL
            /// where the id is the cursor.
            feed_position -> Nullable<BigInt>,
        }
    }

    diesel::table! {
        approval_requests (id) {
            id -> Text,
            kind -> Text,
            status -> Text,
            participant_id -> Text,
            delivery_partner_id -> Text,
            release_start -> Nullable<Date>,
            note -> Text,
            requested_by -> Text,
            created_at -> Timestamp,
            decided_by -> Nullable<Text>,
            decision_note -> Nullable<Text>,
            decided_at -> Nullable<Timestamp>,
            latest_return_date -> Nullable<Date>,
            with_mentor -> Bool,
        }
    }

    diesel::table! {
        notifications (id) {
            id -> Text,
            kind -> Text,
            delivery_partner_id -> Text,
            school_id -> Text,
            message -> Text,
            created_at -> Timestamp,
        }
    }

    diesel::joinable!(schools -> delivery_partners (delivery_partner_id));
    diesel::allow_tables_to_appear_in_same_query!(
        delivery_partners,
        schools,
        participants,
        participant_events,
        approval_requests,
        notifications
    );
}
