-- import_item keeps its rows in the order they were discovered (a rowid table) instead of
-- clustered by (import_id, anime_id). A walk settles items roughly in the order it found them,
-- so the pages a flush rewrites are neighbours: keyed by anime id, each of a flush's 250 items
-- dirtied a page of its own in the table and in the queued index (3.4 GB written to SQLite for
-- a 100,000-anime import). The (import_id, anime_id) key stays unique, through its own index.
CREATE TABLE import_item_new (
    import_id  INTEGER NOT NULL REFERENCES import (id) ON DELETE CASCADE,
    anime_id   INTEGER NOT NULL,
    depth      INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'done', 'failed', 'cancelled')),
    reason     TEXT,
    -- When the item last changed; for a queued item, when it was queued.
    updated_at INTEGER NOT NULL,
    round      INTEGER NOT NULL DEFAULT 0,
    -- Times the anime was sent to AniList for this item (see 20261201000001_fetch_count.sql).
    fetches    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (import_id, anime_id)
);
INSERT INTO import_item_new (import_id, anime_id, depth, state, reason, updated_at, round, fetches)
    SELECT import_id, anime_id, depth, state, reason, updated_at, round, fetches
    FROM import_item ORDER BY import_id, depth, anime_id;
DROP TABLE import_item;
ALTER TABLE import_item_new RENAME TO import_item;
CREATE INDEX import_item_queued ON import_item (state, import_id) WHERE state = 'queued';
CREATE INDEX import_item_failed ON import_item (import_id) WHERE state = 'failed';
