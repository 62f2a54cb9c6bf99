-- Identity: roles, sign-up policy, sessions, user tokens, OAuth clients,
-- invites, password resets, login throttling and the audit log
-- (PLATFORM.md §2). Secrets (session ids, user tokens, invite and reset
-- links, client secrets) are stored only as hashes: a copy of this
-- database signs nobody in.

-- Roles as CARTO names them: admin, editor (CARTO "Builder"), viewer, guest.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
UPDATE users SET role = 'editor' WHERE role = 'member';
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'editor', 'viewer', 'guest'));
ALTER TABLE users ALTER COLUMN role SET DEFAULT 'viewer';
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;
ALTER TABLE users ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE users ADD CONSTRAINT users_email_length CHECK (length(email) BETWEEN 3 AND 254);
ALTER TABLE users ADD CONSTRAINT users_name_length CHECK (length(name) <= 200);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

ALTER TABLE organizations ADD COLUMN default_role text NOT NULL DEFAULT 'viewer'
    CHECK (default_role IN ('editor', 'viewer', 'guest'));
-- invite: only invited people may sign up (after the first user); open: anyone.
ALTER TABLE organizations ADD COLUMN signup_policy text NOT NULL DEFAULT 'invite'
    CHECK (signup_policy IN ('invite', 'open'));

-- Browser sessions. id_hash = sha256(cookie value).
CREATE TABLE sessions (
    id_hash      bytea PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id       text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,               -- absolute timeout
    revoked_at   timestamptz,
    ip           text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- OAuth clients (client credentials grant); they act as their creator.
CREATE TABLE oauth_clients (
    id          text PRIMARY KEY,                     -- client_id
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    secret_hash text NOT NULL,                        -- argon2id PHC string
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- User OAuth tokens (24 h), from a session or client credentials.
-- id_hash = sha256(token).
CREATE TABLE user_tokens (
    id_hash    bytea PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id     text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    client_id  text REFERENCES oauth_clients (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX user_tokens_user ON user_tokens (user_id) WHERE revoked_at IS NULL;

-- Single-use links: invites and password resets. token_hash = sha256(link token).
CREATE TABLE invites (
    id         text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id     text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email      text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role       text NOT NULL CHECK (role IN ('admin', 'editor', 'viewer', 'guest')),
    token_hash bytea NOT NULL UNIQUE,
    created_by text REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX invites_org ON invites (org_id, created_at DESC);

CREATE TABLE password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- Failed sign-ins, for throttling per account and per address across nodes.
CREATE TABLE login_failures (
    id  bigserial PRIMARY KEY,
    key text NOT NULL,                                -- 'email:<lower email>' or 'ip:<address>'
    at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);

-- Security events: sign-in, failed sign-in, sign-out, role change, token
-- and connection changes, publish.
CREATE TABLE audit_log (
    id       bigserial PRIMARY KEY,
    org_id   text REFERENCES organizations (id) ON DELETE CASCADE,
    actor_id text,                                    -- user id, or '' for anonymous
    action   text NOT NULL,
    target   text NOT NULL DEFAULT '',
    ip       text NOT NULL DEFAULT '',
    detail   jsonb NOT NULL DEFAULT '{}',
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at DESC);
