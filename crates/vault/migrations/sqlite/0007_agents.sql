-- Custodian schema 7 (SQLite): authorized agents of the Data Rights Protocol.
-- An agent signs its messages with an Ed25519 key; registration with a signed
-- message gives it a bearer token, of which only the SHA-256 is kept.
CREATE TABLE agents (
    id             TEXT PRIMARY KEY,      -- the protocol's agent-id
    name           TEXT NOT NULL,
    verify_key     BLOB NOT NULL,         -- Ed25519 public key, 32 bytes
    trust_identity INTEGER NOT NULL,      -- 1: the identity the agent attests is accepted
    status         TEXT NOT NULL,         -- active, suspended
    token_hash     BLOB,                  -- SHA-256 of the token; NULL until registered
    registered_at  INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX agents_by_token ON agents (token_hash) WHERE token_hash IS NOT NULL;
