-- The shared AniList budget moved to a file of its own beside this one
-- (`franchise.sqlite.budget`, migrations/sqlite-budget): taking a slot is a write, and here
-- it waited behind every flush's write lock. Its old tables go; one row stays, for the
-- probe that finds out at open whether this file can be written.
DROP TABLE budget_send;
DROP TABLE budget_state;
CREATE TABLE store_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO store_probe (id) VALUES (1);
