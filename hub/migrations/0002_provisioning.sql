-- Per-user provisioning state on Asterisk and the last reload (issue 5).
CREATE TABLE provisioning (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL,
    desired    TEXT,
    applied    TEXT,
    status     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE pbx_reload (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    at          INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    detail      TEXT NOT NULL,
    changed     INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
) STRICT;
