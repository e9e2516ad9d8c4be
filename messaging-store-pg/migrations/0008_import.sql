-- Version 8: where an unfinished import stands (`messaging_core::transfer`, a move from
-- another store into this one).
--
-- At most one row: the `Checkpoint` of the move as JSON, written in the same transaction
-- as each page the move imports, so a move stopped anywhere resumes after the last page
-- that committed. The row exists from the move's first (empty) page until it finishes,
-- which sets `log_head` and deletes the row in one transaction: a store with the row is
-- an unfinished import, never one to serve from. A new table: upgrading touches no row.

CREATE TABLE import_checkpoint (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    checkpoint jsonb NOT NULL
);
