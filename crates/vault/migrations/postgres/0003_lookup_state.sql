-- Custodian schema 3 (PostgreSQL): every lookup row carries a copy of its
-- subject's state (relationships, restriction, consent preferences), so a
-- marketing check by address is one probe of this small table rather than a
-- second probe of the much larger subjects table.
--
-- The copy is written in the same transaction as subjects.state, by one
-- function in the store (`save_state`), and is read only by marketing checks.
-- A lookup row exists only for a live subject: erasure removes the row.
ALTER TABLE lookup ADD COLUMN state BYTEA;
UPDATE lookup SET state = s.state FROM subjects s WHERE s.id = lookup.subject_id;
ALTER TABLE lookup ALTER COLUMN state SET NOT NULL;
