package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ---- profile update ----

func TestUpdateProfile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("alice")
	tokens := e.login("alice")
	profile := func(username, email, first, last, bio string) string {
		return fmt.Sprintf(`{"id":%d,"username":%q,"email":%q,"email_verified":false,"first_name":%q,"last_name":%q,"bio":%q,"cover_photo":null,`+
			`"date_joined":"2026-11-29T12:00:00.123456Z","last_login":"2026-11-29T12:00:00.123456Z","notes":[]}`,
			id, username, email, first, last, bio)
	}
	want(t, e.withToken("PATCH", "/api/profile/", tokens.Access, `{"first_name":" Alice ","bio":"likes <b>"}`),
		200, profile("alice", "alice@example.com", "Alice", "", "likes <b>"))
	want(t, e.withToken("PUT", "/api/profile/update/", tokens.Access, `{"last_name":"Liddell","email":"ALICE@example.com"}`),
		200, profile("alice", "ALICE@example.com", "Alice", "Liddell", "likes <b>"))
	want(t, e.withToken("PATCH", "/api/profile/update", tokens.Access, `{"username":"Alicia","bio":""}`),
		200, profile("Alicia", "ALICE@example.com", "Alice", "Liddell", ""))

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("bio", "from a form")
	mw.WriteField("cover_photo", "")
	mw.Close()
	res := e.do("PUT", "/api/profile/update/", mw.FormDataContentType(), body.String(), "Authorization", "Bearer "+tokens.Access)
	want(t, res, 200, profile("Alicia", "ALICE@example.com", "Alice", "Liddell", "from a form"))
	want(t, e.get("/api/profile/", tokens.Access), 200, profile("Alicia", "ALICE@example.com", "Alice", "Liddell", "from a form"))
}

// TestUpdateProfileIgnoresMassAssignment: the original let a user make
// themselves superuser or set a plaintext password; here every field but
// the five editable ones is ignored.
func TestUpdateProfileIgnoresMassAssignment(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("mallory")
	tokens := e.login("mallory")
	before := e.get("/api/profile/", tokens.Access).body
	res := e.withToken("PUT", "/api/profile/update/", tokens.Access, `{"password":"PlainText-Secret-1","is_superuser":true,`+
		`"is_staff":true,"is_active":false,"id":999,"date_joined":"2000-01-01T00:00:00Z","last_login":null,`+
		`"user_permissions":[1,2,3],"groups":[1],"password_hash":"x","cover_photo":null}`)
	want(t, res, 200, before)
	if n := e.count(`SELECT count(*) FROM users WHERE id = ? AND is_active = 1 AND password LIKE '$argon2id$%'`, id); n != 1 {
		t.Error("the user row changed")
	}
	e.login("mallory") // the password still works
	if res := e.postJSON("/api/token/", `{"username":"mallory","password":"PlainText-Secret-1"}`); res.status != 401 {
		t.Errorf("the injected password works: %d", res.status)
	}
}

func TestUpdateProfileInvalidSavesNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	e.register("bob")
	tokens := e.login("alice")
	before := e.get("/api/profile/", tokens.Access).body
	tests := []struct{ body, want string }{
		{`{"email":"not-an-email","bio":"changed?"}`, `{"email":["Enter a valid email address."]}`},
		{`{"username":"BOB","bio":"changed?"}`, `{"username":["A user with that username already exists."]}`},
		{`{"email":"Bob@Example.com"}`, `{"email":["This field must be unique."]}`},
		{`{"username":"","email":"","bio":null}`, `{"username":["This field may not be blank."],"email":["This field may not be blank."],"bio":["This field may not be null."]}`},
		{`{"first_name":"` + strings.Repeat("x", 151) + `","last_name":[]}`, `{"first_name":["Ensure this field has no more than 150 characters."],"last_name":["Not a valid string."]}`},
		{`{"username":"no spaces please"}`, `{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."]}`},
		{`{"cover_photo":"/etc/passwd"}`, `{"cover_photo":["The submitted data was not a file. Check the encoding type on the form."]}`},
		{`[]`, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("PATCH /api/profile/ %.40s", tt.body), func(t *testing.T) {
			want(t, e.withToken("PATCH", "/api/profile/", tokens.Access, tt.body), 400, tt.want)
		})
	}
	if after := e.get("/api/profile/", tokens.Access).body; after != before {
		t.Errorf("an invalid update changed the profile:\n%s\n%s", before, after)
	}
	// One's own username and email, in another case, are not "taken".
	if res := e.withToken("PATCH", "/api/profile/", tokens.Access, `{"username":"ALICE","email":"Alice@Example.COM"}`); res.status != 200 {
		t.Errorf("renaming to own name in another case: %d %s", res.status, res.body)
	}
	want(t, e.do("PATCH", "/api/profile/", "application/json", `{}`), 401, bodyNotAuthenticated)
}

// ---- password change ----

func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	here := e.login("alice")
	there := e.login("alice")
	change := func(body string) response {
		return e.withToken("POST", "/api/profile/password/", here.Access, body)
	}
	want(t, change(`{}`), 400, `{"old_password":["This field is required."],"new_password":["This field is required."],"new_password2":["This field is required."]}`)
	want(t, change(`{"old_password":"wrong","new_password":"alice","new_password2":"alice"}`), 400,
		`{"old_password":["Wrong password."],"new_password":["The password is too similar to the username.",`+
			`"This password is too short. It must contain at least 8 characters.","This password is too common."]}`)
	want(t, change(`{"old_password":"Correct-Horse-42","new_password":"New-Battery-77","new_password2":"New-Battery-78"}`), 400,
		`{"new_password2":["Password fields didn't match."]}`)
	want(t, change(`{"old_password":"Correct-Horse-42","new_password":"New-Battery-77","new_password2":"New-Battery-77"}`), 200, `{}`)

	// The other device is logged out at once; this one stays.
	want(t, e.get("/api/profile/", there.Access), 401, bodyBlacklisted)
	want(t, e.refresh(there.Refresh), 401, bodyBlacklisted)
	if res := e.get("/api/profile/", here.Access); res.status != 200 {
		t.Errorf("the session that changed the password: %d", res.status)
	}
	if res := e.refresh(here.Refresh); res.status != 200 {
		t.Errorf("refresh in the session that changed the password: %d", res.status)
	}
	want(t, e.postJSON("/api/token/", `{"username":"alice","password":"Correct-Horse-42"}`), 401, bodyNoAccount)
	if res := e.postJSON("/api/token/", `{"username":"alice","password":"New-Battery-77"}`); res.status != 200 {
		t.Errorf("login with the new password: %d %s", res.status, res.body)
	}
}

// ---- account deletion ----

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("alice")
	e.register("bob")
	tokens := e.login("alice")
	other := e.login("alice")
	rotated := e.rotate(other.Refresh)

	want(t, e.withToken("DELETE", "/api/profile/", tokens.Access, ``), 400, `{"password":["This field is required."]}`)
	want(t, e.withToken("DELETE", "/api/profile/", tokens.Access, `{"password":"nope"}`), 400, `{"password":["Wrong password."]}`)
	res := e.withToken("DELETE", "/api/profile/", tokens.Access, `{"password":"Correct-Horse-42"}`)
	if res.status != 204 || res.body != "" {
		t.Fatalf("delete: %d %q, want 204 and no body", res.status, res.body)
	}
	want(t, e.get("/api/profile/", tokens.Access), 401, `{"detail":"User not found","code":"user_not_found"}`)
	want(t, e.refresh(tokens.Refresh), 401, `{"detail":"No active account found for the given token."}`)
	for _, table := range []string{"users", "sessions"} {
		if n := e.count(`SELECT count(*) FROM `+table+` WHERE `+map[string]string{"users": "id", "sessions": "user_id"}[table]+` = ?`, id); n != 0 {
			t.Errorf("%d %s rows left", n, table)
		}
	}
	// The rotated token's blacklist row stays until the token expires, but
	// holds nothing of hers: its replacement is named by its jti and kid,
	// no payload (which would carry her name and email).
	if n := e.count(`SELECT count(*) FROM blacklist`); n != 1 {
		t.Errorf("%d blacklist rows, want the rotation's", n)
	}
	var nextJTI, nextKid string
	if err := e.srv.store.db.queryRow(context.Background(), `SELECT next_jti, next_kid FROM blacklist`).Scan(&nextJTI, &nextKid); err != nil {
		t.Fatal(err)
	}
	if nextJTI != decodeClaims(t, rotated.Refresh)["jti"] || nextKid != headerKid(t, rotated.Refresh) {
		t.Errorf("the blacklist names %q of key %q, want the replacement's jti and kid", nextJTI, nextKid)
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users = %d, want bob left", n)
	}
	// The name is free again, and the new user gets a new id.
	if newID := e.register("alice"); newID == id {
		t.Error("a deleted user's id was reused")
	}
}

// ---- sessions ----

func TestSessions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	e.register("bob")
	laptop := e.loginFrom("alice", "laptop-browser/1.0", "198.51.100.7:5000")
	e.clock.advance(time.Minute)
	phone := e.loginFrom("alice", "phone-app/2.0", "203.0.113.9:6000")
	bob := e.login("bob")
	sid := func(p tokenPair) string { return decodeClaims(t, p.Access)["sid"].(string) }

	res := e.get("/api/sessions/", phone.Access)
	wantList := fmt.Sprintf(`[{"id":%q,"created":"2026-11-29T12:01:00.123456Z","last_used":"2026-11-29T12:01:00.123456Z",`+
		`"expires":"2027-02-27T12:01:00.123456Z","user_agent":"phone-app/2.0","ip":"203.0.113.9","current":true},`+
		`{"id":%q,"created":"2026-11-29T12:00:00.123456Z","last_used":"2026-11-29T12:00:00.123456Z",`+
		`"expires":"2027-02-27T12:00:00.123456Z","user_agent":"laptop-browser/1.0","ip":"198.51.100.7","current":false}]`,
		sid(phone), sid(laptop))
	want(t, res, 200, wantList)

	// Someone else's session, or one that does not exist, is 404.
	want(t, e.withToken("DELETE", "/api/sessions/"+sid(bob)+"/", phone.Access, ""), 404, `{"detail":"Not found."}`)
	want(t, e.withToken("DELETE", "/api/sessions/nope", phone.Access, ""), 404, `{"detail":"Not found."}`)
	if res := e.get("/api/profile/", bob.Access); res.status != 200 {
		t.Errorf("bob's session after alice tried to end it: %d", res.status)
	}

	// Log out the laptop from the phone.
	res = e.withToken("DELETE", "/api/sessions/"+sid(laptop)+"/", phone.Access, "")
	if res.status != 204 || res.body != "" {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	want(t, e.get("/api/profile/", laptop.Access), 401, bodyBlacklisted)
	want(t, e.refresh(laptop.Refresh), 401, bodyBlacklisted)
	want(t, e.withToken("DELETE", "/api/sessions/"+sid(laptop), phone.Access, ""), 404, `{"detail":"Not found."}`)
	if res := e.get("/api/sessions/", phone.Access); strings.Count(res.body, `"id"`) != 1 {
		t.Errorf("sessions after revoking one: %s", res.body)
	}

	// Log out everywhere, this device too.
	res = e.withToken("DELETE", "/api/sessions/", phone.Access, "")
	if res.status != 204 {
		t.Fatalf("log out everywhere: %d %s", res.status, res.body)
	}
	want(t, e.get("/api/profile/", phone.Access), 401, bodyBlacklisted)
	if res := e.get("/api/profile/", bob.Access); res.status != 200 {
		t.Errorf("bob after alice logged out everywhere: %d", res.status)
	}
}

func (e *testEnv) loginFrom(username, userAgent, remoteAddr string) tokenPair {
	e.t.Helper()
	res := e.do("POST", "/api/token/", "application/json",
		fmt.Sprintf(`{"username":%q,"password":%q}`, username, testPassword),
		"User-Agent", userAgent, "RemoteAddr", remoteAddr)
	if res.status != 200 {
		e.t.Fatalf("login: %d %s", res.status, res.body)
	}
	var p tokenPair
	decode(e.t, res.body, &p)
	return p
}

// ---- throttling ----

func bodyThrottled(n int) string {
	unit := "seconds"
	if n == 1 {
		unit = "second"
	}
	return fmt.Sprintf(`{"detail":"Request was throttled. Expected available in %d %s."}`, n, unit)
}

func wantThrottled(t *testing.T, res response, seconds int) {
	t.Helper()
	want(t, res, 429, bodyThrottled(seconds))
	if got := res.header.Get("Retry-After"); got != fmt.Sprint(seconds) {
		t.Errorf("Retry-After = %q, want %d", got, seconds)
	}
}

func TestFailedLoginsPerAccount(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	wrong := `{"username":"alice","password":"guess"}`
	right := `{"username":"alice","password":"Correct-Horse-42"}`
	for i := range 10 {
		want(t, e.do("POST", "/api/token/", "application/json", wrong, "RemoteAddr", fmt.Sprintf("10.0.0.%d:1", i)), 401, bodyNoAccount)
		e.clock.advance(time.Second)
	}
	// The 11th, from anywhere and even with the right password, waits until
	// the first failure leaves the 15-minute window; the wait counts down.
	wantThrottled(t, e.postJSON("/api/token/", wrong), 890)
	wantThrottled(t, e.postJSON("/api/token/", right), 890)
	wantThrottled(t, e.postJSON("/api/token/", `{"username":"ALICE","password":"x"}`), 890)
	e.clock.advance(100 * time.Second)
	wantThrottled(t, e.postJSON("/api/token/", right), 790)
	e.clock.advance(790 * time.Second)
	if res := e.postJSON("/api/token/", right); res.status != 200 {
		t.Errorf("login once the window passed: %d %s", res.status, res.body)
	}
	// Other accounts were never affected.
	e.register("bob")
	e.login("bob")
}

func TestUnknownNamesAreThrottledAlike(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.loginLimit = 2 })
	for range 2 {
		want(t, e.postJSON("/api/token/", `{"username":"ghost","password":"x"}`), 401, bodyNoAccount)
	}
	wantThrottled(t, e.postJSON("/api/token/", `{"username":"ghost","password":"x"}`), 900)
	want(t, e.postJSON("/api/token/", `{"username":"ghost2","password":"x"}`), 401, bodyNoAccount)
}

// TestSuccessDoesNotResetFailures: a successful login gives back only its
// own attempt; failures from another address still count.
func TestSuccessDoesNotResetFailures(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	attacker := []string{"RemoteAddr", "192.0.2.66:1"}
	for range 9 {
		e.do("POST", "/api/token/", "application/json", `{"username":"alice","password":"guess"}`, attacker...)
	}
	e.loginFrom("alice", "browser", "198.51.100.1:1")
	want(t, e.do("POST", "/api/token/", "application/json", `{"username":"alice","password":"guess"}`, attacker...), 401, bodyNoAccount)
	wantThrottled(t, e.do("POST", "/api/token/", "application/json", `{"username":"alice","password":"guess"}`, attacker...), 900)
}

// TestWrongOldPasswordCountsAsFailedLogin: guessing through the password
// change form spends the same budget as guessing at login.
func TestWrongOldPasswordCountsAsFailedLogin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.loginLimit = 3 })
	e.register("alice")
	tokens := e.login("alice")
	for range 3 {
		e.withToken("POST", "/api/profile/password/", tokens.Access, `{"old_password":"x","new_password":"New-Battery-77","new_password2":"New-Battery-77"}`)
	}
	wantThrottled(t, e.withToken("DELETE", "/api/profile/", tokens.Access, `{"password":"Correct-Horse-42"}`), 900)
	wantThrottled(t, e.postJSON("/api/token/", `{"username":"alice","password":"Correct-Horse-42"}`), 900)
}

func TestAddressThrottle(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.ipLimit = 3 })
	from := func(addr string) []string { return []string{"RemoteAddr", addr} }
	// Login and register share the budget.
	e.do("POST", "/api/register/", "application/json", registerBody("a1"), from("192.0.2.1:1")...)
	e.do("POST", "/api/token/", "application/json", `{}`, from("192.0.2.1:2")...)
	e.clock.advance(500 * time.Millisecond)
	e.do("POST", "/api/token/", "application/json", `{}`, from("192.0.2.1:3")...)
	wantThrottled(t, e.do("POST", "/api/register/", "application/json", registerBody("a2"), from("192.0.2.1:4")...), 60)
	// Another address has its own budget; other routes are not throttled.
	if res := e.do("POST", "/api/token/", "application/json", `{}`, from("192.0.2.2:1")...); res.status != 400 {
		t.Errorf("another address: %d", res.status)
	}
	if res := e.do("POST", "/api/token/refresh/", "application/json", `{}`, from("192.0.2.1:5")...); res.status != 400 {
		t.Errorf("refresh from the throttled address: %d", res.status)
	}
	e.clock.advance(59 * time.Second)
	wantThrottled(t, e.do("POST", "/api/token/", "application/json", `{}`, from("192.0.2.1:6")...), 1)
	e.clock.advance(time.Second)
	if res := e.do("POST", "/api/token/", "application/json", `{}`, from("192.0.2.1:7")...); res.status != 400 {
		t.Errorf("after the minute: %d", res.status)
	}
}

func TestTrustProxy(t *testing.T) {
	t.Parallel()
	for _, trust := range []bool{false, true} {
		e := newTestEnv(t, func(c *config) { c.ipLimit = 1; c.trustProxy = trust })
		proxy := "127.0.0.1:9999"
		e.do("POST", "/api/token/", "application/json", `{}`, "RemoteAddr", proxy, "X-Forwarded-For", "203.0.113.1")
		res := e.do("POST", "/api/token/", "application/json", `{}`, "RemoteAddr", proxy, "X-Forwarded-For", "spoofed, 203.0.113.2")
		if got, wantStatus := res.status, map[bool]int{false: 429, true: 400}[trust]; got != wantStatus {
			t.Errorf("trust-proxy %v: second client behind the proxy got %d, want %d", trust, got, wantStatus)
		}
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	t.Parallel()
	l := newLimiter(10, time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 * maxLimiterKeys {
		l.take(fmt.Sprintf("user%d", i), now)
	}
	if n := len(l.events); n > maxLimiterKeys {
		t.Errorf("%d keys kept, want at most %d", n, maxLimiterKeys)
	}
	l.take("late", now.Add(2*time.Minute))
	if n := len(l.events); n != 1 {
		t.Errorf("%d keys kept after the window passed, want 1", n)
	}
	if off := newLimiter(0, time.Minute); off.take("x", now) != 0 || len(off.events) != 0 {
		t.Error("a limit of 0 should be off and keep nothing")
	}
}

// TestLockoutSurvivesAFlood: an account at its failed-login limit stays
// locked for its window however many other keys are tried meanwhile (a
// full limiter drops the keys below their limit, never a locked one),
// and a key's size costs the limiter nothing (it keeps hashes).
func TestLockoutSurvivesAFlood(t *testing.T) {
	t.Parallel()
	l := newLimiter(10, 15*time.Minute)
	l.maxKeys = 100
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 10 {
		l.take("alice", now)
	}
	for i := range 5000 {
		l.take(fmt.Sprintf("junk%d-%s", i, strings.Repeat("x", 1000)), now.Add(time.Second))
	}
	if wait := l.take("alice", now.Add(2*time.Second)); wait <= 0 {
		t.Error("alice was unlocked by a flood of other names")
	}
	if n := len(l.events); n > l.maxKeys {
		t.Errorf("%d keys kept, want at most %d", n, l.maxKeys)
	}
	if wait := l.take("alice", now.Add(15*time.Minute+time.Second)); wait != 0 {
		t.Errorf("alice still locked after the window: %v", wait)
	}
}

// ---- flushing expired tokens ----

func TestFlushExpiredTokens(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.sessionTTL = time.Hour })
	e.register("alice")
	// Session A is logged out at 12:00: revoked, with one blacklist row.
	first := e.login("alice")
	e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, first.Refresh))
	// Session B starts at 12:40 and rotates once: one blacklist row, which
	// expires with the token, at the session's end (13:40).
	e.clock.advance(40 * time.Minute)
	live := e.login("alice")
	e.rotate(live.Refresh)

	e.clock.advance(21 * time.Minute) // 13:01
	tokens, sessions, err := e.srv.store.flushExpired(context.Background(), e.clock.now())
	if err != nil {
		t.Fatal(err)
	}
	if tokens != 1 || sessions != 1 {
		t.Errorf("flushed %d tokens and %d sessions, want A's row and A", tokens, sessions)
	}
	if n := e.count(`SELECT count(*) FROM blacklist`); n != 1 {
		t.Errorf("blacklist rows left: %d, want B's", n)
	}
	if res := e.get("/api/profile/", live.Access); res.status != 200 {
		t.Errorf("a live session after the flush: %d", res.status)
	}
	// B's rotated token is still known as rotated: reuse revokes B.
	want(t, e.refresh(live.Refresh), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", live.Access), 401, bodyBlacklisted)
}

// TestFlushInBatches: more rows than one flush transaction takes all go,
// and are all counted: sessions over, and expired blacklist rows.
func TestFlushInBatches(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	live := e.login("alice")
	over := 2*flushBatch + 17
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO sessions (id, user_id, created, last_used, expires, revoked) SELECT 'over' || i, 1, 0, 0, 1, 1 FROM n`, over)
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO blacklist (jti, expires, blacklisted_at) SELECT 'a' || i, 1, 0 FROM n`, 2*over)
	tokens, sessions, err := e.srv.store.flushExpired(context.Background(), e.clock.now())
	if err != nil || tokens != int64(2*over) || sessions != int64(over) {
		t.Errorf("flushed %d tokens and %d sessions (%v), want %d and %d", tokens, sessions, err, 2*over, over)
	}
	if n := e.count(`SELECT count(*) FROM blacklist`) + e.count(`SELECT count(*) FROM sessions WHERE id LIKE 'over%'`); n != 0 {
		t.Errorf("%d rows left", n)
	}
	if res := e.get("/api/profile/", live.Access); res.status != 200 {
		t.Errorf("the live session after the flush: %d", res.status)
	}
}

func TestFlushExpiredTokensCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := openStore(context.Background(), dir, sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	st.createUser(context.Background(), newUser{Username: "u", Email: "u@example.com", PasswordHash: "x"}, now, origin{})
	for i, expires := range []time.Time{now.Add(-time.Hour), now.Add(-time.Minute), now.Add(time.Hour)} {
		st.createSession(context.Background(), session{ID: fmt.Sprint("s", i), UserID: 1, Created: now.Add(-2 * time.Hour), Expires: expires}, "x")
	}
	st.Close()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"jwtnotes", "flushexpiredtokens", "-data", dir}, envOf(nil), nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := stdout.String(); got != "deleted 0 blacklisted tokens and 2 sessions\n" {
		t.Errorf("output %q", got)
	}
}

func TestThrottledBodyIsDRFs(t *testing.T) {
	t.Parallel()
	for wait, body := range map[time.Duration]string{
		time.Second:             bodyThrottled(1),
		300 * time.Millisecond:  bodyThrottled(1),
		1500 * time.Millisecond: bodyThrottled(2),
		time.Minute:             bodyThrottled(60),
	} {
		answer := throttled(wait)
		got, err := marshalJSON(answer.body)
		if err != nil || string(got) != body || answer.status != http.StatusTooManyRequests {
			t.Errorf("throttled(%v) = %d %s %v, want 429 %s", wait, answer.status, got, err, body)
		}
	}
}

// BenchmarkLoginFailure compares a login with a wrong password and one for
// an unknown user: both spend one argon2id hash, so the times should match
// within noise (go test -bench LoginFailure -count 5).
func BenchmarkLoginFailure(b *testing.B) {
	e := newTestEnv(b, func(c *config) { c.loginLimit = 0; c.ipLimit = 0 })
	e.register("alice")
	for _, bc := range []struct{ name, body string }{
		{"unknown-user", `{"username":"nobody","password":"not-the-password"}`},
		{"wrong-password", `{"username":"alice","password":"not-the-password"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if res := e.postJSON("/api/token/", bc.body); res.status != 401 {
					b.Fatalf("%d %s", res.status, res.body)
				}
			}
		})
	}
}

// TestProfileClashNamesTheRightField: when the UNIQUE constraint refuses a
// profile change (another request took the email between validation and
// the write), the answer names the email, even though the change also
// "sets" the user's own, unchanged username.
func TestProfileClashNamesTheRightField(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	alice := e.register("alice")
	e.register("bob")
	same, taken := "alice", "BOB@example.com"
	_, _, err := e.srv.store.updateProfile(context.Background(), alice, profileChanges{Username: &same, Email: &taken}, e.clock.now(), origin{})
	if err != errEmailTaken {
		t.Errorf("own username and a taken email: %v, want errEmailTaken", err)
	}
	other := "Bob"
	_, _, err = e.srv.store.updateProfile(context.Background(), alice, profileChanges{Username: &other, Email: &taken}, e.clock.now(), origin{})
	if err != errUsernameTaken {
		t.Errorf("a taken username: %v, want errUsernameTaken", err)
	}
}

// TestVanishedUserIs401: an account deleted while one of its requests is in
// flight (authenticated, not yet answered) gets the contract's 401 "User
// not found" from every handler that acts for it, never a 500.
func TestVanishedUserIs401(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for i, tc := range []struct {
		method, path, body string
		handler            handler
	}{
		{"PATCH", "/api/profile/", `{"bio":"hello"}`, e.srv.updateProfile},
		{"PUT", "/api/profile/update/", `{"first_name":"A"}`, e.srv.updateProfile},
		{"POST", "/api/profile/password/", `{"old_password":"` + testPassword + `","new_password":"Another-Horse-43","new_password2":"Another-Horse-43"}`, e.srv.changePassword},
		{"DELETE", "/api/profile/", `{"password":"` + testPassword + `"}`, e.srv.deleteAccount},
		{"POST", "/api/notes/", `{"title":"t"}`, e.srv.createNote},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			name := fmt.Sprintf("user%d", i)
			e.register(name)
			tokens := e.login(name)
			req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tokens.Access)
			c, err := e.srv.authenticate(req, authorized)
			if err != nil || c == nil {
				t.Fatalf("authenticate: %v", err)
			}
			e.exec(`DELETE FROM users WHERE username = ?`, name) // while the request is in flight
			rec := httptest.NewRecorder()
			if err := tc.handler(rec, req, c); err != nil {
				e.srv.writeError(rec, req, err)
			}
			want(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}, 401,
				`{"detail":"User not found","code":"user_not_found"}`)
		})
	}
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("a vanished user logged an error:\n%s", e.logs)
	}
}

// TestTrustProxyReadsTheProxysLine: a client that sends its own
// X-Forwarded-For line before the one the proxy appends does not choose its
// address: the last entry of the last line is the one that counts.
func TestTrustProxyReadsTheProxysLine(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.ipLimit = 1; c.trustProxy = true })
	for i, spoofed := range []string{"198.51.100.1", "198.51.100.2"} {
		req := httptest.NewRequest("POST", "/api/token/", strings.NewReader(`{}`))
		req.RemoteAddr = "127.0.0.1:9999" // the proxy
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("X-Forwarded-For", spoofed)       // the client's own line
		req.Header.Add("X-Forwarded-For", "203.0.113.7") // the proxy's
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if wantStatus := []int{400, 429}[i]; rec.Code != wantStatus {
			t.Errorf("request %d with a spoofed line %s: %d, want %d", i+1, spoofed, rec.Code, wantStatus)
		}
	}
}
