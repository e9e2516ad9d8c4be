-- Version 5: richer messages (PROTOCOL.md v1.1).
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
