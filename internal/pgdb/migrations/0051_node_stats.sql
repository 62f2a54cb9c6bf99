-- Counters a node reports with its heartbeat for the admin console (an
-- edge: its cache's hits, misses, entries, bytes...): name -> number.
ALTER TABLE nodes ADD COLUMN stats jsonb NOT NULL DEFAULT '{}';
