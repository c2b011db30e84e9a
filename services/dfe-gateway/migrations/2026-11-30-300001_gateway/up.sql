-- The DfE gateway (X1-X9). The platform's tables first: command idempotency,
-- the audit log, the readiness heartbeat, and the outbox that carries
-- RecordDeclarationState back to payments (steplab_platform::outbox).
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    rpc TEXT NOT NULL,
    request {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    response {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE audit_log (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    recorded_at TIMESTAMP NOT NULL,
    request_id TEXT NOT NULL,
    actor_sub TEXT,
    actor_role TEXT,
    rpc TEXT NOT NULL,
    participant_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    calls BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX audit_log_by_participant ON audit_log (participant_id, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor_sub, id);
CREATE INDEX audit_log_by_time ON audit_log (recorded_at);

CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    beat_at {{sqlite:TEXT|postgres:TIMESTAMP}} NOT NULL
);

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
CREATE INDEX outbox_due ON outbox (target, next_attempt_at, id) WHERE delivered_at IS NULL AND parked_at IS NULL;
CREATE INDEX outbox_group_heads ON outbox (participant_id, target, id) WHERE delivered_at IS NULL;

-- ECTs and mentors the participant service told us of (X1), with what we
-- decided the DfE should see (status, schedule) for reconciliation (X7).
CREATE TABLE tracked_participants (
    participant_id TEXT PRIMARY KEY NOT NULL,
    course TEXT NOT NULL,
    trn TEXT NOT NULL,
    cohort INTEGER NOT NULL,
    dfe_participant_id TEXT,
    training_status TEXT NOT NULL,
    schedule_identifier TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX tracked_participants_unreportable ON tracked_participants (dfe_participant_id, participant_id);

-- The gateway's own outbox of HTTP calls to the DfE (X8): one row per call,
-- sent in id order per participant. `path` and `body` hold the
-- placeholders {dfe_participant_id} and {dfe_declaration_id} until the ids
-- are known; the call as sent replaces them.
CREATE TABLE dfe_calls (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    call_id TEXT NOT NULL UNIQUE,
    command_id TEXT NOT NULL,
    participant_id TEXT NOT NULL,
    declaration_type TEXT,
    http_method TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_http_status INTEGER NOT NULL,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    request_id TEXT
);
CREATE INDEX dfe_calls_due ON dfe_calls (state, next_attempt_at, id);
CREATE INDEX dfe_calls_by_participant ON dfe_calls (participant_id, id);

-- One declaration per participant and type (X5), with the DfE's id and state
-- once it answered; `state` is ours until then (`to-submit`, `to-void`).
CREATE TABLE declarations (
    participant_id TEXT NOT NULL,
    declaration_type TEXT NOT NULL,
    declaration_date DATE NOT NULL,
    dfe_declaration_id TEXT,
    state TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (participant_id, declaration_type)
);
