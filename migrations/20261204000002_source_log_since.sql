-- The source app's last log line when the console provisioned the helper:
-- the operation stores the source's lines after it (the helper may stop
-- the source before the console first follows its log). NULL when the
-- source's log could not be read then (its lines are stored from when the
-- console first reads them).
ALTER TABLE operations ADD COLUMN source_log_since INTEGER;
