-- Custodian schema 2 (PostgreSQL). The same shape as the SQLite schema.
CREATE TABLE consent_events (
    seq            BIGSERIAL PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    at             BIGINT NOT NULL,
    subject_id     UUID,
    visitor_id     TEXT,
    purpose        TEXT,
    channel        TEXT,
    action         TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    method         TEXT NOT NULL,
    agent          TEXT,
    wording_hash   BYTEA,
    ip_prefix      TEXT,
    recorded_by    TEXT NOT NULL,
    expires_at     BIGINT
);
CREATE INDEX consent_events_by_subject ON consent_events (subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX consent_events_by_visitor ON consent_events (visitor_id) WHERE visitor_id IS NOT NULL;

CREATE TABLE visitors (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    subject_id UUID,
    state      BYTEA NOT NULL
);

CREATE TABLE suppression (
    kind   TEXT NOT NULL,
    hash   BYTEA NOT NULL,
    at     BIGINT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (kind, hash)
);

CREATE TABLE policy_versions (
    version   TEXT PRIMARY KEY,
    effective TEXT NOT NULL,
    sha256    BYTEA NOT NULL,
    source    TEXT NOT NULL,
    loaded_at BIGINT NOT NULL
);
