-- The x-request-id of the call that caused a command, sent with it.
ALTER TABLE outbox ADD COLUMN request_id TEXT;
