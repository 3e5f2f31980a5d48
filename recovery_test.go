package main

// recovery_test.go: password reset and email verification through the real
// handlers, with the mail going to mailsink_test.go's SMTP server.

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newMailEnv is a test server whose mail goes to a sink, retried at once.
func newMailEnv(t *testing.T, configure ...func(*config)) (*testEnv, *mailSink) {
	t.Helper()
	sink := newMailSink(t)
	e := newTestEnv(t, append([]func(*config){sink.useFor}, configure...)...)
	e.srv.mail.retries = []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	return e, sink
}

// mailed waits until the mail queue is empty and returns the one message
// it sent.
func (e *testEnv) mailed(sink *mailSink) sunkMail {
	e.t.Helper()
	e.srv.mail.wait()
	m := sink.next()
	sink.none()
	return m
}

// registerMailed registers username and returns the token of the
// verification mail.
func (e *testEnv) registerMailed(sink *mailSink, username string) (int64, string) {
	e.t.Helper()
	id := e.register(username)
	m := e.mailed(sink)
	if m.to != username+"@example.com" || m.header.Get("Subject") != "Confirm your email address for jwtnotes" {
		e.t.Fatalf("verification mail to %s, %q", m.to, m.header.Get("Subject"))
	}
	return id, m.link(e.t, "verify")
}

// askReset asks for a reset of email and returns the token mailed.
func (e *testEnv) askReset(sink *mailSink, email string) string {
	e.t.Helper()
	want(e.t.(*testing.T), e.postJSON("/api/password/reset/", fmt.Sprintf(`{"email":%q}`, email)), 200, `{"detail":"`+msgResetSent+`"}`)
	m := e.mailed(sink)
	if m.header.Get("Subject") != "Reset your jwtnotes password" {
		e.t.Fatalf("reset mail: %q", m.header.Get("Subject"))
	}
	return m.link(e.t, "reset")
}

func confirmBody(token, password string) string {
	return fmt.Sprintf(`{"token":%q,"new_password":%q,"new_password2":%q}`, token, password, password)
}

const (
	newPassword   = "Battery-Staple-77"
	bodyBadLink   = `{"token":["` + msgBadLink + `"]}`
	bodyResetDone = `{"detail":"Password has been reset with the new password."}`
)

func TestPasswordReset(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")
	before := e.login("alice")
	token := e.askReset(sink, "ALICE@example.com") // any case finds the account; the mail goes to the address as stored

	want(t, e.postJSON("/api/password/reset/confirm/", `{"token":"`+token+`","new_password":"`+newPassword+`","new_password2":"other-Staple-77"}`),
		400, `{"new_password2":["Password fields didn't match."]}`)
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, "alice")), 400,
		`{"new_password":["The password is too similar to the username.","This password is too short. It must contain at least 8 characters.","This password is too common."]}`)
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, "password1")), 400,
		`{"new_password":["This password is too common."]}`)
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, newPassword)), 200, bodyResetDone)

	// Every session ended; the new password logs in; the link is used up.
	want(t, e.refresh(before.Refresh), 401, bodyBlacklisted)
	if res := e.get("/api/profile/", before.Access); res.status != 401 {
		t.Errorf("the access token of a session a reset ended: %d %s", res.status, res.body)
	}
	want(t, e.postJSON("/api/token/", `{"username":"alice","password":"`+testPassword+`"}`), 401,
		`{"detail":"No active account found with the given credentials"}`)
	res := e.postJSON("/api/token/", `{"username":"alice","password":"`+newPassword+`"}`)
	if res.status != 200 {
		t.Fatalf("login with the new password: %d %s", res.status, res.body)
	}
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, "Another-Staple-78")), 400, bodyBadLink)
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE purpose = 'reset'`); n != 0 {
		t.Errorf("%d reset tokens left after the reset", n)
	}
	// The link reached the mailbox: the email counts as verified.
	var tokens tokenPair
	decode(t, res.body, &tokens)
	if p := e.get("/api/profile/", tokens.Access); !strings.Contains(p.body, `"email_verified":true`) {
		t.Errorf("profile after a reset: %s", p.body)
	}
}

// TestResetRequestRevealsNothing: an address nobody has gets the same
// answer as one that belongs to an account (or an inactive one), and no
// mail. (The request does not even look the address up: that happens in
// the mail queue, which TestHangingMailServer holds without holding up a
// request.)
func TestResetRequestRevealsNothing(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")
	e.exec(`UPDATE users SET is_active = 0 WHERE username = 'alice'`)
	e.register("bob")
	e.mailed(sink)
	answers := map[string]bool{}
	for _, email := range []string{"bob@example.com", "nobody@example.com", "alice@example.com"} {
		res := e.postJSON("/api/password/reset/", `{"email":"`+email+`"}`)
		answers[fmt.Sprintf("%d %s %s", res.status, res.header.Get("Content-Type"), res.body)] = true
	}
	if len(answers) != 1 {
		t.Errorf("different answers for an account, nobody and an inactive account: %v", answers)
	}
	if m := e.mailed(sink); m.to != "bob@example.com" {
		t.Errorf("the one mail went to %s", m.to)
	}

}

func TestResetRequestErrorsAndThrottle(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t, func(c *config) { c.mailLimit = 2 })
	e.registerMailed(sink, "alice")
	for _, tc := range []struct{ body, want string }{
		{`{}`, `{"email":["This field is required."]}`},
		{`{"email":"not an address"}`, `{"email":["Enter a valid email address."]}`},
		{`{"email":"` + strings.Repeat("a", 250) + `@example.com"}`, `{"email":["Ensure this field has no more than 254 characters."]}`},
	} {
		t.Run("POST /api/password/reset/ "+tc.body, func(t *testing.T) {
			want(t, e.postJSON("/api/password/reset/", tc.body), 400, tc.want)
		})
	}
	// -mail-limit per address asked for, an account's or not, in any case
	// (alice's registration mail spent one of hers).
	for email, allowed := range map[string]int{"alice@example.com": 1, "nobody@example.com": 2} {
		t.Run(email, func(t *testing.T) {
			for range allowed {
				if res := e.postJSON("/api/password/reset/", `{"email":"`+email+`"}`); res.status != 200 {
					t.Fatalf("reset request: %d %s", res.status, res.body)
				}
			}
			res := e.postJSON("/api/password/reset/", `{"email":"`+strings.ToUpper(email)+`"}`)
			if res.status != 429 || res.header.Get("Retry-After") == "" {
				t.Errorf("request %d for %s in an hour: %d %s", allowed+1, email, res.status, res.body)
			}
		})
	}
	e.srv.mail.wait()
	if got := len(sink.received); got != 1 {
		t.Errorf("%d mails, want 1 (to alice)", got)
	}
}

// TestMailsPerMailbox: the mail limit counts a mailbox, whatever +tag its
// address carries: eight registrations as x+0 to x+7@example.com, then
// reset requests for more tags, mail x@example.com at most -mail-limit
// times in an hour, and every request gets the same answer.
func TestMailsPerMailbox(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t, func(c *config) { c.ipLimit = 0 })
	for i := range 8 {
		res := e.postJSON("/api/register/", fmt.Sprintf(`{"username":"x%d","email":"x+%d@example.com","password":%q,"password2":%q}`,
			i, i, testPassword, testPassword))
		if res.status != 201 {
			t.Fatalf("register x+%d: %d %s", i, res.status, res.body)
		}
	}
	for i := range 3 {
		res := e.postJSON("/api/password/reset/", fmt.Sprintf(`{"email":"X+%d@Example.com"}`, i))
		if res.status != 429 {
			t.Errorf("a reset request for X+%d, past the mailbox's limit: %d %s", i, res.status, res.body)
		}
	}
	e.srv.mail.wait()
	if got := len(sink.received); got != e.srv.cfg.mailLimit {
		t.Errorf("%d mails to one mailbox in an hour, want %d", got, e.srv.cfg.mailLimit)
	}
	if got, want := mailboxKey("Some.One+tag+more@Example.COM"), "some.one@example.com"; got != want {
		t.Errorf("mailboxKey = %q, want %q", got, want)
	}
}

// TestResetLinkDies: a reset token stops working when it expires, when the
// password or the email changes, and for anything that is not a token.
func TestResetLinkDies(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")

	expired := e.askReset(sink, "alice@example.com")
	e.clock.advance(30*time.Minute + time.Second)
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(expired, newPassword)), 400, bodyBadLink)
	if _, _, err := e.srv.store.flushExpired(context.Background(), e.clock.now()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE purpose = 'reset'`); n != 0 {
		t.Errorf("%d expired reset tokens left after the flush", n)
	}

	token := e.askReset(sink, "alice@example.com")
	tokens := e.login("alice")
	res := e.withToken("POST", "/api/profile/password/", tokens.Access,
		`{"old_password":"`+testPassword+`","new_password":"Another-Horse-43","new_password2":"Another-Horse-43"}`)
	if res.status != 200 {
		t.Fatalf("password change: %d %s", res.status, res.body)
	}
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, newPassword)), 400, bodyBadLink)

	token = e.askReset(sink, "alice@example.com")
	if res := e.withToken("PATCH", "/api/profile/", tokens.Access, `{"email":"alice@example.org"}`); res.status != 200 {
		t.Fatalf("email change: %d %s", res.status, res.body)
	}
	e.mailed(sink) // the verification of the new address
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, newPassword)), 400, bodyBadLink)
	// Changed back, the email is what the link was bound to again: the link
	// stays dead all the same.
	if res := e.withToken("PATCH", "/api/profile/", tokens.Access, `{"email":"alice@example.com"}`); res.status != 200 {
		t.Fatalf("email changed back: %d %s", res.status, res.body)
	}
	e.mailed(sink)
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, newPassword)), 400, bodyBadLink)
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE purpose = 'reset'`); n != 0 {
		t.Errorf("%d reset tokens kept after the email changed", n)
	}

	for _, bad := range []string{"x", strings.Repeat("A", 43), strings.Repeat("A", 42) + "=", token + "A", "../" + token[3:]} {
		want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(bad, newPassword)), 400, bodyBadLink)
	}
	want(t, e.postJSON("/api/password/reset/confirm/", `{}`), 400,
		`{"token":["This field is required."],"new_password":["This field is required."],"new_password2":["This field is required."]}`)
	// A verification token is not a reset token.
	e.register("bob")
	verify := e.mailed(sink).link(t, "verify")
	want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(verify, newPassword)), 400, bodyBadLink)
}

// TestResetConfirmRace: two confirms of one token at the same moment:
// exactly one wins.
func TestResetConfirmRace(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")
	token := e.askReset(sink, "alice@example.com")
	passwords := []string{"Battery-Staple-77", "Another-Staple-78"}
	statuses := make([]int, 2)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range 2 {
		done.Go(func() {
			start.Wait()
			statuses[i] = e.postJSON("/api/password/reset/confirm/", confirmBody(token, passwords[i])).status
		})
	}
	start.Done()
	done.Wait()
	if statuses[0]+statuses[1] != 600 {
		t.Fatalf("two confirms of one token: %v, want one 200 and one 400", statuses)
	}
	winner := passwords[0]
	if statuses[1] == 200 {
		winner = passwords[1]
	}
	if res := e.postJSON("/api/token/", `{"username":"alice","password":"`+winner+`"}`); res.status != 200 {
		t.Errorf("the winner's password: %d %s", res.status, res.body)
	}
}

// TestResetRacesPasswordChange: a reset confirm and a password change at
// the same moment: one of them wins, and the password is the winner's.
func TestResetRacesPasswordChange(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")
	current := testPassword
	for round := range 3 {
		token := e.askReset(sink, "alice@example.com")
		session := e.postJSON("/api/token/", `{"username":"alice","password":"`+current+`"}`)
		var tokens tokenPair
		decode(t, session.body, &tokens)
		viaReset, viaChange := fmt.Sprintf("Reset-Staple-%d7", round), fmt.Sprintf("Change-Staple-%d7", round)
		var reset, change response
		var start, done sync.WaitGroup
		start.Add(1)
		done.Go(func() {
			start.Wait()
			reset = e.postJSON("/api/password/reset/confirm/", confirmBody(token, viaReset))
		})
		done.Go(func() {
			start.Wait()
			change = e.withToken("POST", "/api/profile/password/", tokens.Access,
				`{"old_password":"`+current+`","new_password":"`+viaChange+`","new_password2":"`+viaChange+`"}`)
		})
		start.Done()
		done.Wait()
		switch {
		case reset.status == 200 && change.status == 401:
			current = viaReset
		case change.status == 200 && reset.status == 400 && reset.body == bodyBadLink:
			current = viaChange
		default:
			t.Fatalf("round %d: reset %d %s, change %d %s: want exactly one to win", round, reset.status, reset.body, change.status, change.body)
		}
		if res := e.postJSON("/api/token/", `{"username":"alice","password":"`+current+`"}`); res.status != 200 {
			t.Fatalf("round %d: the winner's password: %d %s", round, res.status, res.body)
		}
	}
}

// TestResetRacesLogin: a login with the old password at the moment of a
// reset may succeed or not, but no session of the old password outlives
// the reset.
func TestResetRacesLogin(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	e.registerMailed(sink, "alice")
	current := testPassword
	for round := range 3 {
		token := e.askReset(sink, "alice@example.com")
		next := fmt.Sprintf("Reset-Staple-%d7", round)
		var reset, login response
		var start, done sync.WaitGroup
		start.Add(1)
		done.Go(func() {
			start.Wait()
			reset = e.postJSON("/api/password/reset/confirm/", confirmBody(token, next))
		})
		done.Go(func() {
			start.Wait()
			login = e.postJSON("/api/token/", `{"username":"alice","password":"`+current+`"}`)
		})
		start.Done()
		done.Wait()
		if reset.status != 200 {
			t.Fatalf("round %d: reset %d %s", round, reset.status, reset.body)
		}
		if login.status == 200 {
			var tokens tokenPair
			decode(t, login.body, &tokens)
			want(t, e.refresh(tokens.Refresh), 401, bodyBlacklisted)
		} else if login.status != 401 {
			t.Fatalf("round %d: login %d %s", round, login.status, login.body)
		}
		current = next
	}
}

func TestEmailVerification(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	_, token := e.registerMailed(sink, "alice")
	tokens := e.login("alice")
	verified := func() bool {
		t.Helper()
		res := e.get("/api/profile/", tokens.Access)
		return strings.Contains(res.body, `"email_verified":true`)
	}
	if verified() {
		t.Fatal("verified before the link was opened")
	}
	want(t, e.postJSON("/api/email/verify/", `{"token":"`+token+`"}`), 200, `{"detail":"Email address verified."}`)
	if !verified() {
		t.Fatal("not verified after the link was opened")
	}
	want(t, e.postJSON("/api/email/verify/", `{"token":"`+token+`"}`), 400, bodyBadLink)
	want(t, e.postJSON("/api/email/verify/", `{"token":""}`), 400, `{"token":["This field may not be blank."]}`)
	want(t, e.postJSON("/api/email/verify/", `{"token":"short"}`), 400, bodyBadLink)

	// Only a case change: still verified, no mail.
	if res := e.withToken("PATCH", "/api/profile/", tokens.Access, `{"email":"Alice@Example.com"}`); res.status != 200 || !verified() {
		t.Fatalf("a case change of the email: %d, verified %v", res.status, verified())
	}
	e.srv.mail.wait()
	sink.none()
	// A new address: not verified, a mail to it, and the old links dead.
	e.withToken("PATCH", "/api/profile/", tokens.Access, `{"email":"alice@example.org"}`)
	first := e.mailed(sink)
	if first.to != "alice@example.org" || verified() {
		t.Fatalf("after a change of email: mail to %s, verified %v", first.to, verified())
	}
	e.withToken("PATCH", "/api/profile/", tokens.Access, `{"email":"alice@example.net"}`)
	second := e.mailed(sink)
	want(t, e.postJSON("/api/email/verify/", `{"token":"`+first.link(t, "verify")+`"}`), 400, bodyBadLink)
	want(t, e.postJSON("/api/email/verify/", `{"token":"`+second.link(t, "verify")+`"}`), 200, `{"detail":"Email address verified."}`)

	// Send again: only to an unverified account.
	want(t, e.postJSON("/api/email/verify/resend/", `{"email":"alice@example.net"}`), 200, `{"detail":"`+msgVerifySent+`"}`)
	e.srv.mail.wait()
	sink.none()
	e.register("bob")
	e.mailed(sink)
	want(t, e.postJSON("/api/email/verify/resend/", `{"email":"bob@example.com"}`), 200, `{"detail":"`+msgVerifySent+`"}`)
	if m := e.mailed(sink); m.to != "bob@example.com" {
		t.Errorf("send again went to %s", m.to)
	}
}

// TestVerificationMailLimit: changing one's email again and again cannot
// flood anybody: -mail-limit an hour per address and per account.
func TestVerificationMailLimit(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t, func(c *config) { c.mailLimit = 2 })
	e.registerMailed(sink, "alice")
	tokens := e.login("alice")
	for i := range 3 {
		if res := e.withToken("PATCH", "/api/profile/", tokens.Access, fmt.Sprintf(`{"email":"alice%d@example.org"}`, i)); res.status != 200 {
			t.Fatalf("email change: %d %s", res.status, res.body)
		}
	}
	e.srv.mail.wait()
	if got := len(sink.received); got != 1 {
		t.Errorf("%d mails after a registration and three email changes with -mail-limit 2, want 1 more", got)
	}
	if !strings.Contains(e.logs.String(), "verification mail not sent: -mail-limit reached") {
		t.Error("no log line for the mail not sent")
	}
}

func TestLoginRequiresVerifiedEmail(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t, func(c *config) { c.requireVerifiedEmail = true })
	_, token := e.registerMailed(sink, "alice")
	unverified := `{"detail":"E-mail is not verified: open the link we mailed you, or ask for a new one.","code":"email_not_verified"}`
	want(t, e.postJSON("/api/token/", `{"username":"alice","password":"`+testPassword+`"}`), 401, unverified)
	want(t, e.postJSON("/api/token/cookie/", `{"username":"alice","password":"`+testPassword+`"}`), 401, unverified)
	// Only the right password learns it.
	want(t, e.postJSON("/api/token/", `{"username":"alice","password":"wrong"}`), 401,
		`{"detail":"No active account found with the given credentials"}`)
	want(t, e.postJSON("/api/email/verify/resend/", `{"email":"alice@example.com"}`), 200, `{"detail":"`+msgVerifySent+`"}`)
	again := e.mailed(sink).link(t, "verify")
	if again == token {
		t.Error("send again mailed the same token")
	}
	want(t, e.postJSON("/api/email/verify/", `{"token":"`+again+`"}`), 200, `{"detail":"Email address verified."}`)
	e.login("alice")
}

// TestMailRetries: a mail server that refuses for a while gets the mail on
// a later try; one that keeps refusing, or refuses for good, gets an ERROR
// line naming the recipient, without the text or its token.
func TestMailRetries(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	sink.set(func(s *mailSink) { s.refuse, s.code = 2, "451 try later" })
	e.register("alice")
	if m := e.mailed(sink); m.to != "alice@example.com" {
		t.Fatalf("mail to %s", m.to)
	}
	if n := strings.Count(e.logs.String(), "mail not sent, will try again"); n != 2 {
		t.Errorf("%d retry lines, want 2:\n%s", n, e.logs)
	}

	sink.set(func(s *mailSink) { s.refuse = 100 })
	e.register("bob")
	e.srv.mail.wait()
	sink.none()
	logs := e.logs.String()
	if !strings.Contains(logs, `level=ERROR msg="mail not sent, given up" to=bob@example.com subject="Confirm your email address for jwtnotes" tries=4`) {
		t.Errorf("no ERROR line after the last try:\n%s", logs)
	}

	sink.set(func(s *mailSink) { s.code = "550 no such mailbox" })
	e.register("carol")
	e.srv.mail.wait()
	if !strings.Contains(e.logs.String(), `to=carol@example.com subject="Confirm your email address for jwtnotes" tries=1`) {
		t.Errorf("a 5xx answer is tried again:\n%s", e.logs)
	}
	for _, leak := range []string{"#verify/", "Hello"} {
		if strings.Contains(e.logs.String(), leak) {
			t.Errorf("the log holds the mail's text (%q)", leak)
		}
	}
}

// TestHangingMailServer: a mail server that never answers holds up no
// request.
func TestHangingMailServer(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	hold := make(chan struct{})
	sink.set(func(s *mailSink) { s.hold = hold })
	e.register("alice") // its verification mail is now stuck in the conversation
	<-sink.greeted
	answered := make(chan response, 1)
	go func() { answered <- e.postJSON("/api/password/reset/", `{"email":"alice@example.com"}`) }()
	select {
	case res := <-answered:
		want(t, res, 200, `{"detail":"`+msgResetSent+`"}`)
	case <-time.After(20 * time.Second):
		t.Fatal("the request waited for the mail server")
	}
	close(hold)
	e.srv.mail.wait()
	if got := len(sink.received); got != 2 {
		t.Errorf("%d mails once the server answered, want 2", got)
	}
}

// TestMailOverTLS: STARTTLS when the server offers it, and no mail at all
// when it does not and the server is another machine's.
func TestMailOverTLS(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	certs := httptest.NewUnstartedServer(http.NotFoundHandler())
	certs.StartTLS() // only for its certificate, valid for 127.0.0.1
	defer certs.Close()
	sink.set(func(s *mailSink) { s.tls = certs.TLS.Clone() })
	pool := x509.NewCertPool()
	pool.AddCert(certs.Certificate())
	e.srv.mail.tls.RootCAs = pool
	e.register("alice")
	if m := e.mailed(sink); !m.tls {
		t.Error("the mail did not travel over TLS")
	}

	plain, plainSink := newMailEnv(t)
	plain.srv.mail.needTLS = true // as for a server on another machine
	plain.register("bob")
	plain.srv.mail.wait()
	plainSink.none()
	if !strings.Contains(plain.logs.String(), "does not offer STARTTLS") {
		t.Errorf("no error for a server without STARTTLS:\n%s", plain.logs)
	}
	for host, local := range map[string]bool{"localhost": true, "LocalHost": true, "127.0.0.1": true, "::1": true,
		"127.0.0.2": true, "mail.example.com": false, "10.0.0.1": false, "localhost.example.com": false} {
		t.Run(host, func(t *testing.T) {
			if isLocalhost(host) != local {
				t.Errorf("isLocalhost(%q) = %v", host, !local)
			}
		})
	}
}

// TestMailLogBackend: with no -smtp-host, the mail is written to the log,
// marked as such, with its link on a line of its own.
func TestMailLogBackend(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	e.srv.mail.wait()
	logs := e.logs.String()
	if !strings.Contains(logs, `level=WARN msg="MAIL NOT SENT (no -smtp-host): the log backend prints it here instead, link and token included" to=alice@example.com`) ||
		!strings.Contains(logs, "link=http://127.0.0.1:8000/#verify/") {
		t.Errorf("the log backend's line:\n%s", logs)
	}
}

// TestMailTokensNeverLogged: with a mail server, no token of a mailed link
// reaches the log, nor the database in plain form.
func TestMailTokensNeverLogged(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	_, verify := e.registerMailed(sink, "alice")
	reset := e.askReset(sink, "alice@example.com")
	e.postJSON("/api/email/verify/", `{"token":"`+verify+`"}`)
	e.postJSON("/api/password/reset/confirm/", confirmBody(reset, newPassword))
	for _, token := range []string{verify, reset} {
		if strings.Contains(e.logs.String(), token) {
			t.Errorf("the log holds a token:\n%s", e.logs)
		}
	}
	_, another := e.registerMailed(sink, "bob")
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE token_hash = ? OR CAST(token_hash AS TEXT) = ?`, another, another); n != 0 {
		t.Error("a token is stored in plain form")
	}
	if n := e.count(`SELECT count(*) FROM account_tokens WHERE length(token_hash) = 32`); n != 1 {
		t.Errorf("%d stored token digests, want bob's 1", n)
	}
}

// TestMailShutdown: what the queue still holds when the server stops gets
// an ERROR line, not silence.
func TestMailShutdown(t *testing.T) {
	t.Parallel()
	e, sink := newMailEnv(t)
	hold := make(chan struct{})
	sink.set(func(s *mailSink) { s.hold = hold })
	defer close(hold)
	e.register("alice")
	<-sink.greeted
	e.register("bob") // queued behind alice's
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // no time left to send
	e.srv.close(ctx)
	if !strings.Contains(e.logs.String(), `level=ERROR msg="mail not sent, given up: the server stopped with letters in the queue" letters=1`) {
		t.Errorf("no ERROR line for the letters left:\n%s", e.logs)
	}
	if e.srv.mail.send(func(context.Context) (letter, bool, error) { return letter{}, false, nil }) {
		t.Error("a stopped mailer took a letter")
	}
}

var resetTiming = flag.Bool("reset-timing", false, "run TestResetTiming: reset requests for an account's address and for nobody's, timed")

// TestResetTiming (with -reset-timing) times reset requests over HTTP,
// alternating an address that has an account with ones that have none,
// with the mail queue as in production (mailDelay, the log backend), and
// as a control the same with two addresses of nobody. It reports the ratio
// of their percentiles: about 1 for both pairs when the answer reveals
// nothing. A measurement, not a pass/fail test (the machine is shared).
//
//	go test -run TestResetTiming -reset-timing -v .
func TestResetTiming(t *testing.T) {
	if !*resetTiming {
		t.Skip("a measurement: run with -reset-timing")
	}
	for _, first := range []string{"known@example.com", "constant@example.com"} {
		e := newTestEnv(t, func(c *config) { c.ipLimit, c.mailLimit = 0, 0 })
		e.srv.mail.delay = mailDelay
		e.register("known")
		srv := httptest.NewServer(e.handler)
		var a, b []time.Duration
		for i := range 1500 {
			for j, email := range []string{first, fmt.Sprintf("nobody%d@example.com", i)} {
				time.Sleep(3 * time.Millisecond) // the pace of a patient client, so the mail queue never fills
				start := time.Now()
				res, err := http.Post(srv.URL+"/api/password/reset/", "application/json", strings.NewReader(`{"email":"`+email+`"}`))
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("%d", res.StatusCode)
				}
				if j == 0 {
					a = append(a, time.Since(start))
				} else {
					b = append(b, time.Since(start))
				}
			}
		}
		srv.Close()
		slices.Sort(a)
		slices.Sort(b)
		for _, p := range []float64{0.5, 0.9} {
			i := int(p * float64(len(a)-1))
			t.Logf("%s vs nobody's: p%.0f %v / %v = %.3f", first, p*100, a[i], b[i], float64(a[i])/float64(b[i]))
		}
	}
}

// TestStopSendsQueuedMail: the real binary, stopped by SIGTERM right after
// it acknowledged a reset request (its letter still waiting out mailDelay),
// sends the mail before it exits 0.
func TestStopSendsQueuedMail(t *testing.T) {
	t.Parallel()
	sink := newMailSink(t)
	p := startServer(t, t.TempDir(), "-smtp-host", "127.0.0.1", "-smtp-port", strconv.Itoa(sink.port))
	p.registerAndLogin(http.DefaultClient, "alice")
	status, body, err := call(http.DefaultClient, "POST", p.base+"/api/password/reset/", "", "application/json",
		strings.NewReader(`{"email":"alice@example.com"}`))
	if err != nil || status != 200 {
		t.Fatalf("reset request: %d %s %v", status, body, err)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, p.stderr)
	}
	subjects := map[string]bool{}
	for len(sink.received) > 0 {
		subjects[(<-sink.received).header.Get("Subject")] = true
	}
	if !subjects["Reset your jwtnotes password"] || !subjects["Confirm your email address for jwtnotes"] {
		t.Errorf("mails sent before the exit: %v\n%s", subjects, p.stderr)
	}
}
