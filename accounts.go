package main

// accounts.go: the rows of account management: a profile changed, a
// password changed or set, an account deleted, deactivated or activated,
// sessions listed and ended, and what can no longer matter flushed.
//
// It is the store's (store.go), in a file of its own: it knows SQL, not
// HTTP. Every write goes through s.write and says what it changed.

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"time"
)

// profileChanges are the profile fields a user may change; nil leaves a
// field as it is.
type profileChanges struct {
	Username         *string
	Email            *string
	FirstName        *string
	LastName         *string
	Bio              *string
	CoverPhoto       *imageFile // a new photo
	RemoveCoverPhoto bool
}

// updateProfile applies changes to user id and returns the user as saved,
// and whether the email changed (more than in case: then it is no longer
// verified). If another user took the new username or email first, it
// returns errUsernameTaken or errEmailTaken and saves nothing.
func (s *store) updateProfile(ctx context.Context, id int64, c profileChanges, now time.Time, from origin) (user, bool, error) {
	var u user
	var oldPhoto, oldEmail, oldEmailKey string
	err := s.withNewFile(coversFolder, c.CoverPhoto, func(newPhoto *string) error {
		return s.write(ctx, func(tx *txn, ch *changed) error {
			ch.account = true
			err := tx.QueryRowContext(ctx, `SELECT coalesce(cover_photo, ''), email, email_key FROM users WHERE id = ?`, id).Scan(&oldPhoto, &oldEmail, &oldEmailKey)
			if errors.Is(err, sql.ErrNoRows) {
				return errUserGone
			}
			if err != nil {
				return err
			}
			photoChanges := newPhoto != nil || c.RemoveCoverPhoto
			_, err = tx.ExecContext(ctx, `UPDATE users SET
					username     = coalesce(?1, username),
					username_key = coalesce(?2, username_key),
					email        = coalesce(?3, email),
					email_key    = coalesce(?4, email_key),
					first_name   = coalesce(?5, first_name),
					last_name    = coalesce(?6, last_name),
					bio          = coalesce(?7, bio),
					cover_photo  = iif(?8, ?9, cover_photo),
					email_verified = iif(coalesce(?4, email_key) = email_key, email_verified, 0)
				WHERE id = ?10`,
				c.Username, foldKeyPtr(c.Username), c.Email, foldKeyPtr(c.Email), c.FirstName, c.LastName, c.Bio,
				photoChanges, newPhoto, id)
			if isUniqueViolation(err) {
				if c.Username == nil {
					return errEmailTaken
				}
				return whichTaken(ctx, tx, *c.Username, id)
			}
			if err != nil {
				return err
			}
			if photoChanges && oldPhoto != "" {
				ch.files = append(ch.files, oldPhoto)
			}
			if err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id), &u); err != nil {
				return err
			}
			if foldKey(u.Email) != oldEmailKey { // every link mailed before dies, even if the email comes back
				ch.log(event{userID: id, kind: evEmailChanged, at: now, from: from, detail: "to " + u.Email + " from " + oldEmail})
				_, err = tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ?`, id)
			}
			return err
		})
	})
	return u, err == nil && foldKey(u.Email) != oldEmailKey, err
}

func foldKeyPtr(s *string) *string {
	if s == nil {
		return nil
	}
	k := foldKey(*s)
	return &k
}

// passwordHash returns the stored hash of user id, or errUserGone.
func (s *store) passwordHash(ctx context.Context, id int64) (string, error) {
	var hash string
	err := s.db.queryRow(ctx, `SELECT password FROM users WHERE id = ?`, id).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errUserGone
	}
	return hash, err
}

// changePassword replaces the hash the old password was checked against,
// oldHash, by hash, and revokes every session of the user but keep, in one
// transaction: no other device stays logged in with the old password, and
// no reset link mailed before works. If
// the hash changed since it was checked (a password reset, which revoked
// keep too), it returns errPasswordChanged and changes nothing: two changes
// at the same moment cannot both win.
func (s *store) changePassword(ctx context.Context, id int64, oldHash, hash string, now time.Time, from origin) error {
	keep := from.sessionID
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		ch.log(event{userID: id, kind: evPasswordChanged, at: now, from: from, detail: "every other session was logged out"})
		res, err := tx.ExecContext(ctx, `UPDATE users SET password = ? WHERE id = ? AND password = ?`, hash, id, oldHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, s.userGoneOr(ctx, tx, id, errPasswordChanged))
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET revoked = ?
			WHERE user_id = ? AND id != ? AND revoked IS NULL`, micros(now), id, keep)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ? AND purpose = ?`, id, resetPurpose)
		return err
	})
}

// deleteUser deletes user id if their password hash is still verifiedHash
// (else errPasswordChanged: it was reset meanwhile); the foreign keys take
// their notes, sessions and blacklist rows with them, and their files go
// once that is committed.
func (s *store) deleteUser(ctx context.Context, id int64, verifiedHash string) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		ch.notes = append(ch.notes, noteWrite{owner: id, public: true}) // their notes, public ones too
		rows, err := tx.QueryContext(ctx, `SELECT cover_photo FROM users WHERE id = ?1 AND cover_photo IS NOT NULL
			UNION ALL SELECT cover_image FROM notes WHERE user_id = ?1 AND cover_image IS NOT NULL`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				return err
			}
			ch.files = append(ch.files, f)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ? AND password = ?`, id, verifiedHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, s.userGoneOr(ctx, tx, id, errPasswordChanged))
		}
		return nil
	})
}

// userGoneOr is errUserGone if user id is no more, else err: why a write
// conditioned on the user's row found none.
func (s *store) userGoneOr(ctx context.Context, tx *txn, id int64, err error) error {
	var exists bool
	if qerr := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM users WHERE id = ?)`, id).Scan(&exists); qerr != nil {
		return qerr
	}
	if !exists {
		return errUserGone
	}
	return err
}

// liveSessions lists the sessions of user id that can still be used, the
// most recently used first.
func (s *store) liveSessions(ctx context.Context, id int64, now time.Time) ([]session, error) {
	rows, err := s.db.query(ctx, `SELECT s.id, s.created, s.last_used, s.expires, s.user_agent, s.ip
		FROM sessions s WHERE s.user_id = ? AND `+liveSession+`
		ORDER BY s.last_used DESC, s.created DESC`, id, micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []session
	for rows.Next() {
		var sess session
		var created, lastUsed, expires int64
		if err := rows.Scan(&sess.ID, &created, &lastUsed, &expires, &sess.UserAgent, &sess.IP); err != nil {
			return nil, err
		}
		sess.UserID = id
		sess.Created, sess.LastUsed, sess.Expires = fromMicros(created), fromMicros(lastUsed), fromMicros(expires)
		list = append(list, sess)
	}
	return list, rows.Err()
}

// revokeUserSession revokes one live session of user id; errNotFound if
// there is no such session.
func (s *store) revokeUserSession(ctx context.Context, id int64, sessionID string, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		ch.log(event{userID: id, kind: evSessionRevoked, at: now, from: from, detail: "session " + sessionID})
		res, err := tx.ExecContext(ctx, `UPDATE sessions AS s SET revoked = ?
			WHERE s.id = ? AND s.user_id = ? AND `+liveSession, micros(now), sessionID, id, micros(now))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errNotFound)
		}
		return nil
	})
}

// revokeAllSessions logs user id out everywhere.
func (s *store) revokeAllSessions(ctx context.Context, id int64, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		ch.log(event{userID: id, kind: evLogoutAll, at: now, from: from})
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE user_id = ? AND revoked IS NULL`,
			micros(now), id)
		return err
	})
}

// flushExpired deletes what can no longer matter: sessions that are over
// (revoked or past their end; a token naming a missing session is refused
// all the same), blacklist rows of tokens that have expired anyway, and the
// tokens of mailed links past their time. It returns how many blacklist
// rows and sessions went.
func (s *store) flushExpired(ctx context.Context, now time.Time) (tokens, sessions int64, err error) {
	var mailed int64 // expired tokens of mailed links, and old lines of the security logs: not worth a count of their own
	// Each DELETE finds its rows by an index: counting the blacklist before
	// and after would read all of it. Each step runs in transactions of at
	// most flushBatch rows, so that a million expired rows never hold the one
	// writer for long: other writes go in between. (A session's blacklist
	// rows do not go with it: they name no session, and go when their
	// tokens expire.)
	overSessions := `SELECT id FROM sessions WHERE revoked IS NOT NULL
		UNION ALL SELECT id FROM sessions WHERE expires <= :now`
	for _, step := range []struct {
		query string
		count *int64
	}{
		{`DELETE FROM sessions WHERE id IN (` + overSessions + ` LIMIT :batch)`, &sessions},
		{`DELETE FROM blacklist WHERE jti IN (SELECT jti FROM blacklist WHERE expires <= :now LIMIT :batch)`, &tokens},
		{`DELETE FROM account_tokens WHERE token_hash IN
			(SELECT token_hash FROM account_tokens WHERE expires <= :now LIMIT :batch)`, &mailed},
		{oldSecurityEvents, &mailed}, // securitylog.go
	} {
		for deleted := int64(flushBatch); deleted == flushBatch; {
			err := s.write(ctx, func(tx *txn, _ *changed) error { // only what no answer kept holds
				res, err := tx.ExecContext(ctx, step.query, sql.Named("now", micros(now)), sql.Named("batch", flushBatch))
				if err != nil {
					return err
				}
				deleted, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return tokens, sessions, err
			}
			*step.count += deleted
		}
	}
	return tokens, sessions, nil
}

// flushBatch is how many rows one flush transaction deletes at most: a
// fraction of a millisecond of the writer, so that a flush of a million
// rows leaves the p99 of other writes within twice their own
// (TestScaleFlush; docs/PERFORMANCE.md has the sizes tried).
const flushBatch = 100

// usernameOf is user id's username, or errNotFound.
func (s *store) usernameOf(ctx context.Context, id int64) (string, error) {
	var name string
	err := s.db.queryRow(ctx, `SELECT username FROM users WHERE id = ?`, id).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNotFound
	}
	return name, err
}

// ---- the users command (commands.go) ----

// listUsers is every user, by id, as `jwtnotes users list` shows them.
func (s *store) listUsers(ctx context.Context) ([]user, error) {
	rows, err := s.db.query(ctx, `SELECT `+userColumns+` FROM users u ORDER BY u.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var users []user
	for rows.Next() {
		var u user
		if err := scanUser(rows, &u); err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// userNamed is the user whose username is name, in any case (the unique
// index on username_key), with their live sessions and notes counted.
func (s *store) userNamed(ctx context.Context, name string, now time.Time) (u user, sessions, notes int64, err error) {
	err = scanUser(s.db.queryRow(ctx, `SELECT `+userColumns+`,
			(SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND `+liveSession+`), u.notes_count
		FROM users u WHERE u.username_key = ?`, micros(now), foldKey(name)), &u, &sessions, &notes)
	return u, sessions, notes, err
}

// setActive activates or deactivates user id; deactivating revokes every
// session of theirs, and kills their mailed links.
func (s *store) setActive(ctx context.Context, id int64, active bool, now time.Time) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		kind := evDeactivated
		if active {
			kind = evActivated
		}
		ch.log(event{userID: id, kind: kind, at: now, from: byAdministrator})
		if _, err := tx.ExecContext(ctx, `UPDATE users SET is_active = ? WHERE id = ?`, active, id); err != nil || active {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE user_id = ? AND revoked IS NULL`, micros(now), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ?`, id)
		return err
	})
}

// setPassword stores a new password hash for user id, as an administrator
// sets it: every session of theirs is revoked, and every reset link dies.
func (s *store) setPassword(ctx context.Context, id int64, hash string, now time.Time) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		ch.log(event{userID: id, kind: evPasswordChanged, at: now, from: byAdministrator,
			detail: "set by an administrator; every session was logged out"})
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password = ? WHERE id = ?`, hash, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE user_id = ? AND revoked IS NULL`, micros(now), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ? AND purpose = ?`, id, resetPurpose)
		return err
	})
}
