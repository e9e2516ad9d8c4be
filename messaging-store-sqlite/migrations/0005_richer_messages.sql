-- Version 5: richer messages, reactions, member settings, receipt times and
-- conversation metadata (protocol v1.1). Attachments and the reactions summary are
-- JSON arrays kept on the message row, '[]' when there are none (a tombstone's are
-- erased with its body); `reply_to_seq` is the seq of an earlier message of the same
-- conversation, NULL when the message is no reply. System messages keep `sender_id`
-- NOT NULL with the nil id (16 zero bytes, which no user has): unread stays
-- `sender_id <> me`, and the client_msg_id unique index gives them their own key space
-- per conversation. The store's codec maps the nil id to "no sender".
--
-- ADD COLUMN with a constant default rewrites no row: rows written before read the
-- default.

ALTER TABLE messages ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]';
ALTER TABLE messages ADD COLUMN reply_to_seq INTEGER;
ALTER TABLE messages ADD COLUMN reactions TEXT NOT NULL DEFAULT '[]';

-- Conversation metadata (the host's JSON object, up to 4 KiB) lives beside the
-- conversation, keyed by its `num`: every append rewrites the conversation's row
-- (`last_seq`, `last_message_at`), and a row carrying the metadata would rewrite its
-- overflow pages with it at every message. No row: no metadata.

CREATE TABLE conversation_metadata (
    num      INTEGER PRIMARY KEY,
    metadata TEXT NOT NULL
);

-- Each member's own state: when each marker last moved (NULL: never, or before version
-- 5), the mute (a time, kept after it passes: readers compare it with the time of the
-- read) and the archive flag.
--
-- `context` is the conversation's context on the row of its lower member only (NULL on
-- the other row and without context), so `members_context` holds one entry per
-- conversation with a context, keyed by the activity second every append already keeps
-- on this row: the listing of one context is one index range, and the append writes no
-- statement more (see NOTES.md).

ALTER TABLE members ADD COLUMN read_at INTEGER;
ALTER TABLE members ADD COLUMN delivered_at INTEGER;
ALTER TABLE members ADD COLUMN muted_until INTEGER;
ALTER TABLE members ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN context TEXT;

UPDATE members SET context = c.context
FROM conversations AS c
WHERE c.id = members.conversation_id AND c.user_lo = members.user_id AND c.context <> '';

-- A member's list is either the archived conversations or the others: `archived` right
-- after `user_id`, so a page is one range that never reads the other kind.
DROP INDEX members_activity;
CREATE INDEX members_activity
    ON members (user_id, archived, activity_bucket DESC, conversation_id DESC);

CREATE INDEX members_context
    ON members (context, activity_bucket DESC, conversation_id DESC)
    WHERE context IS NOT NULL;

-- What an event says as of itself, beside `user_id` and `seq`: a receipt's time (`at`)
-- and a reaction's emoji (its user is
-- `user_id`, put on or taken off is the kind).

ALTER TABLE events ADD COLUMN at INTEGER;
ALTER TABLE events ADD COLUMN emoji TEXT;

-- Receipts logged before version 5 kept no time: they get the send time of the message
-- they mark, the earliest moment the marker could have moved (the PostgreSQL store's rule
-- too, so a move between stores keeps them equal).
UPDATE events SET at = (
    SELECT m.created_at FROM messages AS m
    WHERE m.conversation_id = events.conversation_id AND m.seq = events.seq
) WHERE kind IN (5, 6) AND at IS NULL;
