-- Version 5: richer messages (protocol v1.1). Attachments and the reactions summary are
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
