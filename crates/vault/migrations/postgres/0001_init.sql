-- Custodian schema 1 (PostgreSQL). The same shape as the SQLite schema.
CREATE TABLE subjects (
    id          UUID PRIMARY KEY,
    wrapped_key BYTEA,
    kek_id      INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    erased_at   BIGINT,
    fields      BYTEA NOT NULL,
    state       BYTEA NOT NULL
);

CREATE TABLE lookup (
    kind       TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    subject_id UUID NOT NULL,
    PRIMARY KEY (kind, hash)
);
CREATE INDEX lookup_by_subject ON lookup (subject_id, kind);

CREATE TABLE field_history (
    id          BIGSERIAL PRIMARY KEY,
    subject_id  UUID NOT NULL,
    field       TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    provenance  BYTEA NOT NULL,
    replaced_at BIGINT NOT NULL
);
CREATE INDEX field_history_by_subject ON field_history (subject_id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    hash       BYTEA NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    purposes   TEXT NOT NULL,
    recipient  TEXT,
    label      TEXT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    purpose    TEXT,
    subject_id UUID,
    decision   TEXT NOT NULL,
    reason     TEXT,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE outbox (
    id           BIGSERIAL PRIMARY KEY,
    at           BIGINT NOT NULL,
    topic        TEXT NOT NULL,
    subject_id   UUID,
    payload      TEXT NOT NULL,
    delivered_at BIGINT
);
