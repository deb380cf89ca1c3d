-- Custodian schema 7 (PostgreSQL): authorized agents of the Data Rights
-- Protocol. An agent signs its messages with an Ed25519 key; registration
-- with a signed message gives it a bearer token, of which only the SHA-256
-- is kept.
CREATE TABLE agents (
    id             TEXT PRIMARY KEY,      -- the protocol's agent-id
    name           TEXT NOT NULL,
    verify_key     BYTEA NOT NULL,        -- Ed25519 public key, 32 bytes
    trust_identity BOOLEAN NOT NULL,      -- the identity the agent attests is accepted
    status         TEXT NOT NULL,         -- active, suspended
    token_hash     BYTEA,                 -- SHA-256 of the token; NULL until registered
    registered_at  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX agents_by_token ON agents (token_hash) WHERE token_hash IS NOT NULL;
