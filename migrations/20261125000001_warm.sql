-- Warm operations: copied pass after pass while the source ran, then cut
-- over (`cutover`: auto, manual or scheduled at `cutover_at`). `passes` is
-- the JSON list of the passes that ended, as the helper reported them.
ALTER TABLE operations ADD COLUMN warm INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN cutover TEXT;
ALTER TABLE operations ADD COLUMN cutover_at TEXT;
ALTER TABLE operations ADD COLUMN passes TEXT NOT NULL DEFAULT '[]';
