-- Custodian schema 6 (PostgreSQL): the register of data-subject requests, the
-- durable tasks that carry them out, their reports, and verified sessions.

-- One row per request. Whatever in it is personal data (the contact address,
-- the values of a rectification) is sealed in `sealed` under the request's
-- own data key; `meta` holds the rest as JSON: the clock (identity, fee,
-- pauses, extension), the verification code's hash and attempts, the outcome.
CREATE TABLE requests (
    id           UUID PRIMARY KEY,       -- UUID v7
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    version      BIGINT NOT NULL,      -- optimistic concurrency
    subject_id   UUID,
    contact_hash BYTEA,                  -- blind index of the contact address
    received_at  BIGINT NOT NULL,
    due          TEXT,                  -- YYYY-MM-DD once the clock runs
    updated_at   BIGINT NOT NULL,
    kek_id       INTEGER NOT NULL,
    wrapped_key  BYTEA,                  -- NULL once the request's data is shredded
    sealed       BYTEA NOT NULL,
    meta         TEXT NOT NULL
);
CREATE INDEX requests_by_state_due ON requests (state, due);
CREATE INDEX requests_by_contact ON requests (contact_hash) WHERE contact_hash IS NOT NULL;

-- Reports (access, portability), sealed under the request's data key.
CREATE TABLE request_reports (
    request_id UUID NOT NULL,
    format     TEXT NOT NULL,           -- json, html, archive
    sealed     BYTEA NOT NULL,
    PRIMARY KEY (request_id, format)
);

-- Sessions of verified people: the SHA-256 of the token, the contact it
-- proves, and when it ends.
CREATE TABLE request_sessions (
    hash         BYTEA PRIMARY KEY,
    contact_hash BYTEA NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- Durable tasks: one request's work in one system. A node claims a task by
-- leasing it; a lease that ends unfinished (the node died) lets another
-- claim it. Finishing a task checks the lease in the same transaction as its
-- effects, so no task's work is committed twice.
CREATE TABLE tasks (
    id          BIGSERIAL PRIMARY KEY,
    request_id  UUID NOT NULL,
    system      TEXT NOT NULL,          -- vault, or a declared dataset
    state       TEXT NOT NULL,          -- pending, done, failed
    attempts    BIGINT NOT NULL,
    run_after   BIGINT NOT NULL,       -- unix microseconds
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    UNIQUE (request_id, system)
);
CREATE INDEX tasks_due ON tasks (run_after) WHERE state = 'pending';

-- Disclosures of a subject, for access reports, without scanning the chain.
CREATE INDEX audit_disclosures ON audit (subject_id)
    WHERE subject_id IS NOT NULL AND substr(action, 1, 9) = 'disclose:';
