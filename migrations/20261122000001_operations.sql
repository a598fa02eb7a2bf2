-- Operations (one migrate or snapshot each) and their events.
CREATE TABLE operations (
    id           TEXT PRIMARY KEY,
    action       TEXT NOT NULL CHECK (action IN ('migrate', 'snapshot')),
    source_grid  TEXT NOT NULL,
    source_app   TEXT NOT NULL,
    target_grid  TEXT NOT NULL,
    target_app   TEXT NOT NULL,
    phase        TEXT NOT NULL,
    -- NULL while the operation runs; then done, failed or cancelled.
    outcome      TEXT CHECK (outcome IN ('done', 'failed', 'cancelled')),
    reason       TEXT,
    bytes_done   INTEGER NOT NULL DEFAULT 0,
    bytes_total  INTEGER NOT NULL DEFAULT 0,
    created_by   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX operations_created ON operations (created_at DESC);

CREATE TABLE operation_events (
    op_id  TEXT NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    at     TEXT NOT NULL,
    -- phase | log | progress | state
    kind   TEXT NOT NULL,
    -- console | helper | source | target
    source TEXT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (op_id, seq)
);
