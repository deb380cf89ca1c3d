-- Custodian schema: retention (SQLite). Storage limitation, kept without
-- anyone remembering: each subject's data expiries, stored and indexed by
-- when the next one falls due, so that a sweep reads only what is due;
-- legal holds; reviews of the retention rules; and the row that keeps two
-- sweeps from running at once.

-- One row per subject holding data. `data` is the expiry of each datum
-- (field, when, the rule and purpose that keep it longest), computed by the
-- engine from the policy. `due_at` is the earliest of them not held, or 0
-- when the expiries must be computed again (the triggers below set it
-- whenever the subject's data, relationships or consents change, whoever
-- writes them), or NULL when nothing will expire as things stand.
CREATE TABLE retention_due (
    subject_id BLOB PRIMARY KEY,
    due_at     INTEGER,                -- unix microseconds
    held_by    BLOB,                   -- the legal hold keeping due data
    data       BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX retention_due_at ON retention_due (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX retention_held_by ON retention_due (held_by) WHERE held_by IS NOT NULL;

INSERT INTO retention_due (subject_id, due_at, held_by, data)
SELECT id, 0, NULL, x'01' FROM subjects WHERE wrapped_key IS NOT NULL;

CREATE TRIGGER retention_follows_new_subject AFTER INSERT ON subjects
BEGIN
    INSERT INTO retention_due (subject_id, due_at, held_by, data) VALUES (NEW.id, 0, NULL, x'01')
    ON CONFLICT (subject_id) DO UPDATE SET due_at = 0;
END;
CREATE TRIGGER retention_follows_subject AFTER UPDATE OF fields, state ON subjects
BEGIN
    INSERT INTO retention_due (subject_id, due_at, held_by, data) VALUES (NEW.id, 0, NULL, x'01')
    ON CONFLICT (subject_id) DO UPDATE SET due_at = 0;
END;

-- Legal holds: per subject (target: its id), per category or per declared
-- dataset (target: its name). While one lasts (not released, not past its
-- end), what it covers is neither expired nor erased.
CREATE TABLE legal_holds (
    id          BLOB PRIMARY KEY,      -- UUID v7
    scope       TEXT NOT NULL,         -- subject, category, dataset
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      INTEGER NOT NULL,
    ends_at     INTEGER,
    released_at INTEGER,
    released_by TEXT
) WITHOUT ROWID;

-- Reviews of retention rules recorded since the policy was written.
CREATE TABLE retention_reviews (
    rule        TEXT NOT NULL,
    reviewed_at INTEGER NOT NULL,
    reviewed_by TEXT NOT NULL,
    note        TEXT,
    PRIMARY KEY (rule, reviewed_at)
) WITHOUT ROWID;

-- The sweep's lease: one row. A sweep holds it while it runs and renews it
-- with every batch; a batch whose sweep lost it is undone. `fingerprint` is
-- the retention of the policy the stored expiries were computed with.
CREATE TABLE retention_sweep (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    owner       TEXT,
    lease_until INTEGER,
    fingerprint TEXT,
    last_run_at INTEGER
);
INSERT INTO retention_sweep (id) VALUES (1);
