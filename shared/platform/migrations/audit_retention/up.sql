-- Issue 14: a caller without a valid token cannot grow the audit log.
-- `calls` is how many calls a row stands for: 1 for every per-call entry; a
-- summary row (request_id `summary`) stands for the unauthenticated refusals
-- of its rpc counted over the minute before recorded_at past the per-minute
-- budget of individual rows (see steplab_platform::audit).
ALTER TABLE audit_log ADD COLUMN calls BIGINT NOT NULL DEFAULT 1;
-- Retention (STEPLAB_AUDIT_RETENTION_DAYS) deletes the oldest rows in small
-- batches by time.
CREATE INDEX audit_log_by_time ON audit_log (recorded_at);
