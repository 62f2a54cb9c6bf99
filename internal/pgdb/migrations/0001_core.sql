-- Core metadata: who (organizations, users), where the data lives
-- (connections, encrypted), what is served (sources and their generation
-- counters) and the work queues' records (imports, jobs).

CREATE TABLE organizations (
    id         text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO organizations (id, name) VALUES ('default', 'Default');

CREATE TABLE users (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id        text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'viewer')),
    password_hash text NOT NULL DEFAULT '',          -- argon2id PHC string; empty: no password login
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- Data-warehouse connections. config_enc is the AES-GCM sealed JSON of the
-- connection settings (URL with credentials); it is never stored or logged
-- in clear.
CREATE TABLE connections (
    id         text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id     text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE DEFAULT 'default',
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
    kind       text NOT NULL DEFAULT 'postgres' CHECK (kind IN ('postgres')),
    config_enc bytea NOT NULL,
    key_id     text NOT NULL,                         -- which encryption key sealed config_enc
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Sources served by the maps API. generation is bumped on every change
-- (import, batch SQL write, purge): it is part of the tiles' groupcache
-- keys, so an invalidation is a bump, not a scan.
CREATE TABLE sources (
    id            bigserial PRIMARY KEY,
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    name          text NOT NULL,                      -- schema.table
    generation    bigint NOT NULL DEFAULT 1,
    stats         jsonb,                              -- row count, bbox, geometry type, tilestats
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (connection_id, name)
);

CREATE TABLE imports (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id        text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE DEFAULT 'default',
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    destination   text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'success', 'failure', 'cancelled')),
    source_url    text,
    file_path     text,
    options       jsonb NOT NULL DEFAULT '{}',
    bytes_total   bigint,
    bytes_done    bigint NOT NULL DEFAULT 0,
    rows_done     bigint NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 0,
    error         text,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX imports_org_created ON imports (org_id, created_at DESC);

CREATE TABLE jobs (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id        text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE DEFAULT 'default',
    kind          text NOT NULL DEFAULT 'sql' CHECK (kind IN ('sql')),
    connection_id text NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    query         text NOT NULL,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'success', 'failure', 'cancelled')),
    timeout_ms    integer NOT NULL DEFAULT 3600000,
    attempts      integer NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    error         text,
    result        jsonb,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX jobs_org_created ON jobs (org_id, created_at DESC);
