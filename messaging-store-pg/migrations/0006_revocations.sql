-- Version 6: revoked tokens (the service API's `POST /v1/service/users/{id}/revoke`).
-- One row per user ever revoked: the time (ms) of their latest revocation, only ever
-- moved later (the writer's upsert keeps the greater); every token of theirs issued at or
-- before that second is refused. Read by primary key, and only on a cache miss
-- (`src/revocations.rs`). A new table: the migration touches no existing row.

CREATE TABLE revocations (
    user_id uuid PRIMARY KEY,
    at      bigint NOT NULL
);
