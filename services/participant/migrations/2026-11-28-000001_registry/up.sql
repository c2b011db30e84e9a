CREATE TABLE delivery_partners (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE schools (
    id TEXT PRIMARY KEY NOT NULL,
    urn TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL REFERENCES delivery_partners (id),
    area_covered BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX schools_by_delivery_partner ON schools (delivery_partner_id);

-- Who a participant is; everything that changes over time is in participant_events.
-- school_id, delivery_partner_id and mentor_id are the current values, kept for
-- scoped listing and lookups (S1 moves and M1 changes update them).
CREATE TABLE participants (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    full_name TEXT NOT NULL,
    trn TEXT,
    school_id TEXT NOT NULL REFERENCES schools (id),
    delivery_partner_id TEXT NOT NULL REFERENCES delivery_partners (id),
    mentor_id TEXT REFERENCES participants (id),
    registered_on DATE NOT NULL,
    previous_pilot_mentor BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX participants_trn_per_kind ON participants (trn, kind);
CREATE INDEX participants_by_school ON participants (school_id, id);
CREATE INDEX participants_by_delivery_partner ON participants (delivery_partner_id, id);
CREATE INDEX participants_by_mentor ON participants (mentor_id);

-- The dated history. (participant_id, sequence) is unique: two concurrent
-- changes to one participant cannot both append the same next event.
CREATE TABLE participant_events (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES participants (id),
    sequence BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    effective_date DATE NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    payload TEXT NOT NULL,
    caused_by_participant_id TEXT,
    UNIQUE (participant_id, sequence)
);

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    rpc TEXT NOT NULL,
    request {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    response {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    created_at TIMESTAMP NOT NULL
);
