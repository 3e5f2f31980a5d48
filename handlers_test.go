package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- registration ----

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	res := e.postJSON("/api/register/", `{"username":"alice","email":"Alice@Example.com","password":"Correct-Horse-42",`+
		`"password2":"Correct-Horse-42","bio":" <b>hi</b> & bye ","is_staff":true,"is_superuser":true,"id":99}`)
	want(t, res, http.StatusCreated,
		`{"id":1,"username":"alice","email":"Alice@Example.com","bio":"<b>hi</b> & bye","cover_photo":null}`)
	if n := e.count(`SELECT count(*) FROM users WHERE password LIKE '$argon2id$v=19$m=19456,t=2,p=1$%'`); n != 1 {
		t.Errorf("users with an argon2id PHC hash = %d, want 1", n)
	}
	if strings.Contains(res.body, "argon2") {
		t.Error("the hash leaked into the answer")
	}
}

// TestLookalikeNamesAndEmailsAreRefused: a username or an email written
// with a compatibility form of a character (one NFKC changes) is refused,
// so that no account looks like another: where Django would normalize ſam
// to sam, this server asks for the plain form. The plain names register.
func TestLookalikeNamesAndEmailsAreRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.ipLimit = 0 })
	for _, plain := range []string{"sam", "file", "foo", "x2", "ix"} {
		e.register(plain)
	}
	for _, name := range []string{"ſam", "ﬁle", "ｆｏｏ", "x²", "Ⅸ", "\u212Aate"} {
		t.Run("POST /api/register/ username "+name, func(t *testing.T) {
			res := e.postJSON("/api/register/", fmt.Sprintf(`{"username":"%s","email":"lookalike@example.com","password":%q,"password2":%q}`,
				name, testPassword, testPassword))
			want(t, res, 400, `{"username":["`+msgLookalike+`"]}`)
		})
	}
	e.register("kate")
	for _, email := range []string{"\u212Aate@example.com", "ｋate@example.com", "kate@ｅxample.com"} {
		t.Run("POST /api/register/ email "+email, func(t *testing.T) {
			res := e.postJSON("/api/register/", fmt.Sprintf(`{"username":"mallory","email":"%s","password":%q,"password2":%q}`,
				email, testPassword, testPassword))
			if res.status != 400 || !strings.Contains(res.body, `"email":[`) || !strings.Contains(res.body, msgBadEmail) {
				t.Errorf("%d %s", res.status, res.body)
			}
		})
		t.Run("POST /api/password/reset/ "+email, func(t *testing.T) {
			want(t, e.postJSON("/api/password/reset/", `{"email":"`+email+`"}`), 400, `{"email":["`+msgBadEmail+`"]}`)
		})
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 6 {
		t.Errorf("%d accounts, want the 6 plain ones", n)
	}
}

func TestRegisterFieldErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("taken")
	long := strings.Repeat("a", 151)
	tests := []struct {
		name, body, want string
	}{
		{"empty object", `{}`,
			`{"username":["This field is required."],"email":["This field is required."],"password":["This field is required."],"password2":["This field is required."]}`},
		{"blank and null", `{"username":"   ","email":null,"password":"","password2":"x"}`,
			`{"username":["This field may not be blank."],"email":["This field may not be null."],"password":["This field may not be blank."]}`},
		{"wrong types", `{"username":["x"],"email":{"a":1},"password":true,"password2":"x","bio":false}`,
			`{"username":["Not a valid string."],"email":["Not a valid string."],"password":["Not a valid string."],"bio":["Not a valid string."]}`},
		{"bad username and email, weak password", `{"username":"a b","email":"x","password":"123","password2":"1"}`,
			`{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters."],` +
				`"email":["Enter a valid email address."],"password":["This password is too short. It must contain at least 8 characters.",` +
				`"This password is too common.","This password is entirely numeric."]}`},
		{"too long", `{"username":"` + long + `","email":"l@example.com","password":"Correct-Horse-42","password2":"Correct-Horse-42","bio":"` + strings.Repeat("b", 256) + `"}`,
			`{"username":["Ensure this field has no more than 150 characters."],"bio":["Ensure this field has no more than 255 characters."]}`},
		{"taken, in another case", `{"username":"TAKEN","email":"Taken@EXAMPLE.com","password":"Correct-Horse-42","password2":"Correct-Horse-42"}`,
			`{"username":["A user with that username already exists."],"email":["This field must be unique."]}`},
		{"similar to the username", `{"username":"bobsmith","email":"b@example.com","password":"bobsmith1","password2":"bobsmith1"}`,
			`{"password":["The password is too similar to the username."]}`},
		{"similar to the email", `{"username":"x1","email":"carolina@example.com","password":"Carolina12","password2":"Carolina12"}`,
			`{"password":["The password is too similar to the email address."]}`},
		{"mismatch", `{"username":"dave","email":"d@example.com","password":"Correct-Horse-42","password2":"Correct-Horse-43"}`,
			`{"password":["Password fields didn't match."]}`},
		{"passwords are not trimmed", `{"username":"erin","email":"e@example.com","password":"Correct-Horse-42 ","password2":"Correct-Horse-42"}`,
			`{"password":["Password fields didn't match."]}`},
		{"NUL in username", `{"username":"a\u0000b","email":"f@example.com","password":"Correct-Horse-42","password2":"Correct-Horse-42"}`,
			`{"username":["Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.","Null characters are not allowed."]}`},
		{"not an object", `[1]`, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"null body", `null`, `{"non_field_errors":["No data provided"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want(t, e.postJSON("/api/register/", tt.body), http.StatusBadRequest, tt.want)
		})
	}
	if n := e.count(`SELECT count(*) FROM users`); n != 1 {
		t.Errorf("users = %d, want only the first", n)
	}
}

func TestRegisterAcceptsUnicodeAndNumbers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	res := e.postJSON("/api/register/", `{"username":"Zoë.O'Brien","email":"z@example.com","password":"Correct-Horse-42","password2":"Correct-Horse-42"}`)
	if res.status != http.StatusBadRequest {
		t.Errorf("apostrophe in username: %d %s, want 400", res.status, res.body)
	}
	want(t, e.postJSON("/api/register/", `{"username":"Zoë_名前+1@x","email":"zoe@bücher.example","password":"Correct-Horse-42","password2":"Correct-Horse-42","bio":12.5}`),
		http.StatusCreated, `{"id":1,"username":"Zoë_名前+1@x","email":"zoe@bücher.example","bio":"12.5","cover_photo":null}`)
}

func TestValidEmailAddress(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"a@example.com": true, "first.last+tag@sub.example.co": true, `"quoted.local"@example.com`: true, "zoë@example.com": false,
		"a@localhost": true, "a@[127.0.0.1]": true, "a@[::1]": true, "a@bücher.de": true,
		"": false, "plain": false, "a@": false, "@example.com": false, "a@b": false, "a..b@example.com": false,
		"a@example.c": false, "a@-example.com": false, "a@example.com-": false, "a b@example.com": false,
		"a@[999.1.1.1]": false, "a@exa_mple.com": false, strings.Repeat("a", 310) + "@example.com": false,
	}
	for email, valid := range tests {
		if got := validEmailAddress(email); got != valid {
			t.Errorf("validEmailAddress(%q) = %v, want %v", email, got, valid)
		}
	}
}

func TestRegisterBodyEncodings(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	form := "username=formuser&email=form%40example.com&password=Correct-Horse-42&password2=Correct-Horse-42&bio=from+a+form"
	want(t, e.do("POST", "/api/register/", "application/x-www-form-urlencoded", form), http.StatusCreated,
		`{"id":1,"username":"formuser","email":"form@example.com","bio":"from a form","cover_photo":null}`)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range map[string]string{"username": "multi", "email": "m@example.com", "password": testPassword,
		"password2": testPassword, "cover_photo": ""} {
		mw.WriteField(k, v)
	}
	mw.Close()
	want(t, e.do("POST", "/api/register", mw.FormDataContentType(), body.String()), http.StatusCreated,
		`{"id":2,"username":"multi","email":"m@example.com","bio":"","cover_photo":null}`)

	want(t, e.do("POST", "/api/register/", "application/json; charset=utf-8", registerBody("charset")),
		http.StatusCreated, `{"id":3,"username":"charset","email":"charset@example.com","bio":"","cover_photo":null}`)
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	tests := []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"text/plain", "text/plain", "hello", 415, `{"detail":"Unsupported media type \"text/plain\" in request."}`},
		{"with parameters", "text/plain; charset=utf-8", "x", 415, `{"detail":"Unsupported media type \"text/plain; charset=utf-8\" in request."}`},
		{"broken JSON", "application/json", `{bad`, 400, ""},
		{"only white space", "application/json", ` `, 400, `{"detail":"JSON parse error - Expecting value: line 1 column 2 (char 1)"}`},
		{"trailing data", "application/json", `{} {}`, 400, `{"detail":"JSON parse error - Extra data: line 1 column 4 (char 3)"}`},
		{"invalid UTF-8", "application/json", "{\"username\":\"\xff\"}", 400, `{"detail":"JSON parse error - body is not valid UTF-8"}`},
		{"multipart without boundary", "multipart/form-data", "x", 400, `{"detail":"Multipart form parse error - Invalid boundary in multipart: None"}`},
		{"JSON over 1 MiB", "application/json", `{"bio":"` + strings.Repeat("a", 1<<20) + `"}`, 413, `{"detail":"Request body is too large."}`},
		{"form over 1 MiB", "application/x-www-form-urlencoded", "bio=" + strings.Repeat("a", 1<<20), 413, `{"detail":"Request body is too large."}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("POST", "/api/register/", tt.contentType, tt.body)
			if tt.want == "" {
				if res.status != tt.status || !strings.HasPrefix(res.body, `{"detail":"JSON parse error - `) {
					t.Errorf("got %d %s, want %d JSON parse error", res.status, res.body, tt.status)
				}
				return
			}
			want(t, res, tt.status, tt.want)
		})
	}
	// A multipart body over 6 MiB.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("cover_photo", "big.png")
	fw.Write(bytes.Repeat([]byte("x"), 6<<20+1))
	mw.Close()
	want(t, e.do("POST", "/api/register/", mw.FormDataContentType(), body.String()), 413, `{"detail":"Request body is too large."}`)
	// No Content-Type: DRF reads no body.
	want(t, e.do("POST", "/api/token/", "", `{"username":"x"}`), 400,
		`{"username":["This field is required."],"password":["This field is required."]}`)
}

func TestRegisterRefusesInvalidToken(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	res := e.do("POST", "/api/register/", "application/json", registerBody("x1"), "Authorization", "Bearer nonsense")
	want(t, res, 401, bodyAccessRefused("Token is invalid or expired"))
}

// TestRegisterRace: of concurrent registrations of one name, exactly one wins.
func TestRegisterRace(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	const n = 6
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"username":"Racer","email":"racer%d@example.com","password":%q,"password2":%q}`, i, testPassword, testPassword)
			if i%2 == 1 {
				body = strings.Replace(body, "Racer", "RACER", 1)
			}
			statuses <- e.postJSON("/api/register/", body).status
		}()
	}
	wg.Wait()
	close(statuses)
	created := 0
	for s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
		default:
			t.Errorf("status %d", s)
		}
	}
	if created != 1 || e.count(`SELECT count(*) FROM users`) != 1 {
		t.Errorf("created %d users, want exactly 1", created)
	}
}

// ---- login ----

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("alice")
	res := e.postJSON("/api/token/", `{"username":"alice","password":"Correct-Horse-42"}`)
	if res.status != http.StatusOK || !strings.HasPrefix(res.body, `{"refresh":"`) || !strings.Contains(res.body, `","access":"`) {
		t.Fatalf("login: %d %s", res.status, res.body)
	}
	var pair tokenPair
	decode(t, res.body, &pair)
	now := e.clock.now().Unix()
	for _, tc := range []struct {
		token, typ string
		ttl        time.Duration
	}{
		{pair.Access, "access", 180 * time.Minute},
		{pair.Refresh, "refresh", 1200 * time.Hour},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			c := decodeClaims(t, tc.token)
			if c["token_type"] != tc.typ || c["user_id"] != float64(id) || c["username"] != "alice" ||
				c["email"] != "alice@example.com" || c["iat"] != float64(now) || c["exp"] != float64(now+int64(tc.ttl.Seconds())) {
				t.Errorf("%s claims = %v", tc.typ, c)
			}
			if jti, _ := c["jti"].(string); len(jti) != 32 {
				t.Errorf("jti = %v", c["jti"])
			}
		})
	}
	if a, r := decodeClaims(t, pair.Access)["sid"], decodeClaims(t, pair.Refresh)["sid"]; a == nil || a != r {
		t.Errorf("sid access %v, refresh %v: want one session", a, r)
	}
	res = e.get("/api/profile/", pair.Access)
	if !strings.Contains(res.body, `"last_login":"2026-11-29T12:00:00.123456Z"`) {
		t.Errorf("profile after login: %s", res.body)
	}
}

// TestLoginFailuresAreAlike: unknown user, wrong password and inactive user
// get the same status and body.
func TestLoginFailuresAreAlike(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	e.register("idle")
	e.exec(`UPDATE users SET is_active = 0 WHERE username = 'idle'`)
	for _, body := range []string{
		`{"username":"nobody","password":"Correct-Horse-42"}`,
		`{"username":"alice","password":"wrong-password"}`,
		`{"username":"alice","password":"Correct-Horse-42 "}`,
		`{"username":"ALICE","password":"Correct-Horse-42"}`,
		`{"username":"idle","password":"Correct-Horse-42"}`,
	} {
		want(t, e.postJSON("/api/token/", body), 401, bodyNoAccount)
	}
	want(t, e.postJSON("/api/token/", `{"password":""}`), 400,
		`{"username":["This field is required."],"password":["This field may not be blank."]}`)
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Errorf("sessions = %d, want 0", n)
	}
}

func TestPasswordHasher(t *testing.T) {
	t.Parallel()
	p := newPasswordHasher(2)
	ctx := context.Background()
	hash, err := p.hash(ctx, "pässword")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %s", hash)
	}
	for _, tc := range []struct {
		password, hash string
		want           bool
	}{
		{"pässword", hash, true}, {"password", hash, false}, {"pässword", "", false},
		{"pässword", "$argon2id$v=19$m=0,t=2,p=1$AAAA$AAAA", false}, {"", p.dummy, false},
	} {
		t.Run(fmt.Sprintf("%q of %.20q", tc.password, tc.hash), func(t *testing.T) {
			if got, _ := p.check(ctx, tc.password, tc.hash); got != tc.want {
				t.Errorf("check(%q, %q) = %v, want %v", tc.password, tc.hash, got, tc.want)
			}
		})
	}
	// A caller that has gone away does not wait for a slot.
	full := newPasswordHasher(1)
	full.slots <- struct{}{}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := full.check(cancelled, "x", hash); err == nil {
		t.Error("check with no free slot and a cancelled context returned no error")
	}
}

// ---- authentication of protected routes ----

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	alice, gone, idle := e.usersInEveryState()
	e.register("out")
	out := e.login("out")
	want(t, e.postJSON("/api/token/blacklist/", `{"refresh":"`+out.Refresh+`"}`), 200, `{}`)

	expired := e.srv.tokens.sign(claims{TokenType: "access", Exp: e.clock.now().Unix(), Iat: e.clock.now().Unix() - 60,
		JTI: randomID(), UserID: 1, SessionID: decodeClaims(t, alice.Access)["sid"].(string)})
	tests := []struct {
		name, header string
		status       int
		body         string
	}{
		{"no header", "", 401, bodyNotAuthenticated},
		{"another scheme", "Basic YWxpY2U6eA==", 401, bodyNotAuthenticated},
		{"lower-case bearer", "bearer " + alice.Access, 401, bodyNotAuthenticated},
		{"Bearer alone", "Bearer", 401, `{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}`},
		{"Bearer a b", "Bearer a b", 401, `{"detail":"Authorization header must contain two space-delimited values","code":"bad_authorization_header"}`},
		{"invalid", "Bearer not.a.token", 401, bodyAccessRefused("Token is invalid or expired")},
		{"expired", "Bearer " + expired, 401, bodyAccessRefused("Token is invalid or expired")},
		{"refresh token", "Bearer " + alice.Refresh, 401, bodyAccessRefused("Token has wrong type")},
		{"user deleted", "Bearer " + gone.Access, 401, `{"detail":"User not found","code":"user_not_found"}`},
		{"user inactive", "Bearer " + idle.Access, 401, `{"detail":"User is inactive","code":"user_inactive"}`},
		{"session revoked", "Bearer " + out.Access, 401, bodyBlacklisted},
		{"valid", "Bearer " + alice.Access, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.do("GET", "/api/profile/", "", "", "Authorization", tt.header)
			if tt.body == "" {
				if res.status != tt.status {
					t.Errorf("got %d %s, want %d", res.status, res.body, tt.status)
				}
				return
			}
			want(t, res, tt.status, tt.body)
		})
	}
}

// TestSignedTokensMissingClaims: tokens signed with the server's key (as
// someone holding JWT_SECRET could) that lack claims get simplejwt's words,
// and a token without a live session of its own user is refused.
func TestSignedTokensMissingClaims(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice")
	e.register("bob")
	bobSession := decodeClaims(t, e.login("bob").Refresh)["sid"].(string)
	now := e.clock.now().Unix()
	sign := func(typ string, drop string, sid string) string {
		m := map[string]any{"token_type": typ, "exp": now + 600, "iat": now, "jti": randomID(), "user_id": aliceID, "sid": sid}
		delete(m, drop)
		b, _ := json.Marshal(m)
		return forge(testKey, `{"alg":"HS256","typ":"JWT"}`, string(b))
	}
	aliceSession := decodeClaims(t, alice.Refresh)["sid"].(string)
	tests := []struct {
		name, token string
		status      int
		body        string
	}{
		{"no jti", sign("refresh", "jti", aliceSession), 401, `{"detail":"Token has no id","code":"token_not_valid"}`},
		{"no type", sign("refresh", "token_type", aliceSession), 401, `{"detail":"Token has no type","code":"token_not_valid"}`},
		{"no exp", sign("refresh", "exp", aliceSession), 401, `{"detail":"Token has no 'exp' claim","code":"token_not_valid"}`},
		{"no user", sign("refresh", "user_id", aliceSession), 401, `{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}`},
		{"type foo", sign("foo", "", aliceSession), 401, bodyWrongType},
		{"no sid", sign("refresh", "sid", ""), 401, bodyBlacklisted},
		{"someone else's sid", sign("refresh", "", bobSession), 401, bodyBlacklisted},
		{"unknown sid", sign("refresh", "", "nope"), 401, bodyBlacklisted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want(t, e.refresh(tt.token), tt.status, tt.body)
		})
	}
	want(t, e.get("/api/profile/", sign("access", "sid", "")), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", sign("access", "", bobSession)), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", sign("access", "user_id", aliceSession)), 401,
		`{"detail":"Token contained no recognizable user identification","code":"token_not_valid"}`)
	// Bob's session was named in a forged token, not reused: it still works.
	if n := e.count(`SELECT count(*) FROM sessions WHERE revoked IS NULL`); n != 2 {
		t.Errorf("live sessions = %d, want 2", n)
	}
}

// ---- refresh, rotation and reuse ----

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	first := e.login("alice")

	res := e.refresh(first.Refresh)
	if res.status != http.StatusOK || !strings.HasPrefix(res.body, `{"access":"`) {
		t.Fatalf("refresh: %d %s", res.status, res.body)
	}
	var second tokenPair
	decode(t, res.body, &second)
	if second.Refresh == first.Refresh || second.Access == first.Access {
		t.Fatal("refresh did not rotate")
	}
	if a, b := decodeClaims(t, first.Refresh)["sid"], decodeClaims(t, second.Refresh)["sid"]; a != b {
		t.Errorf("rotation changed the session: %v, %v", a, b)
	}
	if got := e.get("/api/profile/", second.Access).status; got != 200 {
		t.Errorf("new access token: %d", got)
	}

	// Within the grace period the old token gets the same new refresh token.
	e.clock.advance(10 * time.Second)
	var again tokenPair
	res = e.refresh(first.Refresh)
	decode(t, res.body, &again)
	if res.status != 200 || again.Refresh != second.Refresh || again.Access == "" {
		t.Fatalf("refresh in grace: %d %s, want the same refresh token", res.status, res.body)
	}

	// After it, reuse revokes the whole session: every token of it stops.
	e.clock.advance(time.Second)
	want(t, e.refresh(first.Refresh), 401, bodyBlacklisted)
	want(t, e.refresh(second.Refresh), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", second.Access), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", first.Access), 401, bodyBlacklisted)

	// Another login is a new session and works.
	if got := e.get("/api/profile/", e.login("alice").Access).status; got != 200 {
		t.Errorf("new session after reuse: %d", got)
	}
}

func TestRefreshChainKeepsWorking(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	for i := range 5 {
		e.clock.advance(time.Minute)
		res := e.refresh(tokens.Refresh)
		if res.status != 200 {
			t.Fatalf("refresh %d: %d %s", i, res.status, res.body)
		}
		decode(t, res.body, &tokens)
	}
	if n := e.count(`SELECT count(*) FROM blacklist`); n != 5 {
		t.Errorf("blacklist rows = %d, want 5", n)
	}
	res := e.do("GET", "/api/profile/", "", "", "Authorization", "Bearer "+tokens.Access)
	if res.status != 200 {
		t.Errorf("profile: %d", res.status)
	}
}

// TestRefreshConcurrent: of 20 concurrent refreshes with one token exactly
// one rotates; the others are in the grace period and get its token.
func TestRefreshConcurrent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	const n = 20
	results := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = e.refresh(tokens.Refresh)
		}()
	}
	close(start)
	wg.Wait()
	refreshTokens := map[string]bool{}
	for _, res := range results {
		if res.status != 200 {
			t.Fatalf("concurrent refresh: %d %s", res.status, res.body)
		}
		var p tokenPair
		decode(t, res.body, &p)
		refreshTokens[p.Refresh] = true
	}
	if len(refreshTokens) != 1 {
		t.Errorf("%d different refresh tokens, want 1", len(refreshTokens))
	}
	if got := e.count(`SELECT count(*) FROM blacklist`); got != 1 {
		t.Errorf("blacklist rows = %d, want 1 rotation", got)
	}
}

func TestRefreshErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	alice, gone, idle := e.usersInEveryState()

	want(t, e.postJSON("/api/token/refresh/", `{}`), 400, `{"refresh":["This field is required."]}`)
	want(t, e.postJSON("/api/token/refresh/", `{"refresh":""}`), 400, `{"refresh":["This field may not be blank."]}`)
	want(t, e.postJSON("/api/token/refresh/", `{"refresh":12}`), 401, bodyTokenInvalid)
	want(t, e.refresh("garbage"), 401, bodyTokenInvalid)
	want(t, e.refresh(alice.Access), 401, bodyWrongType)
	want(t, e.refresh(gone.Refresh), 401, `{"detail":"No active account found for the given token."}`)
	want(t, e.refresh(idle.Refresh), 401, `{"detail":"No active account found for the given token."}`)
	// The token endpoints ignore the Authorization header, as simplejwt.
	res := e.do("POST", "/api/token/refresh/", "application/json", `{"refresh":"`+alice.Refresh+`"}`, "Authorization", "Bearer junk")
	if res.status != 200 {
		t.Errorf("refresh with a junk Authorization header: %d %s", res.status, res.body)
	}
}

func TestRefreshUsesCurrentUsernameAndEmail(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	e.exec(`UPDATE users SET username = 'alicia', username_key = 'alicia', email = 'new@example.com' WHERE username = 'alice'`)
	p := e.rotate(tokens.Refresh)
	for _, tok := range []string{p.Access, p.Refresh} {
		if c := decodeClaims(t, tok); c["username"] != "alicia" || c["email"] != "new@example.com" {
			t.Errorf("claims after rename: %v", c)
		}
	}
}

// TestSessionLifetime: no token outlives its session, and no refresh
// extends it.
func TestSessionLifetime(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.sessionTTL = time.Hour; c.accessTTL = 50 * time.Minute })
	e.register("alice")
	start := e.clock.now()
	tokens := e.login("alice")
	if exp := decodeClaims(t, tokens.Refresh)["exp"]; exp != float64(start.Add(time.Hour).Unix()) {
		t.Errorf("refresh exp = %v, want the session's end", exp)
	}
	e.clock.advance(40 * time.Minute)
	res := e.refresh(tokens.Refresh)
	decode(t, res.body, &tokens)
	if exp := decodeClaims(t, tokens.Access)["exp"]; exp != float64(start.Add(time.Hour).Unix()) {
		t.Errorf("access exp = %v, want capped at the session's end", exp)
	}
	e.clock.advance(20 * time.Minute)
	want(t, e.refresh(tokens.Refresh), 401, bodyTokenInvalid)
	want(t, e.get("/api/profile/", tokens.Access), 401, bodyAccessRefused("Token is invalid or expired"))
}

// ---- verify and blacklist ----

func TestVerifyEndpoint(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	first := e.login("alice")
	second := e.rotate(first.Refresh)
	verify := func(token string) response {
		return e.postJSON("/api/token/verify/", fmt.Sprintf(`{"token":%q}`, token))
	}
	want(t, verify(second.Access), 200, `{}`)
	want(t, verify(second.Refresh), 200, `{}`)
	want(t, verify(first.Refresh), 400, `{"non_field_errors":["Token is blacklisted"]}`)
	want(t, verify("not.a.jwt"), 401, bodyTokenInvalid)
	want(t, e.postJSON("/api/token/verify/", `{}`), 400, `{"token":["This field is required."]}`)
	foo := e.srv.tokens.sign(claims{TokenType: "foo", Exp: e.clock.now().Unix() + 60, JTI: "j", UserID: 1})
	want(t, verify(foo), 401, bodyWrongType)

	want(t, e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, second.Refresh)), 200, `{}`)
	want(t, verify(second.Access), 400, `{"non_field_errors":["Token is blacklisted"]}`)
}

func TestBlacklistEndpoint(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	logout := func(token string) response {
		return e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, token))
	}

	// A live refresh token: its session ends, access token included.
	live := e.login("alice")
	want(t, logout(live.Access), 401, bodyWrongType)
	want(t, logout(live.Refresh), 200, `{}`)
	want(t, e.get("/api/profile/", live.Access), 401, bodyBlacklisted)
	want(t, e.refresh(live.Refresh), 401, bodyBlacklisted)
	want(t, logout(live.Refresh), 401, bodyBlacklisted)

	// A rotated-out token, even in the grace period: the session ends too,
	// and the answer says it was blacklisted.
	other := e.login("alice")
	rotated := e.rotate(other.Refresh)
	want(t, logout(other.Refresh), 401, bodyBlacklisted)
	want(t, e.get("/api/profile/", rotated.Access), 401, bodyBlacklisted)
	want(t, e.refresh(rotated.Refresh), 401, bodyBlacklisted)

	want(t, e.postJSON("/api/token/blacklist/", `{}`), 400, `{"refresh":["This field is required."]}`)
	want(t, logout("x.y.z"), 401, bodyTokenInvalid)
}

// ---- profile ----

func TestProfile(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("alice")
	tokens := e.login("alice")
	res := e.get("/api/profile", tokens.Access)
	wantBody := fmt.Sprintf(`{"id":%d,"username":"alice","email":"alice@example.com","email_verified":false,"first_name":"","last_name":"","bio":"",`+
		`"cover_photo":null,"date_joined":"2026-11-29T12:00:00.123456Z","last_login":"2026-11-29T12:00:00.123456Z","notes":[]}`, id)
	want(t, res, 200, wantBody)
	for _, secret := range []string{"password", "argon2", "is_staff", "is_superuser", "is_active"} {
		if strings.Contains(res.body, secret) {
			t.Errorf("profile shows %q", secret)
		}
	}
}

// ---- routing ----

func TestRoutesAnswerWithAndWithoutSlash(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, path := range []string{"/api/token/", "/api/token", "/api/token/refresh/", "/api/token/refresh",
		"/api/token/verify", "/api/token/blacklist", "/api/register"} {
		if res := e.postJSON(path, `[]`); res.status != 400 {
			t.Errorf("POST %s: %d %s, want 400", path, res.status, res.body)
		}
	}
	for _, path := range []string{"/api/profile/", "/api/profile"} {
		want(t, e.do("GET", path, "", ""), 401, bodyNotAuthenticated)
	}
}

func TestWrongMethod(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	good := e.login("alice").Access
	tests := []struct {
		method, path, allow string
	}{
		{"GET", "/api/token/", "POST, OPTIONS"},
		{"PUT", "/api/token/refresh", "POST, OPTIONS"},
		{"DELETE", "/api/token/verify/", "POST, OPTIONS"},
		{"GET", "/api/token/blacklist/", "POST, OPTIONS"},
		{"GET", "/api/register/", "POST, OPTIONS"},
		{"POST", "/api/profile/", "GET, HEAD, PATCH, DELETE, OPTIONS"},
		{"TRACE", "/api/profile", "GET, HEAD, PATCH, DELETE, OPTIONS"},
		{"GET", "/api/profile/update/", "PUT, PATCH, OPTIONS"},
		{"PUT", "/api/profile/password", "POST, OPTIONS"},
		{"POST", "/api/sessions/", "GET, HEAD, DELETE, OPTIONS"},
		{"GET", "/api/sessions/abc/", "DELETE, OPTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			// 405 comes before authentication: the same with no, a bad or a good token.
			for _, auth := range []string{"", "Bearer junk", "Bearer " + good} {
				res := e.do(tt.method, tt.path, "", "", "Authorization", auth)
				want(t, res, 405, fmt.Sprintf(`{"detail":"Method \"%s\" not allowed."}`, tt.method))
				if got := res.header.Get("Allow"); got != tt.allow {
					t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, got, tt.allow)
				}
			}
		})
	}
	want(t, e.do("GET", "/api/nothing-here/", "", ""), 404, `{"detail":"Not found."}`)
	want(t, e.do("GET", "/api/token/refresh/extra", "", ""), 404, `{"detail":"Not found."}`)
	if res := e.do("OPTIONS", "/api/token/", "", ""); res.status != 204 || res.header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("OPTIONS: %d %v", res.status, res.header)
	}
	if res := e.do("HEAD", "/api/profile/", "", "", "Authorization", "Bearer "+good); res.status != 200 {
		t.Errorf("HEAD profile: %d", res.status)
	}
}

func TestPanicBecomesJSON500(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	h := e.srv.logRequests(e.srv.recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom: secret detail")
	})))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	want(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}, 500, `{"detail":"A server error occurred."}`)
	if !strings.Contains(e.logs.String(), "boom: secret detail") {
		t.Error("the panic is not in the log")
	}
}

// TestLogsHoldNoSecrets: one line per request, and no password or token in any.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	e.get("/api/profile/?token="+tokens.Access, tokens.Access)
	e.rotate(tokens.Refresh)
	logs := e.logs.String()
	if got := strings.Count(logs, "msg=request "); got != 4 {
		t.Errorf("%d request lines, want 4:\n%s", got, logs)
	}
	for _, secret := range []string{testPassword, tokens.Access, tokens.Refresh, "argon2id", b64.EncodeToString(testKey)} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret: %q", secret)
		}
	}
	if !strings.Contains(logs, "path=/api/profile/ status=200") || !strings.Contains(logs, "user=1") {
		t.Errorf("log lines lack path, status or user:\n%s", logs)
	}
}

// TestPagesAreServed: the page, the API's reference and their files, each
// with its type and a policy that keeps it to its own files; nothing else.
func TestPagesAreServed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for path, want := range map[string]string{
		"/": "text/html; charset=utf-8", "/api/docs/": "text/html; charset=utf-8", "/api/docs": "text/html; charset=utf-8",
		"/assets/app.js": "text/javascript; charset=utf-8", "/assets/docs.js": "text/javascript; charset=utf-8",
		"/assets/app.css": "text/css; charset=utf-8",
	} {
		res := e.do("GET", path, "", "")
		if res.status != 200 || res.header.Get("Content-Type") != want || !strings.HasPrefix(res.header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d %q %q", path, res.status, res.header.Get("Content-Type"), res.header.Get("Content-Security-Policy"))
		}
	}
	if res := e.do("GET", "/api/docs/", "", ""); !strings.Contains(res.body, `<script src="/assets/docs.js" defer></script>`) {
		t.Error("GET /api/docs/ is not docs.html")
	}
	for _, path := range []string{"/assets/nothing.js", "/assets/..%2fweb.go", "/assets/"} {
		if res := e.do("GET", path, "", ""); res.status != 404 {
			t.Errorf("GET %s: %d, want 404", path, res.status)
		}
	}
}
