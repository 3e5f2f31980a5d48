package main

// testenv_test.go: the test environment every handler test starts from:
// the real handler (routes(), with its middleware) on a real SQLite file in
// a temporary folder, a clock that moves only when told, the log in a
// buffer; then the requests tests send through it, and what they check of
// the answers.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is the server's clock in tests: it moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testEnv struct {
	t       testing.TB
	srv     *server
	handler http.Handler
	clock   *fakeClock
	logs    *syncBuffer
}

// newTestEnv starts the server's handler on a fresh database in a temporary
// folder, with the default configuration as changed by configure.
func newTestEnv(t testing.TB, configure ...func(*config)) *testEnv {
	t.Helper()
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.dataDir = t.TempDir()
	// The security mails (notify.go) are off unless a test turns them on:
	// the tests of mailed links count the mails they expect.
	cfg.securityMails = false
	for _, f := range configure {
		f(&cfg)
	}
	st, err := openStore(context.Background(), cfg.dataDir, sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := &fakeClock{t: time.Date(2026, 11, 29, 12, 0, 0, 123456000, time.UTC)}
	logs := &syncBuffer{}
	srv, err := newServer(cfg, st, singleKeySigner(testKey), slog.New(slog.NewTextHandler(logs, nil)), clock.now)
	if err != nil {
		t.Fatal(err)
	}
	srv.mail.delay = 0                                    // tests wait for the queue (mail.wait), not for the clock
	t.Cleanup(func() { srv.close(context.Background()) }) // before the store closes: cleanups run last first
	return &testEnv{t: t, srv: srv, handler: recordAnswers(t, srv.routes()), clock: clock, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request through the real handler. headers are name, value
// pairs; the name "RemoteAddr" sets the client's address instead.
func (e *testEnv) do(method, path, contentType, body string, headers ...string) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.1:4321"
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "RemoteAddr" { // the connection's address, not a header
			req.RemoteAddr = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

func (e *testEnv) postJSON(path, body string) response {
	return e.do("POST", path, "application/json", body)
}

func (e *testEnv) get(path, access string) response {
	return e.do("GET", path, "", "", "Authorization", "Bearer "+access)
}

// decode reads a JSON answer into v, or stops the test. A goroutine other
// than the test's own uses decodeOK.
func decode(t testing.TB, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("not the JSON expected: %v\n%s", err, truncate(body, 300))
	}
}

// decodeOK is decode for a goroutine of a test: it reports the failure and
// returns false, and the goroutine stops by itself.
func decodeOK(t testing.TB, body string, v any) bool {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Errorf("not the JSON expected: %v\n%s", err, truncate(body, 300))
		return false
	}
	return true
}

// want checks a response's status and exact body.
func want(t *testing.T, res response, status int, body string) {
	t.Helper()
	if res.status != status || res.body != body {
		t.Errorf("got %d %s\nwant %d %s", res.status, res.body, status, body)
	}
	if status == http.StatusUnauthorized && res.header.Get("WWW-Authenticate") != `Bearer realm="api"` {
		t.Errorf("401 without WWW-Authenticate: %v", res.header)
	}
	if ct := res.header.Get("Content-Type"); body != "" && ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

const testPassword = "Correct-Horse-42"

func registerBody(username string) string {
	return fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":%q,"password2":%q}`,
		username, username, testPassword, testPassword)
}

// register makes a user and returns their id.
func (e *testEnv) register(username string) int64 {
	e.t.Helper()
	res := e.postJSON("/api/register/", registerBody(username))
	if res.status != http.StatusCreated {
		e.t.Fatalf("register %s: %d %s", username, res.status, res.body)
	}
	var u struct{ ID int64 }
	decode(e.t, res.body, &u)
	return u.ID
}

type tokenPair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

// login logs username in with testPassword.
func (e *testEnv) login(username string) tokenPair {
	e.t.Helper()
	res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":%q,"password":%q}`, username, testPassword))
	if res.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", username, res.status, res.body)
	}
	var p tokenPair
	decode(e.t, res.body, &p)
	return p
}

// refresh sends a refresh token to POST /api/token/refresh/, whatever the
// answer.
func (e *testEnv) refresh(token string) response {
	return e.postJSON("/api/token/refresh/", fmt.Sprintf(`{"refresh":%q}`, token))
}

// rotate refreshes a token that must rotate, and returns the new pair.
func (e *testEnv) rotate(token string) tokenPair {
	e.t.Helper()
	res := e.refresh(token)
	if res.status != http.StatusOK {
		e.t.Fatalf("refresh: %d %s", res.status, res.body)
	}
	var p tokenPair
	decode(e.t, res.body, &p)
	return p
}

// usersInEveryState logs in alice, gone and idle, then deletes gone and
// deactivates idle (as an admin would): tokens of users in every state.
func (e *testEnv) usersInEveryState() (alice, gone, idle tokenPair) {
	e.t.Helper()
	for _, name := range []string{"alice", "gone", "idle"} {
		e.register(name)
	}
	alice, gone, idle = e.login("alice"), e.login("gone"), e.login("idle")
	e.exec(`DELETE FROM users WHERE username = 'gone'`)
	e.exec(`UPDATE users SET is_active = 0 WHERE username = 'idle'`)
	return alice, gone, idle
}

// exec changes the database behind the API's back, as an admin would.
func (e *testEnv) exec(query string, args ...any) {
	e.t.Helper()
	err := e.srv.store.write(context.Background(), func(tx *txn, ch *changed) error { // as the server's own write
		ch.account = true
		ch.notes = append(ch.notes, noteWrite{public: true}) // it may have written notes: every page is forgotten
		_, err := tx.ExecContext(context.Background(), query, args...)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.srv.store.db.read.db.QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// decodeClaims reads a token's payload without verifying it.
func decodeClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	decode(t, string(payload), &m)
	return m
}

// The 401 bodies of the contract.
const (
	bodyNotAuthenticated = `{"detail":"Authentication credentials were not provided."}`
	bodyBlacklisted      = `{"detail":"Token is blacklisted","code":"token_not_valid"}`
	bodyTokenInvalid     = `{"detail":"Token is invalid or expired","code":"token_not_valid"}`
	bodyWrongType        = `{"detail":"Token has wrong type","code":"token_not_valid"}`
	bodyNoAccount        = `{"detail":"No active account found with the given credentials"}`
)

func bodyAccessRefused(message string) string {
	return `{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[` +
		`{"token_class":"AccessToken","token_type":"access","message":"` + message + `"}]}`
}

// withToken sends a JSON body with an access token.
func (e *testEnv) withToken(method, path, access, body string) response {
	return e.do(method, path, "application/json", body, "Authorization", "Bearer "+access)
}

// createNote makes a note through the API and returns it.
func (e *testEnv) createNote(access, body string) noteJSON {
	e.t.Helper()
	res := e.withToken("POST", "/api/notes/", access, body)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create note: %d %s", res.status, res.body)
	}
	var n noteJSON
	decode(e.t, res.body, &n)
	return n
}

// envOf is an environment of the given variables only.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// outsideTool is the path of a program from Debian a test runs (strace,
// oathtool, zbarimg). Missing, the test is skipped, unless
// JWTNOTES_ALL_TOOLS is set, as .ci/run sets it after installing them all:
// there, a missing tool fails the test instead of passing it unseen.
func outsideTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil && os.Getenv("JWTNOTES_ALL_TOOLS") != "" {
		t.Fatalf("%s is not installed (Debian's %s), and JWTNOTES_ALL_TOOLS says every tool is", name, debianPackage)
	}
	if err != nil {
		t.Skipf("%s is not installed (Debian's %s; .ci/run installs it)", name, debianPackage)
	}
	return path
}

// startProgram starts cmd (an outside program, or one built from this
// repository) with its output, both streams, in a buffer, and waits until
// a line of it holds marker. It returns the buffer and what follows marker
// on that line. The program is killed when the test ends.
func startProgram(t *testing.T, cmd *exec.Cmd, marker string) (*syncBuffer, string) {
	t.Helper()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := &syncBuffer{}
	found := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(pipe)
		for lines.Scan() {
			fmt.Fprintln(out, lines.Text())
			if _, after, ok := strings.Cut(lines.Text(), marker); ok {
				select {
				case found <- after:
				default: // the first is the one waited for
				}
			}
		}
		close(found)
	}()
	select {
	case after, ok := <-found:
		if !ok {
			t.Fatalf("%s exited:\n%s", cmd.Path, out)
		}
		return out, after
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start:\n%s", cmd.Path, out)
	}
	return nil, ""
}
