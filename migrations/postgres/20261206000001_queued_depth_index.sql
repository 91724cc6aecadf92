-- The ETA reads how many levels an import's queued items span and the deepest one. Counted
-- from `import_item_queued` (import, anime) that read visited every queued item's row: a Seq
-- Scan of import_item, 10 ms a call at 100k (issue 19's plans). With (import, depth) it is a
-- loose index scan: one index probe per level. PostgreSQL only: SQLite's single writer would
-- pay for the extra index on every item it queues, and its read is in-process.
CREATE INDEX import_item_queued_depth ON import_item (import_id, depth) WHERE state = 'queued';
