-- Group runs (issue 25): an HA group moved member by member, one migctl
-- operation a step, with checks before and after each step.
--
-- `definition`: the definition as the API received it (JSON, read again
-- with `Definition::from_json` whenever the run is driven). The position
-- (`step`, `stage`, `item`) is what the run does next; it only moves past
-- what succeeded, and it is stored before anything is started, so a
-- restarted console continues from it and never runs a finished step
-- again. NULL `step`: nothing is left (a done run). `round`: how many
-- times the check at the position has been started (a resume starts it
-- afresh). `stage_since`: when the position was reached. `current_op`:
-- the operation moving the step's member, once started.
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
    round       INTEGER NOT NULL DEFAULT 0,
    stage_since TEXT NOT NULL,
    current_op  TEXT REFERENCES operations(id),
    reason      TEXT,
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
CREATE TABLE group_approvals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES group_runs(id),
    step       INTEGER NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('before', 'after')),
    item       INTEGER NOT NULL,
    round      INTEGER NOT NULL,
    approved   INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL
);
