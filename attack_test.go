package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestForgedTokensAreRefused runs forged and tampered tokens against a
// protected route and the refresh endpoint: every one is a 401.
func TestForgedTokensAreRefused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	userID := e.register("alice")
	good := e.login("alice")
	e.register("gone")
	goneTokens := e.login("gone")
	e.exec(`DELETE FROM users WHERE username = 'gone'`)

	parts := strings.Split(good.Access, ".")
	rparts := strings.Split(good.Refresh, ".")
	payload, _ := b64.DecodeString(parts[1])
	var claims map[string]any
	decode(t, string(payload), &claims)
	claims["user_id"] = userID
	escalated, _ := json.Marshal(claims)
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	enc := func(s string) string { return b64.EncodeToString([]byte(s)) }

	forged := map[string]string{
		"alg none":             enc(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".",
		"alg None":             enc(`{"alg":"None","typ":"JWT"}`) + "." + parts[1] + ".",
		"HS512 header":         enc(`{"alg":"HS512","typ":"JWT"}`) + "." + parts[1] + "." + parts[2],
		"HS512 signed":         forge(testKey, `{"alg":"HS512","typ":"JWT"}`, string(payload)),
		"RS256 header":         enc(`{"alg":"RS256","typ":"JWT"}`) + "." + parts[1] + "." + parts[2],
		"empty signature":      parts[0] + "." + parts[1] + ".",
		"other key":            forge([]byte("not the server's key, 32 bytes!!"), hs256, string(escalated)),
		"padded payload":       parts[0] + "." + parts[1] + "=." + parts[2],
		"re-encoded header":    enc(`{"typ":"JWT","alg":"HS256"}`) + "." + parts[1] + "." + parts[2],
		"swapped payload":      parts[0] + "." + rparts[1] + "." + parts[2],
		"extra segment":        good.Access + "." + parts[2],
		"crit":                 forge(testKey, `{"alg":"HS256","crit":["x"]}`, string(payload)),
		"100 KB":               parts[0] + "." + strings.Repeat("A", 100<<10) + "." + parts[2],
		"deleted user's token": goneTokens.Access,
		"JSON in the header":   `{"alg":"HS256"}.` + parts[1] + "." + parts[2],
		"SQL in the token":     `' OR 1=1 --`,
	}
	for name, token := range forged {
		t.Run(name, func(t *testing.T) {
			res := e.get("/api/profile/", token)
			if res.status != http.StatusUnauthorized {
				t.Errorf("profile: %d %s", res.status, res.body)
			}
			if name == "deleted user's token" {
				return
			}
			if res := e.refresh(token); res.status != http.StatusUnauthorized {
				t.Errorf("refresh: %d %s", res.status, res.body)
			}
		})
	}
	if res := e.get("/api/profile/", good.Access); res.status != 200 {
		t.Errorf("the genuine token: %d", res.status)
	}
}

// TestHostileStringsAreStoredVerbatim: SQL and odd Unicode are data, kept
// and returned exactly.
func TestHostileStringsAreStoredVerbatim(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	for _, s := range []string{
		`Robert'); DROP TABLE notes;--`,
		`" OR ""="`,
		`1; UPDATE users SET is_active = 0`,
		"emoji 😀 and \u202eright-to-left\u202c and zero\u200bwidth",
		`<script>alert("x")</script> & &amp;`,
		`\u0000 is not a NUL here`,
		"tab\tnewline\nreturn\r end",
		`%_\`,
		strings.Repeat("é", 100),
	} {
		body, _ := json.Marshal(map[string]string{"title": s[:min(len(s), 100)], "body": s})
		res := e.withToken("POST", "/api/notes/", access, string(body))
		var n noteOut
		decode(t, res.body, &n)
		if res.status != 201 || n.Body != s {
			t.Errorf("create %q: %d %s", s, res.status, res.body)
			continue
		}
		var back noteOut
		decode(t, e.get(fmt.Sprintf("/api/notes/%d/", n.ID), access).body, &back)
		if back.Body != s {
			t.Errorf("stored %q, read back %q", s, back.Body)
		}
	}
	if n := e.count(`SELECT count(*) FROM users WHERE is_active = 1`); n != 1 {
		t.Error("an injection changed the users")
	}
}

// FuzzBodies sends arbitrary bodies, with each content type the API reads,
// to a route that decodes them (token verify) and to note create: the
// answer is always one of the contract's, never a 500.
func FuzzBodies(f *testing.F) {
	e := newTestEnv(f, func(c *config) { c.ipLimit = 0 })
	e.t = f
	e.register("alice")
	access := e.login("alice").Access
	ct, multi := multipartBody(map[string]string{"title": "t", "is_public": "on"}, "cover_image", "a.png", pngImage(1, 1))
	for _, seed := range []struct{ contentType, body string }{
		{"application/json", `{"token":"a.b.c"}`},
		{"application/json", `{"title":"x","body":"y","is_public":true}`},
		{"application/json", `[{"title":null}]`},
		{"application/json", "{\"title\":\"\xff\"}"},
		{"application/x-www-form-urlencoded", "title=a%zz&is_public=maybe"},
		{ct, multi},
		{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"cover_image\"; filename=\"a\"\r\n\r\nGIF89a\r\n--x--\r\n"},
		{"text/plain", "hello"},
	} {
		f.Add(seed.contentType, seed.body)
	}
	f.Fuzz(func(t *testing.T, contentType, body string) {
		for _, path := range []string{"/api/token/verify/", "/api/notes/"} {
			res := e.do("POST", path, contentType, body, "Authorization", "Bearer "+access)
			switch res.status {
			case 200, 201, 400, 401, 413, 415:
			default:
				t.Fatalf("POST %s (%q): %d %s", path, contentType, res.status, res.body)
			}
			if res.status == 201 && !noteJSONPattern.MatchString(res.body) {
				t.Fatalf("created a note that does not look like one: %s", res.body)
			}
		}
	})
}

// TestRegistrationWorkIsBounded: a register body made to be expensive (a
// username and an email of 40,000 words each, a password as long) is
// refused at once. The password's similarity to the username and email was
// computed word by word against the whole password, and took minutes of
// CPU for a body like this one; now an overlong value is never compared,
// and a password much longer than a part skips it, as in Django.
func TestRegistrationWorkIsBounded(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	words := strings.Repeat("ab.", 40000)
	body, err := json.Marshal(map[string]string{
		"username": words, "email": words + "@example.com",
		"password": strings.Repeat("ab", 40000), "password2": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	res := e.postJSON("/api/register/", string(body))
	if res.status != 400 || !strings.Contains(res.body, `"username":["Ensure this field has no more than 150 characters."]`) ||
		!strings.Contains(res.body, `"email":["Enter a valid email address."]`) {
		t.Errorf("got %d %s", res.status, truncate(res.body, 300))
	}
	// A long password against short, valid attributes is still checked.
	similar := e.postJSON("/api/register/", `{"username":"averylongusername","email":"a@example.com",`+
		`"password":"averylongusername1","password2":"averylongusername1"}`)
	want(t, similar, 400, `{"password":["The password is too similar to the username."]}`)
}

// TestOverlongLoginNamesAreRefusedCheaply: a name no account can have is
// answered as an unknown one, without a hash, and never becomes a key of
// the failed-login limiter.
func TestOverlongLoginNamesAreRefusedCheaply(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	body, err := json.Marshal(map[string]string{"username": strings.Repeat("x", 151), "password": "p"})
	if err != nil {
		t.Fatal(err)
	}
	want(t, e.postJSON("/api/token/", string(body)), 401, `{"detail":"No active account found with the given credentials"}`)
	if n := len(e.srv.failedLogins.events); n != 0 {
		t.Errorf("the limiter keeps %d keys after an overlong name", n)
	}
}
