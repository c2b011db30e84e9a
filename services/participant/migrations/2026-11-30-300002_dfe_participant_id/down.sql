ALTER TABLE participants DROP COLUMN dfe_participant_id;
