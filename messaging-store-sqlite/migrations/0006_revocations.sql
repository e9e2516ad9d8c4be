-- Version 6: revoked tokens (the service API's `POST /v1/service/users/{id}/revoke`).
-- One row per user ever revoked: the time (ms) of their latest revocation, only ever
-- moved later; every token of theirs issued at or before that second is refused. A new
-- table, so the migration touches no existing row.

CREATE TABLE revocations (
    user_id BLOB PRIMARY KEY,
    at      INTEGER NOT NULL
) WITHOUT ROWID;
