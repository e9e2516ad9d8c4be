-- Version 7: durable consumers of the whole log (the server's webhooks, a host's own
-- workers): each event keeps who caused it and, for a delete, what the message held.
--
-- `events.actor`: the user who caused the event (the sender, editor, deleter, reader,
-- reactor, opener, the member whose settings changed); NULL for the host's calls (system
-- messages, service opens, moderation and account-deletion deletes, metadata updates).
-- `events.removed_attachments`: for `message.deleted`, the attachments the message had
-- before the delete erased them (a JSON array of `Attachment`); NULL when it had none,
-- and on every other kind. Nullable without a default: adding them rewrites no row, and
-- the events logged before this version read with no actor and no removed attachments.

ALTER TABLE events
    ADD COLUMN actor               uuid,
    ADD COLUMN removed_attachments jsonb;

-- One row per consumer name: the position it has handled (only ever moved forward) and
-- its lease: who holds it (NULL once released) until when. `lease_until` is the database
-- server's clock (`clock_timestamp()` in the statements that claim and renew), never an
-- instance's: instances whose clocks disagree never both hold one. A new table: nothing
-- else is touched.

CREATE TABLE consumers (
    name        text PRIMARY KEY,
    position    bigint NOT NULL,
    holder      uuid,
    lease_until timestamptz
);
