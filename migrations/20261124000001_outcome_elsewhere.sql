-- A console in a snapshot copy records the operation that made it as
-- `elsewhere`: its outcome belongs to the console in the source app.
-- SQLite cannot change a CHECK constraint, so both tables are rebuilt.
-- Migrations run in a transaction, where foreign keys cannot be turned
-- off, and dropping `operations` would cascade to the events: the events
-- move to a new table first, which then follows the renamed operations.
CREATE TABLE operations_new (
    id           TEXT PRIMARY KEY,
    action       TEXT NOT NULL CHECK (action IN ('migrate', 'snapshot')),
    source_grid  TEXT NOT NULL,
    source_app   TEXT NOT NULL,
    target_grid  TEXT NOT NULL,
    target_app   TEXT NOT NULL,
    phase        TEXT NOT NULL,
    -- NULL while the operation runs; then done, failed, cancelled or elsewhere.
    outcome      TEXT CHECK (outcome IN ('done', 'failed', 'cancelled', 'elsewhere')),
    reason       TEXT,
    bytes_done   INTEGER NOT NULL DEFAULT 0,
    bytes_total  INTEGER NOT NULL DEFAULT 0,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT,
    -- Bytes actually moved, and the copy rate of the last progress sample that moved any.
    bytes_copied INTEGER NOT NULL DEFAULT 0,
    copy_rate    INTEGER NOT NULL DEFAULT 0
);
INSERT INTO operations_new
  (id, action, source_grid, source_app, target_grid, target_app, phase, outcome, reason,
   bytes_done, bytes_total, created_by, created_at, updated_at, finished_at, bytes_copied, copy_rate)
SELECT id, action, source_grid, source_app, target_grid, target_app, phase, outcome, reason,
   bytes_done, bytes_total, created_by, created_at, updated_at, finished_at, bytes_copied, copy_rate
  FROM operations;

CREATE TABLE operation_events_new (
    op_id   TEXT NOT NULL REFERENCES operations_new (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      TEXT NOT NULL,
    -- phase | log | progress | state
    kind    TEXT NOT NULL,
    -- console | helper | source | target
    source  TEXT NOT NULL,
    data    TEXT NOT NULL,
    -- The line's number in its app's log (helper, source, target); NULL for the console's own.
    app_seq INTEGER,
    -- 1 for the outcome's phase event: an operation's last event.
    final   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (op_id, seq)
);
INSERT INTO operation_events_new (op_id, seq, at, kind, source, data, app_seq, final)
SELECT op_id, seq, at, kind, source, data, app_seq, final FROM operation_events;

DROP TABLE operation_events;
DROP TABLE operations;
-- Renaming rewrites the events' reference to the new name.
ALTER TABLE operations_new RENAME TO operations;
ALTER TABLE operation_events_new RENAME TO operation_events;
CREATE INDEX operations_created ON operations (created_at DESC);
CREATE INDEX operation_events_final ON operation_events (op_id) WHERE final = 1;
