-- Commands for content release and payments, written in the same transaction
-- as the change that decides them, delivered by the relay in order per
-- (participant, target).
CREATE TABLE outbox (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    command_id TEXT NOT NULL UNIQUE,
    participant_id TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    payload {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    created_at TIMESTAMP NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    parked_at TIMESTAMP,
    last_error TEXT
);
CREATE INDEX outbox_undelivered ON outbox (delivered_at, id);
CREATE INDEX outbox_by_participant ON outbox (participant_id, id);

-- Changes an ECF Lead asked for that a DPL decides (W9, C2, W6).
CREATE TABLE approval_requests (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    participant_id TEXT NOT NULL REFERENCES participants (id),
    delivery_partner_id TEXT NOT NULL,
    release_start DATE,
    note TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    decided_by TEXT,
    decision_note TEXT,
    decided_at TIMESTAMP
);
CREATE INDEX approval_requests_by_participant ON approval_requests (participant_id, kind, status);
CREATE INDEX approval_requests_by_delivery_partner ON approval_requests (delivery_partner_id, id);

-- What a delivery partner's staff must hear about (W7, W8).
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    school_id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX notifications_by_delivery_partner ON notifications (delivery_partner_id, id);
