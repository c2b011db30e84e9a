-- Issue 14, a relay whose targets and groups are independent (see
-- steplab_platform::outbox::due_heads). The claim walks, per target, the
-- commands neither delivered nor parked from the most overdue, and stops at
-- the first not yet due: a backlog that is backing off or parked is never read.
CREATE INDEX outbox_due ON outbox (target, next_attempt_at, id)
    WHERE delivered_at IS NULL AND parked_at IS NULL;
-- Whether a command is its (participant, target) group's head: is an earlier
-- command of the group still undelivered? One probe, however long the group.
CREATE INDEX outbox_group_heads ON outbox (participant_id, target, id)
    WHERE delivered_at IS NULL;
