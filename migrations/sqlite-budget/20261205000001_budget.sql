-- The AniList budget every process on this data dir shares, in a file of its own beside the
-- store (`franchise.sqlite.budget`): taking a slot is a write transaction, and here it never
-- waits behind a flush's write lock on the store. The send times of the current window, and
-- one row of state (a park's end and why, the server's own count, AniList's state, a lowered
-- walk depth, a click's claim on the next slot, counters).
CREATE TABLE budget_send (
    sent_at INTEGER NOT NULL
);
CREATE INDEX budget_send_at ON budget_send (sent_at);

CREATE TABLE budget_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    parked_until        INTEGER,
    parked_reason       TEXT,
    consecutive_outages INTEGER NOT NULL DEFAULT 0,
    server_limit        INTEGER,
    server_remaining    INTEGER,
    server_at           INTEGER,
    server_sent_since   INTEGER NOT NULL DEFAULT 0,
    last_sent_at        INTEGER,
    requests_made       INTEGER NOT NULL DEFAULT 0,
    rate_limited_seen   INTEGER NOT NULL DEFAULT 0,
    outages_seen        INTEGER NOT NULL DEFAULT 0,
    urgent_claim_until  INTEGER,
    upstream_state      TEXT    NOT NULL DEFAULT 'ok',
    upstream_since      INTEGER,
    upstream_message    TEXT,
    walk_cap_levels     INTEGER,
    walk_cap_until      INTEGER
);
INSERT INTO budget_state (id) VALUES (1);
