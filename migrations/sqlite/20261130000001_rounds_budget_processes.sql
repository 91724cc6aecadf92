-- Cancel/retry, caps, job rounds, the shared AniList budget and live processes.

-- Import items gain a `cancelled` state and a `round`: the number of the queue job that
-- fetches the item, raised each time the item is queued again so the new job never collides
-- with the old one. SQLite cannot alter a CHECK constraint, so the table is rebuilt.
CREATE TABLE import_item_new (
    import_id  INTEGER NOT NULL REFERENCES import (id) ON DELETE CASCADE,
    anime_id   INTEGER NOT NULL,
    depth      INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('queued', 'done', 'failed', 'cancelled')),
    reason     TEXT,
    -- When the item last changed; for a queued item, when it was queued.
    updated_at INTEGER NOT NULL,
    round      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (import_id, anime_id)
) WITHOUT ROWID;
INSERT INTO import_item_new (import_id, anime_id, depth, state, reason, updated_at, round)
    SELECT import_id, anime_id, depth, state, reason, updated_at, 0 FROM import_item;
DROP TABLE import_item;
ALTER TABLE import_item_new RENAME TO import_item;
CREATE INDEX import_item_queued ON import_item (state, import_id) WHERE state = 'queued';
CREATE INDEX import_item_failed ON import_item (import_id) WHERE state = 'failed';

-- Counters kept with every item write, so progress is read in O(1) per import, and what the
-- caps left out. `item_count` (existing) counts every item.
ALTER TABLE import ADD COLUMN done_count      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE import ADD COLUMN failed_count    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE import ADD COLUMN cancelled_count INTEGER NOT NULL DEFAULT 0;
-- Followed relations a depth or size cap left unwalked.
ALTER TABLE import ADD COLUMN unwalked        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE import ADD COLUMN cancelled_at    INTEGER;
UPDATE import SET
    item_count      = (SELECT COUNT(*) FROM import_item it WHERE it.import_id = import.id),
    done_count      = (SELECT COUNT(*) FROM import_item it
                       WHERE it.import_id = import.id AND it.state = 'done'),
    failed_count    = (SELECT COUNT(*) FROM import_item it
                       WHERE it.import_id = import.id AND it.state = 'failed');

-- The AniList budget every process on this data dir shares: the send times of the current
-- window, and one row of state (a ban's end, the server's own count, counters).
CREATE TABLE budget_send (
    sent_at INTEGER NOT NULL
);
CREATE INDEX budget_send_at ON budget_send (sent_at);

CREATE TABLE budget_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    parked_until        INTEGER,
    parked_reason       TEXT,
    consecutive_outages INTEGER NOT NULL DEFAULT 0,
    -- The server's limit, if it admitted to less than configured.
    server_limit        INTEGER,
    -- The server's X-RateLimit-Remaining at server_at, and our sends since.
    server_remaining    INTEGER,
    server_at           INTEGER,
    server_sent_since   INTEGER NOT NULL DEFAULT 0,
    last_sent_at        INTEGER,
    requests_made       INTEGER NOT NULL DEFAULT 0,
    rate_limited_seen   INTEGER NOT NULL DEFAULT 0,
    outages_seen        INTEGER NOT NULL DEFAULT 0
);
INSERT INTO budget_state (id) VALUES (1);

-- Live franchise processes: each running worker (or server) refreshes its row every second.
-- Replaces runtime_status, which held only the one queue owner.
DROP TABLE runtime_status;
CREATE TABLE worker_process (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    role         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    api_url      TEXT,
    -- JSON: the queue depth as this process last read it.
    queue        TEXT
);

-- Work a process that does not own the embedded queue recorded (a new import, a retry): the
-- owner pushes the import's queued items and deletes the row. (PostgreSQL needs no hand-off:
-- every process pushes to the shared queue itself.)
CREATE TABLE handoff (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    import_id INTEGER NOT NULL
);
