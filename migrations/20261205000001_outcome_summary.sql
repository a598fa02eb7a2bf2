-- The evidence behind a finished operation's summary. `cutover_report`:
-- why a warm operation cut over and after which pass (JSON, the helper's
-- `CutoverReport`), NULL until it says (cold operations, older helpers).
-- `settled`: what the console did to settle it, in order (JSON array of
-- `Settled`: helper_removed, source_started, source_destroyed,
-- source_kept, target_removed).
ALTER TABLE operations ADD COLUMN cutover_report TEXT;
ALTER TABLE operations ADD COLUMN settled TEXT NOT NULL DEFAULT '[]';
