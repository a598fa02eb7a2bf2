-- The stop timeout the operation gave the source (seconds), and how the
-- helper's stop of the source went: by itself (0) or forced at the timeout
-- (1), and how long it took. NULL until the helper says; older helpers and
-- controllers never do.
ALTER TABLE operations ADD COLUMN stop_timeout_secs INTEGER NOT NULL DEFAULT 120;
ALTER TABLE operations ADD COLUMN source_stop_forced INTEGER;
ALTER TABLE operations ADD COLUMN source_stop_ms INTEGER;
