-- Import and batch SQL job bookkeeping for the workers (workers/) and the
-- control plane's /api/v3/imports and /api/v3/sql/{conn}/job APIs.
--
-- enqueued_at is when the job's broker message was last published; NULL
-- means the publish failed. Workers sweep pending rows whose message may be
-- lost (NULL, or enqueued long ago) and running rows whose heartbeat_at is
-- stale (the worker died and the broker did not redeliver), and publish
-- them again: handlers are idempotent, so a duplicate is harmless.

ALTER TABLE imports
    ADD COLUMN filename     text,          -- original name of an uploaded file
    ADD COLUMN phase        text,          -- fetching, reading, finishing, done
    ADD COLUMN result       jsonb,         -- the importer's Result (table, rows, columns, bbox, warnings)
    ADD COLUMN enqueued_at  timestamptz DEFAULT now(),
    ADD COLUMN heartbeat_at timestamptz;   -- refreshed by the running worker

CREATE INDEX imports_sweep ON imports (status) WHERE status IN ('pending', 'running');

ALTER TABLE jobs
    ADD COLUMN params       jsonb,         -- queryParameters ($1, $2, …)
    ADD COLUMN enqueued_at  timestamptz DEFAULT now(),
    ADD COLUMN heartbeat_at timestamptz;

CREATE INDEX jobs_sweep ON jobs (status) WHERE status IN ('pending', 'running');
