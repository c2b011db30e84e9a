{{sqlite:|postgres:
DROP INDEX participant_events_feed_order;
DROP INDEX participant_events_feed_position;
DROP FUNCTION steplab_feed_horizon();
DROP TRIGGER participant_events_feed_position ON participant_events;
DROP FUNCTION steplab_event_feed_position();
}}
ALTER TABLE participant_events DROP COLUMN feed_position;
