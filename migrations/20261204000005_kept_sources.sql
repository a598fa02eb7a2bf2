-- Sources kept by migrates that keep them (`keep_source`): the app stays
-- on its grid, stopped, until `until`; its fingerprint is the operation's
-- verified_volumes (what the helper verified of the stopped source).
-- `state`: kept, then released (destroyed by an operator or the deadline,
-- its fingerprint checked first) or rolled_back. `problem`: why the
-- deadline did not release it (a fingerprint that no longer matches, a
-- source that runs), said once and kept until it is resolved.
-- No ON DELETE CASCADE: operation rows are never deleted, and a rebuild of
-- `operations` that dropped it would silently empty this table; without
-- it, such a drop fails instead.
CREATE TABLE kept_sources (
    op_id    TEXT PRIMARY KEY REFERENCES operations(id),
    grid     TEXT NOT NULL,
    app      TEXT NOT NULL,
    kept_at  TEXT NOT NULL,
    until    TEXT NOT NULL,
    state    TEXT NOT NULL DEFAULT 'kept' CHECK (state IN ('kept', 'released', 'rolled_back')),
    ended_at TEXT,
    ended_by TEXT,
    reason   TEXT,
    problem  TEXT
);
CREATE INDEX kept_sources_state ON kept_sources (state, until);
