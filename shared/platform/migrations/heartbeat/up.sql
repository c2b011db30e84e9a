-- One row the readiness probe rewrites every few seconds: a real write, so
-- health turns NOT_SERVING when the database cannot take one (disk full,
-- database gone). See shared/platform/src/readiness.rs.
CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    beat_at {{sqlite:TEXT|postgres:TIMESTAMP}} NOT NULL
);
