-- Version 2: the full-text index moves to its own file beside the database
-- (`<database>-search`), written by its own thread from the event log; see
-- `src/search_index.rs`. That file is derived data: rebuilt from the log when it is
-- missing, or when it belongs to another database, which `instance` tells.

DROP TABLE messages_fts;

INSERT INTO meta (key, value) VALUES ('instance', random());
