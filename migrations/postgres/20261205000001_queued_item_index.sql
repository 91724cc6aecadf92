-- The flush settles a request's items with UPDATE … FROM UNNEST, looking each one up by
-- (import, anime) among the queued items. Keyed by import_id alone, this partial index made
-- the planner scan every queued item of the import for each of a request's 50 ids; with
-- anime_id in it each id is one index probe (issue 19: 4 processes ran a 100k import 5.3×
-- faster). Queries by import alone still use its first column.
DROP INDEX IF EXISTS import_item_queued;
CREATE INDEX import_item_queued ON import_item (import_id, anime_id) WHERE state = 'queued';
