-- X1: the DfE's participant id of an ECT or mentor, once known.
ALTER TABLE participants ADD COLUMN dfe_participant_id TEXT;
