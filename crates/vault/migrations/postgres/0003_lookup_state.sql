-- Custodian schema 3 (PostgreSQL): every lookup row carries a copy of its
-- subject's state (relationships, restriction, consent preferences), so a
-- marketing check by address is one probe of this small table rather than a
-- second probe of the much larger subjects table.
--
-- The database keeps the copy: a new lookup row is given its subject's state
-- by the store, and the trigger below carries every later change of
-- subjects.state to the subject's lookup rows in the same transaction,
-- whichever node makes it. Lookup rows exist only for live subjects: erasure
-- removes them and puts the addresses on the suppression list.
ALTER TABLE lookup ADD COLUMN state BYTEA;
UPDATE lookup SET state = s.state FROM subjects s WHERE s.id = lookup.subject_id;
ALTER TABLE lookup ALTER COLUMN state SET NOT NULL;

CREATE FUNCTION lookup_state_follows_subject() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lookup SET state = NEW.state WHERE subject_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER lookup_state_follows_subject AFTER UPDATE OF state ON subjects
    FOR EACH ROW EXECUTE FUNCTION lookup_state_follows_subject();
