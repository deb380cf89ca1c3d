-- Custodian schema 1 (SQLite).
-- One row per subject: the wrapped data key, the sealed fields with their
-- provenance, and the subject's state, so that a read is one lookup.
CREATE TABLE subjects (
    id          BLOB PRIMARY KEY,      -- UUID v7, time-ordered
    wrapped_key BLOB,                  -- NULL once erased (crypto-shredded)
    kek_id      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,      -- unix microseconds
    erased_at   INTEGER,
    fields      BLOB NOT NULL,         -- sealed fields and provenance
    state       BLOB NOT NULL          -- relationships, restriction
) WITHOUT ROWID;

-- Blind indexes: HMAC of a normalised email or phone number.
CREATE TABLE lookup (
    kind       TEXT NOT NULL,
    hash       BLOB NOT NULL,
    subject_id BLOB NOT NULL,
    PRIMARY KEY (kind, hash)
) WITHOUT ROWID;
CREATE INDEX lookup_by_subject ON lookup (subject_id, kind);

-- Values replaced by rectification, still sealed under the subject's key.
CREATE TABLE field_history (
    id          INTEGER PRIMARY KEY,
    subject_id  BLOB NOT NULL,
    field       TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    provenance  BLOB NOT NULL,
    replaced_at INTEGER NOT NULL
);
CREATE INDEX field_history_by_subject ON field_history (subject_id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    hash       BLOB NOT NULL UNIQUE,   -- SHA-256 of the whole token
    role       TEXT NOT NULL,
    purposes   TEXT NOT NULL,          -- JSON array
    recipient  TEXT,
    label      TEXT,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    purpose    TEXT,
    subject_id BLOB,
    decision   TEXT NOT NULL,
    reason     TEXT,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);

-- The last entry of the chain, so that entries cut from the end are noticed.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- Events written in the same transaction as the change they announce.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    topic        TEXT NOT NULL,
    subject_id   BLOB,
    payload      TEXT NOT NULL,
    delivered_at INTEGER
);
