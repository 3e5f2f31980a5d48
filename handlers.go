package main

// handlers.go: the HTTP API, as docs/API.md describes it.
//
// Read it top to bottom: the server and its route table (the whole API at a
// glance), then the handlers in the table's order. Each handler is decode,
// validate, store, respond.
//
// It knows HTTP and the contract's answers, not SQL (store.go) or how
// tokens are signed (jwt.go). The machinery the handlers share has files of
// its own: router.go (slash forms, 405, CORS, logging), auth.go (the
// Bearer token of a request), body.go and input.go (bodies, and their
// fields validated), lists.go (the notes list a page at a time),
// answers.go (errors to answers, writing JSON),
// passwords.go, throttle.go, cookies.go (the refresh token as a cookie),
// recovery.go (password reset and email verification by mail).

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// server holds what the handlers need. It is built once by newServer.
type server struct {
	cfg          config
	store        *store
	tokens       *tokenSigner
	verified     *verifiedTokens // tokencache.go: access tokens verified before
	passwords    *passwordHasher
	common       commonPasswords
	perAddress   *limiter       // login and register requests per client address
	failedLogins *limiter       // failed logins per account (and per unknown name)
	writes       *limiter       // writes per account: notes and profile changes
	searches     *limiter       // broad searches per account (planSearch)
	mailsTo      *limiter       // mails per recipient address (and per account), and reset requests per address asked for
	bodies       *bodyBudget    // memory that request bodies may hold at once
	mail         *mailer        // mail.go: sends in the background
	sealer       *sealer        // sealing.go: the TOTP secrets at rest
	pages        *pageCache     // pagecache.go: recent pages of the notes list
	background   sync.WaitGroup // writes made after their request's answer (logFailedLogin); close waits for them
	now          func() time.Time
	log          *slog.Logger
}

// newServer starts the server's mail sender: close stops it.
func newServer(cfg config, st *store, tokens *tokenSigner, log *slog.Logger, now func() time.Time) (*server, error) {
	common, err := loadCommonPasswords()
	if err != nil {
		return nil, err
	}
	sealer, err := loadSealer(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	mail, err := newMailer(cfg.mail, log, now)
	if err != nil {
		return nil, err
	}
	return &server{
		cfg:          cfg,
		store:        st,
		tokens:       tokens,
		verified:     newVerifiedTokens(tokens),
		passwords:    newPasswordHasher(hashSlots(runtime.NumCPU())),
		common:       common,
		perAddress:   newLimiter(cfg.ipLimit, time.Minute),
		failedLogins: newLimiter(cfg.loginLimit, cfg.loginWindow),
		writes:       newLimiter(cfg.writeLimit, time.Minute),
		searches:     newLimiter(cfg.searchLimit, time.Minute),
		mailsTo:      newLimiter(cfg.mailLimit, time.Hour),
		bodies:       &bodyBudget{free: cfg.bodyMemory},
		mail:         mail,
		sealer:       sealer,
		pages:        newPageCache(),
		now:          now,
		log:          log,
	}, nil
}

// close waits for the writes left after their answers, then sends the
// mail still queued, until ctx ends (mail.go).
func (s *server) close(ctx context.Context) {
	s.background.Wait()
	s.mail.close(ctx)
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
	rt.handle("POST", "/api/token/cookie/", public, s.cookieLogin) // the same three with an HttpOnly cookie (cookies.go)
	rt.handle("POST", "/api/token/cookie/refresh/", public, s.cookieRefresh)
	rt.handle("POST", "/api/token/cookie/logout/", public, s.cookieLogout)
	rt.handle("POST", "/api/token/mfa/", public, s.loginWithCode) // a login's second factor (mfa.go)
	rt.handle("POST", "/api/token/cookie/mfa/", public, s.cookieLoginWithCode)
	rt.handle("POST", "/api/register/", optional, s.register)
	rt.handle("GET", "/api/profile/", authorized, s.getProfile)
	rt.handle("PATCH", "/api/profile/", authorized, s.updateProfile)
	rt.handle("DELETE", "/api/profile/", authorized, s.deleteAccount)
	rt.handle("PUT", "/api/profile/update/", authorized, s.updateProfile)
	rt.handle("PATCH", "/api/profile/update/", authorized, s.updateProfile)
	rt.handle("POST", "/api/profile/password/", authorized, s.changePassword)
	rt.handle("POST", "/api/password/reset/", public, s.requestPasswordReset) // account recovery by email (recovery.go)
	rt.handle("POST", "/api/password/reset/confirm/", public, s.confirmPasswordReset)
	rt.handle("POST", "/api/email/verify/", public, s.verifyEmail)
	rt.handle("POST", "/api/email/verify/resend/", public, s.resendVerification)
	rt.handle("GET", "/api/mfa/totp/", authorized, s.mfaState) // the second factor (mfa.go)
	rt.handle("POST", "/api/mfa/totp/", authorized, s.startTOTP)
	rt.handle("POST", "/api/mfa/totp/confirm/", authorized, s.confirmTOTP)
	rt.handle("DELETE", "/api/mfa/totp/", authorized, s.disableTOTP)
	rt.handle("POST", "/api/mfa/recovery-codes/", authorized, s.renewRecoveryCodes)
	rt.handle("GET", "/api/security-log/", authorized, s.securityLog)
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
	rt.handle("GET", "/api/users/{id}/", authorized, s.userName)
	rt.handle("GET", "/api/users/{id}/notes/", authorized, s.userNotes)
	rt.handle("GET", "/api/", optional, rt.listRoutes)
	rt.handle("GET", "/api/schema/", optional, s.serveSchema)
	rt.handle("GET", "/media/covers/{name}", public, s.serveMedia(coversFolder))
	rt.handle("GET", "/media/images/{name}", public, s.serveMedia(imagesFolder))
	rt.handle("GET", "/healthz", public, s.healthz)
	rt.handle("GET", "/.well-known/jwks.json", public, s.keySet)
	rt.handle("GET", "/api/docs/", public, s.serveWeb("docs.html"))
	rt.handle("GET", "/", public, s.serveWeb("index.html"))
	rt.handle("GET", "/assets/{name}", public, s.serveWeb(""))
	return s.logRequests(s.recoverPanics(s.cors(rt.finish())))
}

// ---- token endpoints (as simplejwt) ----

var (
	errNoActiveAccount  = detailError(http.StatusUnauthorized, "No active account found with the given credentials")
	errEmailNotVerified = &apiError{status: http.StatusUnauthorized, body: detailCode{
		"E-mail is not verified: open the link we mailed you, or ask for a new one.", "email_not_verified"}}
)

// login is POST /api/token/: username and password for a new session's
// refresh and access tokens.
func (s *server) login(w http.ResponseWriter, r *http.Request, _ *caller) error {
	tokens, err := s.startSession(w, r)
	if err != nil {
		return err
	}
	return writeLoginPair(w, tokens)
}

// writeLoginPair is a login's answer as simplejwt's TokenObtainPairView
// writes it: refresh, then access (a refresh answers access first).
func writeLoginPair(w http.ResponseWriter, tokens signedPair) error {
	return writeJSON(w, http.StatusOK, struct {
		Refresh string `json:"refresh"`
		Access  string `json:"access"`
	}{tokens.refresh, tokens.access})
}

// signedPair is a refresh and an access token, signed, and the refresh
// token's exp. grace marks a refresh answered within the grace period: the
// same new refresh token as the first answer.
type signedPair struct {
	refresh, access string
	refreshExp      int64
	grace           bool
}

// startSession is a login: the username and password of the body, checked,
// for a new session and its first tokens.
func (s *server) startSession(w http.ResponseWriter, r *http.Request) (signedPair, error) {
	if err := s.throttleAddress(r); err != nil {
		return signedPair{}, err
	}
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return signedPair{}, err
	}
	errs := &fieldErrors{}
	username := in.text(errs, "username", textRule{required: true})
	password := in.text(errs, "password", textRule{required: true, raw: true})
	if errs.any() {
		return signedPair{}, errs
	}

	u, hash, err := s.checkPassword(r.Context(), username, password, s.originOf(r, nil))
	if err != nil {
		return signedPair{}, err
	}
	if s.cfg.requireVerifiedEmail && !u.EmailVerified {
		return signedPair{}, errEmailNotVerified // said only to whoever knows the password
	}
	if t, err := s.store.totpOf(r.Context(), u.ID); err == nil && t.on {
		return signedPair{}, s.askForCode(r.Context(), u, hash) // mfa.go: the code comes next
	} else if err != nil && !errors.Is(err, errNotFound) {
		return signedPair{}, err
	}
	now := s.now()
	sess := s.newSession(r, u, now)
	err = s.store.createSession(r.Context(), sess, hash)
	if errors.Is(err, errNotFound) {
		return signedPair{}, errNoActiveAccount // the password changed while we checked it
	}
	if err != nil {
		return signedPair{}, err
	}
	s.notifyNewDevice(r.Context(), u, sess)
	return s.sessionTokens(u, sess, "", now), nil
}

// newSession is the session a login of u from r starts.
func (s *server) newSession(r *http.Request, u user, now time.Time) session {
	return session{
		ID:        randomID(),
		UserID:    u.ID,
		Created:   now,
		Expires:   now.Add(s.cfg.sessionTTL),
		UserAgent: truncate(r.UserAgent(), 512),
		IP:        s.clientIP(r),
	}
}

// sessionTokens are the first tokens of a new session, whose login took
// the factors amr names ("": the password alone).
func (s *server) sessionTokens(u user, sess session, amr methods, now time.Time) signedPair {
	refresh := s.newClaims(refreshToken, u, sess, amr, now)
	return signedPair{
		refresh: s.tokens.sign(refresh), refreshExp: refresh.Exp,
		access: s.tokens.sign(s.newClaims(accessToken, u, sess, amr, now)),
	}
}

// newClaims builds a token for u in sess, whose login took the factors amr
// names. No token outlives its session.
func (s *server) newClaims(tokenType string, u user, sess session, amr methods, now time.Time) claims {
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
		AMR:       amr,
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
	tokens, err := s.refreshPair(r, old)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Access  string `json:"access"`
		Refresh string `json:"refresh"`
	}{tokens.access, tokens.refresh})
}

// refreshPair exchanges a verified refresh token for a new pair, or refuses
// it. The new refresh token's jti and key are chosen here; the store
// decides, in one transaction, whether the token rotates to it, gets the
// replacement it rotated to moments ago, or is refused; either replacement
// is then signed the same way.
func (s *server) refreshPair(r *http.Request, old claims) (signedPair, error) {
	now := s.now()
	next := replacement{jti: tokenID(now), kid: s.tokens.currentKid(), at: now}
	rot, err := s.store.rotateRefresh(r.Context(), old, next, s.cfg.reuseGrace, s.originOf(r, nil))
	switch {
	case err != nil:
		return signedPair{}, err
	case rot.outcome == refreshNoAccount:
		return signedPair{}, errNoAccountForToken
	case rot.outcome == refreshRevoked:
		if rot.reused {
			s.notifyReuse(r, rot.user)
		}
		return signedPair{}, errBlacklistedAnswer
	}
	refresh := s.newClaims(refreshToken, rot.user, rot.session, old.AMR, rot.next.at)
	refresh.JTI = rot.next.jti
	return signedPair{
		refresh: s.tokens.signWith(rot.next.kid, refresh), refreshExp: refresh.Exp,
		access: s.tokens.sign(s.newClaims(accessToken, rot.user, rot.session, old.AMR, now)),
		grace:  rot.outcome == refreshGrace,
	}, nil
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
	if err := s.endSession(r, c); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// endSession revokes the session of a verified refresh token; a token
// rotated out (its session is revoked too) or of a revoked session is
// refused as blacklisted.
func (s *server) endSession(r *http.Request, c claims) error {
	ok, err := s.store.logout(r.Context(), c, s.now())
	if err != nil {
		return err
	}
	if !ok {
		return errBlacklistedAnswer
	}
	return nil
}

// readToken reads the body field that carries a token and verifies it.
func (s *server) readToken(w http.ResponseWriter, r *http.Request, field, tokenType string) (claims, error) {
	in, err := s.readInput(w, r, fieldsOnly)
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
	in, err := s.readInput(w, r, withFiles)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	username := in.text(errs, "username", s.usernameRule(r.Context(), true, 0))
	email := in.text(errs, "email", s.emailRule(r.Context(), true, 0))
	// The similarity check compares only with values that passed their own
	// checks: its work is bounded by their length limits.
	if errs.has("username") {
		username = ""
	}
	if errs.has("email") {
		email = ""
	}
	password := in.text(errs, "password", textRule{required: true, raw: true, check: func(p string) []string {
		return passwordProblems(s.common, p, username, email, "", "")
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
	u, err := s.store.createUser(r.Context(), newUser{Username: username, Email: email, PasswordHash: hash, Bio: bio, CoverPhoto: coverPhoto}, s.now(), s.originOf(r, nil))
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
	s.mailVerification(r, u)
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
	ID         int64      `json:"id"`
	Username   string     `json:"username"`
	Email      string     `json:"email"`
	Verified   bool       `json:"email_verified"`
	FirstName  string     `json:"first_name"`
	LastName   string     `json:"last_name"`
	Bio        string     `json:"bio"`
	CoverPhoto *string    `json:"cover_photo"`
	DateJoined string     `json:"date_joined"`
	LastLogin  *string    `json:"last_login"`
	Notes      []noteJSON `json:"notes"`
}

func newProfileJSON(u user, notes []note) profileJSON {
	p := profileJSON{
		ID: u.ID, Username: u.Username, Email: u.Email, Verified: u.EmailVerified, FirstName: u.FirstName, LastName: u.LastName,
		Bio: u.Bio, CoverPhoto: mediaURL(u.CoverPhoto), DateJoined: formatTime(u.DateJoined),
		Notes: notesJSON(notes),
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

// profileNotes is how many of their notes a profile embeds: the newest
// ones. All of them are a page at a time at GET /api/notes/?mine=1.
const profileNotes = 100

// writeProfile answers with u's profile, their newest notes included.
func (s *server) writeProfile(w http.ResponseWriter, r *http.Request, u user) error {
	notes, err := s.store.listNotes(r.Context(), noteQuery{viewer: u.ID, owner: u.ID, limit: profileNotes})
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
	in, err := s.readInput(w, r, withFiles)
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
	if err := s.throttleWrites(c); err != nil {
		return err
	}
	u, emailChanged, err := s.store.updateProfile(ctx, id, changes, s.now(), s.originOf(r, c))
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
	if emailChanged {
		s.mailVerification(r, u)
		s.notifyEmailChanged(r, c.user, u.Email) // to the address before
	}
	return s.writeProfile(w, r, u)
}

// changePassword is POST /api/profile/password/. The new password must pass
// the same validators as at registration. Every other session of the user is
// revoked; the one that asked stays logged in.
func (s *server) changePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return err
	}
	u := c.user
	errs := &fieldErrors{}
	// The old password is checked in its turn, so the messages come in the
	// fields' order.
	var oldHash string
	if old := in.text(errs, "old_password", textRule{required: true, raw: true}); old != "" {
		if oldHash, err = s.confirmPassword(r.Context(), u, old); errors.Is(err, errWrongPassword) {
			errs.add("old_password", "Wrong password.")
		} else if err != nil {
			return err
		}
	}
	hash, err := s.newPasswordHash(r.Context(), in, errs, &u)
	if err != nil {
		return err
	}
	err = s.store.changePassword(r.Context(), u.ID, oldHash, hash, s.now(), s.originOf(r, c))
	if err != nil {
		return err
	}
	s.notifyPasswordChanged(r, u)
	return writeJSON(w, http.StatusOK, struct{}{})
}

// newPasswordHash reads new_password and new_password2, as a password
// change and a reset take them, after the fields already read into errs:
// the registration validators with u's attributes (u nil: there is no
// account to compare with, and the answer is field errors anyway), the two
// the same; then it hashes the password.
func (s *server) newPasswordHash(ctx context.Context, in *input, errs *fieldErrors, u *user) (string, error) {
	password := in.text(errs, "new_password", textRule{required: true, raw: true, check: func(p string) []string {
		if u == nil {
			return nil
		}
		return passwordProblems(s.common, p, u.Username, u.Email, u.FirstName, u.LastName)
	}})
	password2 := in.text(errs, "new_password2", textRule{required: true, raw: true})
	if errs.any() {
		return "", errs
	}
	if password != password2 {
		errs.add("new_password2", "Password fields didn't match.")
		return "", errs
	}
	return s.passwords.hash(ctx, password)
}

// deleteAccount is DELETE /api/profile/ with the password: the user and
// everything that is theirs go.
func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	password := in.text(errs, "password", textRule{required: true, raw: true})
	if errs.any() {
		return errs
	}
	hash, err := s.confirmPassword(r.Context(), c.user, password)
	if errors.Is(err, errWrongPassword) {
		errs.add("password", "Wrong password.")
		return errs
	} else if err != nil {
		return err
	}
	err = s.store.deleteUser(r.Context(), c.user.ID, hash)
	if err != nil {
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
	err := s.store.revokeUserSession(r.Context(), c.user.ID, r.PathValue("id"), s.now(), s.originOf(r, c))
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
	if err := s.store.revokeAllSessions(r.Context(), c.user.ID, s.now(), s.originOf(r, c)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- notes ----

// noteJSON is a note as the API shows it. user is the owner's id.
type noteJSON struct {
	ID         int64   `json:"id"`
	Title      string  `json:"title"`
	Body       string  `json:"body"`
	CoverImage *string `json:"cover_image"`
	IsPublic   bool    `json:"is_public"`
	User       int64   `json:"user"`
	Created    string  `json:"created"`
	Updated    string  `json:"updated"`
}

func newNoteJSON(n note) noteJSON {
	return noteJSON{ID: n.ID, Title: n.Title, Body: n.Body, CoverImage: mediaURL(n.CoverImage),
		IsPublic: n.IsPublic, User: n.UserID, Created: formatTime(n.Created), Updated: formatTime(n.Updated)}
}

// notesJSON is a list of notes as the API shows it: [] when there are none.
func notesJSON(notes []note) []noteJSON {
	list := make([]noteJSON, 0, len(notes))
	for _, n := range notes {
		list = append(list, newNoteJSON(n))
	}
	return list
}

// readNoteFields reads the body of a note create or update: every field
// optional. user is not among them: nobody can set or change a note's owner.
func (s *server) readNoteFields(w http.ResponseWriter, r *http.Request) (noteFields, error) {
	in, err := s.readInput(w, r, withFiles)
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
	fields, err := s.readNoteFields(w, r)
	if err != nil {
		return err
	}
	if err := s.throttleWrites(c); err != nil {
		return err
	}
	n, moved, err := s.store.createNote(r.Context(), c.user.ID, fields, s.now(), s.quota())
	if err != nil {
		return err
	}
	body, err := marshalJSON(newNoteJSON(n))
	if err != nil {
		return err
	}
	if !n.IsPublic {
		s.pages.created(n.UserID, moved, orderOf(n), body) // pagecache.go
	}
	return writeBody(w, http.StatusCreated, body)
}

// getNote is GET /api/notes/{id}/: one's own note or a public one.
func (s *server) getNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.visibleNote(r, c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newNoteJSON(n))
}

// updateNote is PUT or PATCH /api/notes/{id}/ and /api/notes/{id}/update/;
// both are partial.
func (s *server) updateNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.ownNote(r, c)
	if err != nil {
		return err
	}
	fields, err := s.readNoteFields(w, r)
	if err != nil {
		return err
	}
	if err := s.throttleWrites(c); err != nil {
		return err
	}
	n, err = s.store.updateNote(r.Context(), n.ID, c.user.ID, fields, s.now(), s.quota())
	if errors.Is(err, errNotFound) {
		return errNotFoundAnswer // deleted while this request ran
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newNoteJSON(n))
}

// deleteNote is DELETE /api/notes/{id}/ and /api/notes/{id}/delete/.
func (s *server) deleteNote(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := s.ownNote(r, c)
	if err != nil {
		return err
	}
	if err := s.throttleWrites(c); err != nil {
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

// ---- media and health ----

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

// keySet is GET /.well-known/jwks.json: the public keys of the EdDSA
// signing keys that verify now (jwks.go). Caches may keep it a minute; its
// ETag lets them ask again for nothing (304) when it has not changed.
func (s *server) keySet(w http.ResponseWriter, r *http.Request, _ *caller) error {
	body := s.tokens.ring.Load().keySet(s.now())
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match == "*" || strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return writeBody(w, http.StatusOK, body)
}

// baseURL is where absolute URLs of this server start: -public-url, or else
// the address the request came in on. Never the Host header, which the
// client writes (a Link to a host of its choosing could mislead a cache or
// a client that follows it).
func (s *server) baseURL(r *http.Request) string {
	if s.cfg.publicURL != "" {
		return s.cfg.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return scheme + "://" + addr.String()
	}
	return scheme + "://" + s.cfg.addr
}

// mediaURL is the site-relative URL of a stored file, or nil for none.
func mediaURL(path string) *string {
	if path == "" {
		return nil
	}
	u := "/media/" + path
	return &u
}

// formatTime is the contract's time format: RFC 3339, UTC, microseconds
// (2026-11-29T05:01:57.360701Z).
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}
