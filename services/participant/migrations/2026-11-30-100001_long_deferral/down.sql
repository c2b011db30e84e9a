ALTER TABLE approval_requests DROP COLUMN latest_return_date;
