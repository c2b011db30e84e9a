-- Idempotency keys became `{byte length of sub}:{sub}/{id}` (commands:
-- `command:{id}`), because the bare `{sub}/{id}` let two callers share a key
-- when a sub or an id held a `/`. Keys stored before are marked `legacy:` so
-- that the two forms never meet; a marked key is still honoured for an exact
-- repeat. Copied out and back rather than updated in place, so that no
-- intermediate row can clash with another's key.
CREATE TEMPORARY TABLE idempotency_keys_before AS SELECT * FROM idempotency_keys;
DELETE FROM idempotency_keys;
INSERT INTO idempotency_keys (key, rpc, request, response, created_at)
    SELECT 'legacy:' || key, rpc, request, response, created_at FROM idempotency_keys_before;
DROP TABLE idempotency_keys_before;
