-- The schema of version 1 (the auth core) as it shipped: the starting point of
-- the schema upgrade test. Not used by the server.
CREATE TABLE users (
    -- AUTOINCREMENT: an id is never reused, so a token of a deleted user can
    -- never name someone registered after them.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT    NOT NULL,
    -- The *_key columns are the lower-cased forms that uniqueness is judged
    -- on (SQLite's own lower() knows only ASCII).
    username_key TEXT    NOT NULL UNIQUE,
    email        TEXT    NOT NULL,
    email_key    TEXT    NOT NULL UNIQUE,
    password     TEXT    NOT NULL, -- argon2id PHC string, never sent anywhere
    first_name   TEXT    NOT NULL DEFAULT '',
    last_name    TEXT    NOT NULL DEFAULT '',
    bio          TEXT    NOT NULL DEFAULT '',
    cover_photo  TEXT,             -- path under DATA_DIR/media, or NULL
    is_active    INTEGER NOT NULL DEFAULT 1,
    date_joined  INTEGER NOT NULL,
    last_login   INTEGER
);

-- One row per login. Every token carries its session's id (sid); revoking
-- the session stops its refresh and access tokens at once.
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created    INTEGER NOT NULL,
    last_used  INTEGER NOT NULL,
    expires    INTEGER NOT NULL, -- absolute end: no refresh extends it
    revoked    INTEGER,          -- when it was revoked, or NULL while live
    user_agent TEXT    NOT NULL DEFAULT '',
    ip         TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires);

-- Refresh tokens that can no longer be used, keyed by their jti. A row is
-- written when a token is rotated (replacement holds the payload segment of
-- the token that replaced it, for the grace period) or logged out
-- (replacement NULL). Rows can go once the token has expired anyway.
CREATE TABLE blacklist (
    jti            TEXT    PRIMARY KEY,
    session_id     TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    expires        INTEGER NOT NULL, -- the token's own exp
    blacklisted_at INTEGER NOT NULL,
    replacement    TEXT
) WITHOUT ROWID;
CREATE INDEX blacklist_session ON blacklist(session_id);
CREATE INDEX blacklist_expires ON blacklist(expires);

