-- Version 7: durable consumers of the whole log (the server's webhooks, a host's own
-- workers): each event keeps who caused it and, for a delete, what the message held.
--
-- `events.actor`: the user who caused the event (the sender, editor, deleter, reader,
-- reactor, opener, the member whose settings changed); NULL for the host's calls (system
-- messages, service opens, moderation and account-deletion deletes, metadata updates).
-- `events.removed_attachments`: for `message.deleted`, the JSON array of the attachments
-- the message had before the delete erased them; NULL when it had none, and on every
-- other kind. Nullable columns without a default: adding them rewrites no row, and the
-- events logged before this version read with no actor and no removed attachments.

ALTER TABLE events ADD COLUMN actor BLOB;
ALTER TABLE events ADD COLUMN removed_attachments TEXT;

-- One row per consumer name: the position it has handled (only ever moved forward) and
-- its lease: who holds it (NULL once released) until when (ms, the process's clock: one
-- process writes a SQLite file). A new table: nothing else is touched.

CREATE TABLE consumers (
    name        TEXT PRIMARY KEY,
    position    INTEGER NOT NULL,
    holder      BLOB,
    lease_until INTEGER
) WITHOUT ROWID;
