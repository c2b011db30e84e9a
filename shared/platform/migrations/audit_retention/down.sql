DROP INDEX audit_log_by_time;
ALTER TABLE audit_log DROP COLUMN calls;
