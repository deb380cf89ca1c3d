-- Custodian schema 2 (SQLite): the consent ledger, visitors, the marketing
-- suppression list, and the policy versions consent was given under.

-- Append-only: nothing here is ever updated or deleted. The current
-- preference is derived from it (and cached in the subject's or visitor's state).
CREATE TABLE consent_events (
    seq            INTEGER PRIMARY KEY,
    id             BLOB NOT NULL UNIQUE,   -- UUID v7
    at             INTEGER NOT NULL,
    subject_id     BLOB,
    visitor_id     TEXT,
    purpose        TEXT,                   -- NULL: all direct marketing (an objection)
    channel        TEXT,
    action         TEXT NOT NULL,          -- grant, withdraw, refuse, object
    policy_version TEXT NOT NULL,
    method         TEXT NOT NULL,          -- web-form, app, call-centre, import, gpc, visitor-link
    agent          TEXT,
    wording_hash   BLOB,                   -- SHA-256 of the wording shown
    ip_prefix      TEXT,                   -- truncated, never the full address
    recorded_by    TEXT NOT NULL,
    expires_at     INTEGER
);
CREATE INDEX consent_events_by_subject ON consent_events (subject_id) WHERE subject_id IS NOT NULL;
CREATE INDEX consent_events_by_visitor ON consent_events (visitor_id) WHERE visitor_id IS NOT NULL;

-- Pseudonymous browsers before they become subjects.
CREATE TABLE visitors (
    id         TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    subject_id BLOB,
    state      BLOB NOT NULL
) WITHOUT ROWID;

-- Keyed hashes of addresses that must never be marketed to; kept through erasure.
CREATE TABLE suppression (
    kind   TEXT NOT NULL,
    hash   BLOB NOT NULL,
    at     INTEGER NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (kind, hash)
) WITHOUT ROWID;

-- Every policy version the server has run with, so that consent given under
-- an older one can be checked for material changes since.
CREATE TABLE policy_versions (
    version   TEXT PRIMARY KEY,
    effective TEXT NOT NULL,
    sha256    BLOB NOT NULL,
    source    TEXT NOT NULL,
    loaded_at INTEGER NOT NULL
) WITHOUT ROWID;
