DROP TABLE declarations;
DROP INDEX outbox_group_heads;
DROP INDEX outbox_due;
DROP TABLE outbox;
