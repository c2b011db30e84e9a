DROP TABLE idempotency_keys;
DROP TABLE participant_events;
DROP TABLE participants;
DROP TABLE schools;
DROP TABLE delivery_partners;
