ALTER TABLE approval_requests DROP COLUMN with_mentor;
