-- Issue 9, audit: every mutating call and every refused call of this service
-- (see steplab_platform::audit). Never tokens, request bodies or messages.
CREATE TABLE audit_log (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL|postgres:BIGSERIAL PRIMARY KEY}},
    recorded_at TIMESTAMP NOT NULL,
    request_id TEXT NOT NULL,
    -- NULL when the caller had no valid token.
    actor_sub TEXT,
    actor_role TEXT,
    rpc TEXT NOT NULL,
    participant_id TEXT,
    -- The gRPC code name: OK, PERMISSION_DENIED, INVALID_ARGUMENT, ...
    outcome TEXT NOT NULL,
    -- A rule's ErrorInfo reason, or the violated fields of a malformed request.
    reason TEXT
);
CREATE INDEX audit_log_by_participant ON audit_log (participant_id, id);
CREATE INDEX audit_log_by_actor ON audit_log (actor_sub, id);
