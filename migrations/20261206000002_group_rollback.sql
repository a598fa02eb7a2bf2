-- Group runs roll back (issue 24 with 25): a run walks its moved steps in
-- reverse, each step's rollback operation (stage `undo`) and then its
-- checks after applied again (stage `recheck`), and ends `rolled_back`.
-- SQLite cannot change a CHECK constraint in place: the group tables are
-- rebuilt as in 20261204000003 (the new children reference the new runs
-- table; the old children go first, then the old runs table, and the
-- renames carry the references along).

CREATE TABLE group_runs_new (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    source_grid TEXT NOT NULL,
    target_grid TEXT NOT NULL,
    definition  TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'aborted', 'rolled_back')),
    step        INTEGER,
    stage       TEXT CHECK (stage IN ('before', 'actions', 'operation', 'after', 'undo', 'recheck')),
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
INSERT INTO group_runs_new SELECT id, name, source_grid, target_grid, definition, state, step,
    stage, item, round, stage_since, action_sent, current_op, reason, ended_by, created_by,
    created_at, updated_at, ended_at FROM group_runs;

CREATE TABLE group_run_operations_new (
    run_id     TEXT NOT NULL REFERENCES group_runs_new(id),
    step       INTEGER NOT NULL,
    op_id      TEXT NOT NULL REFERENCES operations(id),
    started_at TEXT NOT NULL,
    PRIMARY KEY (run_id, op_id)
);
INSERT INTO group_run_operations_new SELECT run_id, step, op_id, started_at
    FROM group_run_operations;

CREATE TABLE group_attempts_new (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL REFERENCES group_runs_new(id),
    step     INTEGER NOT NULL,
    stage    TEXT NOT NULL CHECK (stage IN ('before', 'actions', 'after', 'recheck')),
    item     INTEGER NOT NULL,
    round    INTEGER NOT NULL,
    at       TEXT NOT NULL,
    outcome  TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'inconclusive')),
    status   INTEGER,
    excerpt  TEXT NOT NULL,
    note     TEXT NOT NULL,
    ms       INTEGER NOT NULL
);
INSERT INTO group_attempts_new SELECT id, run_id, step, stage, item, round, at, outcome, status,
    excerpt, note, ms FROM group_attempts;

CREATE TABLE group_approvals_new (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES group_runs_new(id),
    step       INTEGER NOT NULL,
    stage      TEXT NOT NULL CHECK (stage IN ('before', 'after', 'recheck')),
    item       INTEGER NOT NULL,
    round      INTEGER,
    approved   INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    reason     TEXT NOT NULL
);
INSERT INTO group_approvals_new SELECT id, run_id, step, stage, item, round, approved, decided_by,
    decided_at, reason FROM group_approvals;

DROP TABLE group_approvals;
DROP TABLE group_attempts;
DROP TABLE group_run_operations;
DROP TABLE group_runs;
ALTER TABLE group_runs_new RENAME TO group_runs;
ALTER TABLE group_run_operations_new RENAME TO group_run_operations;
ALTER TABLE group_attempts_new RENAME TO group_attempts;
ALTER TABLE group_approvals_new RENAME TO group_approvals;
CREATE INDEX group_runs_state ON group_runs (state);
CREATE INDEX group_attempts_run ON group_attempts (run_id, step, stage, item);
CREATE UNIQUE INDEX group_approvals_unread ON group_approvals (run_id, step, stage, item)
    WHERE round IS NULL;
