-- schema.sql: the one description of jwtnotes' data.
--
-- It is embedded into the binary and applied at start, in two parts. First
-- the current schema: the tables as they are now, which a new database gets
-- whole. Then the upgrades: each "-- upgrade to version N" brings a database
-- at version N-1 to N in one transaction, keeping its rows. PRAGMA
-- user_version records how far a database has come.
--
-- A change to the data is written twice: in the current schema, and as a
-- new upgrade at the end (upgrades are only ever added). A test upgrades a
-- version-1 database and checks that it ends up as a new one.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC): exact, compact
-- and ordered. Booleans are 0 or 1.

-- schema version 12

CREATE TABLE users (
    -- AUTOINCREMENT: an id is never reused, so a token of a deleted user can
    -- never name someone registered after them.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    username     TEXT    NOT NULL,
    -- The *_key columns are the lower-cased forms that uniqueness is judged
    -- on (SQLite's own lower() knows only ASCII). Their UNIQUE indexes are
    -- also how a user is found by name at login.
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
    last_login   INTEGER,
    -- Running totals of the user's notes, for the quota: how many, and the
    -- bytes of their titles, bodies and images (notes.size summed). Kept in
    -- the transaction that changes the notes.
    notes_count  INTEGER NOT NULL DEFAULT 0,
    notes_bytes  INTEGER NOT NULL DEFAULT 0,
    -- 1 once a link mailed to the email was opened (or a password reset
    -- through it); back to 0 when the email changes.
    email_verified INTEGER NOT NULL DEFAULT 0
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
-- The flush finds revoked sessions by this index, not by reading them all.
CREATE INDEX sessions_revoked ON sessions(revoked) WHERE revoked IS NOT NULL;

-- Refresh tokens that can no longer be used, keyed by their jti. A row is
-- written when a token is rotated or logged out, and goes once the token has
-- expired anyway. next_jti and next_kid name the token that replaced a
-- rotated one, for its grace answer: its jti and the key that signs it (its
-- other claims are the user's and the session's, its iat blacklisted_at);
-- NULL for a logged-out token.
-- A row names no user and no session, and is not deleted with them: a token
-- of a session that is over is refused by the session check, and every
-- rotation stays one row appended at the end of the table and its index
-- (the index by session it had before cost a page written per rotation).
CREATE TABLE blacklist (
    jti            TEXT    PRIMARY KEY,
    expires        INTEGER NOT NULL, -- the token's own exp
    blacklisted_at INTEGER NOT NULL,
    next_jti       TEXT,
    next_kid       TEXT
) WITHOUT ROWID;
CREATE INDEX blacklist_expires ON blacklist(expires);

-- Notes: private to their owner, or public to every user.
CREATE TABLE notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT    NOT NULL DEFAULT '',
    body        TEXT    NOT NULL DEFAULT '',
    -- title and body lower-cased, NUL between them: what ?q= searches
    -- (SQLite's LIKE and lower() fold ASCII only).
    search      TEXT    NOT NULL DEFAULT '',
    cover_image TEXT,             -- path under DATA_DIR/media, or NULL
    is_public   INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0 -- bytes of title, body and image: what the quota counts
);
-- The list is newest updated first (ties: the newer id), read in index
-- order so that a page stops after its rows. It is two walks merged: the
-- caller's notes (notes_user_updated) and the public notes
-- (notes_public_updated, which holds only them). Walking every note instead
-- would skip over everyone else's private notes, and cost more the more
-- there are.
CREATE INDEX notes_user_updated ON notes(user_id, updated DESC, id DESC);
CREATE INDEX notes_public_updated ON notes(updated DESC, id DESC) WHERE is_public = 1;

-- The tokens of a step an account is in the middle of: the links mailed
-- for a password reset (purpose 'reset') or to verify an email address
-- ('verify'), and a login waiting for its second factor ('mfa', the
-- mfa_token). The token itself is never stored: only its SHA-256, which is
-- what it is looked up by. bound is a digest of what the token was issued
-- against (the password hash and the email for a reset, the email for a
-- verification, the password hash for a login); when that changes, the
-- token is dead. tries counts the wrong codes sent with an mfa_token. A
-- row goes when it is used, or once it has expired.
CREATE TABLE account_tokens (
    token_hash BLOB    PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bound      BLOB    NOT NULL,
    expires    INTEGER NOT NULL,
    tries      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX account_tokens_user ON account_tokens(user_id);
CREATE INDEX account_tokens_expires ON account_tokens(expires);

-- At start, a stored file that no row names (left by a crash between
-- writing it and committing its row) is deleted; these find its row.
CREATE INDEX notes_cover_image ON notes(cover_image) WHERE cover_image IS NOT NULL;
CREATE INDEX users_cover_photo ON users(cover_photo) WHERE cover_photo IS NOT NULL;

-- ?q= of three characters or more: every trigram (three characters in a
-- row) of notes.search and where it is, in an FTS5 table that holds no text
-- of its own (content=''); rows go by their id (contentless_delete). search.go keeps it in batches: the
-- triggers below only write down, in the transaction of the change, which
-- notes were written since (pending; indexed: the index holds an older
-- version of the note) and which went while the index still holds them
-- (gone). A search reads the pending notes as well as the index.
CREATE VIRTUAL TABLE notes_search USING fts5(search, content='', contentless_delete=1,
    tokenize='trigram case_sensitive 1');
-- Each batch becomes a segment of the index; FTS5 merges segments of one
-- size into one of the next once 16 of them are there (its default is 4).
-- A trigram is then copied about half as many times on its way to the big
-- segments, for a few more segments to look in until the indexer's merge
-- after a catch-up (search.go has the figures).
INSERT INTO notes_search (notes_search, rank) VALUES ('automerge', 16);
CREATE TABLE notes_search_pending (
    note_id INTEGER PRIMARY KEY,
    indexed INTEGER NOT NULL
);
CREATE TABLE notes_search_gone (note_id INTEGER PRIMARY KEY);
CREATE TRIGGER notes_search_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_search_pending (note_id, indexed) VALUES (new.id, 0);
END;
CREATE TRIGGER notes_search_update AFTER UPDATE OF search ON notes WHEN new.search IS NOT old.search BEGIN
    INSERT OR IGNORE INTO notes_search_pending (note_id, indexed) VALUES (new.id, 1);
END;
CREATE TRIGGER notes_search_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_search_gone (note_id) SELECT old.id
        WHERE NOT EXISTS (SELECT 1 FROM notes_search_pending WHERE note_id = old.id AND indexed = 0);
    DELETE FROM notes_search_pending WHERE note_id = old.id;
END;

-- The second factor of an account that turned TOTP on: its secret, sealed
-- under DATA_DIR/mfa.key (sealing.go), never as it is; when it was turned
-- on (NULL while the user is still enrolling: login does not ask for a
-- code yet); and the newest time step a code was accepted for, so that
-- each code works once.
CREATE TABLE totp (
    user_id   INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret    BLOB    NOT NULL,
    confirmed INTEGER,
    last_step INTEGER NOT NULL DEFAULT 0
);

-- The recovery codes of an account with TOTP: only their SHA-256. A row
-- goes when its code is used, and a new set replaces the old one whole.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;

-- The account's security log, which its owner reads (GET
-- /api/security-log/): logins and failed ones, wrong codes, a refresh
-- token reused, password, email and second-factor changes, sessions
-- ended (securitylog.go has the list). Written in the transaction of what
-- it records. Never a token, code or password. At most the newest 1,000
-- of a user's are kept (the write that adds one trims the rest) and none
-- older than 180 days (the hourly clean-up, by security_events_at).
CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    ip         TEXT    NOT NULL DEFAULT '',
    user_agent TEXT    NOT NULL DEFAULT '',
    session_id TEXT,
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX security_events_user ON security_events(user_id, id);
CREATE INDEX security_events_at ON security_events(at);

-- upgrade to version 2
-- Notes.
CREATE TABLE notes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT    NOT NULL DEFAULT '',
    body        TEXT    NOT NULL DEFAULT '',
    search      TEXT    NOT NULL DEFAULT '',
    cover_image TEXT,
    is_public   INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL,
    updated     INTEGER NOT NULL
);
CREATE INDEX notes_updated ON notes(updated DESC, id DESC);
CREATE INDEX notes_user_updated ON notes(user_id, updated DESC, id DESC);

-- upgrade to version 3
-- The list became two walks merged: the public notes get an index of their
-- own, and the walk over every note goes.
CREATE INDEX notes_public_updated ON notes(updated DESC, id DESC) WHERE is_public = 1;
DROP INDEX notes_updated;

-- upgrade to version 4
-- The flush finds revoked sessions by an index.
CREATE INDEX sessions_revoked ON sessions(revoked) WHERE revoked IS NOT NULL;

-- upgrade to version 5
-- The quota's running totals. Notes written before count their text (the
-- size of their images is not known here).
ALTER TABLE users ADD COLUMN notes_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN notes_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE notes ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE notes SET size = length(CAST(title AS BLOB)) + length(CAST(body AS BLOB));
UPDATE users SET
    notes_count = (SELECT count(*) FROM notes WHERE user_id = users.id),
    notes_bytes = (SELECT coalesce(sum(size), 0) FROM notes WHERE user_id = users.id);

-- upgrade to version 6
-- Indexes that find the row naming a stored file.
CREATE INDEX notes_cover_image ON notes(cover_image) WHERE cover_image IS NOT NULL;
CREATE INDEX users_cover_photo ON users(cover_photo) WHERE cover_photo IS NOT NULL;

-- upgrade to version 7
-- Account recovery by email: whether the email is verified, and the
-- tokens of the links mailed.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
CREATE TABLE account_tokens (
    token_hash BLOB    PRIMARY KEY,
    purpose    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bound      BLOB    NOT NULL,
    expires    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX account_tokens_user ON account_tokens(user_id);
CREATE INDEX account_tokens_expires ON account_tokens(expires);

-- upgrade to version 8
-- The trigram index of ?q=, filled from the notes there are.
-- ?q= of three characters or more: every trigram (three characters in a
-- row) of notes.search and where it is, in an FTS5 table that holds no text
-- of its own (content=''); rows go by their id (contentless_delete). search.go keeps it in batches: the
-- triggers below only write down, in the transaction of the change, which
-- notes were written since (pending; indexed: the index holds an older
-- version of the note) and which went while the index still holds them
-- (gone). A search reads the pending notes as well as the index.
CREATE VIRTUAL TABLE notes_search USING fts5(search, content='', contentless_delete=1,
    tokenize='trigram case_sensitive 1');
CREATE TABLE notes_search_pending (
    note_id INTEGER PRIMARY KEY,
    indexed INTEGER NOT NULL
);
CREATE TABLE notes_search_gone (note_id INTEGER PRIMARY KEY);
CREATE TRIGGER notes_search_insert AFTER INSERT ON notes BEGIN
    INSERT INTO notes_search_pending (note_id, indexed) VALUES (new.id, 0);
END;
CREATE TRIGGER notes_search_update AFTER UPDATE OF search ON notes WHEN new.search IS NOT old.search BEGIN
    INSERT OR IGNORE INTO notes_search_pending (note_id, indexed) VALUES (new.id, 1);
END;
CREATE TRIGGER notes_search_delete AFTER DELETE ON notes BEGIN
    INSERT INTO notes_search_gone (note_id) SELECT old.id
        WHERE NOT EXISTS (SELECT 1 FROM notes_search_pending WHERE note_id = old.id AND indexed = 0);
    DELETE FROM notes_search_pending WHERE note_id = old.id;
END;
INSERT INTO notes_search (rowid, search) SELECT id, search FROM notes;

-- upgrade to version 9
-- The blacklist without its tie to sessions (no session_id, no index by it,
-- no cascade), so that a rotation writes one row at the table's end. A
-- replacement kept whole holds the user's name and email, which no longer
-- go with the user: kept only where a grace answer might still need it
-- (rotated in the last hour; the grace period is seconds).
CREATE TABLE blacklist_v9 (
    jti            TEXT    PRIMARY KEY,
    expires        INTEGER NOT NULL,
    blacklisted_at INTEGER NOT NULL,
    replacement    TEXT
) WITHOUT ROWID;
INSERT INTO blacklist_v9 (jti, expires, blacklisted_at, replacement)
    SELECT jti, expires, blacklisted_at,
        CASE WHEN blacklisted_at > (unixepoch() - 3600) * 1000000 THEN replacement END
    FROM blacklist;
DROP TABLE blacklist;
ALTER TABLE blacklist_v9 RENAME TO blacklist;
CREATE INDEX blacklist_expires ON blacklist(expires);

-- upgrade to version 10
-- The search index merges its segments 16 at a time (see notes_search).
INSERT INTO notes_search (notes_search, rank) VALUES ('automerge', 16);

-- upgrade to version 11
-- A rotated token's replacement is named by its jti and its key's kid.
-- What older servers kept of it goes: a grace answer needs it only for
-- seconds after the rotation, and a token presented again without it
-- revokes its session, as any reuse does.
ALTER TABLE blacklist DROP COLUMN replacement;
ALTER TABLE blacklist ADD COLUMN next_jti TEXT;
ALTER TABLE blacklist ADD COLUMN next_kid TEXT;

-- upgrade to version 12
-- The second factor (TOTP and recovery codes), the login's mfa_token in
-- account_tokens with its wrong codes counted, and the security log.
ALTER TABLE account_tokens ADD COLUMN tries INTEGER NOT NULL DEFAULT 0;

-- The second factor of an account that turned TOTP on: its secret, sealed
-- under DATA_DIR/mfa.key (sealing.go), never as it is; when it was turned
-- on (NULL while the user is still enrolling: login does not ask for a
-- code yet); and the newest time step a code was accepted for, so that
-- each code works once.
CREATE TABLE totp (
    user_id   INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret    BLOB    NOT NULL,
    confirmed INTEGER,
    last_step INTEGER NOT NULL DEFAULT 0
);

-- The recovery codes of an account with TOTP: only their SHA-256. A row
-- goes when its code is used, and a new set replaces the old one whole.
CREATE TABLE recovery_codes (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB    NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;

-- The account's security log, which its owner reads (GET
-- /api/security-log/): logins and failed ones, wrong codes, a refresh
-- token reused, password, email and second-factor changes, sessions
-- ended (securitylog.go has the list). Written in the transaction of what
-- it records. Never a token, code or password. At most the newest 1,000
-- of a user's are kept (the write that adds one trims the rest) and none
-- older than 180 days (the hourly clean-up, by security_events_at).
CREATE TABLE security_events (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    ip         TEXT    NOT NULL DEFAULT '',
    user_agent TEXT    NOT NULL DEFAULT '',
    session_id TEXT,
    detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX security_events_user ON security_events(user_id, id);
CREATE INDEX security_events_at ON security_events(at);
