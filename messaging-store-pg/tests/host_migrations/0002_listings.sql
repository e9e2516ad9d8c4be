-- The host's second migration, with a seed row: re-running it would fail on the unique
-- email, so a second run of the migrator must skip it.
CREATE TABLE listings (
    id       bigserial PRIMARY KEY,
    owner_id bigint NOT NULL REFERENCES users (id),
    title    text NOT NULL
);

INSERT INTO users (email) VALUES ('seed@example.invalid');
INSERT INTO listings (owner_id, title)
    SELECT id, 'A seeded listing' FROM users WHERE email = 'seed@example.invalid';
