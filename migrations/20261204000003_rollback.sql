-- Rollbacks: `rollback` joins the actions (a migrated app moved back into
-- the source its migrate kept), and `rollback_of` links a rollback to the
-- migrate it undoes. SQLite cannot change a CHECK constraint, so the
-- operations table is rebuilt as in 20261124000001 (its events move to a
-- new table first, which then follows the renamed operations).
CREATE TABLE operations_new (
    id           TEXT PRIMARY KEY,
    action       TEXT NOT NULL CHECK (action IN ('migrate', 'snapshot', 'rollback')),
    source_grid  TEXT NOT NULL,
    source_app   TEXT NOT NULL,
    target_grid  TEXT NOT NULL,
    target_app   TEXT NOT NULL,
    phase        TEXT NOT NULL,
    outcome      TEXT CHECK (outcome IN ('done', 'failed', 'cancelled', 'elsewhere')),
    reason       TEXT,
    bytes_done   INTEGER NOT NULL DEFAULT 0,
    bytes_total  INTEGER NOT NULL DEFAULT 0,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT,
    bytes_copied INTEGER NOT NULL DEFAULT 0,
    copy_rate    INTEGER NOT NULL DEFAULT 0,
    downtime_ms  INTEGER,
    warm         INTEGER NOT NULL DEFAULT 0,
    cutover      TEXT,
    cutover_at   TEXT,
    passes       TEXT NOT NULL DEFAULT '[]',
    stop_timeout_secs  INTEGER NOT NULL DEFAULT 120,
    source_stop_forced INTEGER,
    source_stop_ms     INTEGER,
    source_log_since   INTEGER,
    -- The migrate this rollback undoes (a rollback's only).
    rollback_of  TEXT REFERENCES operations_new (id),
    CHECK ((action = 'rollback') = (rollback_of IS NOT NULL))
);
INSERT INTO operations_new
  (id, action, source_grid, source_app, target_grid, target_app, phase, outcome, reason,
   bytes_done, bytes_total, created_by, created_at, updated_at, finished_at, bytes_copied,
   copy_rate, downtime_ms, warm, cutover, cutover_at, passes, stop_timeout_secs,
   source_stop_forced, source_stop_ms, source_log_since)
SELECT id, action, source_grid, source_app, target_grid, target_app, phase, outcome, reason,
   bytes_done, bytes_total, created_by, created_at, updated_at, finished_at, bytes_copied,
   copy_rate, downtime_ms, warm, cutover, cutover_at, passes, stop_timeout_secs,
   source_stop_forced, source_stop_ms, source_log_since
  FROM operations;

CREATE TABLE operation_events_new (
    op_id   TEXT NOT NULL REFERENCES operations_new (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    source  TEXT NOT NULL,
    data    TEXT NOT NULL,
    app_seq INTEGER,
    final   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (op_id, seq)
);
INSERT INTO operation_events_new (op_id, seq, at, kind, source, data, app_seq, final)
SELECT op_id, seq, at, kind, source, data, app_seq, final FROM operation_events;

DROP TABLE operation_events;
DROP TABLE operations;
ALTER TABLE operations_new RENAME TO operations;
ALTER TABLE operation_events_new RENAME TO operation_events;
CREATE INDEX operations_created ON operations (created_at DESC);
CREATE INDEX operations_rollback_of ON operations (rollback_of) WHERE rollback_of IS NOT NULL;
CREATE INDEX operation_events_final ON operation_events (op_id) WHERE final = 1;
