-- Custodian schema 3 (SQLite): every lookup row carries a copy of its
-- subject's state (relationships, restriction, consent preferences), so a
-- marketing check by address is one probe of this small table rather than a
-- second probe of the much larger subjects table.
--
-- The copy is written in the same transaction as subjects.state, by one
-- function in the store (`save_state`), and is read only by marketing checks.
-- A lookup row exists only for a live subject: erasure removes the row.
-- SQLite cannot add a NOT NULL column without a default, and an empty
-- default would read as a subject with no preferences; so the column may be
-- NULL, every write gives it, and the store refuses to read a NULL as state.
ALTER TABLE lookup ADD COLUMN state BLOB;
UPDATE lookup SET state = (SELECT s.state FROM subjects s WHERE s.id = lookup.subject_id);
