-- Version 3: the conversation list's index holds each member's second of activity (its
-- `activity_bucket`), not the exact time, so an append moves it at most once a second per
-- conversation. Before, every message rewrote both member rows and moved both of their
-- index entries: two more scattered pages per message in every commit (see
-- docs/benchmarks.md).
--
-- The exact order comes from the conversation itself, COALESCE(last_message_at,
-- created_at), which `members.activity_at` only duplicated: a page is read from the index
-- at and below the keyset's bucket, sorted by the exact time within a bucket.

DROP INDEX members_activity;

ALTER TABLE members ADD COLUMN activity_bucket INTEGER NOT NULL DEFAULT 0;

-- Floor division by 1,000 ms, as the store computes it (`activity_bucket` in src/write.rs).
UPDATE members SET activity_bucket = CASE WHEN activity_at >= 0 THEN activity_at / 1000
                                          ELSE (activity_at - 999) / 1000 END;

ALTER TABLE members DROP COLUMN activity_at;

CREATE INDEX members_activity ON members (user_id, activity_bucket DESC, conversation_id DESC);
