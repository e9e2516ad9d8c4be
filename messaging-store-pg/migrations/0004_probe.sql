-- Version 4: the row a health probe rewrites.
-- `PgStore::probe_commit` proves the store can commit by sending, through the writer's
-- queue, a change that updates this one row and logs no event: a real write in a real
-- transaction (so the commit waits for durability like any other), which no user can see.
-- A table of its own, so the probe locks nothing a mutation needs (`log_head` must stay
-- the last lock a writing transaction takes).

CREATE TABLE probe (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    at bigint NOT NULL
);

INSERT INTO probe (id, at) VALUES (true, 0);
