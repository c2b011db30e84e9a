-- Issue 18: the WatchEvents cursor without a lock that serialised every
-- writer. NULL on SQLite, where one writer at a time makes ids commit in
-- order and the id stays the cursor; NULL too on PostgreSQL rows written
-- before this migration (under that lock), whose cursor also stays the id.
ALTER TABLE participant_events ADD COLUMN feed_position BIGINT;
{{sqlite:|postgres:
-- On PostgreSQL an event's cursor is its transaction id (xid8) times 2^20
-- plus its rank among that transaction's events: ordered by transaction
-- id, not by commit. A reader returns only events of transactions below
-- its snapshot's xmin (steplab_feed_horizon), which have all ended, and
-- every transaction still running or yet to start has an xid at or above
-- it: a later commit can never land below a cursor already handed out.
-- The ids of the rows before this migration are far below any such
-- position (each earlier transaction wrote fewer than 2^20 events, so
-- there are fewer than 2^20 events per xid consumed so far).
CREATE FUNCTION steplab_event_feed_position() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    base BIGINT := pg_current_xact_id()::text::bigint * 1048576;
BEGIN
    SELECT coalesce(max(feed_position) + 1, base) INTO NEW.feed_position
    FROM participant_events
    WHERE feed_position >= base AND feed_position < base + 1048576;
    IF NEW.feed_position >= base + 1048576 THEN
        RAISE EXCEPTION 'more than 1048576 events in one transaction';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER participant_events_feed_position BEFORE INSERT ON participant_events
    FOR EACH ROW EXECUTE FUNCTION steplab_event_feed_position();
-- The first cursor no reader may hand out yet: that of the oldest
-- transaction still running (or the next to start).
CREATE FUNCTION steplab_feed_horizon() RETURNS BIGINT LANGUAGE sql STABLE AS $$
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint * 1048576
$$;
CREATE UNIQUE INDEX participant_events_feed_position ON participant_events (feed_position);
CREATE UNIQUE INDEX participant_events_feed_order ON participant_events ((coalesce(feed_position, id)));
}}
