-- AniList's state as every process on this database sees it, beside the budget's: ok,
-- parked (a 429), unreachable, refused (a 403) or not_anilist; since when, and its last word.
ALTER TABLE budget_state ADD COLUMN upstream_state TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE budget_state ADD COLUMN upstream_since BIGINT;
ALTER TABLE budget_state ADD COLUMN upstream_message TEXT;
