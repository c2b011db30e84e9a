-- D3: a DPL's approval of an extended deferral (request kind `long_deferral`)
-- names the latest return date it allows; NULL for every other kind.
ALTER TABLE approval_requests ADD COLUMN latest_return_date DATE;
