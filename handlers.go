package main

// handlers.go: the HTTP API of ../shared/API.md.
//
// Read it top to bottom: the route table (the whole API at a glance), the
// handlers, then the machinery they share: routing, authentication, reading
// bodies, validating fields, passwords, and writing answers and errors.

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig recognises the three accepted formats
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// server holds what the handlers need. It is built once by newServer.
type server struct {
	cfg          config
	store        *store
	tokens       *tokenSigner
	passwords    *passwordHasher
	common       commonPasswords
	perAddress   *limiter // login and register requests per client address
	failedLogins *limiter // failed logins per account (and per unknown name)
	now          func() time.Time
	log          *slog.Logger
}

func newServer(cfg config, st *store, key []byte, log *slog.Logger, now func() time.Time) (*server, error) {
	common, err := loadCommonPasswords()
	if err != nil {
		return nil, err
	}
	return &server{
		cfg:          cfg,
		store:        st,
		tokens:       &tokenSigner{key: key},
		passwords:    newPasswordHasher(hashSlots(runtime.NumCPU())),
		common:       common,
		perAddress:   newLimiter(cfg.ipLimit, time.Minute),
		failedLogins: newLimiter(cfg.loginLimit, cfg.loginWindow),
		now:          now,
		log:          log,
	}, nil
}

// Who may call a route.
type access int

const (
	public     access = iota // the Authorization header is not read (the token endpoints, as simplejwt)
	optional                 // no token is fine, a bad one is refused (as DRF's AllowAny)
	authorized               // a valid access token is required
)

// handler serves one route. caller is nil unless the request carried a valid
// access token. A returned error becomes the contract's error answer.
type handler func(w http.ResponseWriter, r *http.Request, caller *caller) error

// routes is the API, every route of the contract in its order. Each path
// answers with and without its trailing slash.
func (s *server) routes() http.Handler {
	rt := newRouter(s)
	rt.handle("POST", "/api/token/", public, s.login)
	rt.handle("POST", "/api/token/refresh/", public, s.refresh)
	rt.handle("POST", "/api/token/verify/", public, s.verifyToken)
	rt.handle("POST", "/api/token/blacklist/", public, s.logout)
	rt.handle("POST", "/api/register/", optional, s.register)
	rt.handle("GET", "/api/profile/", authorized, s.getProfile)
	rt.handle("PATCH", "/api/profile/", authorized, s.updateProfile)
	rt.handle("DELETE", "/api/profile/", authorized, s.deleteAccount)
	rt.handle("PUT", "/api/profile/update/", authorized, s.updateProfile)
	rt.handle("PATCH", "/api/profile/update/", authorized, s.updateProfile)
	rt.handle("POST", "/api/profile/password/", authorized, s.changePassword)
	rt.handle("GET", "/api/sessions/", authorized, s.listSessions)
	rt.handle("DELETE", "/api/sessions/", authorized, s.logoutEverywhere)
	rt.handle("DELETE", "/api/sessions/{id}/", authorized, s.revokeSession)
	rt.handle("GET", "/api/notes/", authorized, s.listNotes)
	rt.handle("POST", "/api/notes/", authorized, s.createNote)
	rt.handle("POST", "/api/notes/create/", authorized, s.createNote)
	rt.handle("GET", "/api/notes/{id}/", authorized, s.getNote)
	rt.handle("PUT", "/api/notes/{id}/", authorized, s.updateNote)
	rt.handle("PATCH", "/api/notes/{id}/", authorized, s.updateNote)
	rt.handle("DELETE", "/api/notes/{id}/", authorized, s.deleteNote)
	rt.handle("PUT", "/api/notes/{id}/update/", authorized, s.updateNote)
	rt.handle("PATCH", "/api/notes/{id}/update/", authorized, s.updateNote)
	rt.handle("DELETE", "/api/notes/{id}/delete/", authorized, s.deleteNote)
	rt.handle("GET", "/api/users/{id}/notes/", authorized, s.userNotes)
	rt.handle("GET", "/api/", optional, rt.listRoutes)
	rt.handle("GET", "/media/covers/{name}", public, s.serveMedia(coversFolder))
	rt.handle("GET", "/media/images/{name}", public, s.serveMedia(imagesFolder))
	rt.handle("GET", "/healthz", public, s.healthz)
	rt.handle("GET", "/", public, s.serveWeb)
	rt.handle("GET", "/assets/{name}", public, s.serveWeb)
	return s.logRequests(s.recoverPanics(s.cors(rt.finish())))
}

// ---- token endpoints (as simplejwt) ----

var errNoActiveAccount = detailError(http.StatusUnauthorized, "No active account found with the given credentials")

// login is POST /api/token/: username and password for a new session's
// refresh and access tokens.
func (s *server) login(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.throttleAddress(r); err != nil {
		return err
	}
	in, err := readInput(w, r)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	username := in.text(errs, "username", textRule{required: true})
	password := in.text(errs, "password", textRule{required: true, raw: true})
	if errs.any() {
		return errs
	}

	u, hash, err := s.checkPassword(r.Context(), username, password)
	if err != nil {
		return err
	}
	now := s.now()
	sess := session{
		ID:        randomID(),
		UserID:    u.ID,
		Created:   now,
		Expires:   now.Add(s.cfg.sessionTTL),
		UserAgent: truncate(r.UserAgent(), 512),
		IP:        s.clientIP(r),
	}
	err = s.store.createSession(r.Context(), sess, hash)
	if errors.Is(err, errNotFound) {
		return errNoActiveAccount // the password changed while we checked it
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Refresh string `json:"refresh"`
		Access  string `json:"access"`
	}{
		Refresh: s.tokens.sign(s.newClaims(refreshToken, u, sess, now)),
		Access:  s.tokens.sign(s.newClaims(accessToken, u, sess, now)),
	})
}

var errWrongPassword = errors.New("wrong password")

// checkPassword finds the active user with this username and password, and
// returns them with the hash the password matched. A
// wrong password, an unknown user and an inactive user all give
// errNoActiveAccount, after the same work: an unknown user is checked against
// a dummy hash, so the answer takes as long and reveals nothing.
//
// Each account (and each unknown name) may fail at most -login-limit times in
// -login-window; past that it gets 429, even with the right password. The
// attempt takes its place in that budget before the hash runs, so that
// concurrent guesses cannot overshoot it, and gives it back if it succeeds.
func (s *server) checkPassword(ctx context.Context, username, password string) (user, string, error) {
	account := foldKey(username)
	attempt := s.now()
	if wait := s.failedLogins.take(account, attempt); wait > 0 {
		return user{}, "", throttled(wait)
	}
	u, hash, err := s.store.credentials(ctx, username)
	if err != nil && !errors.Is(err, errNotFound) {
		return user{}, "", err
	}
	match, err := s.passwords.check(ctx, password, hash)
	if err != nil {
		return user{}, "", err
	}
	if !match || !u.IsActive {
		return user{}, "", errNoActiveAccount
	}
	s.failedLogins.giveBack(account, attempt)
	return u, hash, nil
}

// confirmPassword checks the password of a logged-in user who is about to
// change or delete their account, under the same failed-login budget as
// login. It returns errWrongPassword if it does not match.
func (s *server) confirmPassword(ctx context.Context, u user, password string) error {
	account := foldKey(u.Username)
	attempt := s.now()
	if wait := s.failedLogins.take(account, attempt); wait > 0 {
		return throttled(wait)
	}
	hash, err := s.store.passwordHash(ctx, u.ID)
	if err != nil {
		return err
	}
	match, err := s.passwords.check(ctx, password, hash)
	if err != nil {
		return err
	}
	if !match {
		return errWrongPassword
	}
	s.failedLogins.giveBack(account, attempt)
	return nil
}

// newClaims builds a token for u in sess. No token outlives its session.
func (s *server) newClaims(tokenType string, u user, sess session, now time.Time) claims {
	ttl := s.cfg.accessTTL
	if tokenType == refreshToken {
		ttl = s.cfg.refreshTTL
	}
	exp := min(now.Add(ttl).Unix(), sess.Expires.Unix())
	return claims{
		TokenType: tokenType,
		Exp:       exp,
		Iat:       now.Unix(),
		JTI:       tokenID(now),
		UserID:    u.ID,
		Username:  u.Username,
		Email:     u.Email,
		SessionID: sess.ID,
	}
}

var (
	errBlacklistedAnswer = tokenRefused(errTokenBlacklisted)
	errNoAccountForToken = detailError(http.StatusUnauthorized, "No active account found for the given token.")
)

// refresh is POST /api/token/refresh/: rotation (see store.rotateRefresh).
func (s *server) refresh(w http.ResponseWriter, r *http.Request, _ *caller) error {
	old, err := s.readToken(w, r, "refresh", refreshToken)
	if err != nil {
		return err
	}
	now := s.now()
	outcome, u, sess, payload, err := s.store.rotateRefresh(r.Context(), old, now, s.cfg.reuseGrace,
		func(u user, sess session) string {
			return encodeClaims(s.newClaims(refreshToken, u, sess, now))
		})
	if err != nil {
		return err
	}
	switch outcome {
	case refreshNoAccount:
		return errNoAccountForToken
	case refreshRevoked:
		return errBlacklistedAnswer
	}
	return writeJSON(w, http.StatusOK, struct {
		Access  string `json:"access"`
		Refresh string `json:"refresh"`
	}{
		Access:  s.tokens.sign(s.newClaims(accessToken, u, sess, now)),
		Refresh: s.tokens.signPayload(payload),
	})
}

// verifyToken is POST /api/token/verify/: 200 {} for a live access or
// refresh token.
func (s *server) verifyToken(w http.ResponseWriter, r *http.Request, _ *caller) error {
	c, err := s.readToken(w, r, "token", "")
	if err != nil {
		return err
	}
	revoked, err := s.store.tokenRevoked(r.Context(), c, s.now())
	if err != nil {
		return err
	}
	if revoked {
		errs := &fieldErrors{}
		errs.add("non_field_errors", "Token is blacklisted")
		return errs
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// logout is POST /api/token/blacklist/: it ends the refresh token's session.
func (s *server) logout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	c, err := s.readToken(w, r, "refresh", refreshToken)
	if err != nil {
		return err
	}
	ok, err := s.store.logout(r.Context(), c, s.now())
	if err != nil {
		return err
	}
	if !ok {
		return errBlacklistedAnswer
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// readToken reads the body field that carries a token and verifies it.
func (s *server) readToken(w http.ResponseWriter, r *http.Request, field, tokenType string) (claims, error) {
	in, err := readInput(w, r)
	if err != nil {
		return claims{}, err
	}
	errs := &fieldErrors{}
	token := in.text(errs, field, textRule{required: true})
	if errs.any() {
		return claims{}, errs
	}
	c, err := s.tokens.verify(token, tokenType, s.now())
	if err != nil {
		return claims{}, tokenRefused(err)
	}
	return c, nil
}

// ---- registration and profile ----

// register is POST /api/register/.
func (s *server) register(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.throttleAddress(r); err != nil {
		return err
	}
	in, err := readInput(w, r)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	username := in.text(errs, "username", s.usernameRule(r.Context(), true, 0))
	email := in.text(errs, "email", s.emailRule(r.Context(), true, 0))
	password := in.text(errs, "password", textRule{required: true, raw: true, check: func(p string) []string {
		return s.passwordProblems(p, username, email, "", "")
	}})
	password2 := in.text(errs, "password2", textRule{required: true, raw: true})
	bio := in.text(errs, "bio", textRule{allowBlank: true, maxLen: 255})
	coverPhoto, _ := in.image(errs, "cover_photo")
	if errs.any() {
		return errs
	}
	if password != password2 {
		errs.add("password", "Password fields didn't match.")
		return errs
	}

	hash, err := s.passwords.hash(r.Context(), password)
	if err != nil {
		return err
	}
	u, err := s.store.createUser(r.Context(), newUser{Username: username, Email: email, PasswordHash: hash, Bio: bio, CoverPhoto: coverPhoto}, s.now())
	switch {
	case errors.Is(err, errUsernameTaken):
		errs.add("username", msgUsernameTaken)
		return errs
	case errors.Is(err, errEmailTaken):
		errs.add("email", msgUnique)
		return errs
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusCreated, struct {
		ID         int64   `json:"id"`
		Username   string  `json:"username"`
		Email      string  `json:"email"`
		Bio        string  `json:"bio"`
		CoverPhoto *string `json:"cover_photo"`
	}{u.ID, u.Username, u.Email, u.Bio, mediaURL(u.CoverPhoto)})
}

// profileJSON is the profile as the API shows it: never the password hash
// or staff flags.
type profileJSON struct {
	ID         int64    `json:"id"`
	Username   string   `json:"username"`
	Email      string   `json:"email"`
	FirstName  string   `json:"first_name"`
	LastName   string   `json:"last_name"`
	Bio        string   `json:"bio"`
	CoverPhoto *string  `json:"cover_photo"`
	DateJoined string   `json:"date_joined"`
	LastLogin  *string  `json:"last_login"`
	Notes      noteList `json:"notes"`
}

func newProfileJSON(u user, notes []note) profileJSON {
	p := profileJSON{
		ID: u.ID, Username: u.Username, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		Bio: u.Bio, CoverPhoto: mediaURL(u.CoverPhoto), DateJoined: formatTime(u.DateJoined),
		Notes: notes,
	}
	if !u.LastLogin.IsZero() {
		t := formatTime(u.LastLogin)
		p.LastLogin = &t
	}
	return p
}

// getProfile is GET /api/profile/.
func (s *server) getProfile(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.writeProfile(w, r, c.user)
}

// writeProfile answers with u's profile, their notes included.
func (s *server) writeProfile(w http.ResponseWriter, r *http.Request, u user) error {
	notes, err := s.store.listNotes(r.Context(), noteQuery{viewer: u.ID, owner: u.ID, limit: -1})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newProfileJSON(u, notes))
}

// updateProfile is PUT or PATCH /api/profile/update/ and PATCH
// /api/profile/: a partial update of the fields a user may change. Every
// other field sent (password, is_staff, id, ...) is ignored. Invalid input
// saves nothing.
func (s *server) updateProfile(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := readInput(w, r)
	if err != nil {
		return err
	}
	ctx, id := r.Context(), c.user.ID
	errs := &fieldErrors{}
	changes := profileChanges{
		Username:  in.optionalText(errs, "username", s.usernameRule(ctx, false, id)),
		FirstName: in.optionalText(errs, "first_name", textRule{allowBlank: true, maxLen: 150}),
		LastName:  in.optionalText(errs, "last_name", textRule{allowBlank: true, maxLen: 150}),
		Email:     in.optionalText(errs, "email", s.emailRule(ctx, false, id)),
		Bio:       in.optionalText(errs, "bio", textRule{allowBlank: true, maxLen: 255}),
	}
	changes.CoverPhoto, changes.RemoveCoverPhoto = in.image(errs, "cover_photo")
	if errs.any() {
		return errs
	}
	u, err := s.store.updateProfile(ctx, id, changes)
	switch {
	case errors.Is(err, errUsernameTaken):
		errs.add("username", msgUsernameTaken)
		return errs
	case errors.Is(err, errEmailTaken):
		errs.add("email", msgUnique)
		return errs
	case err != nil:
		return err
	}
	return s.writeProfile(w, r, u)
}

// changePassword is POST /api/profile/password/. The new password must pass
// the same validators as at registration. Every other session of the user is
// revoked; the one that asked stays logged in.
func (s *server) changePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := readInput(w, r)
	if err != nil {
		return err
	}
	u := c.user
	errs := &fieldErrors{}
	// The old password is checked in its turn, so the messages come in the
	// fields' order.
	if old := in.text(errs, "old_password", textRule{required: true, raw: true}); old != "" {
		if err := s.confirmPassword(r.Context(), u, old); errors.Is(err, errWrongPassword) {
			errs.add("old_password", "Wrong password.")
		} else if err != nil {
			return err
		}
	}
	password := in.text(errs, "new_password", textRule{required: true, raw: true, check: func(p string) []string {
		return s.passwordProblems(p, u.Username, u.Email, u.FirstName, u.LastName)
	}})
	password2 := in.text(errs, "new_password2", textRule{required: true, raw: true})
	if errs.any() {
		return errs
	}
	if password != password2 {
		errs.add("new_password2", "Password fields didn't match.")
		return errs
	}
	hash, err := s.passwords.hash(r.Context(), password)
	if err != nil {
		return err
	}
	if err := s.store.changePassword(r.Context(), u.ID, hash, c.claims.SessionID, s.now()); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// deleteAccount is DELETE /api/profile/ with the password: the user and
// everything that is theirs go.
func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := readInput(w, r)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	password := in.text(errs, "password", textRule{required: true, raw: true})
	if errs.any() {
		return errs
	}
	if err := s.confirmPassword(r.Context(), c.user, password); errors.Is(err, errWrongPassword) {
		errs.add("password", "Wrong password.")
		return errs
	} else if err != nil {
		return err
	}
	if err := s.store.deleteUser(r.Context(), c.user.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- sessions ----

type sessionJSON struct {
	ID        string `json:"id"`
	Created   string `json:"created"`
	LastUsed  string `json:"last_used"`
	Expires   string `json:"expires"`
	UserAgent string `json:"user_agent"`
	IP        string `json:"ip"`
	Current   bool   `json:"current"`
}

// listSessions is GET /api/sessions/: the caller's live sessions, the most
// recently used first.
func (s *server) listSessions(w http.ResponseWriter, r *http.Request, c *caller) error {
	sessions, err := s.store.liveSessions(r.Context(), c.user.ID, s.now())
	if err != nil {
		return err
	}
	list := make([]sessionJSON, 0, len(sessions))
	for _, sess := range sessions {
		list = append(list, sessionJSON{
			ID: sess.ID, Created: formatTime(sess.Created), LastUsed: formatTime(sess.LastUsed),
			Expires: formatTime(sess.Expires), UserAgent: sess.UserAgent, IP: sess.IP,
			Current: sess.ID == c.claims.SessionID,
		})
	}
	return writeJSON(w, http.StatusOK, list)
}

// revokeSession is DELETE /api/sessions/{id}/: log out one device.
func (s *server) revokeSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	err := s.store.revokeUserSession(r.Context(), c.user.ID, r.PathValue("id"), s.now())
	if errors.Is(err, errNotFound) {
		return errNotFoundAnswer // someone else's session looks like no session
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// logoutEverywhere is DELETE /api/sessions/: every session of the caller
// ends, this one too.
func (s *server) logoutEverywhere(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.store.revokeAllSessions(r.Context(), c.user.ID, s.now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- notes ----

// noteList is notes as the API shows them:
// {"id","title","body","cover_image","is_public","user","created","updated"}.
// Notes are what the busiest routes answer, so they are written by hand
// (appendNote) rather than through reflection; a test holds the two equal.
type noteList []note

func (l noteList) MarshalJSON() ([]byte, error) {
	return appendNotes(nil, l), nil
}

func appendNotes(b []byte, notes []note) []byte {
	b = append(b, '[')
	for i, n := range notes {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNote(b, n)
	}
	return append(b, ']')
}

func appendNote(b []byte, n note) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, n.ID, 10)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, n.Title)
	b = append(b, `,"body":`...)
	b = appendJSONString(b, n.Body)
	b = append(b, `,"cover_image":`...)
	if n.CoverImage == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, "/media/"+n.CoverImage)
	}
	b = append(b, `,"is_public":`...)
	b = strconv.AppendBool(b, n.IsPublic)
	b = append(b, `,"user":`...)
	b = strconv.AppendInt(b, n.UserID, 10)
	b = append(b, `,"created":"`...)
	b = appendTime(b, n.Created)
	b = append(b, `","updated":"`...)
	b = appendTime(b, n.Updated)
	return append(b, `"}`...)
}

// appendJSONString writes s as a JSON string the way encoding/json does
// with HTML escaping off: quotes, backslashes and control characters
// escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendTime writes the contract's time format (formatTime) without
// parsing a layout: 2026-11-29T05:01:57.360701Z.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits writes n with at least width digits, zero-padded.
func appendDigits(b []byte, n, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for n >= 10 || width > 1 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	i--
	buf[i] = byte('0' + n)
	return append(b, buf[i:]...)
}

// readNoteFields reads the body of a note create or update: every field
// optional. user is not among them: nobody can set or change a note's owner.
func readNoteFields(w http.ResponseWriter, r *http.Request) (noteFields, error) {
	in, err := readInput(w, r)
	if err != nil {
		return noteFields{}, err
	}
	errs := &fieldErrors{}
	f := noteFields{
		Title: in.optionalText(errs, "title", textRule{allowBlank: true, maxLen: 100}),
		Body:  in.optionalText(errs, "body", textRule{allowBlank: true}),
	}
	f.Image, f.RemoveImage = in.image(errs, "cover_image")
	f.IsPublic = in.optionalBool(errs, "is_public")
	if errs.any() {
		return noteFields{}, errs
	}
	return f, nil
}

// createNote is POST /api/notes/ and /api/notes/create/.
func (s *server) createNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	fields, err := readNoteFields(w, r)
	if err != nil {
		return err
	}
	n, err := s.store.createNote(r.Context(), c.user.ID, fields, s.now())
	if errors.Is(err, errNotFound) {
		return errUserNotFound // deleted while this request ran
	}
	if err != nil {
		return err
	}
	return writeBody(w, http.StatusCreated, appendNote(nil, n))
}

// getNote is GET /api/notes/{id}/: one's own note or a public one.
func (s *server) getNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.visibleNote(r, c)
	if err != nil {
		return err
	}
	return writeBody(w, http.StatusOK, appendNote(nil, n))
}

// updateNote is PUT or PATCH /api/notes/{id}/ and /api/notes/{id}/update/;
// both are partial.
func (s *server) updateNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.ownNote(r, c)
	if err != nil {
		return err
	}
	fields, err := readNoteFields(w, r)
	if err != nil {
		return err
	}
	n, err = s.store.updateNote(r.Context(), n.ID, c.user.ID, fields, s.now())
	if errors.Is(err, errNotFound) {
		return errNotFoundAnswer // deleted while this request ran
	}
	if err != nil {
		return err
	}
	return writeBody(w, http.StatusOK, appendNote(nil, n))
}

// deleteNote is DELETE /api/notes/{id}/ and /api/notes/{id}/delete/.
func (s *server) deleteNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.ownNote(r, c)
	if err != nil {
		return err
	}
	err = s.store.deleteNote(r.Context(), n.ID, c.user.ID)
	if err != nil && !errors.Is(err, errNotFound) { // already gone is gone
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var errForbidden = detailError(http.StatusForbidden, "You do not have permission to perform this action.")

// visibleNote finds the note of the URL if the caller may read it. Someone
// else's private note is 404, exactly like a missing one: its existence is
// not revealed.
func (s *server) visibleNote(r *http.Request, c *caller) (note, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return note{}, errNotFoundAnswer
	}
	n, err := s.store.noteFor(r.Context(), id, c.user.ID)
	if errors.Is(err, errNotFound) {
		return note{}, errNotFoundAnswer
	}
	return n, err
}

// ownNote finds the note of the URL for a change: 404 as visibleNote, and
// 403 for someone else's public note.
func (s *server) ownNote(r *http.Request, c *caller) (note, error) {
	n, err := s.visibleNote(r, c)
	if err == nil && n.UserID != c.user.ID {
		return note{}, errForbidden
	}
	return n, err
}

// listNotes is GET /api/notes/: the caller's notes and everyone's public
// notes, newest updated first, a page at a time.
func (s *server) listNotes(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := readPage(r)
	if err != nil {
		return err
	}
	q := noteQuery{viewer: c.user.ID, search: page.search}
	if page.mine {
		q.owner = c.user.ID
	}
	return s.writeNotesPage(w, r, q, page)
}

// userNotes is GET /api/users/{id}/notes/: that user's public notes, or all
// of them if it is the caller.
func (s *server) userNotes(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errNotFoundAnswer
	}
	page, err := readPage(r)
	if err != nil {
		return err
	}
	exists, err := s.store.userExists(r.Context(), id)
	if err != nil {
		return err
	}
	if !exists {
		return errNotFoundAnswer
	}
	return s.writeNotesPage(w, r, noteQuery{viewer: c.user.ID, owner: id, search: page.search}, page)
}

// page is what a list's query string asks for.
type page struct {
	limit, offset int
	search        string
	mine          bool
}

// Page sizes: limit is 20 unless asked, and at most 100.
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// readPage reads limit, offset, q and mine from the query string.
func readPage(r *http.Request) (page, error) {
	query := r.URL.Query()
	errs := &fieldErrors{}
	p := page{limit: defaultPageSize, search: query.Get("q")}
	if v := query.Get("limit"); v != "" {
		p.limit = queryInt(errs, "limit", v, 1)
	}
	if v := query.Get("offset"); v != "" {
		p.offset = queryInt(errs, "offset", v, 0)
	}
	if v := query.Get("mine"); v != "" {
		mine, ok := parseBool(v)
		if !ok {
			errs.add("mine", msgNotBool)
		}
		p.mine = mine
	}
	p.limit = min(p.limit, maxPageSize)
	if errs.any() {
		return page{}, errs
	}
	return p, nil
}

// queryInt reads a whole number of at least least, as DRF's IntegerField.
// Numbers too large for an int are taken as the largest (a limit is capped
// anyway, and an offset that large is past every note).
func queryInt(errs *fieldErrors, name, v string, least int) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(strings.TrimSpace(v), "-") {
		return math.MaxInt32
	}
	if err != nil {
		errs.add(name, "A valid integer is required.")
		return 0
	}
	if n < least {
		errs.add(name, fmt.Sprintf("Ensure this value is greater than or equal to %d.", least))
	}
	return min(n, math.MaxInt32)
}

// writeNotesPage answers one page of q. It asks for one note more than the
// page holds: if it comes, there is a next page, and the Link header says
// where (an absolute URL that keeps the other query parameters).
func (s *server) writeNotesPage(w http.ResponseWriter, r *http.Request, q noteQuery, p page) error {
	q.limit, q.offset = p.limit+1, p.offset
	notes, err := s.store.listNotes(r.Context(), q)
	if err != nil {
		return err
	}
	if len(notes) > p.limit {
		notes = notes[:p.limit]
		next := r.URL.Query()
		next.Set("limit", strconv.Itoa(p.limit))
		next.Set("offset", strconv.Itoa(p.offset+p.limit))
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s://%s%s?%s>; rel="next"`, scheme, r.Host, r.URL.EscapedPath(), next.Encode()))
	}
	return writeBody(w, http.StatusOK, appendNotes(make([]byte, 0, 256*len(notes)+2), notes))
}

// ---- media, health, the route list ----

// mediaFileName matches the names saveMedia gives: nothing else is served.
var mediaFileName = regexp.MustCompile(`^[0-9a-f]{32}\.(png|jpg|gif)$`)

var mediaTypes = map[string]string{"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}

// serveMedia is GET /media/covers/{name} and /media/images/{name}: an
// uploaded image, with the type detected at upload. The headers make a
// browser treat it as an image and nothing else.
func (s *server) serveMedia(folder string) handler {
	return func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		name := r.PathValue("name")
		m := mediaFileName.FindStringSubmatch(name)
		if m == nil {
			return errNotFoundAnswer
		}
		f, err := s.store.openMediaFile(folder + "/" + name)
		if errors.Is(err, errNotFound) {
			return errNotFoundAnswer
		}
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil || !info.Mode().IsRegular() {
			return errNotFoundAnswer
		}
		h := w.Header()
		h.Set("Content-Type", mediaTypes[m[1]])
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Cache-Control", "public, max-age=31536000, immutable") // a name is never reused
		http.ServeContent(w, r, "", info.ModTime(), f)
		return nil
	}
}

// healthz is GET /healthz: 200 while the database answers.
func (s *server) healthz(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.ping(ctx); err != nil {
		s.log.Error("health check", "err", err)
		return writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// ---- the browser client ----

// webFiles is the browser client of GET /: plain HTML, CSS and JavaScript,
// compiled into the binary.
//
//go:embed web
var webFiles embed.FS

var webTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
}

// serveWeb is GET / (the page) and GET /assets/{name} (its script and
// style). The Content-Security-Policy lets the page load only its own files
// and talk only to this server: even a note that held a script could not
// run it or send a token anywhere.
func (s *server) serveWeb(w http.ResponseWriter, r *http.Request, _ *caller) error {
	name := cmp.Or(r.PathValue("name"), "index.html")
	data, err := webFiles.ReadFile("web/" + name)
	if err != nil || strings.Contains(name, "/") {
		return errNotFoundAnswer
	}
	h := w.Header()
	h.Set("Content-Type", webTypes[path.Ext(name)])
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; object-src 'none'; "+
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	return nil
}

// mediaURL is the site-relative URL of a stored file, or nil for none.
func mediaURL(path string) *string {
	if path == "" {
		return nil
	}
	u := "/media/" + path
	return &u
}

// formatTime is the contract's time format: RFC 3339, UTC, microseconds.
func formatTime(t time.Time) string {
	return string(appendTime(nil, t))
}

// ---- routing ----

// router registers each route on an http.ServeMux with net/http patterns,
// twice (with and without the trailing slash), and answers every other
// method on a known path with 405 and its Allow header, before any
// authentication.
type router struct {
	s       *server
	mux     *http.ServeMux
	methods map[string][]string // path -> methods, in registration order
	paths   []string
	allow   map[string]string // "OPTIONS " + pattern -> Allow header, for unusual methods
	list    []string          // "METHOD /path/", for GET /api/
}

// listRoutes is GET /api/: every route, as registered.
func (rt *router) listRoutes(w http.ResponseWriter, r *http.Request, _ *caller) error {
	return writeJSON(w, http.StatusOK, rt.list)
}

func newRouter(s *server) *router {
	return &router{s: s, mux: http.NewServeMux(), methods: map[string][]string{}, allow: map[string]string{}}
}

func (rt *router) handle(method, path string, who access, h handler) {
	rt.list = append(rt.list, method+" "+path)
	if _, seen := rt.methods[path]; !seen {
		rt.paths = append(rt.paths, path)
	}
	rt.methods[path] = append(rt.methods[path], method)
	serve := rt.s.endpoint(who, h)
	for _, p := range slashForms(path) {
		rt.mux.HandleFunc(method+" "+p, serve)
	}
}

// slashForms gives "/a/b/{$}" and "/a/b" for "/a/b/": {$} keeps the pattern
// from matching everything below the path.
func slashForms(path string) []string {
	if path == "/" {
		return []string{"/{$}"}
	}
	trimmed := strings.TrimSuffix(path, "/")
	return []string{trimmed + "/{$}", trimmed}
}

// standardMethods are those a 405 is registered for explicitly. (A pattern
// without a method would conflict with more specific paths such as
// /api/notes/create beside /api/notes/{id}.)
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// finish registers the 405 answers and the JSON 404 and returns the handler.
func (rt *router) finish() http.Handler {
	for _, path := range rt.paths {
		methods := rt.methods[path]
		var allowed []string
		for _, m := range methods {
			allowed = append(allowed, m)
			if m == "GET" {
				allowed = append(allowed, "HEAD") // net/http serves HEAD with the GET handler
			}
		}
		allowed = append(allowed, "OPTIONS")
		allow := strings.Join(allowed, ", ")
		for _, m := range standardMethods {
			if slices.Contains(allowed, m) && m != "OPTIONS" {
				continue
			}
			h := rt.s.methodNotAllowed(allow)
			if m == "OPTIONS" {
				h = rt.s.options(allow)
			}
			for _, p := range slashForms(path) {
				rt.mux.HandleFunc(m+" "+p, h)
				if m == "OPTIONS" {
					rt.allow["OPTIONS "+p] = allow
				}
			}
		}
	}
	rt.mux.HandleFunc("/", rt.notFoundOrUnusualMethod)
	return rt.mux
}

// notFoundOrUnusualMethod answers what no pattern took: a path that is not
// the API's (404), or an unusual method (TRACE, ...) on one that is (405).
func (rt *router) notFoundOrUnusualMethod(w http.ResponseWriter, r *http.Request) {
	probe := r.Clone(r.Context())
	probe.Method = "OPTIONS"
	if _, pattern := rt.mux.Handler(probe); rt.allow[pattern] != "" {
		rt.s.methodNotAllowed(rt.allow[pattern])(w, r)
		return
	}
	rt.s.writeError(w, r, errNotFoundAnswer)
}

func (s *server) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.writeError(w, r, detailError(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method)))
	}
}

// options answers OPTIONS on a known path: a CORS preflight. The cors
// middleware has already allowed the origin (or not); if it did, the answer
// names the route's methods and the two request headers the API reads.
func (s *server) options(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Allow", allow)
		if h.Get("Access-Control-Allow-Origin") != "" {
			h.Set("Access-Control-Allow-Methods", allow)
			// Named, not "*": a wildcard does not cover Authorization.
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "86400")
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// cors marks every answer to an allowed origin, errors and 401s included, so
// that a frontend on another origin can read it. Tokens travel in the
// Authorization header, never in cookies, so no credentials are allowed.
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			if allowed := s.allowedOrigin(origin); allowed != "" {
				h.Set("Access-Control-Allow-Origin", allowed)
				h.Set("Access-Control-Expose-Headers", "Link, Retry-After")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin is the Access-Control-Allow-Origin for origin: "*" when
// every origin is allowed, the origin itself when it is listed, else "".
func (s *server) allowedOrigin(origin string) string {
	for _, o := range s.cfg.corsOrigins {
		if o == "*" {
			return "*"
		}
		if o == origin {
			return origin
		}
	}
	return ""
}

// endpoint wraps a handler: authentication as the route asks, then the
// handler, then the error answer if it returned one.
func (s *server) endpoint(who access, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var c *caller
		if who != public {
			var err error
			c, err = s.authenticate(r)
			if err == nil && c == nil && who == authorized {
				err = errNotAuthenticated
			}
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if c != nil {
				if info := requestInfoFrom(r.Context()); info != nil {
					info.userID = c.user.ID
				}
			}
		}
		if err := h(w, r, c); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// ---- authentication ----

// caller is the authenticated user of a request and the claims of their token.
type caller struct {
	user   user
	claims claims
}

var (
	errNotAuthenticated = detailError(http.StatusUnauthorized, "Authentication credentials were not provided.")
	errUserNotFound     = &apiError{status: http.StatusUnauthorized, body: detailCode{"User not found", "user_not_found"}}
	errUserInactive     = &apiError{status: http.StatusUnauthorized, body: detailCode{"User is inactive", "user_inactive"}}
)

// authenticate reads "Authorization: Bearer <access token>" as simplejwt
// does. It returns nil, nil when there is no such header, and the
// contract's 401 when there is one that does not hold.
func (s *server) authenticate(r *http.Request) (*caller, error) {
	parts := strings.Fields(r.Header.Get("Authorization"))
	if len(parts) == 0 || parts[0] != "Bearer" {
		return nil, nil // no credentials, or another scheme: not ours to judge
	}
	if len(parts) != 2 {
		return nil, &apiError{status: http.StatusUnauthorized, body: detailCode{
			Detail: "Authorization header must contain two space-delimited values",
			Code:   "bad_authorization_header",
		}}
	}
	now := s.now()
	c, err := s.tokens.verify(parts[1], accessToken, now)
	if errors.Is(err, errTokenNoUser) {
		return nil, tokenRefused(err)
	}
	if err != nil {
		return nil, &apiError{status: http.StatusUnauthorized, body: invalidAccessToken{
			Detail:   "Given token not valid for any token type",
			Code:     "token_not_valid",
			Messages: []tokenMessage{{TokenClass: "AccessToken", TokenType: "access", Message: err.Error()}},
		}}
	}
	u, sessionLive, err := s.store.userForAccess(r.Context(), c.UserID, c.SessionID, now)
	switch {
	case errors.Is(err, errNotFound):
		return nil, errUserNotFound
	case err != nil:
		return nil, err
	case !u.IsActive:
		return nil, errUserInactive
	case !sessionLive:
		return nil, errBlacklistedAnswer
	}
	return &caller{user: u, claims: c}, nil
}

type invalidAccessToken struct {
	Detail   string         `json:"detail"`
	Code     string         `json:"code"`
	Messages []tokenMessage `json:"messages"`
}

type tokenMessage struct {
	TokenClass string `json:"token_class"`
	TokenType  string `json:"token_type"`
	Message    string `json:"message"`
}

// tokenRefused is simplejwt's 401 for a token sent in a body.
func tokenRefused(err error) *apiError {
	return &apiError{status: http.StatusUnauthorized, body: detailCode{Detail: err.Error(), Code: "token_not_valid"}}
}

// clientIP is the address of the connection, or with -trust-proxy the last
// address in X-Forwarded-For: the one the proxy in front of us saw. (Earlier
// entries come from the client and prove nothing.)
func (s *server) clientIP(r *http.Request) string {
	if s.cfg.trustProxy {
		forwarded := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
		if last := strings.TrimSpace(forwarded[len(forwarded)-1]); last != "" {
			return last
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ---- throttling ----

// throttleAddress spends one request of the client address's budget for
// login and register (-ip-limit a minute), or answers 429.
func (s *server) throttleAddress(r *http.Request) error {
	if wait := s.perAddress.take(s.clientIP(r), s.now()); wait > 0 {
		return throttled(wait)
	}
	return nil
}

// throttled is DRF's 429: the wait in whole seconds, rounded up, in the body
// and in Retry-After.
func throttled(wait time.Duration) *apiError {
	seconds := int((wait + time.Second - 1) / time.Second)
	unit := "seconds"
	if seconds == 1 {
		unit = "second"
	}
	return &apiError{
		status: http.StatusTooManyRequests,
		body:   detail{fmt.Sprintf("Request was throttled. Expected available in %d %s.", seconds, unit)},
		header: http.Header{"Retry-After": {strconv.Itoa(seconds)}},
	}
}

// limiter allows at most limit events per key in any window (a sliding
// window: it keeps the times of each key's recent events). Its memory is
// bounded: at most maxLimiterKeys keys, each with at most limit times; keys
// whose events are all older than the window are swept out once a window,
// and if that is not enough, arbitrary keys are dropped.
type limiter struct {
	mu        sync.Mutex
	limit     int
	window    time.Duration
	events    map[string][]int64 // unix nanoseconds, oldest first
	lastSweep int64
}

// maxLimiterKeys bounds a limiter's memory: 20,000 keys of at most 60 times
// each is under 12 MB.
const maxLimiterKeys = 20000

// newLimiter returns a limiter; a limit of 0 turns it off.
func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, events: map[string][]int64{}}
}

// take records an event for key at now and returns 0, or, if key has had
// limit events in the last window, records nothing and returns how long
// until the oldest of them leaves the window.
func (l *limiter) take(key string, now time.Time) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now.UnixNano()
	l.sweep(t)
	recent := l.recent(key, t)
	if len(recent) >= l.limit {
		return time.Duration(recent[0] + int64(l.window) - t)
	}
	l.events[key] = append(recent, t)
	return 0
}

// giveBack removes the event that take recorded for key at now: an attempt
// that turned out not to count (a login that succeeded).
func (l *limiter) giveBack(key string, now time.Time) {
	if l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	events := l.events[key]
	if i := slices.Index(events, now.UnixNano()); i >= 0 {
		l.events[key] = slices.Delete(events, i, i+1)
	}
	if len(l.events[key]) == 0 {
		delete(l.events, key)
	}
}

// recent returns key's events still inside the window at t.
func (l *limiter) recent(key string, t int64) []int64 {
	events := l.events[key]
	start := t - int64(l.window)
	i := 0
	for i < len(events) && events[i] <= start {
		i++
	}
	return events[i:]
}

// sweep drops keys with no recent events, at most once a window, and keeps
// the number of keys under maxLimiterKeys.
func (l *limiter) sweep(t int64) {
	if t-l.lastSweep < int64(l.window) && len(l.events) < maxLimiterKeys {
		return
	}
	l.lastSweep = t
	for key := range l.events {
		if len(l.recent(key, t)) == 0 {
			delete(l.events, key)
		}
	}
	for key := range l.events { // map order is random: arbitrary keys go
		if len(l.events) < maxLimiterKeys*9/10 {
			break
		}
		delete(l.events, key)
	}
}

// ---- reading request bodies ----

// Body limits of the contract.
const (
	maxFormBody      = 1 << 20
	maxMultipartBody = 6 << 20
)

// input is a request body, whatever its encoding: values holds what JSON
// gives (string, json.Number, bool, nil, []any, map[string]any) or, for
// forms, strings; files holds multipart file parts.
type input struct {
	values map[string]any
	files  map[string]*multipartFile
}

type multipartFile struct {
	name string
	data []byte
}

// readInput reads the body as DRF's parsers do: JSON, urlencoded forms and
// multipart alike; an empty body is {}; any other type is 415.
func readInput(w http.ResponseWriter, r *http.Request) (*input, error) {
	in := &input{values: map[string]any{}, files: map[string]*multipartFile{}}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		return in, nil // DRF reads no body without a Content-Type
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mediaType = ""
	}
	switch mediaType {
	case "application/json":
		return in, readJSONBody(w, r, in)
	case "application/x-www-form-urlencoded":
		return in, readFormBody(w, r, in)
	case "multipart/form-data":
		return in, readMultipartBody(w, r, in, params["boundary"])
	}
	if r.ContentLength == 0 {
		return in, nil
	}
	return nil, detailError(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", contentType))
}

var errTooLarge = detailError(http.StatusRequestEntityTooLarge, "Request body is too large.")

// readBody reads at most limit bytes of body, or answers 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errTooLarge
	}
	return body, err
}

func readJSONBody(w http.ResponseWriter, r *http.Request, in *input) error {
	body, err := readBody(w, r, maxFormBody)
	if err != nil || len(body) == 0 {
		return err
	}
	// encoding/json would let invalid UTF-8 through as U+FFFD: refuse it.
	if !utf8.Valid(body) {
		return jsonParseError("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonParseError(describeJSONError(err, body))
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return jsonParseError("Extra data" + jsonPosition(body, len(body)-len(rest)))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		errs := &fieldErrors{}
		errs.add("non_field_errors", notADictionary(v))
		return errs
	}
	in.values = obj
	return nil
}

func jsonParseError(what string) error {
	return detailError(http.StatusBadRequest, "JSON parse error - "+what)
}

// describeJSONError says what is wrong with a JSON body and where, the
// position written as Python's json module writes it.
func describeJSONError(err error, body []byte) string {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return syntax.Error() + jsonPosition(body, int(syntax.Offset)-1)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "Expecting value" + jsonPosition(body, len(body))
	}
	return "invalid JSON"
}

// jsonPosition is ": line L column C (char N)" for byte offset off of body.
func jsonPosition(body []byte, off int) string {
	off = min(max(off, 0), len(body))
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	column := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf(": line %d column %d (char %d)", line, column, utf8.RuneCount(before))
}

// notADictionary is DRF's message for a JSON body that is not an object,
// naming the Python type as DRF does.
func notADictionary(v any) string {
	if v == nil {
		return "No data provided"
	}
	kind := "bool"
	switch v := v.(type) {
	case []any:
		kind = "list"
	case string:
		kind = "str"
	case json.Number:
		kind = "int"
		if strings.ContainsAny(string(v), ".eE") {
			kind = "float"
		}
	}
	return "Invalid data. Expected a dictionary, but got " + kind + "."
}

func readFormBody(w http.ResponseWriter, r *http.Request, in *input) error {
	body, err := readBody(w, r, maxFormBody)
	if err != nil {
		return err
	}
	form, _ := url.ParseQuery(string(body)) // like Django, keep what parses
	for k, vs := range form {
		in.values[k] = vs[len(vs)-1] // the last value wins, as in Django's QueryDict
	}
	return nil
}

func readMultipartBody(w http.ResponseWriter, r *http.Request, in *input, boundary string) error {
	if boundary == "" {
		return detailError(http.StatusBadRequest, "Multipart form parse error - Invalid boundary in multipart: None")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxMultipartBody)
	// The whole body is at most 6 MiB, so it is kept in memory: nothing
	// reaches a temporary file.
	err := r.ParseMultipartForm(maxMultipartBody + 1<<20)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case err != nil:
		return detailError(http.StatusBadRequest, "Multipart form parse error - Invalid multipart body.")
	}
	for k, vs := range r.MultipartForm.Value {
		in.values[k] = vs[len(vs)-1]
	}
	for k, fs := range r.MultipartForm.File {
		f := fs[len(fs)-1]
		file, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(file)
		file.Close()
		if err != nil {
			return err
		}
		in.files[k] = &multipartFile{name: f.Filename, data: data}
	}
	return nil
}

// ---- validating fields ----

// Field messages, as Django and DRF word them.
const (
	msgRequired      = "This field is required."
	msgBlank         = "This field may not be blank."
	msgNull          = "This field may not be null."
	msgNotString     = "Not a valid string."
	msgNullChars     = "Null characters are not allowed."
	msgUnique        = "This field must be unique."
	msgUsernameTaken = "A user with that username already exists."
	msgBadUsername   = "Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."
	msgBadEmail      = "Enter a valid email address."
)

// fieldErrors collects validation messages by field, in the order the
// fields were checked (DRF's order), and is answered as a 400.
type fieldErrors struct {
	fields []string
	msgs   map[string][]string
}

func (e *fieldErrors) add(field string, msgs ...string) {
	if len(msgs) == 0 {
		return
	}
	if e.msgs == nil {
		e.msgs = map[string][]string{}
	}
	if _, seen := e.msgs[field]; !seen {
		e.fields = append(e.fields, field)
	}
	e.msgs[field] = append(e.msgs[field], msgs...)
}

func (e *fieldErrors) any() bool             { return len(e.fields) > 0 }
func (e *fieldErrors) has(field string) bool { return len(e.msgs[field]) > 0 }
func (e *fieldErrors) Error() string         { return "invalid fields: " + strings.Join(e.fields, ", ") }

// MarshalJSON writes {"field":["message",...],...} in the order of checking.
func (e *fieldErrors) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range e.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := marshalJSON(f)
		msgs, _ := marshalJSON(e.msgs[f])
		b.Write(key)
		b.WriteByte(':')
		b.Write(msgs)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// textRule says how to read a string field (DRF's CharField options).
type textRule struct {
	required   bool
	allowBlank bool
	raw        bool                  // keep surrounding white space (passwords are never trimmed)
	maxLen     int                   // in characters; 0 for no limit
	check      func(string) []string // the field's own validators, run first as in DRF
}

// text reads the string field name as DRF's CharField does, adding its
// problems to errs: required, not null, a string (a JSON number is taken as
// its text), not blank (after trimming), then the field's validators, at
// most maxLen characters and no NUL, all of whose messages are collected.
// It returns "" for a field that is absent or not a string.
func (in *input) text(errs *fieldErrors, name string, rule textRule) string {
	v, ok := in.values[name]
	if !ok {
		if rule.required {
			errs.add(name, msgRequired)
		}
		return ""
	}
	var s string
	switch v := v.(type) {
	case nil:
		errs.add(name, msgNull)
		return ""
	case string:
		s = v
	case json.Number:
		s = v.String()
	default:
		errs.add(name, msgNotString)
		return ""
	}
	if !rule.raw {
		s = strings.TrimSpace(s)
	}
	if s == "" {
		if !rule.allowBlank {
			errs.add(name, msgBlank)
		}
		return ""
	}
	var problems []string
	if rule.check != nil {
		problems = rule.check(s)
	}
	if rule.maxLen > 0 && utf8.RuneCountInString(s) > rule.maxLen {
		problems = append(problems, fmt.Sprintf("Ensure this field has no more than %d characters.", rule.maxLen))
	}
	if strings.ContainsRune(s, 0) {
		problems = append(problems, msgNullChars)
	}
	errs.add(name, problems...)
	return s
}

// optionalText reads a field of a partial update: nil when it is absent
// or wrong (its problems are in errs), else its value.
func (in *input) optionalText(errs *fieldErrors, name string, rule textRule) *string {
	if _, present := in.values[name]; !present {
		return nil
	}
	before := len(errs.msgs[name])
	value := in.text(errs, name, rule)
	if len(errs.msgs[name]) > before {
		return nil
	}
	return &value
}

const msgNotBool = "Must be a valid boolean."

// parseBool reads a boolean as the contract spells them: true/false, 1/0,
// or the strings true, false, 1, 0, on, off, yes, no in any case.
func parseBool(v any) (value, ok bool) {
	switch v := v.(type) {
	case bool:
		return v, true
	case json.Number:
		return v == "1", v == "1" || v == "0"
	case string:
		switch strings.ToLower(v) {
		case "true", "1", "on", "yes":
			return true, true
		case "false", "0", "off", "no":
			return false, true
		}
	}
	return false, false
}

// optionalBool reads a boolean field: nil when absent or wrong.
func (in *input) optionalBool(errs *fieldErrors, name string) *bool {
	v, present := in.values[name]
	if !present {
		return nil
	}
	if v == nil {
		errs.add(name, msgNull)
		return nil
	}
	b, ok := parseBool(v)
	if !ok {
		errs.add(name, msgNotBool)
		return nil
	}
	return &b
}

// Upload limits of the contract.
const (
	maxImageBytes = 5 << 20
	maxImageSide  = 10000
)

const msgNotAnImage = "Upload a valid image. The file you uploaded was either not an image or a corrupted image."

// imageExtensions are the formats accepted, by image.DecodeConfig's name,
// with the extension they are stored under.
var imageExtensions = map[string]string{"png": "png", "jpeg": "jpg", "gif": "gif"}

// image reads an image field. A file part is checked by its content, never
// its name or declared type: PNG, JPEG or GIF, at most 5 MiB and 10000
// pixels a side. A value of null, "" or "null" asks for no image (remove is
// true). Absent, it returns nil, false.
func (in *input) image(errs *fieldErrors, name string) (img *imageFile, remove bool) {
	file, isFile := in.files[name]
	if !isFile {
		v, present := in.values[name]
		if present && v != nil && v != "" && v != "null" {
			errs.add(name, "The submitted data was not a file. Check the encoding type on the form.")
		}
		return nil, present && !errs.has(name)
	}
	switch {
	case len(file.data) == 0:
		errs.add(name, "The submitted file is empty.")
		return nil, false
	case len(file.data) > maxImageBytes:
		errs.add(name, "Ensure this file is no larger than 5 MiB.")
		return nil, false
	}
	config, format, err := image.DecodeConfig(bytes.NewReader(file.data))
	ext, known := imageExtensions[format]
	if err != nil || !known {
		errs.add(name, msgNotAnImage)
		return nil, false
	}
	if config.Width > maxImageSide || config.Height > maxImageSide || config.Width < 1 || config.Height < 1 {
		errs.add(name, fmt.Sprintf("Ensure the image is at most %d pixels on each side.", maxImageSide))
		return nil, false
	}
	return &imageFile{data: file.data, ext: ext}, false
}

// usernamePattern is Django's UnicodeUsernameValidator: letters, digits
// and @.+-_ in any script.
var usernamePattern = regexp.MustCompile(`^[\p{L}\p{N}_.@+-]+$`)

// usernameRule is the username field: the pattern, then uniqueness (case-
// insensitively, ignoring the user being edited), then at most 150 characters.
func (s *server) usernameRule(ctx context.Context, required bool, exceptUserID int64) textRule {
	return textRule{required: required, maxLen: 150, check: func(username string) []string {
		var problems []string
		if !usernamePattern.MatchString(username) {
			problems = append(problems, msgBadUsername)
		}
		if s.taken(ctx, s.store.usernameTaken, username, exceptUserID) {
			problems = append(problems, msgUsernameTaken)
		}
		return problems
	}}
}

// emailRule is the email field: unique (case-insensitively), then a valid
// address.
func (s *server) emailRule(ctx context.Context, required bool, exceptUserID int64) textRule {
	return textRule{required: required, check: func(email string) []string {
		var problems []string
		if s.taken(ctx, s.store.emailTaken, email, exceptUserID) {
			problems = append(problems, msgUnique)
		}
		if !validEmailAddress(email) {
			problems = append(problems, msgBadEmail)
		}
		return problems
	}}
}

// taken runs a uniqueness query for validation. A failed query counts as
// not taken: the UNIQUE constraint still refuses a duplicate when the row
// is written.
func (s *server) taken(ctx context.Context, query func(context.Context, string, int64) (bool, error), value string, exceptUserID int64) bool {
	taken, err := query(ctx, value, exceptUserID)
	return err == nil && taken
}

// Django's EmailValidator, part by part.
var (
	emailUserPattern = regexp.MustCompile("(?i)" +
		"^[-!#$%&'*+/=?^_`{}|~0-9A-Z]+(\\.[-!#$%&'*+/=?^_`{}|~0-9A-Z]+)*$" +
		`|^"([\x01-\x08\x0b\x0c\x0e-\x1f!#-\[\]-\x7f]|\\[\x01-\x09\x0b\x0c\x0e-\x7f])*"$`)
	emailDomainPattern  = regexp.MustCompile(`(?i)^(?:[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?\.)+[A-Z0-9-]{2,63}$`)
	emailLiteralPattern = regexp.MustCompile(`(?i)^\[([A-F0-9:.]+)\]$`)
)

// validEmailAddress reports whether Django's EmailValidator accepts s.
func validEmailAddress(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 0 || len(s) > 320 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	if !emailUserPattern.MatchString(local) {
		return false
	}
	if domain == "localhost" {
		return true
	}
	if m := emailLiteralPattern.FindStringSubmatch(domain); m != nil {
		return net.ParseIP(m[1]) != nil
	}
	// Django retries an international domain in its punycode form, which is
	// made only of letters, digits and hyphens: stand each non-ASCII letter
	// or digit in for one such character.
	ascii := strings.Map(func(r rune) rune {
		if r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return 'a'
		}
		return r
	}, domain)
	return emailDomainPattern.MatchString(ascii) && !strings.HasSuffix(ascii, "-")
}

// ---- passwords ----

// passwordProblems runs Django's four default password validators in their
// order and returns every message: similarity to the user's attributes,
// length, the common-password list, all digits.
func (s *server) passwordProblems(password, username, email, firstName, lastName string) []string {
	var problems []string
	if attr := similarAttribute(password, map[string]string{
		"username": username, "email address": email, "first name": firstName, "last name": lastName,
	}); attr != "" {
		problems = append(problems, "The password is too similar to the "+attr+".")
	}
	if utf8.RuneCountInString(password) < 8 {
		problems = append(problems, "This password is too short. It must contain at least 8 characters.")
	}
	if s.common.contains(password) {
		problems = append(problems, "This password is too common.")
	}
	if password != "" && strings.IndexFunc(password, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		problems = append(problems, "This password is entirely numeric.")
	}
	return problems
}

// similarAttribute is Django's UserAttributeSimilarityValidator (max
// similarity 0.7): it returns the name of the first attribute (in Django's
// order) that the password is too similar to, comparing with the whole value
// and with each of its words.
func similarAttribute(password string, attrs map[string]string) string {
	pw := strings.ToLower(password)
	for _, name := range []string{"username", "first name", "last name", "email address"} {
		value := strings.ToLower(attrs[name])
		if value == "" {
			continue
		}
		parts := append(nonWordRuns.Split(value, -1), value)
		for _, part := range parts {
			if quickRatio(pw, part) >= 0.7 {
				return name
			}
		}
	}
	return ""
}

var nonWordRuns = regexp.MustCompile(`[^\p{L}\p{N}_]+`)

// quickRatio is difflib.SequenceMatcher.quick_ratio: twice the number of
// characters the two strings share (as multisets) over their total length.
func quickRatio(a, b string) float64 {
	total := utf8.RuneCountInString(a) + utf8.RuneCountInString(b)
	if total == 0 {
		return 1
	}
	counts := map[rune]int{}
	for _, r := range b {
		counts[r]++
	}
	matches := 0
	for _, r := range a {
		if counts[r] > 0 {
			counts[r]--
			matches++
		}
	}
	return 2 * float64(matches) / float64(total)
}

//go:embed common-passwords.txt.gz
var commonPasswordsGz []byte

// commonPasswords is Django's list of 20,000 common passwords, sorted for
// binary search.
type commonPasswords []string

func loadCommonPasswords() (commonPasswords, error) {
	zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
	if err != nil {
		return nil, err
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	list := strings.Fields(string(text))
	slices.Sort(list)
	return list, nil
}

// contains checks the password lower-cased and trimmed, as Django does.
func (c commonPasswords) contains(password string) bool {
	_, found := slices.BinarySearch(c, strings.TrimSpace(strings.ToLower(password)))
	return found
}

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// passwordHasher hashes and checks passwords with argon2id. Each hash takes
// 19 MiB and tens of milliseconds, so at most `slots` run at once: a flood
// of logins waits in line instead of exhausting memory.
type passwordHasher struct {
	slots chan struct{}
	dummy string // checked for unknown users, so they cost the same time
}

func newPasswordHasher(parallel int) *passwordHasher {
	// The dummy needs the parameters of a real hash, not a real hash: random
	// bytes in its place cost no 19 MiB at start and match no password.
	salt, key := make([]byte, argonSaltLen), make([]byte, argonKeyLen)
	rand.Read(salt)
	rand.Read(key)
	return &passwordHasher{slots: make(chan struct{}, max(1, parallel)), dummy: encodePHC(salt, key)}
}

// run waits for a free slot (or the request to go away), then runs f.
//
// argon2 allocates its 19 MiB afresh for every hash and never touches it
// again. Collecting right after each hash (the slot still held) hands those
// pages to the next hash instead of letting garbage pile up: with the memory
// limit main sets (hashMemoryLimit), a flood of logins holds the server at
// about slots × 19 MiB plus the rest, for a GC cycle of a millisecond or two
// per hash.
func (p *passwordHasher) run(ctx context.Context, f func()) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	f()
	runtime.GC()
	return nil
}

// hashSlots is how many password hashes run at once: one per core but one,
// and at least one. A flood of logins (or of guesses) then leaves a core to
// serve everyone else, and holds at most slots × 19 MiB of hash memory.
func hashSlots(cpus int) int { return max(1, cpus-1) }

// hashMemoryLimit is the soft memory limit for the Go runtime: what the
// password hashes may hold at once, plus room for everything else.
func hashMemoryLimit(slots int) int64 {
	return int64(slots)*argonMemoryKiB*1024 + 18<<20
}

// hash returns the PHC string of a new salted argon2id hash of password.
func (p *passwordHasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	var key []byte
	err := p.run(ctx, func() {
		key = argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	})
	return encodePHC(salt, key), err
}

// check reports whether password matches the PHC string phc, in constant
// time. An empty or unreadable phc is checked against the dummy hash and
// never matches.
func (p *passwordHasher) check(ctx context.Context, password, phc string) (bool, error) {
	params, salt, want, ok := decodePHC(phc)
	if !ok {
		params, salt, want, _ = decodePHC(p.dummy)
	}
	var got []byte
	err := p.run(ctx, func() {
		got = argon2.IDKey([]byte(password), salt, params.time, params.memory, params.threads, uint32(len(want)))
	})
	return ok && err == nil && subtle.ConstantTimeCompare(got, want) == 1, err
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// encodePHC writes $argon2id$v=19$m=19456,t=2,p=1$salt$hash.
func encodePHC(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// decodePHC reads a string written by encodePHC. Parameters are read from
// the string, so hashes made with other settings keep working.
func decodePHC(phc string) (argonParams, []byte, []byte, bool) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return argonParams{}, nil, nil, false
	}
	var p argonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory == 0 || p.time == 0 || p.threads == 0 {
		return argonParams{}, nil, nil, false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return argonParams{}, nil, nil, false
	}
	return p, salt, key, true
}

// ---- answers and errors ----

// apiError is an answer the API gives on purpose: a status and a DRF-shaped body.
type apiError struct {
	status int
	body   any
	header http.Header // extra headers, such as Retry-After
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %+v", e.status, e.body) }

type detail struct {
	Detail string `json:"detail"`
}

type detailCode struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func detailError(status int, msg string) *apiError {
	return &apiError{status: status, body: detail{msg}}
}

var errNotFoundAnswer = detailError(http.StatusNotFound, "Not found.")

// writeError is the one place errors become answers: field errors are 400,
// apiErrors carry their own status, anything else is a bug, logged in full
// and answered 500 without details.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var fields *fieldErrors
	var answer *apiError
	switch {
	case errors.As(err, &fields):
		answer = &apiError{status: http.StatusBadRequest, body: fields}
	case errors.As(err, &answer):
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the client went away; there is no one to answer
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		answer = detailError(http.StatusInternalServerError, "A server error occurred.")
	}
	for name, values := range answer.header {
		w.Header()[name] = values
	}
	if answer.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	writeJSON(w, answer.status, answer.body)
}

// marshalJSON encodes v as DRF renders JSON: compact, and with <, > and &
// left as they are.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeJSON marshals v before writing anything, so that a failure can still
// become a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := marshalJSON(v)
	if err != nil {
		return err
	}
	return writeBody(w, status, body)
}

// writeBody writes a JSON answer already encoded.
func writeBody(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ---- middleware ----

// requestInfo is what the log line of a request needs from deeper down.
type requestInfo struct {
	userID int64
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (rec *statusRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *statusRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// logRequests writes one line per request: method, path, status, duration
// and user id. Never the query string, a header or a body: those can hold
// tokens and passwords.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond), "user", info.userID)
	})
}

// recoverPanics turns a panic in a handler into a logged 500, so that a bug
// costs one request its answer and not the connection.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
