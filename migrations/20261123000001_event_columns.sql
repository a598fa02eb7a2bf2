-- What the console looks events and operations up by, as columns rather
-- than paths into JSON payloads.
-- The line's number in its app's log (helper, source, target); NULL for the console's own.
ALTER TABLE operation_events ADD COLUMN app_seq INTEGER;
-- 1 for the outcome's phase event: an operation's last event.
ALTER TABLE operation_events ADD COLUMN final INTEGER NOT NULL DEFAULT 0;
UPDATE operation_events SET app_seq = json_extract(data, '$.seq') WHERE source <> 'console';
UPDATE operation_events SET final = 1
 WHERE kind = 'phase' AND json_extract(data, '$.phase') IN ('done', 'failed', 'cancelled');
CREATE INDEX operation_events_final ON operation_events (op_id) WHERE final = 1;

-- Bytes actually moved, and the copy rate of the last progress sample that moved any.
ALTER TABLE operations ADD COLUMN bytes_copied INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operations ADD COLUMN copy_rate INTEGER NOT NULL DEFAULT 0;
UPDATE operations SET
  bytes_copied = COALESCE((SELECT MAX(json_extract(e.data, '$.progress.copied')) FROM operation_events e
                            WHERE e.op_id = operations.id AND e.kind = 'progress'), 0),
  copy_rate = COALESCE((SELECT json_extract(e.data, '$.progress.rate_bytes_per_sec') FROM operation_events e
                         WHERE e.op_id = operations.id AND e.kind = 'progress'
                           AND json_extract(e.data, '$.progress.copied') > 0
                         ORDER BY e.seq DESC LIMIT 1), 0);
