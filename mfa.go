package main

// mfa.go: the second factor over HTTP: turning TOTP on (a secret, its QR
// code, then a first code, which gives the recovery codes), turning it off,
// new recovery codes, and a login's second step; and the security log
// that its owner reads.
//
// Read it in a user's order. Enrolment: POST /api/mfa/totp/ with the
// password answers a new secret; nothing changes for login until POST
// /api/mfa/totp/confirm/ brings a code of it. A login of an account with
// TOTP on then answers, for the right password, 401 "mfa_required" with an
// mfa_token (it lives 5 minutes, belongs to that one password check, and
// dies at its fifth wrong code); POST /api/token/mfa/ (or
// /api/token/cookie/mfa/) with the mfa_token and a code answers the tokens,
// which say in their amr claim which factors the session took. Accounts
// without TOTP see none of this: their answers and tokens are simplejwt's.
//
// Every code, wherever it is sent, counts against the account's failed
// logins like a password (a wrong one is not given back), and is spent in
// the transaction of what it was given for (factors.go), so it works once.
//
// It knows the routes' fields and answers; codes are totp.go's, the rows
// factors.go's, the sealing of secrets sealing.go's, the QR code
// qrcode.go's.

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
)

const msgWrongCode = "The code is wrong, or was used already."

var (
	errWrongCode      = errors.New("wrong code")
	errMFAOn          = detailError(http.StatusBadRequest, "Two-factor authentication is on already: turn it off first to enrol another authenticator.")
	errMFAOff         = detailError(http.StatusBadRequest, "Two-factor authentication is not on.")
	errEnrolFirst     = detailError(http.StatusBadRequest, "There is no enrolment to confirm: start one with POST /api/mfa/totp/.")
	errMFATokenOver   = &apiError{status: http.StatusUnauthorized, body: detailCode{"This login is over (it lasts 5 minutes and 5 codes): log in again with your password.", "mfa_token_invalid"}}
	errLoginCodeWrong = &apiError{status: http.StatusUnauthorized, body: detailCode{msgWrongCode, "mfa_code_invalid"}}
)

// mfaRequired is the answer to the right password of an account with TOTP
// on: the token of the login's second step, which is all it gives.
type mfaRequired struct {
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	MFAToken string `json:"mfa_token"`
}

// askForCode starts a login's second step for u, whose password matched
// hash: it keeps the new mfa_token's SHA-256 and answers it.
func (s *server) askForCode(ctx context.Context, u user, hash string) error {
	token, tokenHash := newAccountToken()
	err := s.store.issueMFAToken(ctx, u.ID, hash, tokenHash, s.now().Add(mfaTokenTTL))
	if errors.Is(err, errNotFound) {
		return errNoActiveAccount // the password changed while we checked it
	}
	if err != nil {
		return err
	}
	return &apiError{status: http.StatusUnauthorized, body: mfaRequired{
		"Enter the code of your authenticator app, or one of your recovery codes.", "mfa_required", token}}
}

// ---- a login's second step ----

// loginWithCode is POST /api/token/mfa/: {"mfa_token", "code"} for the
// tokens, in simplejwt's shape.
func (s *server) loginWithCode(w http.ResponseWriter, r *http.Request, _ *caller) error {
	tokens, err := s.finishLogin(w, r)
	if err != nil {
		return err
	}
	return writeLoginPair(w, tokens)
}

// cookieLoginWithCode is POST /api/token/cookie/mfa/: the same, the
// refresh token in the cookie.
func (s *server) cookieLoginWithCode(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.checkCSRF(r); err != nil {
		return err
	}
	tokens, err := s.finishLogin(w, r)
	if err != nil {
		return err
	}
	return s.answerWithCookie(w, r, tokens)
}

// finishLogin checks the mfa_token, then the code, and makes the session:
// a request without a live mfa_token costs nothing but a lookup.
func (s *server) finishLogin(w http.ResponseWriter, r *http.Request) (signedPair, error) {
	if err := s.throttleAddress(r); err != nil {
		return signedPair{}, err
	}
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return signedPair{}, err
	}
	errs := &fieldErrors{}
	token := in.text(errs, "mfa_token", textRule{required: true, maxLen: maxCodeLen})
	code := in.text(errs, "code", textRule{required: true, maxLen: maxCodeLen})
	if errs.any() {
		return signedPair{}, errs
	}
	tokenHash, ok := accountTokenHash(token)
	if !ok {
		return signedPair{}, errMFATokenOver
	}
	u, err := s.store.mfaChallenge(r.Context(), tokenHash, s.now())
	if errors.Is(err, errNotFound) {
		return signedPair{}, errMFATokenOver
	}
	if err != nil {
		return signedPair{}, err
	}
	now := s.now()
	sess := s.newSession(r, u, now)
	var spent proof
	err = s.spendCode(r.Context(), u, code, origin{ip: sess.IP, userAgent: sess.UserAgent}, tokenHash, func(p proof) error {
		spent = p
		return s.store.finishMFALogin(r.Context(), tokenHash, p, sess)
	})
	switch {
	case errors.Is(err, errWrongCode):
		return signedPair{}, errLoginCodeWrong
	case errors.Is(err, errNotFound):
		return signedPair{}, errMFATokenOver // ended (or used) while the code was checked
	case err != nil:
		return signedPair{}, err
	}
	s.notifyNewDevice(r.Context(), u, sess)
	return s.sessionTokens(u, sess, spent.amr(), now), nil
}

// spendCode checks code (a TOTP code or a recovery code) for u, whose TOTP
// is on, under the account's failed-login budget, and spends it with
// spendIt. A wrong code, or one spent already, is errWrongCode: it keeps
// its place in the budget, the log says so, and a login's mfa_token
// (tokenHash, nil for none) counts it.
func (s *server) spendCode(ctx context.Context, u user, code string, from origin, tokenHash []byte, spendIt func(proof) error) error {
	account, attempt := foldKey(u.Username), s.now()
	if wait := s.failedLogins.take(account, attempt); wait > 0 {
		return throttled(wait)
	}
	p, ok, err := s.matchCode(ctx, u.ID, strings.TrimSpace(code))
	if err != nil {
		return err
	}
	if ok {
		err = spendIt(p)
	}
	if ok && err == nil {
		s.failedLogins.giveBack(account, attempt)
		return nil
	}
	if ok && !errors.Is(err, errCodeSpent) {
		return err
	}
	if tokenHash != nil {
		err = s.store.wrongCode(ctx, tokenHash, u.ID, s.now(), from)
	} else {
		err = s.store.logEvent(ctx, event{userID: u.ID, kind: evCodeFailed, at: s.now(), from: from})
	}
	return cmp.Or(err, errWrongCode)
}

// matchCode reads code: six digits are a TOTP code, checked against the
// account's secret around now (only steps after the last one used);
// anything else is taken as a recovery code, which its spending checks.
func (s *server) matchCode(ctx context.Context, id int64, code string) (proof, bool, error) {
	if !isTOTPCode(code) {
		hash, ok := recoveryCodeHash(code)
		return proof{recovery: hash}, ok, nil
	}
	t, err := s.store.totpOf(ctx, id)
	if errors.Is(err, errNotFound) || err == nil && !t.on {
		return proof{}, false, nil
	}
	if err != nil {
		return proof{}, false, err
	}
	secret, err := s.sealer.open(id, t.sealed)
	if err != nil {
		// Restored without its mfa.key: no TOTP code can match; the
		// recovery codes still can.
		s.log.Error("a TOTP secret does not open: is this DATA_DIR's mfa.key the one it was sealed with?", "user", id)
		return proof{}, false, nil
	}
	step, ok := totpMatch(secret, code, s.now(), t.lastStep)
	return proof{step: step, sealed: t.sealed}, ok, nil
}

// ---- enrolment, and after ----

// mfaState is GET /api/mfa/totp/: whether TOTP is on, and how many
// recovery codes are left (the page offers new ones when few are).
func (s *server) mfaState(w http.ResponseWriter, r *http.Request, c *caller) error {
	t, err := s.store.totpOf(r.Context(), c.user.ID)
	if err != nil && !errors.Is(err, errNotFound) {
		return err
	}
	left, err := s.store.recoveryCodesLeft(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Enabled bool `json:"enabled"`
		Left    int  `json:"recovery_codes_left"`
	}{t.on, left})
}

// startTOTP is POST /api/mfa/totp/ {"password"}: a new secret, as text, as
// the otpauth URI and as its QR code. Login does not change until a code
// of it is confirmed.
func (s *server) startTOTP(w http.ResponseWriter, r *http.Request, c *caller) error {
	if _, err := s.readPassword(w, r, c, false); err != nil {
		return err
	}
	secret := newTOTPSecret()
	err := s.store.startTOTP(r.Context(), c.user.ID, s.sealer.seal(c.user.ID, secret))
	if errors.Is(err, errTOTPOn) {
		return errMFAOn
	}
	if err != nil {
		return err
	}
	uri := otpauthURI(c.user.Username, secret)
	svg, err := qrSVG(uri)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
		QR     string `json:"qr_svg"`
	}{base32NoPad.EncodeToString(secret), uri, svg})
}

// confirmTOTP is POST /api/mfa/totp/confirm/ {"code"}: a first code of the
// enrolled secret turns TOTP on, and answers the recovery codes, this once.
func (s *server) confirmTOTP(w http.ResponseWriter, r *http.Request, c *caller) error {
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	code := strings.TrimSpace(in.text(errs, "code", textRule{required: true, maxLen: maxCodeLen}))
	if errs.any() {
		return errs
	}
	t, err := s.store.totpOf(r.Context(), c.user.ID)
	switch {
	case errors.Is(err, errNotFound):
		return errEnrolFirst
	case err != nil:
		return err
	case t.on:
		return errMFAOn
	}
	secret, err := s.sealer.open(c.user.ID, t.sealed)
	if err != nil {
		return errEnrolFirst // sealed under another key: enrol again
	}
	step, ok := totpMatch(secret, code, s.now(), t.lastStep)
	if !ok {
		errs.add("code", msgWrongCode)
		return errs
	}
	codes, hashes := s.newRecoveryCodes()
	err = s.store.confirmTOTP(r.Context(), c.user.ID, proof{step: step, sealed: t.sealed}, hashes, s.now(), s.originOf(r, c))
	if errors.Is(err, errNoEnrolment) {
		return errEnrolFirst // replaced, confirmed or used meanwhile
	}
	if err != nil {
		return err
	}
	s.notify(c.user, "Two-factor authentication is on for your jwtnotes account",
		"two-factor authentication was turned on for your account: a login now asks for a\ncode of your authenticator app (or a recovery code) after the password.\n")
	return writeJSON(w, http.StatusOK, struct {
		Codes []string `json:"recovery_codes"`
	}{codes})
}

// disableTOTP is DELETE /api/mfa/totp/ {"password", "code"}.
func (s *server) disableTOTP(w http.ResponseWriter, r *http.Request, c *caller) error {
	code, err := s.readPassword(w, r, c, true)
	if err != nil {
		return err
	}
	from := s.originOf(r, c)
	err = s.spendCode(r.Context(), c.user, code, from, nil, func(p proof) error {
		return s.store.disableTOTP(r.Context(), c.user.ID, p, s.now(), from)
	})
	if err != nil {
		return codeFieldError(err)
	}
	s.notify(c.user, "Two-factor authentication is off for your jwtnotes account",
		"two-factor authentication was turned off for your account: a login now asks\nfor the password only.\n")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// renewRecoveryCodes is POST /api/mfa/recovery-codes/ {"password", "code"}:
// a new set of recovery codes; the old set dies.
func (s *server) renewRecoveryCodes(w http.ResponseWriter, r *http.Request, c *caller) error {
	code, err := s.readPassword(w, r, c, true)
	if err != nil {
		return err
	}
	codes, hashes := s.newRecoveryCodes()
	from := s.originOf(r, c)
	err = s.spendCode(r.Context(), c.user, code, from, nil, func(p proof) error {
		return s.store.renewRecoveryCodes(r.Context(), c.user.ID, p, hashes, s.now(), from)
	})
	if err != nil {
		return codeFieldError(err)
	}
	return writeJSON(w, http.StatusOK, struct {
		Codes []string `json:"recovery_codes"`
	}{codes})
}

// readPassword reads {"password"} (and {"code"}, withCode) and checks the
// password under the failed-login budget; withCode also requires TOTP on.
func (s *server) readPassword(w http.ResponseWriter, r *http.Request, c *caller, withCode bool) (code string, err error) {
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return "", err
	}
	errs := &fieldErrors{}
	password := in.text(errs, "password", textRule{required: true, raw: true})
	if withCode {
		code = in.text(errs, "code", textRule{required: true, maxLen: maxCodeLen})
	}
	if errs.any() {
		return "", errs
	}
	if withCode {
		if t, err := s.store.totpOf(r.Context(), c.user.ID); errors.Is(err, errNotFound) || err == nil && !t.on {
			return "", errMFAOff
		} else if err != nil {
			return "", err
		}
	}
	_, err = s.confirmPassword(r.Context(), c.user, password)
	if errors.Is(err, errWrongPassword) {
		errs.add("password", "Wrong password.")
		return "", errs
	}
	return code, err
}

// codeFieldError is spendCode's wrong code as a field error.
func codeFieldError(err error) error {
	if errors.Is(err, errWrongCode) {
		errs := &fieldErrors{}
		errs.add("code", msgWrongCode)
		return errs
	}
	return err
}

// newRecoveryCodes is a new set of recovery codes, and what the store keeps
// of them.
func (s *server) newRecoveryCodes() (codes []string, hashes [][]byte) {
	codes = newRecoveryCodes()
	for _, code := range codes {
		hash, _ := recoveryCodeHash(code)
		hashes = append(hashes, hash)
	}
	return codes, hashes
}

// ---- the security log ----

// securityLog is GET /api/security-log/: the caller's log (securitylog.go),
// newest first, a page at a time as the notes list is (limit, offset, and
// a Link header to the next page).
func (s *server) securityLog(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := readPage(r)
	if err != nil {
		return err
	}
	lines, err := s.store.securityLog(r.Context(), c.user.ID, p.limit+1, p.offset, s.now())
	if err != nil {
		return err
	}
	if len(lines) > p.limit {
		lines = lines[:p.limit]
		s.linkNextPage(w, r, p)
	}
	page := make([]securityEventJSON, len(lines))
	for i, e := range lines {
		page[i] = securityEventJSON{ID: e.ID, Event: e.Kind, At: formatTime(e.At), IP: e.IP, UserAgent: e.UserAgent,
			Detail: e.Detail}
		if e.SessionID != "" {
			page[i].Session = &e.SessionID
		}
	}
	return writeJSON(w, http.StatusOK, page)
}

type securityEventJSON struct {
	ID        int64   `json:"id"`
	Event     string  `json:"event"`
	At        string  `json:"at"`
	IP        string  `json:"ip"`
	UserAgent string  `json:"user_agent"`
	Session   *string `json:"session"`
	Detail    string  `json:"detail"`
}
