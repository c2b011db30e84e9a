//! The payments tables, as the migrations create them.

diesel::table! {
    payees (participant_id) {
        participant_id -> Text,
        participant_kind -> Text,
        schedule_id -> Text,
        cohort -> Integer,
        funding_eligible -> Bool,
        school_id -> Text,
        delivery_partner_id -> Text,
        version -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    suspensions (id) {
        id -> BigInt,
        participant_id -> Text,
        suspension_id -> Text,
        from_date -> Date,
        until_date -> Date,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    accrual_closures (id) {
        id -> BigInt,
        participant_id -> Text,
        ended_on -> Date,
        reopened_on -> Nullable<Date>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    coverage_changes (id) {
        id -> BigInt,
        participant_id -> Text,
        from_date -> Date,
        covered -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    placement_changes (id) {
        id -> BigInt,
        participant_id -> Text,
        from_date -> Date,
        school_id -> Text,
        delivery_partner_id -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    engagements (id) {
        id -> BigInt,
        participant_id -> Text,
        occurred_on -> Date,
        kind -> Text,
        note -> Text,
        recorded_by -> Text,
        recorded_at -> Timestamp,
    }
}

diesel::table! {
    window_outcomes (window_id, participant_id) {
        participant_id -> Text,
        window_id -> Text,
        delivery_partner_id -> Text,
        milestone -> Nullable<Text>,
        amount_pence -> BigInt,
        earned_on -> Nullable<Date>,
        exclusion_reason -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    window_totals (window_id, delivery_partner_id) {
        window_id -> Text,
        delivery_partner_id -> Text,
        total_pence -> BigInt,
    }
}

diesel::table! {
    schedule_book_state (id) {
        id -> Integer,
        fingerprint -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    declarations (participant_id, declaration_type) {
        participant_id -> Text,
        declaration_type -> Text,
        active -> Bool,
        window_id -> Text,
        declaration_date -> Date,
        evidence_held -> Text,
        dfe_declaration_id -> Nullable<Text>,
        dfe_state -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    declarations,
    payees,
    suspensions,
    accrual_closures,
    coverage_changes,
    placement_changes,
    engagements,
    window_outcomes,
    window_totals,
    schedule_book_state
);
