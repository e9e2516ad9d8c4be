-- Version 1: conversations, members with markers, messages with FTS, the event log,
-- blocks and last-seen. Ids are 16-byte BLOBs, timestamps integer milliseconds (UTC).

CREATE TABLE conversations (
    id              BLOB PRIMARY KEY,
    user_lo         BLOB NOT NULL,
    user_hi         BLOB NOT NULL,
    -- '' stands for "no context" so that two missing contexts collide in the unique index.
    context         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    last_message_at INTEGER
) WITHOUT ROWID;

CREATE UNIQUE INDEX conversations_pair ON conversations (user_lo, user_hi, context);

-- One row per member: the markers and the conversation's activity, denormalized so that
-- a user's list is one keyset range scan of members_activity.
CREATE TABLE members (
    user_id         BLOB NOT NULL,
    conversation_id BLOB NOT NULL,
    peer_id         BLOB NOT NULL,
    read_seq        INTEGER NOT NULL DEFAULT 0,
    delivered_seq   INTEGER NOT NULL DEFAULT 0,
    activity_at     INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
) WITHOUT ROWID;

CREATE INDEX members_activity ON members (user_id, activity_at DESC, conversation_id DESC);

CREATE TABLE messages (
    pk              INTEGER PRIMARY KEY,
    id              BLOB NOT NULL,
    conversation_id BLOB NOT NULL,
    seq             INTEGER NOT NULL,
    sender_id       BLOB NOT NULL,
    body            TEXT NOT NULL,
    metadata        TEXT,
    client_msg_id   TEXT,
    created_at      INTEGER NOT NULL,
    edited_at       INTEGER,
    deleted         INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX messages_id ON messages (id);
CREATE UNIQUE INDEX messages_seq ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_client_msg_id ON messages (conversation_id, sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Contentless: the words live only in the index; rowid is messages.pk. Text is
-- pre-split by messaging_core::search so both stores share one definition of a word.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    words,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

-- kind: 1 conversation.created, 2 message.created, 3 message.edited, 4 message.deleted,
-- 5 receipt.read, 6 receipt.delivered. Message events point at the message row, so a read
-- of the log serves each message in its current state. `audience` is the recipients'
-- ids, 16 bytes each, concatenated: the durable record of who may see the event.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    kind            INTEGER NOT NULL,
    conversation_id BLOB NOT NULL,
    message_pk      INTEGER,
    user_id         BLOB,
    seq             INTEGER,
    audience        BLOB NOT NULL
);

-- Per-user index of the log for `sync`, derived from events.audience and maintained
-- behind the log in sorted bulk (see writer.rs): meta.audience_indexed_upto says how far.
CREATE TABLE event_audience (
    user_id  BLOB NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (user_id, position)
) WITHOUT ROWID;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO meta (key, value) VALUES ('audience_indexed_upto', 0);

CREATE TABLE blocks (
    blocker    BLOB NOT NULL,
    blocked    BLOB NOT NULL,
    PRIMARY KEY (blocker, blocked)
) WITHOUT ROWID;

CREATE TABLE last_seen (
    user_id BLOB PRIMARY KEY,
    at      INTEGER NOT NULL
) WITHOUT ROWID;
