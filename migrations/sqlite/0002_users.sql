-- Accounts. Emails are stored lower-cased (the application normalises them), so the unique
-- constraint makes them case-insensitively unique. The API token is never stored: only the
-- hex SHA-256 of it, which is what requests are authenticated by.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
