-- Version 3. Each member's last activity moves out of `members` into a narrow table whose
-- per-message update is a HOT update (no index entry written), the largest cost of an
-- append before (see docs/benchmarks.md, "PostgreSQL append profile").
--
-- The list order is (at DESC, conversation_id DESC). Indexing `at` itself would make every
-- update write new index entries; the index holds the minute of the activity instead
-- (`bucket`), which changes at most once a minute per conversation (other updates stay
-- HOT), and a page is read from the index range below the keyset's minute, sorted by the
-- exact `at`.

-- The list index's coarse key for an activity time (ms): its minute. IMMUTABLE, so it can
-- compute the generated column and be used in the list query's range.
CREATE FUNCTION activity_bucket(at bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN at / 60000;

CREATE TABLE activity (
    user_id         uuid NOT NULL,
    conversation_id uuid NOT NULL,
    -- The conversation's last message, else its creation (ms).
    at              bigint NOT NULL,
    bucket          bigint NOT NULL GENERATED ALWAYS AS (activity_bucket(at)) STORED,
    PRIMARY KEY (user_id, conversation_id)
) WITH (fillfactor = 50); -- room on each page for the next version of its rows (HOT)

CREATE INDEX activity_order ON activity (user_id, bucket DESC);

INSERT INTO activity (user_id, conversation_id, at)
SELECT user_id, conversation_id, activity_at FROM members;

DROP INDEX members_activity;
ALTER TABLE members DROP COLUMN activity_at;
