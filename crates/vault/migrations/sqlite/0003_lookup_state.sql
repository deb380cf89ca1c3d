-- Custodian schema 3 (SQLite): every lookup row carries a copy of its
-- subject's state (relationships, restriction, consent preferences), so a
-- marketing check by address is one probe of this small table rather than a
-- second probe of the much larger subjects table.
--
-- The database keeps the copy: a new lookup row is given its subject's state
-- by the store, and the trigger below carries every later change of
-- subjects.state to the subject's lookup rows in the same statement, whoever
-- makes it. Lookup rows exist only for live subjects: erasure removes them
-- and puts the addresses on the suppression list.
--
-- SQLite cannot add a NOT NULL column without a default, and an empty
-- default would read as a subject with no preferences; so the column may be
-- NULL, every write gives it, and the store refuses to read a NULL as state.
ALTER TABLE lookup ADD COLUMN state BLOB;
UPDATE lookup SET state = (SELECT s.state FROM subjects s WHERE s.id = lookup.subject_id);

-- `subject_id = ?` alone can only use lookup_by_subject (the primary key
-- starts with `kind`); INDEXED BY is not allowed inside a trigger.
CREATE TRIGGER lookup_state_follows_subject AFTER UPDATE OF state ON subjects
BEGIN
    UPDATE lookup SET state = NEW.state WHERE subject_id = NEW.id;
END;
