-- franchise's tables in PostgreSQL: the anime, their relations, the imports that fetch them,
-- the AniList budget every process shares, and the live processes. The same shape as the
-- SQLite store (migrations/sqlite); apalis-postgres keeps its own tables in schema `apalis`.
-- Natural keys: anime(id), anime_relation(anime_id, related_id), import_item(import_id, anime_id).
-- Timestamps are Unix milliseconds.

CREATE TABLE anime (
    id            BIGINT  PRIMARY KEY,
    id_mal        BIGINT,
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
    fetched_at    BIGINT  NOT NULL
);

-- Ids AniList left out of an answer (unknown, deleted or adult), remembered like a stored
-- anime so a re-import within the freshness TTL does not ask for them again.
CREATE TABLE anime_missing (
    id         BIGINT PRIMARY KEY,
    checked_at BIGINT NOT NULL
);

-- One row per ordered pair. `derived` marks an inverse computed from the other side's edge;
-- an observed row always replaces a derived one, never the reverse.
CREATE TABLE anime_relation (
    anime_id       BIGINT  NOT NULL,
    related_id     BIGINT  NOT NULL,
    relation_type  TEXT    NOT NULL,
    derived        BOOLEAN NOT NULL,
    related_kind   TEXT    NOT NULL,
    related_format TEXT,
    related_status TEXT,
    related_title  TEXT,
    edge_id        BIGINT,
    -- The flush that last wrote the row: rows of a refetched anime that this flush did not
    -- write are edges AniList no longer reports, and are deleted.
    written_gen    BIGINT  NOT NULL,
    PRIMARY KEY (anime_id, related_id)
);
CREATE INDEX anime_relation_derived_by_related ON anime_relation (related_id) WHERE derived;

-- A flush's generation: larger than any earlier flush's, whichever process wrote it.
CREATE SEQUENCE flush_generation;

CREATE TABLE import (
    id              BIGSERIAL PRIMARY KEY,
    root_id         BIGINT    NOT NULL,
    max_depth       BIGINT    NOT NULL,
    max_items       BIGINT    NOT NULL,
    followed        TEXT      NOT NULL,
    force_refresh   BOOLEAN   NOT NULL,
    item_count      BIGINT    NOT NULL DEFAULT 0,
    done_count      BIGINT    NOT NULL DEFAULT 0,
    failed_count    BIGINT    NOT NULL DEFAULT 0,
    cancelled_count BIGINT    NOT NULL DEFAULT 0,
    unwalked        BIGINT    NOT NULL DEFAULT 0,
    created_at      BIGINT    NOT NULL,
    finished_at     BIGINT,
    cancelled_at    BIGINT
);

CREATE TABLE import_item (
    import_id  BIGINT  NOT NULL REFERENCES import (id) ON DELETE CASCADE,
    anime_id   BIGINT  NOT NULL,
    depth      BIGINT  NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'done', 'failed', 'cancelled')),
    reason     TEXT,
    updated_at BIGINT  NOT NULL,
    round      BIGINT  NOT NULL DEFAULT 0,
    -- Times the anime was sent to AniList for this item: a job that keeps killing its worker
    -- is failed once this passes a bound, instead of looping.
    fetches    BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (import_id, anime_id)
);
CREATE INDEX import_item_queued ON import_item (import_id) WHERE state = 'queued';
CREATE INDEX import_item_failed ON import_item (import_id) WHERE state = 'failed';

-- The AniList budget every process on this database shares: the send times of the current
-- window, and one row of state. A decision locks the row (FOR UPDATE) for one short
-- transaction; nobody holds a connection while waiting for a slot.
CREATE TABLE budget_send (
    sent_at BIGINT NOT NULL
);
CREATE INDEX budget_send_at ON budget_send (sent_at);

CREATE TABLE budget_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    parked_until        BIGINT,
    parked_reason       TEXT,
    consecutive_outages BIGINT NOT NULL DEFAULT 0,
    server_limit        BIGINT,
    server_remaining    BIGINT,
    server_at           BIGINT,
    server_sent_since   BIGINT NOT NULL DEFAULT 0,
    last_sent_at        BIGINT,
    requests_made       BIGINT NOT NULL DEFAULT 0,
    rate_limited_seen   BIGINT NOT NULL DEFAULT 0,
    outages_seen        BIGINT NOT NULL DEFAULT 0
);
INSERT INTO budget_state (id) VALUES (1);

-- Live franchise processes: each running worker (or server) refreshes its row every second.
CREATE TABLE worker_process (
    id           TEXT   PRIMARY KEY,
    host         TEXT   NOT NULL,
    pid          BIGINT NOT NULL,
    role         TEXT   NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    api_url      TEXT,
    queue        TEXT
);

-- Kept for symmetry with the embedded store; PostgreSQL processes push their own jobs.
CREATE TABLE handoff (
    seq       BIGSERIAL PRIMARY KEY,
    import_id BIGINT NOT NULL
);
