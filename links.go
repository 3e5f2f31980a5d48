package main

// links.go: the rows of the links mailed for a password reset or an email
// verification (account_tokens; a login's mfa_token is a row of them too,
// factors.go).
//
// A link's token is never stored, only its SHA-256, bound to what it was
// issued against (the password hash and the email of a reset, the email of
// a verification): when that changes, the link is dead. Redeeming one
// checks it again in the transaction that makes the change, so of two
// uses of one link exactly one wins. recovery.go makes the tokens and the
// mails; this file keeps the rows.
//
// It knows SQL, not HTTP.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"
)

// Purposes of account_tokens rows.
const (
	resetPurpose  = "reset"
	verifyPurpose = "verify"
)

// accountTokenBinding is the digest of what a token of purpose is bound to:
// the password hash and email of a reset or a login's mfa_token, the email
// of a verification. A token whose binding no longer matches its user's
// row is dead.
func accountTokenBinding(purpose, passwordHash, emailKey string) []byte {
	h := sha256.New()
	h.Write([]byte(purpose + "\x00" + emailKey))
	if purpose != verifyPurpose {
		h.Write([]byte("\x00" + passwordHash))
	}
	return h.Sum(nil)
}

// userIDByEmail finds the user with this email (case-insensitively), by
// the unique index on email_key, or errNotFound.
func (s *store) userIDByEmail(ctx context.Context, email string) (int64, error) {
	var id int64
	err := s.db.queryRow(ctx, `SELECT id FROM users WHERE email_key = ?`, foldKey(email)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, errNotFound
	}
	return id, err
}

// issueAccountToken stores the SHA-256 of a new token of purpose for user
// id, bound to their row as it is now, and returns the user. It issues
// nothing and returns errNotFound for a user who is gone or inactive, or
// for a verification of an email already verified.
func (s *store) issueAccountToken(ctx context.Context, purpose string, id int64, tokenHash []byte, expires time.Time) (user, error) {
	var u user
	err := s.write(ctx, func(tx *txn, _ *changed) error {
		var hash, emailKey string
		err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+`, u.password, u.email_key
			FROM users u WHERE u.id = ?`, id), &u, &hash, &emailKey)
		if err != nil {
			return err
		}
		if !u.IsActive || purpose == verifyPurpose && u.EmailVerified {
			return errNotFound
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_tokens (token_hash, purpose, user_id, bound, expires)
			VALUES (?, ?, ?, ?, ?)`, tokenHash, purpose, id, accountTokenBinding(purpose, hash, emailKey), micros(expires))
		return err
	})
	return u, err
}

// accountTokenUser is the active user a live token of purpose (by its
// SHA-256) belongs to, or errNotFound: unknown, used, expired, or dead
// because what it was bound to changed. It reads; redeeming is
// resetPassword's and verifyEmail's.
func (s *store) accountTokenUser(ctx context.Context, purpose string, tokenHash []byte, now time.Time) (user, error) {
	return tokenOwner(ctx, s.db.queryRow, purpose, tokenHash, now)
}

// tokenOwner is accountTokenUser's query, in or out of a transaction.
func tokenOwner(ctx context.Context, queryRow func(context.Context, string, ...any) *sql.Row,
	purpose string, tokenHash []byte, now time.Time) (user, error) {
	var u user
	var hash, emailKey string
	var bound []byte
	err := scanUser(queryRow(ctx, `SELECT `+userColumns+`, u.password, u.email_key, t.bound
		FROM account_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.token_hash = ? AND t.purpose = ? AND t.expires > ?`, tokenHash, purpose, micros(now)),
		&u, &hash, &emailKey, &bound)
	if err != nil {
		return user{}, err
	}
	if !u.IsActive || !hmac.Equal(bound, accountTokenBinding(purpose, hash, emailKey)) {
		return user{}, errNotFound
	}
	return u, nil
}

// resetPassword redeems a reset token: in one transaction it checks it
// again (errNotFound if it died meanwhile: of two confirms of one token,
// exactly one gets here first), stores the new hash, marks the email
// verified (the link reached it), deletes every reset token of the user,
// and revokes all their sessions.
func (s *store) resetPassword(ctx context.Context, tokenHash []byte, newHash string, now time.Time, from origin) (user, error) {
	var u user
	err := s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		var err error
		if u, err = tokenOwner(ctx, tx.QueryRowContext, resetPurpose, tokenHash, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET password = ?, email_verified = 1 WHERE id = ?`, newHash, u.ID); err != nil {
			return err
		}
		ch.log(event{userID: u.ID, kind: evPasswordReset, at: now, from: from, detail: "every session was logged out"})
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ? AND purpose = ?`, u.ID, resetPurpose); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET revoked = ? WHERE user_id = ? AND revoked IS NULL`, micros(now), u.ID)
		return err
	})
	u.EmailVerified = true
	return u, err
}

// verifyEmail redeems a verification token: the user's email is verified,
// and their verification tokens go.
func (s *store) verifyEmail(ctx context.Context, tokenHash []byte, now time.Time, from origin) (user, error) {
	var u user
	err := s.write(ctx, func(tx *txn, ch *changed) error {
		ch.account = true
		var err error
		if u, err = tokenOwner(ctx, tx.QueryRowContext, verifyPurpose, tokenHash, now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET email_verified = 1 WHERE id = ?`, u.ID); err != nil {
			return err
		}
		ch.log(event{userID: u.ID, kind: evEmailVerified, at: now, from: from, detail: u.Email})
		_, err = tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE user_id = ? AND purpose = ?`, u.ID, verifyPurpose)
		return err
	})
	u.EmailVerified = true
	return u, err
}
