package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fullScan matches a query-plan step that reads a whole table of ours:
// "SCAN users", "SCAN s" (an alias), with or without an index, or every
// note on one side of an id. Walking an
// index in its order is a scan too, and is fine only where a LIMIT stops it
// (the notes list).
var fullScan = regexp.MustCompile(`^SCAN (users|u|sessions|s|blacklist|notes|n|account_tokens|t|totp|recovery_codes|security_events)\b` +
	`|^SEARCH (notes|n) USING INTEGER PRIMARY KEY \(rowid[<>]`) // every note below or above an id

// TestEveryQueryUsesAnIndex drives every route (and the store paths no
// route reaches on its own), then asks SQLite for the plan of every
// statement the store prepared on its way: none may read all of users,
// sessions, blacklist or notes. Each query must cost about the same with a
// million rows as with a thousand.
func TestEveryQueryUsesAnIndex(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	ctx := context.Background()
	e.register("alice")
	bobID := e.register("bob")
	alice, bob := e.login("alice"), e.login("bob")
	e.postJSON("/api/token/", `{"username":"nobody","password":"x"}`)
	note := e.createNote(bob.Access, `{"title":"milk","is_public":true}`)
	mine := e.createNote(alice.Access, `{"title":"eggs"}`)
	for _, path := range []string{"/api/notes/", "/api/notes/?q=milk", "/api/notes/?mine=1&q=e",
		fmt.Sprintf("/api/users/%d/notes/", bobID), fmt.Sprintf("/api/users/%d/notes/?q=milk", bobID),
		fmt.Sprintf("/api/notes/%d/", note.ID), "/api/profile/", "/api/sessions/"} {
		if res := e.get(path, alice.Access); res.status != 200 {
			t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
	}
	for _, r := range []struct{ method, path, body string }{
		{"PATCH", fmt.Sprintf("/api/notes/%d/", mine.ID), `{"title":"more eggs"}`},
		{"DELETE", fmt.Sprintf("/api/notes/%d/", mine.ID), ``},
		{"PATCH", "/api/profile/", `{"bio":"hi","username":"alice2"}`},
		{"POST", "/api/profile/password/", `{"old_password":"` + testPassword + `","new_password":"Another-Horse-43","new_password2":"Another-Horse-43"}`},
		{"DELETE", "/api/sessions/" + strings.Repeat("0", 32) + "/", ``},
		{"DELETE", "/api/sessions/", ``},
	} {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			if res := e.withToken(r.method, r.path, alice.Access, r.body); res.status >= 300 && res.status != 404 {
				t.Fatalf("%s %s: %d %s", r.method, r.path, res.status, res.body)
			}
		})
	}
	e.catchUp() // the search index's batch: a note written, one updated, one gone
	e.rotate(bob.Refresh)
	e.rotate(bob.Refresh) // again, within the grace period
	want(t, e.postJSON("/api/token/verify/", `{"token":"`+bob.Access+`"}`), 200, `{}`)
	want(t, e.postJSON("/api/token/blacklist/", `{"refresh":"`+bob.Refresh+`"}`), 401, bodyBlacklisted)
	// The UNIQUE constraint's answer (a registration race), and the flush.
	if _, err := e.srv.store.createUser(ctx, newUser{Username: "bob", Email: "b2@example.com", PasswordHash: "x"}, e.clock.now(), origin{}); err != errUsernameTaken {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, _, err := e.srv.store.flushExpired(ctx, e.clock.now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.srv.cfg.dataDir, "media", imagesFolder, strings.Repeat("a", 32)+".png"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.store.sweepMedia(ctx); err != nil {
		t.Fatal(err)
	}
	// The mailed links: asked for over HTTP (the mail queue writes the
	// letters), redeemed through the store.
	e.postJSON("/api/password/reset/", `{"email":"alice@example.com"}`)
	e.postJSON("/api/email/verify/resend/", `{"email":"bob@example.com"}`)
	e.srv.mail.wait()
	for _, purpose := range []string{verifyPurpose, resetPurpose} { // a reset verifies the email
		token, tokenHash := newAccountToken()
		if _, err := e.srv.store.issueAccountToken(ctx, purpose, bobID, tokenHash, e.clock.now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		want(t, e.postJSON("/api/password/reset/confirm/", confirmBody(token, newPassword)), map[string]int{resetPurpose: 200, verifyPurpose: 400}[purpose],
			map[string]string{resetPurpose: bodyResetDone, verifyPurpose: bodyBadLink}[purpose])
	}
	if _, err := e.srv.store.verifyEmail(ctx, make([]byte, 32), e.clock.now(), origin{}); err != errNotFound {
		t.Fatalf("verify an unknown token: %v", err)
	}
	// The second factor, a login with it, the security log; a wrong code.
	e.register("carol")
	en := e.enrolTOTP("carol")
	e.get("/api/security-log/?limit=2", e.login2FA("carol", e.code(en.secret, 0)).Access)
	e.sendCode(e.mfaToken("carol"), "000000")
	e.get("/api/mfa/totp/", en.tokens.Access)
	e.withToken("POST", "/api/mfa/recovery-codes/", en.tokens.Access, `{"password":"`+testPassword+`","code":"`+en.codes[0]+`"}`)
	e.withToken("DELETE", "/api/mfa/totp/", en.tokens.Access, `{"password":"`+testPassword+`","code":"`+en.codes[1]+`"}`)
	if _, _, err := e.srv.store.seenDevice(ctx, 1, "agent", "192.0.2.0/24", "", e.clock.now()); err != nil {
		t.Fatal(err)
	}
	bobLogin := e.postJSON("/api/token/", `{"username":"bob","password":"`+newPassword+`"}`)
	var bobTokens tokenPair
	decode(t, bobLogin.body, &bobTokens)
	if res := e.do("DELETE", "/api/profile/", "application/json", `{"password":"`+newPassword+`"}`,
		"Authorization", "Bearer "+bobTokens.Access); res.status != 204 {
		t.Fatalf("delete account: %d %s", res.status, res.body)
	}

	db := e.srv.store.db
	queries := append(db.read.prepared(), db.write.prepared()...)
	slices.Sort(queries)
	if len(queries) < 30 {
		t.Fatalf("only %d statements prepared: the flow above no longer reaches the store", len(queries))
	}
	for _, query := range queries {
		plan := queryPlan(t, db.write.db, query, nullArgs(query)...)
		for _, step := range plan {
			orderedWalk := strings.Contains(step, "USING INDEX") && strings.Contains(query, "LIMIT")
			if fullScan.MatchString(step) && !orderedWalk {
				t.Errorf("a full scan: %q\nin the plan %q\nof %s", step, plan, strings.Join(strings.Fields(query), " "))
			}
		}
	}
}

// queryPlan is what EXPLAIN QUERY PLAN says of query: one detail a step.
func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestListQueryPlan: every form of the list reads notes in index order and
// stops when the page is full. A sort (TEMP B-TREE) or a scan of the whole
// table would make each list cost more the more notes everyone has.
func TestListQueryPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, q := range []noteQuery{
		{viewer: 1, limit: 21},
		{viewer: 1, limit: 21, offset: 40, search: "milk"},
		{viewer: 1, owner: 2, limit: 21},
		{viewer: 1, owner: 2, limit: -1, search: "milk"},
	} {
		plan := queryPlan(t, e.srv.store.db.read.db, listQuery(q), sql.Named("viewer", q.viewer),
			sql.Named("owner", q.owner), sql.Named("search", q.search), sql.Named("limit", q.limit), sql.Named("offset", q.offset))
		for _, step := range plan {
			if strings.Contains(step, "TEMP B-TREE") || strings.Contains(step, "notes") && !strings.Contains(step, "USING INDEX") {
				t.Errorf("%+v: plan %q has %q", q, plan, step)
			}
		}
	}
}

// TestIndexedSearchQueryPlan: a search answered from the trigram index
// looks up each candidate by its id, for everyone's notes and for one
// user's: never a walk over all of someone's notes.
func TestIndexedSearchQueryPlan(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, q := range []noteQuery{{viewer: 1, limit: 21}, {viewer: 1, owner: 2, limit: 21, offset: 20}} {
		query := indexedSearchQuery(q)
		plan := queryPlan(t, e.srv.store.db.read.db, query, nullArgs(query)...)
		if plan[0] != "SEARCH notes USING INTEGER PRIMARY KEY (rowid=?)" || !slices.Contains(plan, "SCAN json_each VIRTUAL TABLE INDEX 1:") {
			t.Errorf("%+v: plan %q does not look up the index's candidates by id", q, plan)
		}
	}
}

var (
	namedParam    = regexp.MustCompile(`:([a-z_]+)`)
	numberedParam = regexp.MustCompile(`\?(\d+)`)
)

// nullArgs is a NULL for each placeholder of query (?, ?N or :name): the
// plan does not depend on the values.
func nullArgs(query string) []any {
	var args []any
	seen := map[string]bool{}
	for _, m := range namedParam.FindAllStringSubmatch(query, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			args = append(args, sql.Named(m[1], nil))
		}
	}
	if len(args) > 0 {
		return args
	}
	n := strings.Count(query, "?")
	if m := numberedParam.FindAllStringSubmatch(query, -1); m != nil {
		n = 0
		for _, p := range m {
			k, _ := strconv.Atoi(p[1])
			n = max(n, k)
		}
	}
	return make([]any, n)
}
