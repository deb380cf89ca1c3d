-- Custodian schema 6 (SQLite): the register of data-subject requests, the
-- durable tasks that carry them out, their reports, and verified sessions.

-- One row per request. Whatever in it is personal data (the contact address,
-- the values of a rectification) is sealed in `sealed` under the request's
-- own data key; `meta` holds the rest as JSON: the clock (identity, fee,
-- pauses, extension), the verification code's hash and attempts, the outcome.
CREATE TABLE requests (
    id           BLOB PRIMARY KEY,      -- UUID v7
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    version      INTEGER NOT NULL,      -- optimistic concurrency
    subject_id   BLOB,
    contact_hash BLOB,                  -- blind index of the contact address
    received_at  INTEGER NOT NULL,
    due          TEXT,                  -- YYYY-MM-DD once the clock runs
    updated_at   INTEGER NOT NULL,
    kek_id       INTEGER NOT NULL,
    wrapped_key  BLOB,                  -- NULL once the request's data is shredded
    sealed       BLOB NOT NULL,
    meta         TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX requests_by_state_due ON requests (state, due);
CREATE INDEX requests_by_contact ON requests (contact_hash) WHERE contact_hash IS NOT NULL;

-- Reports (access, portability), sealed under the request's data key.
CREATE TABLE request_reports (
    request_id BLOB NOT NULL,
    format     TEXT NOT NULL,           -- json, html, archive
    sealed     BLOB NOT NULL,
    PRIMARY KEY (request_id, format)
) WITHOUT ROWID;

-- Sessions of verified people: the SHA-256 of the token, the contact it
-- proves, and when it ends.
CREATE TABLE request_sessions (
    hash         BLOB PRIMARY KEY,
    contact_hash BLOB NOT NULL,
    expires_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Durable tasks: one request's work in one system. A node claims a task by
-- leasing it; a lease that ends unfinished (the node died) lets another
-- claim it. Finishing a task checks the lease in the same transaction as its
-- effects, so no task's work is committed twice.
CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY,
    request_id  BLOB NOT NULL,
    system      TEXT NOT NULL,          -- vault, or a declared dataset
    state       TEXT NOT NULL,          -- pending, done, failed
    attempts    INTEGER NOT NULL,
    run_after   INTEGER NOT NULL,       -- unix microseconds
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    UNIQUE (request_id, system)
);
CREATE INDEX tasks_due ON tasks (run_after) WHERE state = 'pending';

-- Disclosures of a subject, for access reports, without scanning the chain.
CREATE INDEX audit_disclosures ON audit (subject_id)
    WHERE subject_id IS NOT NULL AND substr(action, 1, 9) = 'disclose:';
