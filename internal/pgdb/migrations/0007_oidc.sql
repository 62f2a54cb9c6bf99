-- Sign-ins through an OpenID Connect provider in flight: the state sent
-- to the provider (stored hashed), the PKCE verifier and nonce that the
-- callback needs, and where to go afterwards. Single use, 10 minutes.
CREATE TABLE oidc_flows (
    state_hash bytea PRIMARY KEY,
    verifier   text NOT NULL,
    nonce      text NOT NULL,
    next       text NOT NULL DEFAULT '/',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
