-- What a token is for: 'api' (made by a user or the CLI, listed in the
-- Tokens API), 'session' (a web app session's short-lived data token),
-- 'map' (minted when a map is published). Only 'api' tokens are listed.
ALTER TABLE tokens ADD COLUMN kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'session', 'map'));
CREATE INDEX tokens_owner ON tokens (org_id, owner, created_at DESC) WHERE kind = 'api';

-- Connections: who made them and who may use them (PLATFORM.md §3):
-- 'shared' with the whole organization, or 'private' to their owner.
ALTER TABLE connections ADD COLUMN owner_id text;
ALTER TABLE connections ADD COLUMN privacy text NOT NULL DEFAULT 'shared' CHECK (privacy IN ('private', 'shared'));
