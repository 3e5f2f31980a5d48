package main

// factors.go: the rows of the second factor: an account's TOTP secret
// (sealed, sealing.go) with the newest time step a code was accepted for,
// its recovery codes (their SHA-256), and the mfa_token of a login waiting
// for its code (an account_tokens row of purpose "mfa", links.go).
//
// A code is spent in the transaction of what it was given for: the step
// moves past it, or the recovery code's row goes. Of two requests with one
// code (two logins, a login and turning TOTP off), exactly one spends it;
// the other finds it spent and changes nothing.
//
// It knows SQL, not HTTP or how a code is checked (mfa.go, totp.go).

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"time"
)

const (
	mfaPurpose  = "mfa" // account_tokens: a login's mfa_token
	mfaTokenTTL = 5 * time.Minute
	mfaTries    = 5 // wrong codes an mfa_token survives: the fifth ends it
)

var (
	errTOTPOn      = errors.New("TOTP is on already")
	errCodeSpent   = errors.New("the code was spent already")
	errNoEnrolment = errors.New("no TOTP enrolment to confirm")
)

// totpState is an account's TOTP row.
type totpState struct {
	sealed   []byte // the secret, sealed for the user
	on       bool   // confirmed: a login asks for a code
	lastStep int64  // the newest step a code was accepted for
}

// totpOf is user id's TOTP row, or errNotFound.
func (s *store) totpOf(ctx context.Context, id int64) (totpState, error) {
	var t totpState
	var confirmed sql.NullInt64
	err := s.db.queryRow(ctx, `SELECT secret, confirmed, last_step FROM totp WHERE user_id = ?`, id).
		Scan(&t.sealed, &confirmed, &t.lastStep)
	if errors.Is(err, sql.ErrNoRows) {
		return totpState{}, errNotFound
	}
	t.on = confirmed.Valid
	return t, err
}

// recoveryCodesLeft counts user id's recovery codes not used yet.
func (s *store) recoveryCodesLeft(ctx context.Context, id int64) (int, error) {
	var n int
	err := s.db.queryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ?`, id).Scan(&n)
	return n, err
}

// startTOTP keeps a new secret for user id, not confirmed yet: a login
// does not ask for a code until it is. It replaces a secret not confirmed
// yet; errTOTPOn if TOTP is on already.
func (s *store) startTOTP(ctx context.Context, id int64, sealed []byte) error {
	return s.write(ctx, func(tx *txn, _ *changed) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO totp (user_id, secret) VALUES (?, ?)
			ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = 0 WHERE confirmed IS NULL`, id, sealed)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errTOTPOn)
		}
		return nil
	})
}

// proof is a second factor about to be spent.
type proof struct {
	step     int64  // a TOTP code: the step it matched
	sealed   []byte // and the secret it matched under, which must still be the account's
	recovery []byte // a recovery code: its SHA-256
}

// amr is RFC 8176's names of a login's factors with p, for its tokens.
func (p proof) amr() methods {
	if p.recovery != nil {
		return "pwd kba" // knowledge-based: a code the user kept
	}
	return "pwd otp"
}

// factors says it in words, for the security log.
func (p proof) factors() string {
	if p.recovery != nil {
		return "password and a recovery code"
	}
	return "password and a TOTP code"
}

// spend spends p, a factor of user id's with TOTP on, in tx; errCodeSpent
// if it was spent already (or TOTP was turned off, or on again with
// another secret).
func spend(ctx context.Context, tx *txn, id int64, p proof) error {
	var res sql.Result
	var err error
	if p.recovery != nil {
		res, err = tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?`, id, p.recovery)
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE totp SET last_step = ?
			WHERE user_id = ? AND secret = ? AND last_step < ? AND confirmed IS NOT NULL`, p.step, id, p.sealed, p.step)
	}
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return cmp.Or(err, errCodeSpent)
	}
	return nil
}

// logSpent adds a recovery code's use to the log.
func logSpent(ch *changed, id int64, p proof, now time.Time, from origin) {
	if p.recovery != nil {
		ch.log(event{userID: id, kind: evRecoveryUsed, at: now, from: from})
	}
}

// confirmTOTP turns TOTP on for user id with the first code, p, of the
// secret they enrolled, and keeps the hashes of their recovery codes.
// errNoEnrolment if the secret is not the one enrolled (a new enrolment
// replaced it) or TOTP is on already; errCodeSpent if p's step was used.
func (s *store) confirmTOTP(ctx context.Context, id int64, p proof, codes [][]byte, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		res, err := tx.ExecContext(ctx, `UPDATE totp SET confirmed = ?, last_step = ?
			WHERE user_id = ? AND secret = ? AND confirmed IS NULL AND last_step < ?`, micros(now), p.step, id, p.sealed, p.step)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errNoEnrolment)
		}
		ch.log(event{userID: id, kind: evMFAOn, at: now, from: from, detail: "TOTP, with 10 recovery codes"})
		return replaceRecoveryCodes(ctx, tx, id, codes)
	})
}

// disableTOTP turns TOTP off for user id, spending p: the secret and the
// recovery codes go.
func (s *store) disableTOTP(ctx context.Context, id int64, p proof, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		if err := spend(ctx, tx, id, p); err != nil {
			return err
		}
		logSpent(ch, id, p, now, from)
		ch.log(event{userID: id, kind: evMFAOff, at: now, from: from})
		if _, err := tx.ExecContext(ctx, `DELETE FROM totp WHERE user_id = ?`, id); err != nil {
			return err
		}
		return replaceRecoveryCodes(ctx, tx, id, nil)
	})
}

// renewRecoveryCodes replaces user id's recovery codes, spending p.
func (s *store) renewRecoveryCodes(ctx context.Context, id int64, p proof, codes [][]byte, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		if err := spend(ctx, tx, id, p); err != nil {
			return err
		}
		logSpent(ch, id, p, now, from)
		ch.log(event{userID: id, kind: evRecoveryRenewed, at: now, from: from})
		return replaceRecoveryCodes(ctx, tx, id, codes)
	})
}

func replaceRecoveryCodes(ctx context.Context, tx *txn, id int64, codes [][]byte) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, id); err != nil {
		return err
	}
	for _, hash := range codes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)`, id, hash); err != nil {
			return err
		}
	}
	return nil
}

// disableTOTPByAdministrator turns user id's TOTP off, for the users
// command: the way back for someone who lost both the phone and the codes.
func (s *store) disableTOTPByAdministrator(ctx context.Context, id int64, now time.Time) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.log(event{userID: id, kind: evMFAOff, at: now, from: byAdministrator, detail: "by an administrator"})
		if _, err := tx.ExecContext(ctx, `DELETE FROM totp WHERE user_id = ?`, id); err != nil {
			return err
		}
		return replaceRecoveryCodes(ctx, tx, id, nil)
	})
}

// ---- a login waiting for its code ----

// issueMFAToken keeps the SHA-256 of a login's mfa_token, bound to the
// password hash the login checked, verifiedHash: errNotFound if that is no
// longer user id's (or they are inactive), so a login racing a password
// change cannot outlive it.
func (s *store) issueMFAToken(ctx context.Context, id int64, verifiedHash string, tokenHash []byte, expires time.Time) error {
	return s.write(ctx, func(tx *txn, _ *changed) error {
		var emailKey string
		err := tx.QueryRowContext(ctx, `SELECT email_key FROM users WHERE id = ? AND password = ? AND is_active`,
			id, verifiedHash).Scan(&emailKey)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_tokens (token_hash, purpose, user_id, bound, expires)
			VALUES (?, ?, ?, ?, ?)`, tokenHash, mfaPurpose, id, accountTokenBinding(mfaPurpose, verifiedHash, emailKey), micros(expires))
		return err
	})
}

// mfaChallenge is the user a live mfa_token (by its SHA-256) belongs to,
// or errNotFound: unknown, expired, dead (the password changed) or ended by
// its wrong codes.
func (s *store) mfaChallenge(ctx context.Context, tokenHash []byte, now time.Time) (user, error) {
	return tokenOwner(ctx, s.db.queryRow, mfaPurpose, tokenHash, now)
}

// wrongCode counts a wrong code against an mfa_token: the fifth ends it.
// The user's log says so.
func (s *store) wrongCode(ctx context.Context, tokenHash []byte, id int64, now time.Time, from origin) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		ch.log(event{userID: id, kind: evCodeFailed, at: now, from: from})
		if _, err := tx.ExecContext(ctx, `UPDATE account_tokens SET tries = tries + 1 WHERE token_hash = ?`, tokenHash); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE token_hash = ? AND tries >= ?`, tokenHash, mfaTries)
		return err
	})
}

// finishMFALogin is a login's second step, in one transaction: the
// mfa_token checked again and used up, the code p spent, then the session
// made as a password login makes it. errNotFound if the mfa_token died
// meanwhile, errCodeSpent if p did (then nothing changes).
func (s *store) finishMFALogin(ctx context.Context, tokenHash []byte, p proof, sess session) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		u, err := tokenOwner(ctx, tx.QueryRowContext, mfaPurpose, tokenHash, sess.Created)
		if err != nil {
			return err
		}
		if err := spend(ctx, tx, u.ID, p); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM account_tokens WHERE token_hash = ?`, tokenHash); err != nil {
			return err
		}
		var hash string
		if err := tx.QueryRowContext(ctx, `SELECT password FROM users WHERE id = ?`, u.ID).Scan(&hash); err != nil {
			return err
		}
		sess.UserID = u.ID
		logSpent(ch, u.ID, p, sess.Created, origin{ip: sess.IP, userAgent: sess.UserAgent, sessionID: sess.ID})
		return insertSession(ctx, tx, ch, sess, hash, p.factors())
	})
}
