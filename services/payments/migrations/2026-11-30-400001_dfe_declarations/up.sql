-- Issue 17 (X5, X6): payments tells the DfE gateway which milestones are
-- earned and which are no longer, through a transactional outbox like the
-- participant service's (steplab_platform::outbox), and keeps what it
-- declared with the DfE's answer.

-- The outbox, as the participant service has it (its migrations
-- 2026-11-28-000002, -000003 and 2026-11-29-000002 together).
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
    last_error TEXT,
    request_id TEXT
);
CREATE INDEX outbox_undelivered ON outbox (delivered_at, id);
CREATE INDEX outbox_by_participant ON outbox (participant_id, id);
CREATE INDEX outbox_due ON outbox (target, next_attempt_at, id)
    WHERE delivered_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_group_heads ON outbox (participant_id, target, id)
    WHERE delivered_at IS NULL;

-- One row per participant and DfE declaration type payments has declared
-- (X5). `active` is false once payments voided it (X6); a milestone earned
-- again is declared again on the same row. The DfE's id and state arrive
-- later from the gateway (RecordDeclarationState); the latest answer wins.
CREATE TABLE declarations (
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    declaration_type TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    window_id TEXT NOT NULL,
    declaration_date DATE NOT NULL,
    evidence_held TEXT NOT NULL,
    dfe_declaration_id TEXT,
    dfe_state TEXT,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (participant_id, declaration_type)
);

-- Forget the schedules fingerprint, so the next start-up recomputes every
-- payee once and so declares the milestones earned before this version.
DELETE FROM schedule_book_state;
