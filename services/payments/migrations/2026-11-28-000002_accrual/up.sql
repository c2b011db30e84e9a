-- Payees and the dated facts their accrual is computed from (F2-F4, S1,
-- S2, M4, D4, W5, W9), and the materialised outcome of every payee's
-- milestone windows that statements read (F6). Money is BIGINT pence.

CREATE TABLE payees (
    participant_id TEXT PRIMARY KEY NOT NULL,
    participant_kind TEXT NOT NULL,
    schedule_id TEXT NOT NULL,
    cohort INTEGER NOT NULL,
    funding_eligible BOOLEAN NOT NULL,
    school_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    -- Bumped by every change, so concurrent changes to one payee queue up.
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX payees_schedule ON payees (schedule_id, cohort);

-- [from_date, until_date): until_date is the first day accruing again.
CREATE TABLE suspensions (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    suspension_id TEXT NOT NULL,
    from_date DATE NOT NULL,
    until_date DATE NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (participant_id, suspension_id)
);

-- [ended_on, reopened_on): a withdrawal until its reinstatement.
CREATE TABLE accrual_closures (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    ended_on DATE NOT NULL,
    reopened_on DATE,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX accrual_closures_participant ON accrual_closures (participant_id, ended_on);

CREATE TABLE coverage_changes (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    from_date DATE NOT NULL,
    covered BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (participant_id, from_date)
);

CREATE TABLE placement_changes (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    from_date DATE NOT NULL,
    school_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (participant_id, from_date)
);

CREATE TABLE engagements (
    id {{sqlite:INTEGER PRIMARY KEY AUTOINCREMENT|postgres:BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY}},
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    occurred_on DATE NOT NULL,
    kind TEXT NOT NULL,
    note TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TIMESTAMP NOT NULL
);
CREATE INDEX engagements_participant ON engagements (participant_id, occurred_on);

-- One row per payee per window of their plan: a line (milestone, amount)
-- or an exclusion (reason, amount 0). Recomputed by the accrual engine in
-- the same transaction as every change to the payee.
CREATE TABLE window_outcomes (
    participant_id TEXT NOT NULL REFERENCES payees (participant_id),
    window_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    milestone TEXT,
    amount_pence BIGINT NOT NULL,
    earned_on DATE,
    exclusion_reason TEXT,
    detail TEXT NOT NULL,
    PRIMARY KEY (window_id, participant_id)
{{sqlite:-- Clustered by window, so a statement page is one contiguous range.
) WITHOUT ROWID|postgres:)}};
CREATE INDEX window_outcomes_participant ON window_outcomes (participant_id);
CREATE INDEX window_outcomes_window_dp ON window_outcomes (window_id, delivery_partner_id, participant_id);

-- Each window's total per delivery partner, kept with the outcomes in the
-- same transaction, so a statement's total is a handful of rows however
-- many payees it covers.
CREATE TABLE window_totals (
    window_id TEXT NOT NULL,
    delivery_partner_id TEXT NOT NULL,
    total_pence BIGINT NOT NULL,
    PRIMARY KEY (window_id, delivery_partner_id)
);

-- The fingerprint of the schedules the outcomes were computed under.
CREATE TABLE schedule_book_state (
    id INTEGER PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
