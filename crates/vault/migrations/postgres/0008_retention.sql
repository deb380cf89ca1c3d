-- Custodian schema: retention (PostgreSQL). Storage limitation, kept
-- without anyone remembering: each subject's data expiries, stored and
-- indexed by when the next one falls due, so that a sweep reads only what is
-- due; legal holds; reviews of the retention rules; and the row that keeps
-- two sweeps from running at once, whichever nodes start them.

-- One row per subject holding data. `data` is the expiry of each datum
-- (field, when, the rule and purpose that keep it longest), computed by the
-- engine from the policy. `due_at` is the earliest of them not held, or 0
-- when the expiries must be computed again (the trigger below sets it
-- whenever the subject's data, relationships or consents change, whichever
-- node writes them), or NULL when nothing will expire as things stand.
CREATE TABLE retention_due (
    subject_id UUID PRIMARY KEY,
    due_at     BIGINT,
    held_by    UUID,
    data       BYTEA NOT NULL
);
CREATE INDEX retention_due_at ON retention_due (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX retention_held_by ON retention_due (held_by) WHERE held_by IS NOT NULL;

INSERT INTO retention_due (subject_id, due_at, held_by, data)
SELECT id, 0, NULL, '\x01'::bytea FROM subjects WHERE wrapped_key IS NOT NULL;

-- The columns are compared in the function rather than named in the
-- trigger (`UPDATE OF fields, state`), which would pin their types.
CREATE FUNCTION retention_follows_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.fields IS NOT DISTINCT FROM NEW.fields
       AND OLD.state IS NOT DISTINCT FROM NEW.state THEN
        RETURN NULL;
    END IF;
    INSERT INTO retention_due (subject_id, due_at, held_by, data) VALUES (NEW.id, 0, NULL, '\x01'::bytea)
    ON CONFLICT (subject_id) DO UPDATE SET due_at = 0;
    RETURN NULL;
END
$$;
CREATE TRIGGER retention_follows_subject AFTER INSERT OR UPDATE ON subjects
    FOR EACH ROW EXECUTE FUNCTION retention_follows_subject();

-- Legal holds: per subject (target: its id), per category or per declared
-- dataset (target: its name). While one lasts (not released, not past its
-- end), what it covers is neither expired nor erased.
CREATE TABLE legal_holds (
    id          UUID PRIMARY KEY,
    scope       TEXT NOT NULL,
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    set_by      TEXT NOT NULL,
    set_at      BIGINT NOT NULL,
    ends_at     BIGINT,
    released_at BIGINT,
    released_by TEXT
);

-- Reviews of retention rules recorded since the policy was written.
CREATE TABLE retention_reviews (
    rule        TEXT NOT NULL,
    reviewed_at BIGINT NOT NULL,
    reviewed_by TEXT NOT NULL,
    note        TEXT,
    PRIMARY KEY (rule, reviewed_at)
);

-- The sweep's lease: one row, locked (FOR UPDATE) by each batch of a sweep,
-- so that nodes sharing this database never sweep at once. `fingerprint` is
-- the retention of the policy the stored expiries were computed with.
CREATE TABLE retention_sweep (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    owner       TEXT,
    lease_until BIGINT,
    fingerprint TEXT,
    last_run_at BIGINT
);
INSERT INTO retention_sweep (id) VALUES (1);
