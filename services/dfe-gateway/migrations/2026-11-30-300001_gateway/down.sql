DROP TABLE declarations;
DROP TABLE dfe_calls;
DROP TABLE tracked_participants;
DROP TABLE outbox;
DROP TABLE heartbeat;
DROP TABLE audit_log;
DROP TABLE idempotency_keys;
