-- How long the app was down: from the source leaving `running` until the
-- target runs (migrate) or the source runs again (snapshot), as the helper
-- measured it. NULL until known.
ALTER TABLE operations ADD COLUMN downtime_ms INTEGER;
