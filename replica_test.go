package main

// replica_test.go: the LiteFS roles without LiteFS (scripts/litefs.sh runs
// the real thing in CI): a replica forwards exactly the requests that
// write and answers once its copy has the write; the primary trusts the
// client address and names its position only for its forwarders; a
// replica forgets what it kept when the database changes under it; it
// waits for the primary's schema.

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// writePosition sets dbPath's LiteFS position file to txid.
func writePosition(t *testing.T, dbPath string, txid string) {
	t.Helper()
	if err := os.WriteFile(dbPath+"-pos", []byte(txid+"/d1f7b00b0dd988e9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPositionFile(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "notes.db")
	if got := position(dbPath); got != 0 {
		t.Errorf("no position file: %d, want 0", got)
	}
	writePosition(t, dbPath, "00000000000001cd")
	if got := position(dbPath); got != 0x1cd {
		t.Errorf("position %d, want %d", got, 0x1cd)
	}
	if isLiteFSReplica(dbPath) {
		t.Error("a folder without .primary taken for a replica's")
	}
	os.WriteFile(filepath.Join(filepath.Dir(dbPath), ".primary"), []byte("node-a"), 0o600)
	if !isLiteFSReplica(dbPath) {
		t.Error("a folder with .primary not taken for a replica's")
	}
}

// TestReplicaForwardsWrites: reads are answered here; writes (and only
// they: a token check is a read) go to the primary with the client's
// address, and their answer comes once this copy has the primary's
// position, without the position header; a primary out of reach is a 503.
func TestReplicaForwardsWrites(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	dbPath := filepath.Join(t.TempDir(), "notes.db")
	writePosition(t, dbPath, "0000000000000005")
	var caughtUp atomic.Bool // set just before the copy reaches the write
	answered := make(chan struct{})
	var forwarded []string
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded = append(forwarded, r.Method+" "+r.URL.Path+" from "+r.Header.Get(clientHeader))
		w.Header().Set(positionHeader, "9")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":1}`)
		w.(http.Flusher).Flush()
		if r.URL.Path == "/api/notes/" {
			answered <- struct{}{}
		}
	}))
	t.Cleanup(primary.Close)
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "local") })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := config{dbPath: dbPath, primaryURL: primary.URL}
	handler, err := forwardWrites(ctx, cfg, e.srv.store, func(*http.Request) string { return "198.51.100.7" }, local,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(`{}`)))
		return rec
	}
	for _, read := range [][2]string{{"GET", "/api/notes/"}, {"HEAD", "/api/profile/"}, {"OPTIONS", "/api/notes/"},
		{"POST", "/api/token/verify/"}, {"POST", "/api/token/verify"}} {
		if rec := serve(read[0], read[1]); rec.Body.String() != "local" {
			t.Errorf("%s %s was not answered here: %q", read[0], read[1], rec.Body)
		}
	}
	go func() {
		<-answered
		caughtUp.Store(true)
		writePosition(t, dbPath, "0000000000000009")
	}()
	rec := serve("POST", "/api/notes/")
	if rec.Code != 201 || rec.Body.String() != `{"id":1}` || rec.Header().Get(positionHeader) != "" {
		t.Errorf("a forwarded write: %d %q, position header %q", rec.Code, rec.Body, rec.Header().Get(positionHeader))
	}
	if !caughtUp.Load() {
		t.Error("the answer of a forwarded write came before this copy had the write")
	}
	for _, write := range []string{"PATCH", "PUT", "DELETE"} {
		serve(write, "/api/notes/1/")
	}
	want := []string{"POST /api/notes/ from 198.51.100.7", "PATCH /api/notes/1/ from 198.51.100.7",
		"PUT /api/notes/1/ from 198.51.100.7", "DELETE /api/notes/1/ from 198.51.100.7"}
	if strings.Join(forwarded, "; ") != strings.Join(want, "; ") {
		t.Errorf("forwarded %q, want %q", forwarded, want)
	}
	primary.Close()
	if rec := serve("POST", "/api/token/"); rec.Code != 503 || !strings.Contains(rec.Body.String(), `"detail"`) {
		t.Errorf("with the primary out of reach: %d %s", rec.Code, rec.Body)
	}
	if _, err := forwardWrites(ctx, config{dbPath: dbPath}, e.srv.store, nil, local, nil); err == nil {
		t.Error("a replica without -primary-url started")
	}
}

// TestPrimaryTrustsItsForwarders: the client address a replica names, and
// the position header, are for -forwarders' requests only.
func TestPrimaryTrustsItsForwarders(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.forwarders = []string{"192.0.2.9"} })
	request := func(method, from string) *http.Request {
		r := httptest.NewRequest(method, "/api/notes/", nil)
		r.RemoteAddr = from + ":4321"
		r.Header.Set(clientHeader, "198.51.100.7")
		return r
	}
	if got := e.srv.clientIP(request("POST", "192.0.2.9")); got != "198.51.100.7" {
		t.Errorf("a forwarder's client: %s", got)
	}
	if got := e.srv.clientIP(request("POST", "203.0.113.5")); got != "203.0.113.5" {
		t.Errorf("a client naming another address: %s", got)
	}
	dbPath := filepath.Join(t.TempDir(), "notes.db")
	writePosition(t, dbPath, "00000000000000ff")
	created := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	handler := withPosition(dbPath, e.srv.cfg.forwarders, created)
	for _, tc := range []struct {
		method, from, want string
	}{{"POST", "192.0.2.9", "255"}, {"GET", "192.0.2.9", ""}, {"POST", "203.0.113.5", ""}} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, request(tc.method, tc.from))
		if got := rec.Header().Get(positionHeader); got != tc.want || rec.Code != 201 {
			t.Errorf("%s from %s: position %q, want %q (%d)", tc.method, tc.from, got, tc.want, rec.Code)
		}
	}
}

// TestReplicaForgetsWhatItKept: a second server on the same database
// stands for the primary. What the first kept (a page of the list, a
// session) is stale once the other writes, until replicated(), which the
// watcher of the position calls.
func TestReplicaForgetsWhatItKept(t *testing.T) {
	t.Parallel()
	replica := newTestEnv(t)
	primary := newTestEnv(t, func(c *config) { c.dataDir = replica.srv.cfg.dataDir })
	primary.register("alice")
	tokens := primary.login("alice")
	for range 2 { // the second from what the replica keeps
		if r := replica.get("/api/notes/", tokens.Access); r.status != 200 || r.body != "[]" {
			t.Fatalf("the replica's list: %d %s", r.status, r.body)
		}
	}
	if r := primary.do("POST", "/api/notes/", "application/json", `{"title":"written elsewhere"}`,
		"Authorization", "Bearer "+tokens.Access); r.status != 201 {
		t.Fatalf("create on the primary: %d %s", r.status, r.body)
	}
	if r := primary.postJSON("/api/token/blacklist/", `{"refresh":"`+tokens.Refresh+`"}`); r.status != 200 {
		t.Fatalf("log out on the primary: %d %s", r.status, r.body)
	}
	replica.srv.store.replicated()
	if r := replica.get("/api/profile/", tokens.Access); r.status != 401 {
		t.Errorf("the replica after the logout: %d %s", r.status, r.body)
	}
	other := primary.login("alice")
	if r := replica.get("/api/notes/", other.Access); !strings.Contains(r.body, "written elsewhere") {
		t.Errorf("the replica's list after the write: %d %s", r.status, r.body)
	}
}

// TestReplicaWaitsForTheSchema: needSchema changes nothing, and is not
// ready until the database is at this program's version.
func TestReplicaWaitsForTheSchema(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "notes.db"), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if err := needSchema(ctx, db); !errors.Is(err, errReplicaNotReady) {
		t.Errorf("an empty database: %v, want not ready", err)
	}
	if err := migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := needSchema(ctx, db); err != nil {
		t.Errorf("at this program's schema: %v", err)
	}
	if _, err := db.Exec("PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	if err := needSchema(ctx, db); err == nil || errors.Is(err, errReplicaNotReady) {
		t.Errorf("a newer schema: %v, want an error that is not waiting", err)
	}
}

// TestRegistrationsOfOtherMachines: a keys command signals the servers of
// its own machine only; one on another machine sharing the data folder
// reads the file by itself.
func TestRegistrationsOfOtherMachines(t *testing.T) {
	t.Parallel()
	if !sameHost("123-abcdef12-"+thisHost()) || !sameHost("123-abcdef12") {
		t.Error("this machine's registration (or an older server's) taken for another's")
	}
	if sameHost("123-abcdef12-" + thisHost() + "x") {
		t.Error("another machine's registration taken for this one's")
	}
	if strings.ContainsAny(thisHost(), "/.") {
		t.Errorf("host name %q in a file name", thisHost())
	}
}
