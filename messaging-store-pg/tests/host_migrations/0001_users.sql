-- A fictional host application's first migration, applied by its own sqlx migrator on a
-- connection with the default search_path: the unqualified name lands in `public`.
CREATE TABLE users (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
