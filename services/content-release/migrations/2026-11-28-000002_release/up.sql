-- Learners and the facts their release schedule is computed from (R2), their
-- progress (R3) and attendance (D11), and the release feed (R4).

-- One row per enrolled participant; `version` is bumped by every command so
-- that concurrent commands on one learner take turns.
CREATE TABLE learners (
    participant_id TEXT PRIMARY KEY NOT NULL,
    programme TEXT NOT NULL,
    release_start DATE NOT NULL,
    school_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    enrolled_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Pauses and deferrals, half-open [from_date, until_date); until_date is the
-- lift date after a LiftHold (until_date <= from_date: cancelled).
CREATE TABLE holds (
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    hold_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    from_date DATE NOT NULL,
    until_date DATE NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (participant_id, hold_id)
);

-- Access revoked from revoked_from until restored_on (NULL: still revoked).
CREATE TABLE revocations (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    revoked_from DATE NOT NULL,
    restored_on DATE,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX revocations_by_participant ON revocations (participant_id);

-- S1 moves: the school and delivery partner reads are scoped by from from_date.
CREATE TABLE scope_changes (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    school_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    from_date DATE NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX scope_changes_by_participant ON scope_changes (participant_id);

-- Every recorded opening of a module (R3); the latest is where to resume.
CREATE TABLE module_accesses (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    module_id TEXT NOT NULL,
    accessed_on DATE NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX module_accesses_by_participant ON module_accesses (participant_id, accessed_on);

-- Clinics and conferences attended (D11); one record per event.
CREATE TABLE attendances (
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    event_id TEXT NOT NULL,
    attended_on DATE NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (participant_id, event_id)
);

-- The release feed (R4): each learner's schedule as computed by the release
-- engine, rewritten with every change to its facts, so that a day's releases
-- over a national cohort are one index range.
CREATE TABLE releases (
    participant_id TEXT NOT NULL REFERENCES learners (participant_id),
    module_id TEXT NOT NULL,
    release_date DATE NOT NULL,
    is_optional BOOLEAN NOT NULL,
    PRIMARY KEY (participant_id, module_id)
);
CREATE INDEX releases_by_date ON releases (release_date, participant_id, module_id);

-- The curriculum the stored feed was computed with: when a deployment loads
-- a different one, the feed is recomputed at start-up.
CREATE TABLE curriculum_state (
    name TEXT PRIMARY KEY NOT NULL,
    canonical TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
