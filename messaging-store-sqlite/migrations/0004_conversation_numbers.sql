-- Version 4: every conversation gets a small integer, `num`, unique and never reused, so
-- the search index can give each message the FTS rowid `num << 32 | seq`. A conversation's
-- messages are then one rowid range in every word's posting list: a search seeks into the
-- range of each of the caller's conversations instead of reading every message of the
-- database that has the word (the work follows the caller's data), while the index keeps
-- one term per word (one term per conversation and word cost the indexer 3x the CPU,
-- measured 2026-12-05, see docs/benchmarks.md).

ALTER TABLE conversations ADD COLUMN num INTEGER;

UPDATE conversations SET num = n.r
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS r FROM conversations) AS n
WHERE n.id = conversations.id;

CREATE UNIQUE INDEX conversations_num ON conversations (num);
