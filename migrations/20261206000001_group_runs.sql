-- Group runs (issue 25): an HA group moved member by member, one migctl
-- operation a step, with checks before and after each step.
--
-- `definition`: the definition as the API received it (JSON, read again
-- with `Definition::from_json` whenever the run is driven). The position
-- (`step`, `stage`, `item`) is what the run does next; it only moves past
-- what succeeded, and it is stored before anything is started, so a
-- restarted console continues from it and never runs a finished step
-- again. NULL `step`: nothing is left (a done run). `round`: how many
-- times the thing at the position has been started: 1 when the position
-- is reached, one more in the same UPDATE that resumes the run (a
-- restarted console keeps it: its attempts and approvals still count).
-- `stage_since`: when that round began (a check's deadline counts from
-- it, across restarts). `action_sent`: the round in which the action at
-- the position was sent (with no attempt of that round kept, the console
-- stopped while sending: it may have arrived). `current_op`: the
-- operation moving the step's member, once started. `ended_by`: who
-- aborted the run.
CREATE TABLE group_runs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    source_grid TEXT NOT NULL,
    target_grid TEXT NOT NULL,
    definition  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'aborted')),
    step        INTEGER,
    stage       TEXT CHECK (stage IN ('before', 'actions', 'operation', 'after')),
    item        INTEGER NOT NULL DEFAULT 0,
    round       INTEGER NOT NULL DEFAULT 1 CHECK (round >= 1),
    stage_since TEXT NOT NULL,
    action_sent INTEGER,
    current_op  TEXT REFERENCES operations(id),
    reason      TEXT,
    ended_by    TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    ended_at    TEXT
);
CREATE INDEX group_runs_state ON group_runs (state);

-- Every operation a run started (a retried step has several), in order.
CREATE TABLE group_run_operations (
    run_id     TEXT NOT NULL REFERENCES group_runs(id),
    step       INTEGER NOT NULL,
    op_id      TEXT NOT NULL REFERENCES operations(id),
    started_at TEXT NOT NULL,
    PRIMARY KEY (run_id, op_id)
);

-- Every attempt of a check or an action, kept as evidence.
CREATE TABLE group_attempts (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL REFERENCES group_runs(id),
    step     INTEGER NOT NULL,
    stage    TEXT NOT NULL CHECK (stage IN ('before', 'actions', 'after')),
    item     INTEGER NOT NULL,
    round    INTEGER NOT NULL,
    at       TEXT NOT NULL,
    outcome  TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'inconclusive')),
    status   INTEGER,
    excerpt  TEXT NOT NULL,
    note     TEXT NOT NULL,
    ms       INTEGER NOT NULL
);
CREATE INDEX group_attempts_run ON group_attempts (run_id, step, stage, item);

-- An operator's word on an approval check: who, when, yes or no, why.
-- `round`: the check's round that read it; NULL until one does (a word
-- given while the run paused, or the console stopped, is read by the next
-- round, never lost). At most one word waits unread at a check.
CREATE TABLE group_approvals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES group_runs(id),
    step       INTEGER NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('before', 'after')),
    item       INTEGER NOT NULL,
    round      INTEGER,
    approved   INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE UNIQUE INDEX group_approvals_unread ON group_approvals (run_id, step, stage, item)
    WHERE round IS NULL;
