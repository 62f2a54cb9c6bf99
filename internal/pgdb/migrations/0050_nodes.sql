-- Node registry (internal/noderegistry): every running component of every
-- process registers itself and heartbeats. The edge balances over the
-- ready, fresh tiles rows (caddy-modules/nodeupstreams); the admin API
-- lists them all. A row whose heartbeat is older than the reader's stale
-- bound counts as down; rows silent for long are deleted by the
-- heartbeaters themselves.

CREATE TABLE nodes (
    component    text NOT NULL CHECK (component IN ('edge', 'tiles', 'control', 'worker')),
    name         text NOT NULL,                        -- MERIDIAN_NODE: host or pod name
    version      text NOT NULL DEFAULT '',
    address      text NOT NULL DEFAULT '',             -- host:port the component serves on, as peers reach it
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    ready        boolean NOT NULL DEFAULT false,
    checks       jsonb NOT NULL DEFAULT '{}',          -- the last readiness report: check name -> "ok" or error
    PRIMARY KEY (component, name)
);

CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
