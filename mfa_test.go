package main

import (
	"context"
	"encoding/base32"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// enrolment is an account with TOTP on, as a test holds it.
type enrolment struct {
	secret []byte
	codes  []string // the recovery codes
	tokens tokenPair
}

// enrolTOTP turns TOTP on for username (logged in as tokens), with a code
// of the current step, and moves the clock to the next step, so that the
// code of "now" is a fresh one.
func (e *testEnv) enrolTOTP(username string) enrolment {
	e.t.Helper()
	tokens := e.login(username)
	res := e.withToken("POST", "/api/mfa/totp/", tokens.Access, `{"password":"`+testPassword+`"}`)
	var start struct {
		Secret string `json:"secret"`
		URI    string `json:"otpauth_uri"`
		QR     string `json:"qr_svg"`
	}
	if res.status != 200 || !decodeOK(e.t, res.body, &start) {
		e.t.Fatalf("start: %d %s", res.status, res.body)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(start.Secret)
	if err != nil || len(secret) != totpSecretSize {
		e.t.Fatalf("secret %q: %v", start.Secret, err)
	}
	res = e.withToken("POST", "/api/mfa/totp/confirm/", tokens.Access, fmt.Sprintf(`{"code":%q}`, e.code(secret, 0)))
	var confirmed struct {
		Codes []string `json:"recovery_codes"`
	}
	if res.status != 200 || !decodeOK(e.t, res.body, &confirmed) || len(confirmed.Codes) != recoveryCodeCount {
		e.t.Fatalf("confirm: %d %s", res.status, res.body)
	}
	e.clock.advance(totpStep)
	return enrolment{secret: secret, codes: confirmed.Codes, tokens: tokens}
}

// code is the TOTP code of secret, steps away from the clock's step.
func (e *testEnv) code(secret []byte, steps int64) string {
	return hotp(secret, uint64(totpStepAt(e.clock.now())+steps), totpDigits)
}

// mfaToken logs username in with the password and returns the mfa_token
// of the second step.
func (e *testEnv) mfaToken(username string) string {
	e.t.Helper()
	res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":%q,"password":%q}`, username, testPassword))
	var answer mfaRequired
	if res.status != 401 || !decodeOK(e.t, res.body, &answer) || answer.Code != "mfa_required" || len(answer.MFAToken) != 43 {
		e.t.Fatalf("login of an account with TOTP: %d %s", res.status, res.body)
	}
	return answer.MFAToken
}

func (e *testEnv) sendCode(mfaToken, code string) response {
	return e.postJSON("/api/token/mfa/", fmt.Sprintf(`{"mfa_token":%q,"code":%q}`, mfaToken, code))
}

const (
	bodyWrongLoginCode = `{"detail":"` + msgWrongCode + `","code":"mfa_code_invalid"}`
	bodyMFATokenOver   = `{"detail":"This login is over (it lasts 5 minutes and 5 codes): log in again with your password.","code":"mfa_token_invalid"}`
	bodyWrongCode      = `{"code":["` + msgWrongCode + `"]}`
)

// TestTOTPLogin: enrolment changes nothing until it is confirmed; then a
// login asks for a code, a code of the authenticator answers simplejwt's
// pair with amr, and a refresh keeps it.
func TestTOTPLogin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	res := e.withToken("POST", "/api/mfa/totp/", tokens.Access, `{"password":"`+testPassword+`"}`)
	if res.status != 200 || !strings.Contains(res.body, `"otpauth_uri":"otpauth://totp/jwtnotes:alice?`) ||
		!strings.Contains(res.body, `"qr_svg":"<svg xmlns=`) {
		t.Fatalf("start: %d %s", res.status, res.body)
	}
	if claims := decodeClaims(t, e.login("alice").Access); claims["amr"] != nil {
		t.Errorf("before the confirmation, a login changed: %v", claims)
	}
	want(t, e.withToken("POST", "/api/mfa/totp/confirm/", tokens.Access, `{"code":"000000"}`), 400, bodyWrongCode)
	want(t, e.withToken("POST", "/api/mfa/totp/", tokens.Access, `{"password":"wrong"}`), 400, `{"password":["Wrong password."]}`)

	en := e.enrolTOTP("alice")
	want(t, e.withToken("POST", "/api/mfa/totp/", en.tokens.Access, `{"password":"`+testPassword+`"}`), 400,
		`{"detail":"Two-factor authentication is on already: turn it off first to enrol another authenticator."}`)
	token := e.mfaToken("alice")
	res = e.sendCode(token, e.code(en.secret, 0))
	var pair tokenPair
	if res.status != 200 || !decodeOK(t, res.body, &pair) || !strings.HasPrefix(res.body, `{"refresh":"`) {
		t.Fatalf("the code: %d %s", res.status, res.body)
	}
	for _, tok := range []string{pair.Access, pair.Refresh, e.rotate(pair.Refresh).Access} {
		if amr := fmt.Sprint(decodeClaims(t, tok)["amr"]); amr != "[pwd otp]" {
			t.Errorf("amr %s, want [pwd otp]", amr)
		}
	}
	want(t, e.sendCode(token, e.code(en.secret, 0)), 401, bodyMFATokenOver) // the mfa_token was used
	if res := e.get("/api/profile/", pair.Access); res.status != 200 {
		t.Errorf("the new session: %d", res.status)
	}
}

// TestTOTPCodeWorksOnce: the code of a step is taken once, and an older
// one never after a newer; the step either side of the server's is taken,
// two away is not.
func TestTOTPCodeWorksOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	if res := e.sendCode(e.mfaToken("alice"), e.code(en.secret, 0)); res.status != 200 {
		t.Fatalf("first: %d %s", res.status, res.body)
	}
	token := e.mfaToken("alice")
	want(t, e.sendCode(token, e.code(en.secret, 0)), 401, bodyWrongLoginCode)  // replayed
	want(t, e.sendCode(token, e.code(en.secret, -1)), 401, bodyWrongLoginCode) // older
	want(t, e.sendCode(token, e.code(en.secret, 2)), 401, bodyWrongLoginCode)  // too far ahead
	if res := e.sendCode(token, e.code(en.secret, 1)); res.status != 200 {
		t.Errorf("the next step's code: %d %s", res.status, res.body)
	}
	e.clock.advance(3 * totpStep) // a phone two steps behind... one step behind is fine
	if res := e.sendCode(e.mfaToken("alice"), e.code(en.secret, -1)); res.status != 200 {
		t.Errorf("the step before: %d %s", res.status, res.body)
	}
}

// TestMFATokenBounds: an mfa_token dies at its fifth wrong code, after 5
// minutes, and with a password change; wrong codes count against the
// account's failed logins.
func TestMFATokenBounds(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.loginLimit = 8 })
	e.register("alice")
	en := e.enrolTOTP("alice")
	token := e.mfaToken("alice")
	for range mfaTries {
		want(t, e.sendCode(token, "000000"), 401, bodyWrongLoginCode)
	}
	want(t, e.sendCode(token, e.code(en.secret, 0)), 401, bodyMFATokenOver)

	token = e.mfaToken("alice")
	e.clock.advance(mfaTokenTTL)
	want(t, e.sendCode(token, e.code(en.secret, 0)), 401, bodyMFATokenOver)

	token = e.mfaToken("alice")
	e.withToken("POST", "/api/profile/password/", en.tokens.Access,
		`{"old_password":"`+testPassword+`","new_password":"`+newPassword+`","new_password2":"`+newPassword+`"}`)
	want(t, e.sendCode(token, e.code(en.secret, 0)), 401, bodyMFATokenOver)
	if n := e.count(`SELECT count(*) FROM security_events WHERE event = ?`, evCodeFailed); n != mfaTries {
		t.Errorf("%d wrong codes in the log, want %d", n, mfaTries)
	}

	// The budget: 8 failures in the window; 5 wrong codes spent 5 of them.
	f := newTestEnv(t, func(c *config) { c.loginLimit = 3 })
	f.register("bob")
	f.enrolTOTP("bob")
	for range 3 {
		want(t, f.sendCode(f.mfaToken("bob"), "000000"), 401, bodyWrongLoginCode)
	}
	res := f.postJSON("/api/token/", `{"username":"bob","password":"`+testPassword+`"}`)
	if res.status != 429 {
		t.Errorf("after 3 wrong codes with -login-limit 3, a login: %d %s", res.status, res.body)
	}
}

// TestRecoveryCode: a recovery code logs in once (amr kba), and the log
// says so; a new set kills the old one.
func TestRecoveryCode(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	res := e.sendCode(e.mfaToken("alice"), strings.ToUpper(en.codes[3]))
	var pair tokenPair
	if res.status != 200 || !decodeOK(t, res.body, &pair) {
		t.Fatalf("a recovery code: %d %s", res.status, res.body)
	}
	if amr := fmt.Sprint(decodeClaims(t, pair.Access)["amr"]); amr != "[pwd kba]" {
		t.Errorf("amr %s", amr)
	}
	want(t, e.sendCode(e.mfaToken("alice"), en.codes[3]), 401, bodyWrongLoginCode)

	body := fmt.Sprintf(`{"password":%q,"code":%q}`, testPassword, e.code(en.secret, 0))
	res = e.withToken("POST", "/api/mfa/recovery-codes/", pair.Access, body)
	var renewed struct {
		Codes []string `json:"recovery_codes"`
	}
	if res.status != 200 || !decodeOK(t, res.body, &renewed) || len(renewed.Codes) != recoveryCodeCount {
		t.Fatalf("renew: %d %s", res.status, res.body)
	}
	want(t, e.sendCode(e.mfaToken("alice"), en.codes[4]), 401, bodyWrongLoginCode)
	if res := e.sendCode(e.mfaToken("alice"), renewed.Codes[0]); res.status != 200 {
		t.Errorf("a new code: %d %s", res.status, res.body)
	}
	if n := e.count(`SELECT count(*) FROM security_events WHERE event = ?`, evRecoveryUsed); n != 2 {
		t.Errorf("%d recovery codes used in the log, want 2", n)
	}
}

// TestTOTPOff: the password and a code turn TOTP off; then a login is a
// password login again, byte for byte.
func TestTOTPOff(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	for _, tt := range []struct{ body, want string }{
		{`{"password":"wrong","code":"` + e.code(en.secret, 0) + `"}`, `{"password":["Wrong password."]}`},
		{`{"password":"` + testPassword + `","code":"000000"}`, bodyWrongCode},
		{`{"password":"` + testPassword + `"}`, `{"code":["This field is required."]}`},
	} {
		want(t, e.withToken("DELETE", "/api/mfa/totp/", en.tokens.Access, tt.body), 400, tt.want)
	}
	want(t, e.get("/api/mfa/totp/", en.tokens.Access), 200, `{"enabled":true,"recovery_codes_left":10}`)
	want(t, e.withToken("DELETE", "/api/mfa/totp/", en.tokens.Access,
		`{"password":"`+testPassword+`","code":"`+e.code(en.secret, 0)+`"}`), 204, "")
	want(t, e.get("/api/mfa/totp/", en.tokens.Access), 200, `{"enabled":false,"recovery_codes_left":0}`)
	if claims := decodeClaims(t, e.login("alice").Access); claims["amr"] != nil {
		t.Errorf("a login after TOTP went off: %v", claims)
	}
	want(t, e.withToken("DELETE", "/api/mfa/totp/", en.tokens.Access,
		`{"password":"`+testPassword+`","code":"`+e.code(en.secret, 1)+`"}`), 400, `{"detail":"Two-factor authentication is not on."}`)
	if n := e.count(`SELECT count(*) FROM recovery_codes`); n != 0 {
		t.Errorf("%d recovery codes left", n)
	}
}

// TestOneCodeOneWinner: two logins at once with one TOTP code, or one
// recovery code: exactly one gets the tokens.
func TestOneCodeOneWinner(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	for _, code := range []string{e.code(en.secret, 0), en.codes[0]} {
		tokens := []string{e.mfaToken("alice"), e.mfaToken("alice"), e.mfaToken("alice"), e.mfaToken("alice")}
		statuses := make([]int, len(tokens))
		var wg sync.WaitGroup
		for i, token := range tokens {
			wg.Go(func() { statuses[i] = e.sendCode(token, code).status })
		}
		wg.Wait()
		if fmt.Sprint(countOf(statuses, 200)) != "1" {
			t.Errorf("code %s at once: %v, want exactly one 200", code, statuses)
		}
	}
}

func countOf(statuses []int, status int) int {
	n := 0
	for _, s := range statuses {
		if s == status {
			n++
		}
	}
	return n
}

// TestCookieLoginWithCode: the cookie routes ask for the code the same
// way, and the second step sets the cookie.
func TestCookieLoginWithCode(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	res := e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`)
	var answer mfaRequired
	if res.status != 401 || !decodeOK(t, res.body, &answer) || answer.Code != "mfa_required" || res.header.Get("Set-Cookie") != "" {
		t.Fatalf("cookie login: %d %s %v", res.status, res.body, res.header)
	}
	res = e.do("POST", "/api/token/cookie/mfa/", "application/json",
		fmt.Sprintf(`{"mfa_token":%q,"code":%q}`, answer.MFAToken, e.code(en.secret, 0)))
	if res.status != 200 || !strings.HasPrefix(res.body, `{"access":"`) || !strings.Contains(res.header.Get("Set-Cookie"), refreshCookieName+"=") {
		t.Errorf("cookie second step: %d %s %v", res.status, res.body, res.header)
	}
}

// TestTOTPSecretIsSealed: notes.db holds no TOTP secret as it is, and a
// sealed secret does not open for another user, or under another key.
func TestTOTPSecretIsSealed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	en := e.enrolTOTP("alice")
	var sealed []byte
	if err := e.srv.store.db.queryRow(context.Background(), `SELECT secret FROM totp`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed), string(en.secret)) {
		t.Error("the secret is in the database as it is")
	}
	if _, err := e.srv.sealer.open(1, sealed); err != nil {
		t.Errorf("it does not open for its user: %v", err)
	}
	if _, err := e.srv.sealer.open(2, sealed); err == nil {
		t.Error("it opens for another user")
	}
	other, err := loadSealer(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.open(1, sealed); err == nil {
		t.Error("it opens under another key")
	}
	// A server without its key: TOTP codes fail, recovery codes still work.
	e.srv.sealer = other
	want(t, e.sendCode(e.mfaToken("alice"), e.code(en.secret, 0)), 401, bodyWrongLoginCode)
	if res := e.sendCode(e.mfaToken("alice"), en.codes[0]); res.status != 200 {
		t.Errorf("a recovery code without the key: %d %s", res.status, res.body)
	}
}

// TestSecurityLog: the owner reads their log, newest first, a page at a
// time; it records the events with where they came from, never a secret;
// it keeps the newest 1,000 and nothing older than 180 days.
func TestSecurityLog(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	e.postJSON("/api/token/", `{"username":"alice","password":"wrong"}`)
	e.srv.background.Wait() // its line is written after the answer
	en := e.enrolTOTP("alice")
	pair := e.rotate(e.login2FA("alice", e.code(en.secret, 0)).Refresh)
	e.clock.advance(time.Minute)
	e.withToken("POST", "/api/profile/password/", pair.Access,
		`{"old_password":"`+testPassword+`","new_password":"`+newPassword+`","new_password2":"`+newPassword+`"}`)
	res := e.get("/api/security-log/?limit=3", pair.Access)
	var page []struct {
		Event, At, IP, UserAgent, Detail string
		Session                          *string
	}
	if res.status != 200 || !decodeOK(t, res.body, &page) || len(page) != 3 {
		t.Fatalf("log: %d %s", res.status, res.body)
	}
	if page[0].Event != evPasswordChanged || page[1].Event != evLogin || page[1].Detail != "password and a TOTP code" ||
		page[0].IP != "192.0.2.1" || page[0].Session == nil {
		t.Errorf("newest first: %s", res.body)
	}
	if link := res.header.Get("Link"); !strings.Contains(link, "limit=3&offset=3") {
		t.Errorf("Link %q", link)
	}
	var all []struct{ Event string }
	decode(t, e.get("/api/security-log/?limit=100", pair.Access).body, &all)
	var kinds []string
	for _, l := range all {
		kinds = append(kinds, l.Event)
	}
	if got := strings.Join(kinds, " "); got != "password_changed login mfa_enabled login login_failed registered" {
		t.Errorf("the log: %s", got)
	}
	for _, secret := range []string{testPassword, newPassword, en.codes[0], base32NoPad.EncodeToString(en.secret), pair.Refresh} {
		if strings.Contains(e.get("/api/security-log/?limit=100", pair.Access).body, secret) || strings.Contains(e.logs.String(), secret) {
			t.Errorf("a secret in the log: %q", secret)
		}
	}

	// The bounds: 1,000 lines; 180 days.
	for i := range securityLogKeep + 10 {
		e.srv.store.logEvent(context.Background(), event{userID: 1, kind: evLoginFailed, at: e.clock.now(), detail: fmt.Sprint(i)})
	}
	if n := e.count(`SELECT count(*) FROM security_events WHERE user_id = 1`); n != securityLogKeep {
		t.Errorf("%d lines kept, want %d", n, securityLogKeep)
	}
	e.clock.advance(securityLogDays*24*time.Hour + time.Second)
	if _, _, err := e.srv.store.flushExpired(context.Background(), e.clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM security_events WHERE user_id = 1`); n != 0 {
		t.Errorf("%d lines older than 180 days kept", n)
	}

	// Deleting an account deletes its log.
	bob := e.register("bob")
	e.withToken("DELETE", "/api/profile/", e.login("bob").Access, `{"password":"`+testPassword+`"}`)
	if n := e.count(`SELECT count(*) FROM security_events WHERE user_id = ?`, bob); n != 0 {
		t.Errorf("%d lines of a deleted account kept", n)
	}
}

// login2FA logs username in with the password and code.
func (e *testEnv) login2FA(username, code string) tokenPair {
	e.t.Helper()
	res := e.sendCode(e.mfaToken(username), code)
	var p tokenPair
	if res.status != 200 || !decodeOK(e.t, res.body, &p) {
		e.t.Fatalf("second step: %d %s", res.status, res.body)
	}
	return p
}

// TestSecurityMails: with -security-mails, a login from a device the
// account has not seen, a refresh token reused, a password change, an email
// change (to the address before) and TOTP on and off each mail the user;
// the first login, and a login from a known device, mail nobody. No mail
// holds a link.
func TestSecurityMails(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t, func(c *config) { c.securityMails, c.mailLimit = true, 20 })
	e.registerMailed(sink, "alice")
	tokens := e.login("alice") // the device that registered
	e.srv.mail.wait()
	sink.none()
	expect := func(subject, to string, contains ...string) {
		t.Helper()
		m := e.mailed(sink)
		if m.header.Get("Subject") != subject || m.to != to {
			t.Fatalf("mail %q to %s, want %q to %s", m.header.Get("Subject"), m.to, subject, to)
		}
		for _, s := range append(contains, "Hello alice") {
			if !strings.Contains(m.text, s) {
				t.Errorf("%q does not say %q:\n%s", subject, s, m.text)
			}
		}
		if strings.Contains(m.text, "http") || strings.Contains(m.text, "/#") {
			t.Errorf("%q holds a link:\n%s", subject, m.text)
		}
	}
	loginFrom := func(agent, address string) response {
		return e.do("POST", "/api/token/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`,
			"User-Agent", agent, "RemoteAddr", address+":1234")
	}
	loginFrom("NewPhone/1.0", "198.51.100.7")
	expect("A new login to your jwtnotes account", "alice@example.com", "NewPhone/1.0", "198.51.100.7")
	loginFrom("NewPhone/1.0", "198.51.100.99") // the same network
	e.srv.mail.wait()
	sink.none()

	e.rotate(tokens.Refresh)
	e.clock.advance(e.srv.cfg.reuseGrace + time.Second)
	e.refresh(tokens.Refresh)
	expect("A session of your jwtnotes account was stopped", "alice@example.com", "used again")

	en := e.enrolTOTP("alice")
	expect("Two-factor authentication is on for your jwtnotes account", "alice@example.com", "code of your authenticator")
	e.withToken("DELETE", "/api/mfa/totp/", en.tokens.Access, `{"password":"`+testPassword+`","code":"`+en.codes[0]+`"}`)
	expect("Two-factor authentication is off for your jwtnotes account", "alice@example.com", "password only")

	access := e.login("alice").Access
	e.withToken("POST", "/api/profile/password/", access,
		`{"old_password":"`+testPassword+`","new_password":"`+newPassword+`","new_password2":"`+newPassword+`"}`)
	expect("Your jwtnotes password was changed", "alice@example.com", "every other")

	e.withToken("PATCH", "/api/profile/", access, `{"email":"alice2@example.com"}`)
	e.srv.mail.wait()
	byTo := map[string]sunkMail{}
	for range 2 {
		m := sink.next()
		byTo[m.to] = m
	}
	if m := byTo["alice@example.com"]; m.header.Get("Subject") != "The email address of your jwtnotes account was changed" ||
		!strings.Contains(m.text, "alice2@example.com") || strings.Contains(m.text, "/#") {
		t.Errorf("the mail to the address before: %q\n%s", m.header.Get("Subject"), m.text)
	}
	if byTo["alice2@example.com"].header.Get("Subject") != "Confirm your email address for jwtnotes" {
		t.Error("no verification mail to the new address")
	}
}
