-- The old code cannot tell new keys apart from its own: drop them.
DELETE FROM idempotency_keys WHERE key NOT LIKE 'legacy:%';
CREATE TEMPORARY TABLE idempotency_keys_before AS SELECT * FROM idempotency_keys;
DELETE FROM idempotency_keys;
INSERT INTO idempotency_keys (key, rpc, request, response, created_at)
    SELECT substr(key, 8), rpc, request, response, created_at FROM idempotency_keys_before;
DROP TABLE idempotency_keys_before;
