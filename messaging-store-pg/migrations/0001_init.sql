-- Version 1. Runs with search_path set to the library's own schema (default `messaging`),
-- so names are unqualified. Timestamps are integer milliseconds since the Unix epoch (UTC):
-- exactly the values the library creates, with no rounding on the way back.

CREATE TABLE conversations (
    id              uuid PRIMARY KEY,
    user_lo         uuid NOT NULL,
    user_hi         uuid NOT NULL,
    -- '' stands for "no context", so two missing contexts collide in the unique index.
    context         text NOT NULL,
    created_at      bigint NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at bigint,
    UNIQUE (user_lo, user_hi, context)
);

CREATE TABLE members (
    user_id         uuid NOT NULL,
    conversation_id uuid NOT NULL,
    peer_id         uuid NOT NULL,
    read_seq        bigint NOT NULL DEFAULT 0,
    delivered_seq   bigint NOT NULL DEFAULT 0,
    activity_at     bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

CREATE INDEX members_activity ON members (user_id, activity_at DESC, conversation_id DESC);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL,
    seq             bigint NOT NULL,
    sender_id       uuid NOT NULL,
    body            text NOT NULL,
    metadata        jsonb,
    client_msg_id   text,
    created_at      bigint NOT NULL,
    edited_at       bigint,
    deleted         boolean NOT NULL DEFAULT false,
    -- Built from messaging_core::search::index_text, the words both stores agree on.
    words           tsvector NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
CREATE INDEX messages_words ON messages USING gin (words);

-- The log. Positions come from log_head, updated as the last statement of each writing
-- transaction: its row lock orders commits, so the committed log is always 1..head.
-- kind: 1 conversation.created, 2 message.created, 3 message.edited, 4 message.deleted,
-- 5 receipt.read, 6 receipt.delivered.
CREATE TABLE events (
    position        bigint PRIMARY KEY,
    kind            smallint NOT NULL,
    conversation_id uuid NOT NULL,
    message_id      uuid,
    user_id         uuid,
    seq             bigint,
    audience        uuid[] NOT NULL
);

CREATE TABLE event_audience (
    user_id  uuid NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (user_id, position)
);

CREATE TABLE log_head (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    position bigint NOT NULL
);

INSERT INTO log_head (id, position) VALUES (true, 0);

CREATE TABLE blocks (
    blocker uuid NOT NULL,
    blocked uuid NOT NULL,
    PRIMARY KEY (blocker, blocked)
);

CREATE TABLE last_seen (
    user_id uuid PRIMARY KEY,
    at      bigint NOT NULL
);
