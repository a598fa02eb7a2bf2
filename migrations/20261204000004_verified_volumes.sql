-- What the helper verified, a row a volume: the fingerprint of the side
-- that stays stopped (the source after a migrate, the target after a
-- snapshot), typed — the algorithm of the block digests, the block size
-- and the BLAKE3 over them — so that it is read as a value, never split
-- out of a string again. Filled from the stored `verified` events of
-- earlier operations.
-- No ON DELETE CASCADE: operation rows are never deleted, and a rebuild of
-- `operations` that dropped it would silently empty this table; without
-- it, such a drop fails instead.
CREATE TABLE verified_volumes (
    op_id      TEXT NOT NULL REFERENCES operations(id),
    volume     TEXT NOT NULL,
    algorithm  TEXT NOT NULL CHECK (algorithm IN ('blake3', 'xxh3')),
    block_size INTEGER NOT NULL CHECK (block_size > 0),
    hex        TEXT NOT NULL CHECK (length(hex) = 64),
    PRIMARY KEY (op_id, volume)
);

INSERT OR REPLACE INTO verified_volumes (op_id, volume, algorithm, block_size, hex)
SELECT op_id, volume,
       substr(digest, 8, instr(digest, ':') - 8),
       CAST(substr(rest, 1, instr(rest, ':') - 1) AS INTEGER),
       substr(rest, instr(rest, ':') + 1)
FROM (
    SELECT op_id, seq,
           json_extract(data, '$.verified.volume') AS volume,
           json_extract(data, '$.verified.digest') AS digest,
           substr(json_extract(data, '$.verified.digest'),
                  instr(json_extract(data, '$.verified.digest'), ':') + 1) AS rest
    FROM operation_events
    WHERE source = 'helper' AND json_extract(data, '$.verified') IS NOT NULL
)
WHERE digest LIKE 'blocks-%:%:%'
  AND substr(digest, 8, instr(digest, ':') - 8) IN ('blake3', 'xxh3')
  AND length(substr(rest, instr(rest, ':') + 1)) = 64
  AND CAST(substr(rest, 1, instr(rest, ':') - 1) AS INTEGER) > 0
ORDER BY seq;
