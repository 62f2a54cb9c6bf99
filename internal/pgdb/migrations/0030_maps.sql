-- Builder maps (PLATFORM.md §4): the draft a Builder edits, the snapshot
-- its viewers see once published, and the map token minted at publish.

CREATE TABLE maps (
    id              text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    org_id          text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id        text NOT NULL REFERENCES users (id),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    -- private: the owner only; shared: sharing_scope 'org' (every member
    -- but guests) or 'users' (map_shares); public: anyone with the link.
    privacy         text NOT NULL DEFAULT 'private' CHECK (privacy IN ('private', 'shared', 'public')),
    sharing_scope   text NOT NULL DEFAULT 'org' CHECK (sharing_scope IN ('org', 'users')),
    -- collaborative: editors the map is shared with may edit the draft.
    collaborative   boolean NOT NULL DEFAULT false,
    tags            text[] NOT NULL DEFAULT '{}',
    datasets        jsonb NOT NULL DEFAULT '[]',
    config          jsonb NOT NULL,                    -- keplerMapConfig of the draft
    thumbnail       bytea,
    thumbnail_type  text,
    -- The published snapshot: {title, description, datasets, keplerMapConfig}.
    published       jsonb,
    published_at    timestamptz,
    map_token_id    text REFERENCES tokens (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX maps_org_owner ON maps (org_id, owner_id, updated_at DESC);
CREATE INDEX maps_org_shared ON maps (org_id, updated_at DESC) WHERE privacy <> 'private';

-- Users a map with sharing_scope 'users' is shared with.
CREATE TABLE map_shares (
    map_id  text NOT NULL REFERENCES maps (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (map_id, user_id)
);
CREATE INDEX map_shares_user ON map_shares (user_id);
