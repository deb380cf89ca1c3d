-- The audit chain is keyed (HMAC-SHA256 under the key file's audit key)
-- from the next entry on. Entries already written keep their plain SHA-256;
-- the first keyed entry's MAC covers the last of them.
INSERT INTO meta (key, value)
SELECT 'audit_keyed_from', CAST(seq + 1 AS TEXT) FROM audit_head WHERE id = 1
ON CONFLICT (key) DO NOTHING;
