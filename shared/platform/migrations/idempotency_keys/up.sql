-- Idempotency of public requests and of the participant service's commands
-- (CONTRACT.md, Idempotency): the first answer is kept with its effect.
CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY NOT NULL,
    rpc TEXT NOT NULL,
    request {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    response {{sqlite:BLOB|postgres:BYTEA}} NOT NULL,
    created_at TIMESTAMP NOT NULL
);
