-- Accounts (mirror of migrations/sqlite/0002_users.sql). Emails are stored lower-cased (the
-- application normalises them), so the unique constraint makes them case-insensitively unique.
-- The API token is never stored: only the hex SHA-256 of it, which is what requests are
-- authenticated by. Constraint names are part of the contract: the store recognises
-- `users_email_key` to answer 409 user.email_taken.
CREATE TABLE users (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    token_hash TEXT        NOT NULL CHECK (length(token_hash) = 64),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_token_hash_key UNIQUE (token_hash)
);
