-- Times the anime was sent to AniList for this item: a job that keeps killing its worker
-- (re-delivered as an orphan without its attempt counted) is failed once this passes a bound.
ALTER TABLE import_item ADD COLUMN fetches INTEGER NOT NULL DEFAULT 0;
