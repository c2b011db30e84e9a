DROP INDEX outbox_group_heads;
DROP INDEX outbox_due;
