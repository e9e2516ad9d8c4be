-- Version 2: presence shared by every instance on the database.
-- Each instance keeps a heartbeat row; a user is online while some instance whose
-- heartbeat is fresh holds a presence row for them. A row per (user, instance), not per
-- session: an instance counts its own sessions in memory and writes only when a user's
-- first session there opens or their last one closes.

CREATE TABLE instances (
    id           uuid PRIMARY KEY,
    heartbeat_at bigint NOT NULL
);

CREATE TABLE presence (
    user_id     uuid NOT NULL,
    instance_id uuid NOT NULL,
    PRIMARY KEY (user_id, instance_id)
);

CREATE INDEX presence_instance ON presence (instance_id);
