-- A waiting click's claim on the rate budget's next slot (Unix ms): until then, background
-- requests of every process let the click's request go first.
ALTER TABLE budget_state ADD COLUMN urgent_claim_until INTEGER;
