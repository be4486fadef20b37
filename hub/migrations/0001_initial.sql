-- The hub's schema, version 1. Embedded in the binary and applied at start.
-- Uniqueness lives here (not in code) so that concurrent writers cannot create duplicates.

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    subject      TEXT UNIQUE,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    sort_key     TEXT NOT NULL,
    email        TEXT,
    extension    TEXT UNIQUE,
    disabled     INTEGER NOT NULL DEFAULT 0,
    admin        INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX users_by_sort_key ON users (sort_key, id);

-- Lowercased words of name, username and e-mail local part, for prefix search.
CREATE TABLE user_tokens (
    token   TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (token, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX user_tokens_by_user ON user_tokens (user_id);

CREATE TABLE numbers (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source   TEXT NOT NULL,
    number   TEXT NOT NULL,
    kind     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (user_id, source, number)
) STRICT;
CREATE INDEX numbers_by_number ON numbers (number);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_agent TEXT,
    ip         TEXT
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE sip_accounts (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    username   TEXT NOT NULL UNIQUE,
    secret     TEXT NOT NULL,
    rotated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE mailbox_messages (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sender      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    path        TEXT NOT NULL,
    read        INTEGER NOT NULL DEFAULT 0,
    deleted_at  INTEGER
) STRICT;
CREATE INDEX mailbox_by_owner ON mailbox_messages (owner, created_at);
CREATE INDEX mailbox_by_deleted ON mailbox_messages (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE call_records (
    id          TEXT PRIMARY KEY,
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    path        TEXT NOT NULL,
    devices     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    answered_at INTEGER,
    ended_at    INTEGER NOT NULL,
    outcome     TEXT NOT NULL
) STRICT;
CREATE INDEX call_records_by_start ON call_records (started_at);
CREATE INDEX call_records_by_caller ON call_records (caller, started_at);
CREATE INDEX call_records_by_callee ON call_records (callee, started_at);

-- Not tied to users by a foreign key: the log outlives whatever it describes.
CREATE TABLE audit_log (
    id      TEXT PRIMARY KEY,
    at      INTEGER NOT NULL,
    user_id TEXT,
    actor   TEXT NOT NULL,
    ip      TEXT,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_time ON audit_log (at);
CREATE INDEX audit_by_user ON audit_log (user_id, at);
