DROP TABLE notifications;
DROP TABLE approval_requests;
DROP TABLE outbox;
