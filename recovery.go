package main

// recovery.go: account recovery by email. A user who forgot their password
// asks for a link by email and sets a new one through it; an email address
// is verified by a link mailed to it at registration and at every change.
//
// Read it in a link's order: asking for one (the answer is the same, in
// the same time, for every address: the work happens later, in the mail
// queue), the letters, then redeeming one. A link is the page's URL with
// the token in its fragment (/#reset/TOKEN, /#verify/TOKEN): a browser
// never sends a fragment to a server, so the token is in no access log and
// no Referer. The store keeps only the token's SHA-256 (a token is 256
// random bits: a fast hash is enough), bound to what it was issued against
// (store.go), so a reset link dies when the password or the email changes.
//
// It knows the routes' fields, answers and mail texts; sending is mail.go's,
// the rows are store.go's.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	msgResetSent  = "If an account has this email address, a link to reset its password has been sent to it."
	msgVerifySent = "If an account has this email address and it is not verified yet, a new link has been sent to it."
	msgBadLink    = "This link is invalid or has expired, or was already used. Ask for a new one."
	maxEmailField = 254 // characters, as the email column of Django's user
)

// errMailBusy: the mail queue is full. The answer of a full body budget.
var errMailBusy = errBusy

// ---- asking for a link ----

// requestPasswordReset is POST /api/password/reset/ {"email"}.
func (s *server) requestPasswordReset(w http.ResponseWriter, r *http.Request, _ *caller) error {
	return s.mailLink(w, r, s.resetLetter, msgResetSent)
}

// resendVerification is POST /api/email/verify/resend/ {"email"}: the page's
// "send again", which works logged out too (a login that refuses an
// unverified email leaves no other way).
func (s *server) resendVerification(w http.ResponseWriter, r *http.Request, _ *caller) error {
	return s.mailLink(w, r, s.verifyLetter, msgVerifySent)
}

// mailLink queues the letter that write makes for the account of the
// body's email, if there is one, and answers sent whatever the address.
func (s *server) mailLink(w http.ResponseWriter, r *http.Request, write func(context.Context, int64, string) (letter, bool, error), sent string) error {
	email, err := s.readMailRequest(w, r)
	if err != nil {
		return err
	}
	if !s.mail.send(s.toAccountOf(email, s.baseURL(r), write)) {
		return errMailBusy
	}
	return writeJSON(w, http.StatusOK, detail{sent})
}

// readMailRequest reads the email of a request for a link, after the
// client address's budget (-ip-limit), and spends one of the address's
// (-mail-limit an hour). Nothing here depends on whether anybody has the
// address: not the answer, not the work, not the time it takes.
func (s *server) readMailRequest(w http.ResponseWriter, r *http.Request) (string, error) {
	if err := s.throttleAddress(r); err != nil {
		return "", err
	}
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return "", err
	}
	errs := &fieldErrors{}
	email := in.text(errs, "email", textRule{required: true, maxLen: maxEmailField, check: func(e string) []string {
		if !validEmailAddress(e) {
			return []string{msgBadEmail}
		}
		return nil
	}})
	if errs.any() {
		return "", errs
	}
	if wait := s.mailsTo.take(mailboxKey(email), s.now()); wait > 0 {
		return "", throttled(wait)
	}
	return email, nil
}

// mailboxKey is the mailbox an address reaches, as the mail limits count
// it: lower-cased, and without the +tag of its local part, which most mail
// servers deliver to the same mailbox (x+1@example.com and x+2@example.com
// are x@example.com's).
func mailboxKey(email string) string {
	email = foldKey(email)
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return email
	}
	local, _, _ := strings.Cut(email[:at], "+")
	return local + email[at:]
}

// mailVerification queues the verification mail of u's email, at
// registration or after a change of it, within -mail-limit an hour per
// address and per account (changing one's email to a stranger's, again and
// again, must not flood them). The request that caused it never waits for
// it, and never fails because of it.
func (s *server) mailVerification(r *http.Request, u user) {
	now := s.now()
	if s.mailsTo.take(mailboxKey(u.Email), now) > 0 || s.mailsTo.take("account:"+strconv.FormatInt(u.ID, 10), now) > 0 {
		s.log.Info("verification mail not sent: -mail-limit reached for this address or account", "user", u.ID)
		return
	}
	base := s.baseURL(r)
	if !s.mail.send(func(ctx context.Context) (letter, bool, error) { return s.verifyLetter(ctx, u.ID, base) }) {
		s.log.Error("verification mail not sent: the mail queue is full", "user", u.ID)
	}
}

// ---- the letters ----

// toAccountOf is a letter for the account with this email, if there is
// one, written by write when its turn in the mail queue comes: the lookup
// is not the request's work.
func (s *server) toAccountOf(email, base string, write func(ctx context.Context, id int64, base string) (letter, bool, error)) writeLetter {
	return func(ctx context.Context) (letter, bool, error) {
		id, err := s.store.userIDByEmail(ctx, email)
		if errors.Is(err, errNotFound) {
			return letter{}, false, nil
		}
		if err != nil {
			return letter{}, false, err
		}
		return write(ctx, id, base)
	}
}

// newLink issues a token of purpose for user id, living ttl, and returns
// the user as it was bound (the mail goes to their email as stored, not as
// asked) and the link. ok is false when there is nothing to send: the user
// is inactive or gone, or (a verification) verified already.
func (s *server) newLink(ctx context.Context, purpose string, id int64, ttl time.Duration, base string) (u user, link string, ok bool, err error) {
	token, tokenHash := newAccountToken()
	u, err = s.store.issueAccountToken(ctx, purpose, id, tokenHash, s.now().Add(ttl))
	if errors.Is(err, errNotFound) {
		return user{}, "", false, nil
	}
	if err != nil {
		return user{}, "", false, err
	}
	return u, base + "/#" + purpose + "/" + token, true, nil
}

// resetLetter writes the reset mail of user id.
func (s *server) resetLetter(ctx context.Context, id int64, base string) (letter, bool, error) {
	u, link, ok, err := s.newLink(ctx, resetPurpose, id, s.cfg.resetTTL, base)
	if !ok {
		return letter{}, false, err
	}
	return letter{to: u.Email, subject: "Reset your jwtnotes password", link: link, text: fmt.Sprintf(`Hello %s,

someone asked to reset the password of your jwtnotes account. To choose a
new one, open this link within %s:

%s

The link works once. If you did not ask, ignore this mail: your password
stays as it is.
`, u.Username, inWords(s.cfg.resetTTL), link)}, true, nil
}

// verifyLetter writes the verification mail of user id's email as it is
// now, unless it is verified already.
func (s *server) verifyLetter(ctx context.Context, id int64, base string) (letter, bool, error) {
	u, link, ok, err := s.newLink(ctx, verifyPurpose, id, s.cfg.verifyTTL, base)
	if !ok {
		return letter{}, false, err
	}
	return letter{to: u.Email, subject: "Confirm your email address for jwtnotes", link: link, text: fmt.Sprintf(`Hello %s,

to confirm that this address, %s,
is the one of your jwtnotes account, open this link within %s:

%s

If you did not register at jwtnotes, ignore this mail.
`, u.Username, u.Email, inWords(s.cfg.verifyTTL), link)}, true, nil
}

// inWords is a lifetime as a mail says it: "30 minutes", "72 hours".
func inWords(d time.Duration) string {
	n, unit := int64(d/time.Minute), "minute"
	if d >= 2*time.Hour && d%time.Hour == 0 {
		n, unit = int64(d/time.Hour), "hour"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// newAccountToken is a new link token and the SHA-256 that the store keeps.
func newAccountToken() (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:]
}

// accountTokenHash is the SHA-256 the store looks a token up by, or false
// for a string that no link ever held: no lookup is made for it.
func accountTokenHash(token string) ([]byte, bool) {
	if len(token) != 43 {
		return nil, false
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(token); err != nil || len(b) != 32 {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], true
}

// ---- redeeming a link ----

// confirmPasswordReset is POST /api/password/reset/confirm/ {"token",
// "new_password", "new_password2"}. The token is checked first: a request
// without a live one costs no password hash. The new password passes the
// registration validators; then it is stored, and every session of the
// user ends, in one transaction that checks the token once more.
func (s *server) confirmPasswordReset(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.throttleAddress(r); err != nil {
		return err
	}
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	var owner *user // the token's, once it is known to be live
	var tokenHash []byte
	if token := in.text(errs, "token", textRule{required: true}); token != "" {
		var ok bool
		var u user
		if tokenHash, ok = accountTokenHash(token); ok {
			u, err = s.store.accountTokenUser(r.Context(), resetPurpose, tokenHash, s.now())
		}
		switch {
		case !ok || errors.Is(err, errNotFound):
			errs.add("token", msgBadLink)
		case err != nil:
			return err
		default:
			owner = &u
		}
	}
	hash, err := s.newPasswordHash(r.Context(), in, errs, owner) // field errors unless the token is live: no hash
	if err != nil {
		return err
	}
	_, err = s.store.resetPassword(r.Context(), tokenHash, hash, s.now(), s.originOf(r, nil))
	if errors.Is(err, errNotFound) { // used, or dead, while the hash ran
		errs.add("token", msgBadLink)
		return errs
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, detail{"Password has been reset with the new password."})
}

// verifyEmail is POST /api/email/verify/ {"token"}: the page posts the
// token of the link it was opened with.
func (s *server) verifyEmail(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.throttleAddress(r); err != nil {
		return err
	}
	in, err := s.readInput(w, r, fieldsOnly)
	if err != nil {
		return err
	}
	errs := &fieldErrors{}
	token := in.text(errs, "token", textRule{required: true})
	if errs.any() {
		return errs
	}
	tokenHash, ok := accountTokenHash(token)
	if ok {
		_, err = s.store.verifyEmail(r.Context(), tokenHash, s.now(), s.originOf(r, nil))
	}
	if !ok || errors.Is(err, errNotFound) {
		errs.add("token", msgBadLink)
		return errs
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, detail{"Email address verified."})
}
