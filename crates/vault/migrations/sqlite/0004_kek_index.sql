-- Custodian schema 4 (SQLite): the key-encryption keys in use can be listed
-- with one index probe per key, so a node refuses at start-up a key file
-- that lacks one, however large the store (and rewrap finds its work fast).
CREATE INDEX subjects_by_kek ON subjects (kek_id) WHERE wrapped_key IS NOT NULL;
