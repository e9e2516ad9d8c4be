-- Version 5: richer messages, reactions, member settings, receipt times, conversation
-- metadata and listing by context (PROTOCOL.md v1.1).
-- `attachments`: the message's files as a JSON array of `messaging_core::model::Attachment`
-- (`[]` when none, and erased with the body on delete). `reply_to_seq`: the seq of the
-- message of the same conversation it replies to, checked by the append (not a foreign
-- key: a seq is only unique within its conversation, and the check needs no index beyond
-- `conversations.last_seq`, seqs running from 1 without gaps). `reactions`: the summary of
-- the message's reactions, a JSON array of `Reaction` (emoji and user ids, in order),
-- rewritten by the react write under the message's row lock.
--
-- System messages (no sender) keep `sender_id` NOT NULL: they hold the nil UUID, which no
-- user has, so unread counting stays `sender_id <> me` (a system message is unread for
-- both members) and the `(conversation_id, sender_id, client_msg_id)` index gives the
-- host's keys their own space per conversation. The store's codec maps nil to `None`.
--
-- Constant defaults: PostgreSQL adds these columns without rewriting the table, and the
-- rows already there read back as `[]`, NULL, `[]`.

ALTER TABLE messages
    ADD COLUMN attachments  jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN reply_to_seq bigint,
    ADD COLUMN reactions    jsonb NOT NULL DEFAULT '[]';

-- Member settings, receipt times, conversation metadata, listing by context, and the log
-- rows of the new events (issue 14). Every column is nullable or has a constant default,
-- so adding it rewrites no table; rows already there read as not muted, not archived, no
-- receipt times, no metadata.

-- The host's JSON object (`Conversation.metadata`), replaced by `set_metadata`.
ALTER TABLE conversations ADD COLUMN metadata jsonb;

-- A member's own settings and when each marker last moved (ms). The members row takes no
-- part in an append, and none of these is indexed: mark and mute stay HOT updates.
ALTER TABLE members
    ADD COLUMN muted_until  bigint,
    ADD COLUMN read_at      bigint,
    ADD COLUMN delivered_at bigint;

-- `archived` lives with the list order, in `activity`: the list index needs it right after
-- the user, so a page of one kind never reads the other kind's rows. An append never
-- changes it, so the per-message update stays HOT (migration 0003).
--
-- `context` is the conversation's context on its lower member's row only (NULL on the
-- other row and when it has none): one entry per conversation in `activity_context`, the
-- index of `conversations_by_context`. Its key is (context, bucket), not the exact time,
-- for the reason `activity_order` is (0003): an append rewrites the entry only when the
-- minute changes, and that update is not HOT anyway (it moves `activity_order`'s entry).
-- Conversations without a context have no entry at all (partial index).
ALTER TABLE activity
    ADD COLUMN archived boolean NOT NULL DEFAULT false,
    ADD COLUMN context  text;

UPDATE activity a SET context = c.context
FROM conversations c
WHERE c.id = a.conversation_id AND a.user_id = c.user_lo AND c.context <> '';

DROP INDEX activity_order;
CREATE INDEX activity_order ON activity (user_id, archived, bucket DESC);
CREATE INDEX activity_context ON activity (context, bucket DESC) WHERE context IS NOT NULL;

-- One member's row is looked up by the primary key (user_id, conversation_id): the
-- append's activity update, a summary, the settings. In a generic plan the planner
-- estimates `user_id = $1` at rows / n_distinct(user_id); where most users have a single
-- conversation that is one row, the primary key's estimate, and the tie may go to
-- `activity_order`, which then reads a busy user's whole range for one row (seen: 3,000
-- rows read by one append's update). ANALYZE takes this value instead of its own count:
-- two rows per user, enough to keep the primary key ahead for lookups of one row, and low
-- enough that the lists' generic plans keep reading their index in order (at ten rows per
-- user a user's list was read whole through a bitmap scan).
ALTER TABLE activity ALTER COLUMN user_id SET (n_distinct = -0.5);

-- What an event says as of the event, beside the objects it names (read in their current
-- state): `at`, a receipt's time; `emoji`, a reaction's (its user is `user_id`, its state
-- the kind). New kinds: 7 reaction.added, 8 reaction.removed (`message_id`, `user_id`,
-- `emoji`), 9 member.updated (`user_id`: the member; the settings are read current),
-- 10 conversation.updated (the conversation, read current).
ALTER TABLE events
    ADD COLUMN at    bigint,
    ADD COLUMN emoji text;

-- Receipts logged before this version kept no time. They read back with the send time of
-- the message they mark: the earliest the marker can have moved there.
UPDATE events e SET at = m.created_at
FROM messages m
WHERE e.kind IN (5, 6) AND m.conversation_id = e.conversation_id AND m.seq = e.seq;
