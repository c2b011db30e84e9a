-- W9: a reinstatement request may bring back the mentor the W6 cascade
-- withdrew with the ECT; requests made before said nothing of the kind.
ALTER TABLE approval_requests ADD COLUMN with_mentor BOOLEAN NOT NULL DEFAULT FALSE;
