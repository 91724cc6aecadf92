-- A walk depth lowered by a failed deep query (a 5xx, a complexity refusal, a timeout), and
-- until when (Unix ms): every process on this database walks at most that many levels of
-- relations per request until then.
ALTER TABLE budget_state ADD COLUMN walk_cap_levels BIGINT;
ALTER TABLE budget_state ADD COLUMN walk_cap_until BIGINT;
