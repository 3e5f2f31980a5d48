package main

// securitylog.go: each account's security log, as rows: written in the
// transaction of the change it records, read a page at a time by its
// owner (GET /api/security-log/), and kept bounded.
//
// A write of the store that changes what an account can do says so with
// ch.log (store.go's write records the lines before it commits): a change
// and its line are never one without the other. A line holds what
// happened, when, from which address, user agent and session, and a
// detail in words; never a token, a code or a password. A user keeps at
// most their newest 1,000 lines (the write that adds one trims the rest,
// by the index on user_id) and none older than 180 days (the hourly
// clean-up, by the index on at).
//
// It knows SQL, not HTTP: handlers say where a request came from (origin).

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// What the log records. The words are the wire's: docs/API.md lists them.
const (
	evRegistered      = "registered"
	evLogin           = "login"            // detail: the factors it took
	evLoginFailed     = "login_failed"     // a wrong password for this account
	evCodeFailed      = "mfa_failed"       // a wrong or used code after the right password
	evTokenReuse      = "token_reuse"      // a rotated refresh token came back: its session was revoked
	evPasswordChanged = "password_changed" // by the user, or set by an administrator
	evPasswordReset   = "password_reset"   // through a mailed link
	evEmailChanged    = "email_changed"    // detail: the address before
	evEmailVerified   = "email_verified"   // a mailed link was opened
	evMFAOn           = "mfa_enabled"      // TOTP turned on, recovery codes made
	evMFAOff          = "mfa_disabled"     // TOTP turned off
	evRecoveryUsed    = "recovery_code_used"
	evRecoveryRenewed = "recovery_codes_renewed"
	evSessionRevoked  = "session_revoked"   // detail: which session
	evLogoutAll       = "logout_everywhere" // every session revoked, by the user or an administrator
	evDeactivated     = "deactivated"       // by an administrator
	evActivated       = "activated"         // by an administrator
)

// Bounds of a user's log.
const (
	securityLogKeep = 1000
	securityLogDays = 180
)

// origin is where a change to an account came from, as its log keeps it:
// the client's address and user agent, and the session the request was
// made in (none for a login, a mailed link or an administrator's command).
type origin struct {
	ip, userAgent, sessionID string
}

// byAdministrator is the origin of the users command's changes.
var byAdministrator = origin{userAgent: "jwtnotes users (an administrator)"}

// event is one line of a user's log, as a write records it.
type event struct {
	userID  int64
	kind    string
	at      time.Time
	from    origin
	session string // the session it is about, if not the request's: a login's new one, a reuse's revoked one
	detail  string
}

// log adds a line to the write's: written in its transaction, before it
// commits.
func (ch *changed) log(e event) { ch.events = append(ch.events, e) }

// recordEvents writes the lines of a write, and trims each user's log to
// its newest securityLogKeep.
func recordEvents(ctx context.Context, tx *txn, events []event) error {
	for _, e := range events {
		session := e.session
		if session == "" {
			session = e.from.sessionID
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO security_events (user_id, at, event, ip, user_agent, session_id, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, e.userID, micros(e.at), e.kind, e.from.ip, truncate(e.from.userAgent, 512),
			sql.NullString{String: session, Valid: session != ""}, e.detail)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM security_events WHERE user_id = ?1 AND id <=
			(SELECT id FROM security_events WHERE user_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`, e.userID, securityLogKeep)
		if err != nil {
			return err
		}
	}
	return nil
}

// logEvent writes one line on its own: a failed login, which changes
// nothing else.
func (s *store) logEvent(ctx context.Context, e event) error {
	return s.write(ctx, func(_ *txn, ch *changed) error {
		ch.log(e)
		return nil
	})
}

// securityEvent is a line of the log as its owner reads it.
type securityEvent struct {
	ID        int64
	Kind      string
	At        time.Time
	IP        string
	UserAgent string
	SessionID string // "" for none
	Detail    string
}

// securityLog is a page of user id's log, newest first, limit lines from
// offset, none older than securityLogDays before now.
func (s *store) securityLog(ctx context.Context, id int64, limit, offset int, now time.Time) ([]securityEvent, error) {
	rows, err := s.db.query(ctx, `SELECT id, event, at, ip, user_agent, coalesce(session_id, ''), detail
		FROM security_events WHERE user_id = ? AND at >= ? ORDER BY id DESC LIMIT ? OFFSET ?`,
		id, micros(now.AddDate(0, 0, -securityLogDays)), limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []securityEvent
	for rows.Next() {
		var e securityEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.Kind, &at, &e.IP, &e.UserAgent, &e.SessionID, &e.Detail); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		page = append(page, e)
	}
	return page, rows.Err()
}

// seenDevice reports whether user id logged in (or registered) with this
// user agent from this network in the days before now, in a session other
// than except; and whether they ever logged in or registered before at all
// (a first login is from a new device by definition, and mails nobody).
func (s *store) seenDevice(ctx context.Context, id int64, userAgent, network, except string, since time.Time) (seen, before bool, err error) {
	rows, err := s.db.query(ctx, `SELECT ip, user_agent, at, coalesce(session_id, '') FROM security_events
		WHERE user_id = ? AND event IN ('`+evLogin+`', '`+evRegistered+`') ORDER BY id DESC`, id)
	if err != nil {
		return false, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var ip, agent, session string
		var at int64
		if err := rows.Scan(&ip, &agent, &at, &session); err != nil {
			return false, false, err
		}
		if except != "" && session == except {
			continue
		}
		before = true
		if agent == truncate(userAgent, 512) && networkOf(ip) == network && fromMicros(at).After(since) {
			return true, true, rows.Err()
		}
	}
	return false, before, rows.Err()
}

// oldSecurityEvents deletes a batch of the lines older than
// securityLogDays before :now (the hourly clean-up, accounts.go).
var oldSecurityEvents = `DELETE FROM security_events WHERE id IN
	(SELECT id FROM security_events WHERE at < :now - ` + strconv.FormatInt(securityLogDays*24*int64(time.Hour/time.Microsecond), 10) +
	` LIMIT :batch)`
