-- Location Data Services quotas (control/lds): monthly usage per
-- organization and service, counted per call and per batch row, and
-- per-organization quota overrides (absent: the configured default).
-- org_id is the caller's organization id as text (the token's org, else
-- the default organization).

CREATE TABLE lds_usage (
    org_id  text   NOT NULL,
    service text   NOT NULL,              -- geocoding, routing, isolines
    month   date   NOT NULL,              -- first day of the month (UTC)
    used    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, service, month)
);

CREATE TABLE lds_quotas (
    org_id        text   NOT NULL,
    service       text   NOT NULL,
    monthly_quota bigint NOT NULL CHECK (monthly_quota >= 0),
    PRIMARY KEY (org_id, service)
);
