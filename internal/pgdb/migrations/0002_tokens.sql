-- API access tokens (internal/grant, internal/tokenstore).
--
-- Tokens are Ed25519-signed JWTs verified offline by edge and tiles. The
-- signing keys live here, private halves sealed with the master keyring
-- (internal/secret). The token string itself is not stored: the signed
-- part (signing_input) is, and since Ed25519 signatures are deterministic
-- the exact token is re-created by signing it again with its key. A copy
-- of this database without the master key therefore yields no usable
-- token.

CREATE TABLE signing_keys (
    kid             text PRIMARY KEY,
    algorithm       text NOT NULL DEFAULT 'EdDSA' CHECK (algorithm IN ('EdDSA')),
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),
    private_key_enc bytea NOT NULL,                    -- secret.Keyring sealed Ed25519 seed, AD = kid
    enc_key_id      text NOT NULL,                     -- master key that sealed private_key_enc
    created_at      timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT false,    -- signs new tokens
    retired_at      timestamptz                        -- when it stopped being active
);
-- At most one active key: concurrent first starts create one key, not two.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE active;

CREATE TABLE tokens (
    id            text PRIMARY KEY,                    -- jti
    org_id        text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE DEFAULT 'default',
    owner         text NOT NULL,                       -- sub: the user who created it
    name          text NOT NULL DEFAULT '',
    kid           text NOT NULL,                       -- signing key (not a foreign key: retired keys may be pruned)
    grants        jsonb NOT NULL,                      -- [{"connection_name","source"}]
    apis          text[] NOT NULL,
    referers      text[] NOT NULL DEFAULT '{}',
    expires_at    timestamptz,                         -- NULL: never expires
    created_at    timestamptz NOT NULL,                -- = iat
    revoked_at    timestamptz,
    signing_input text NOT NULL,                       -- base64url(header) "." base64url(claims)
    token_sha256  bytea NOT NULL UNIQUE,               -- lookup by token string
    token_hint    text NOT NULL                        -- last 8 characters, for display
);
CREATE INDEX tokens_org_created ON tokens (org_id, created_at DESC);
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX tokens_kid ON tokens (kid);
