package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
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
		var n noteJSON
		decode(t, res.body, &n)
		if res.status != 201 || n.Body != s {
			t.Errorf("create %q: %d %s", s, res.status, res.body)
			continue
		}
		var back noteJSON
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
	// No throttle or quota: the fuzzer writes thousands of notes a second.
	e := newTestEnv(f, func(c *config) { c.ipLimit = 0; c.writeLimit = 0; c.maxNotes = 0; c.maxNotesMB = 0 })
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

// failingBody yields some bytes, then fails as a connection can.
type failingBody struct {
	data []byte
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestBrokenBodies: a body cut short of its Content-Length is 400, one that
// does not arrive within the read timeout 408, on every encoding; a broken
// connection gets no answer and no ERROR line.
func TestBrokenBodies(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ct, multipart := multipartBody(map[string]string{"username": "alice"}, "", "", nil)
	for _, enc := range []struct{ contentType, body string }{
		{"application/json", `{"username":"alice","password":"x"}`},
		{"application/x-www-form-urlencoded", `username=alice&password=x`},
		{ct, multipart},
	} {
		for _, tc := range []struct {
			err    error
			status int
			body   string
		}{
			{io.ErrUnexpectedEOF, 400, `{"detail":"The request body ended before its Content-Length."}`},
			{os.ErrDeadlineExceeded, 408, `{"detail":"The request body did not arrive in time."}`},
		} {
			for _, path := range []string{"/api/token/", "/api/register/", "/api/token/refresh/"} {
				t.Run(fmt.Sprintf("POST %s %s %v", path, mediaType(enc.contentType), tc.err), func(t *testing.T) {
					req := httptest.NewRequest("POST", path, &failingBody{data: []byte(enc.body[:len(enc.body)/2]), err: tc.err})
					req.ContentLength = int64(len(enc.body))
					req.Header.Set("Content-Type", enc.contentType)
					rec := httptest.NewRecorder()
					e.handler.ServeHTTP(rec, req)
					want(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}, tc.status, tc.body)
				})
			}
		}
	}
	req := httptest.NewRequest("POST", "/api/token/", &failingBody{err: syscall.ECONNRESET})
	req.Header.Set("Content-Type", "application/json")
	e.handler.ServeHTTP(httptest.NewRecorder(), req)
	if logs := e.logs.String(); strings.Contains(logs, "level=ERROR") {
		t.Errorf("a broken body was logged as an error:\n%s", logs)
	}
}

// TestBodyBudget: bodies being read share a memory budget; a body that does
// not fit is refused at once with 503 and Retry-After, unread, and the room
// comes back when the request holding it is answered. Routes that take no
// file refuse multipart bodies over 1 MiB.
func TestBodyBudget(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.bodyMemory = 7 << 20 })
	ct, upload := multipartBody(map[string]string{"title": "big", "body": strings.Repeat("words ", 300000)},
		"cover_image", "x.png", pngImage(20, 10))
	access := e.login(func() string { e.register("alice"); return "alice" }()).Access

	// A slow upload holds its room while its body trickles in.
	slow, feed := io.Pipe()
	req := httptest.NewRequest("POST", "/api/notes/", slow)
	req.ContentLength = 6 << 20
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+access)
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		done <- rec.Code
	}()
	if _, err := feed.Write([]byte(upload[:100])); err != nil { // returns once the handler reads
		t.Fatal(err)
	}
	res := e.do("POST", "/api/notes/", ct, upload, "Authorization", "Bearer "+access)
	want(t, res, 503, `{"detail":"The server is busy. Try again shortly."}`)
	if res.header.Get("Retry-After") != "1" {
		t.Errorf("503 without Retry-After: %v", res.header)
	}
	feed.CloseWithError(io.ErrUnexpectedEOF)
	if code := <-done; code != 400 {
		t.Errorf("the cut upload: %d, want 400", code)
	}
	if res := e.do("POST", "/api/notes/", ct, upload, "Authorization", "Bearer "+access); res.status != 201 {
		t.Errorf("after the slow upload ended: %d %s", res.status, res.body)
	}
	loginCT, bigLogin := multipartBody(map[string]string{"username": strings.Repeat("x", 2<<20), "password": "p"}, "", "", nil)
	want(t, e.do("POST", "/api/token/", loginCT, bigLogin), 413, `{"detail":"Request body is too large."}`)
}

// TestNonCanonicalPathsAre404: the mux would answer these with a redirect
// and an HTML body; the contract has no redirects.
func TestNonCanonicalPathsAre404(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, path := range []string{"//api/notes/", "/api//notes/", "/api/./notes/", "/api/x/../notes/",
		"/api/%2e%2e/api/notes/", "/api/notes/%2E/", "/./", "/media/../api/"} {
		want(t, e.do("GET", path, "", ""), 404, `{"detail":"Not found."}`)
	}
	want(t, e.do("GET", "/healthz", "", ""), 200, `{"status":"ok"}`)
	want(t, e.do("GET", "/api/notes", "", ""), 401, `{"detail":"Authentication credentials were not provided."}`)
}

// TestNoteQuota: an account keeps at most -max-notes notes and -max-notes-mb
// of them; a write past either is a 403 that names the limit, saves nothing,
// and a delete or a shrinking edit makes room again.
func TestNoteQuota(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.maxNotes = 2; c.maxNotesMB = 1 })
	e.register("alice")
	access := e.login("alice").Access
	first := e.createNote(access, `{"title":"one"}`)
	e.createNote(access, `{"title":"two"}`)
	want(t, e.withToken("POST", "/api/notes/", access, `{"title":"three"}`), 403,
		`{"detail":"Note quota reached: an account keeps at most 2 notes."}`)
	if res := e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", first.ID), access, ""); res.status != 204 {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	third := e.createNote(access, `{"title":"three"}`)

	big := strings.Repeat("x", 600<<10) // two of these are more than 1 MiB
	if res := e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", third.ID), access, `{"body":"`+big+`"}`); res.status != 200 {
		t.Fatalf("a 600 KiB body: %d", res.status)
	}
	ct, image := multipartBody(map[string]string{"body": big}, "cover_image", "x.png", pngImage(10, 10))
	res := e.do("PATCH", fmt.Sprintf("/api/notes/%d/", third.ID-1), ct, image, "Authorization", "Bearer "+access)
	want(t, res, 403, `{"detail":"Storage quota reached: an account's notes hold at most 1 MiB."}`)
	if files := e.mediaFiles(imagesFolder); len(files) != 0 {
		t.Errorf("a refused write left files: %v", files)
	}
	if res := e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", third.ID), access, `{"body":"short"}`); res.status != 200 {
		t.Fatalf("shrinking: %d", res.status)
	}
	if res := e.do("PATCH", fmt.Sprintf("/api/notes/%d/", third.ID-1), ct, image, "Authorization", "Bearer "+access); res.status != 200 {
		t.Errorf("after making room: %d %s", res.status, truncate(res.body, 200))
	}
	if got := e.count(`SELECT notes_count FROM users WHERE username = 'alice'`); got != 2 {
		t.Errorf("notes_count = %d, want 2", got)
	}
	if got, want := e.count(`SELECT notes_bytes FROM users WHERE username = 'alice'`),
		e.count(`SELECT sum(size) FROM notes`); got != want || got < 600<<10 {
		t.Errorf("notes_bytes = %d, the notes' sizes sum to %d", got, want)
	}
}

// TestWritesAreThrottledPerAccount: -write-limit note and profile writes a
// minute per account, then DRF's 429; other accounts are not affected.
func TestWritesAreThrottledPerAccount(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.writeLimit = 3 })
	e.register("alice")
	e.register("bob")
	alice, bob := e.login("alice").Access, e.login("bob").Access
	n := e.createNote(alice, `{"title":"a"}`)
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), alice, `{"title":"b"}`)
	e.withToken("PATCH", "/api/profile/", alice, `{"bio":"hi"}`)
	wantThrottled(t, e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", n.ID), alice, ""), 60)
	e.createNote(bob, `{"title":"bob's"}`)
	e.clock.advance(time.Minute)
	if res := e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", n.ID), alice, ""); res.status != 204 {
		t.Errorf("a minute later: %d %s", res.status, res.body)
	}
}

// TestProfileEmbedsABoundedNoteList: the profile holds the newest 100
// notes, whatever the account holds.
func TestProfileEmbedsABoundedNoteList(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.writeLimit = 0 })
	e.register("alice")
	access := e.login("alice").Access
	for i := range profileNotes + 5 {
		e.createNote(access, fmt.Sprintf(`{"title":"n%d"}`, i))
		e.clock.advance(time.Millisecond)
	}
	var p struct{ Notes []noteJSON }
	decode(t, e.get("/api/profile/", access).body, &p)
	if len(p.Notes) != profileNotes || p.Notes[0].Title != fmt.Sprintf("n%d", profileNotes+4) {
		t.Errorf("%d notes in the profile, the first %+v; want %d, newest first", len(p.Notes), p.Notes[0], profileNotes)
	}
}

// TestSmallStrictness: a file where text belongs, invalid UTF-8 in a form,
// repeated and huge query parameters, the Host header, an odd
// Content-Type: each answered as the contract (and DRF) would.
func TestSmallStrictness(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.publicURL = "https://notes.example" })
	e.register("alice")
	access := e.login("alice").Access

	ct, body := multipartBody(nil, "title", "title.txt", []byte("a file, not a title"))
	want(t, e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access), 400, `{"title":["Not a valid string."]}`)
	ct, body = multipartBody(nil, "is_public", "x", []byte("true"))
	want(t, e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access), 400, `{"is_public":["Must be a valid boolean."]}`)

	res := e.do("POST", "/api/notes/", "application/x-www-form-urlencoded", "title=caf%E9", "Authorization", "Bearer "+access)
	if res.status != 201 || !strings.Contains(res.body, `"title":"caf`+"\ufffd"+`"`) {
		t.Errorf("invalid UTF-8 in a form: %d %s", res.status, res.body)
	}
	ct, body = multipartBody(map[string]string{"title": "x\xffy"}, "", "", nil)
	res = e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access)
	if res.status != 201 || !strings.Contains(res.body, `"title":"x`+"\ufffd"+`y"`) {
		t.Errorf("invalid UTF-8 in multipart: %d %s", res.status, res.body)
	}

	want(t, e.get("/api/notes/?limit=1&limit=abc", access), 400, `{"limit":["A valid integer is required."]}`)
	if res := e.get("/api/notes/?limit=abc&limit=1", access); res.status != 200 || len(listIDs(t, res)) != 1 {
		t.Errorf("the last limit counts: %d %s", res.status, res.body)
	}
	want(t, e.get("/api/notes/?offset=-99999999999999999999999", access), 400,
		`{"offset":["Ensure this value is greater than or equal to 0."]}`)

	res = e.do("GET", "/api/notes/?limit=1", "", "", "Authorization", "Bearer "+access) // Host: example.com
	if link := res.header.Get("Link"); !strings.HasPrefix(link, "<https://notes.example/api/notes/?") {
		t.Errorf("Link = %q, want it at -public-url whatever the Host header says", link)
	}

	want(t, e.do("POST", "/api/token/", "text/plain; charset=\"é\"", "x"), 415,
		`{"detail":"Unsupported media type \"text/plain; charset=\"é\"\" in request."}`)
}
