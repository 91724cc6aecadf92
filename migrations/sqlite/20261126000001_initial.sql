-- The anime, their relations, and the imports that fetch them.
-- Natural keys: anime(id), anime_relation(anime_id, related_id), import_item(import_id, anime_id).
-- Timestamps are Unix milliseconds.

CREATE TABLE anime (
    id            INTEGER PRIMARY KEY,
    id_mal        INTEGER,
    kind          TEXT    NOT NULL,
    title_romaji  TEXT,
    title_english TEXT,
    title_native  TEXT,
    format        TEXT,
    status        TEXT,
    episodes      INTEGER,
    season        TEXT,
    season_year   INTEGER,
    start_year    INTEGER,
    start_month   INTEGER,
    start_day     INTEGER,
    fetched_at    INTEGER NOT NULL
);

-- Ids AniList left out of an answer (unknown, deleted or adult), remembered like a stored
-- anime so a re-import within the freshness TTL does not ask for them again.
CREATE TABLE anime_missing (
    id         INTEGER PRIMARY KEY,
    checked_at INTEGER NOT NULL
);

-- One row per ordered pair. `derived` = 1 marks an inverse we computed from the other side's
-- edge; an observed row (derived = 0) always replaces a derived one, never the reverse.
-- The related_* columns describe the far end as the edge showed it, since it may be a manga
-- or an anime not fetched yet.
CREATE TABLE anime_relation (
    anime_id       INTEGER NOT NULL,
    related_id     INTEGER NOT NULL,
    relation_type  TEXT    NOT NULL,
    derived        INTEGER NOT NULL CHECK (derived IN (0, 1)),
    related_kind   TEXT    NOT NULL,
    related_format TEXT,
    related_status TEXT,
    related_title  TEXT,
    edge_id        INTEGER,
    -- The flush that last wrote the row: rows of a refetched anime that this flush did not
    -- write are edges AniList no longer reports, and are deleted.
    written_gen    INTEGER NOT NULL,
    PRIMARY KEY (anime_id, related_id)
) WITHOUT ROWID;

-- Finds the derived rows an anime's edges produced, to drop those it no longer has. Only
-- derived rows are looked up this way, so only they are indexed (fewer B-tree writes).
CREATE INDEX anime_relation_derived_by_related ON anime_relation (related_id) WHERE derived = 1;

CREATE TABLE import (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id       INTEGER NOT NULL,
    max_depth     INTEGER NOT NULL,
    max_items     INTEGER NOT NULL,
    -- Followed relation types, comma-separated (e.g. "SEQUEL,PREQUEL").
    followed      TEXT    NOT NULL,
    force_refresh INTEGER NOT NULL CHECK (force_refresh IN (0, 1)),
    -- How many items the import has, kept with every insert: the size cap reads it on every
    -- flush, and counting a 100,000-item import each time made big imports slow down.
    item_count    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);

-- Each anime an import has reached. `queued` waits for a fetch; `done` was fetched or found
-- fresh in the store (reason 'fresh'); `failed` carries why (not found, upstream error).
CREATE TABLE import_item (
    import_id  INTEGER NOT NULL REFERENCES import (id) ON DELETE CASCADE,
    anime_id   INTEGER NOT NULL,
    depth      INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'done', 'failed')),
    reason     TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (import_id, anime_id)
) WITHOUT ROWID;

CREATE INDEX import_item_queued ON import_item (state, import_id) WHERE state = 'queued';

-- What the process that runs the workers last said about itself, so `franchise status` in
-- another process can show the rate budget and queue it cannot open itself. One row.
CREATE TABLE runtime_status (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    pid        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    snapshot   TEXT    NOT NULL
);
