package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAccessCacheForgetsOnEveryAccountWrite: an access token that was just
// used (so its user and session are in the cache) gets the new answer right
// after each write that changes a user or revokes a session, never the
// remembered one.
func TestAccessCacheForgetsOnEveryAccountWrite(t *testing.T) {
	t.Parallel()
	sink := newMailSink(t)
	e := newTestEnv(t, sink.useFor)
	const newPassword = "New-Battery-77"
	// account is one test's user: tokens is the session whose access token
	// was used just before the write, other a second session of theirs.
	type account struct {
		name, verifyLink string
		tokens, other    tokenPair
	}
	for i, tt := range []struct {
		name   string
		action func(a account)
		status int
		body   string // a substring of GET /api/profile/'s answer
	}{
		{"logout", func(a account) {
			e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, a.tokens.Refresh))
		}, 401, bodyBlacklisted},
		{"refresh token reused", func(a account) {
			e.rotate(a.tokens.Refresh)
			e.clock.advance(e.srv.cfg.reuseGrace + time.Second) // a reuse now revokes the session
			e.refresh(a.tokens.Refresh)
		}, 401, bodyBlacklisted},
		{"session ended from another", func(a account) {
			sid := decodeClaims(t, a.tokens.Refresh)["sid"].(string)
			e.withToken("DELETE", "/api/sessions/"+sid+"/", a.other.Access, "")
		}, 401, bodyBlacklisted},
		{"every session ended", func(a account) {
			e.withToken("DELETE", "/api/sessions/", a.other.Access, "")
		}, 401, bodyBlacklisted},
		{"password changed on another device", func(a account) {
			e.withToken("POST", "/api/profile/password/", a.other.Access,
				`{"old_password":"`+testPassword+`","new_password":"`+newPassword+`","new_password2":"`+newPassword+`"}`)
		}, 401, bodyBlacklisted},
		{"password reset", func(a account) {
			e.postJSON("/api/password/reset/confirm/", confirmBody(e.askReset(sink, a.name+"@example.com"), newPassword))
		}, 401, bodyBlacklisted},
		{"account deleted from another session", func(a account) {
			e.do("DELETE", "/api/profile/", "application/json", `{"password":"`+testPassword+`"}`,
				"Authorization", "Bearer "+a.other.Access)
		}, 401, `"user_not_found"`},
		{"profile changed", func(a account) {
			e.withToken("PATCH", "/api/profile/", a.other.Access, `{"first_name":"Renamed"}`)
		}, 200, `"first_name":"Renamed"`},
		{"email verified", func(a account) {
			e.postJSON("/api/email/verify/", fmt.Sprintf(`{"token":%q}`, a.verifyLink))
		}, 200, `"email_verified":true`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := account{name: fmt.Sprint("cache", i)}
			id, link := e.registerMailed(sink, a.name)
			a.verifyLink = link
			a.tokens, a.other = e.login(a.name), e.login(a.name)
			before := e.get("/api/profile/", a.tokens.Access)
			if before.status != 200 || strings.Contains(before.body, tt.body) {
				t.Fatalf("before: %d %s", before.status, before.body)
			}
			if _, ok := e.srv.store.access.lookup(id, decodeClaims(t, a.tokens.Access)["sid"].(string), e.srv.store.accounts.Load(), e.clock.now()); !ok {
				t.Fatal("the request before the write left nothing in the cache: this test would test nothing")
			}
			tt.action(a)
			got := e.get("/api/profile/", a.tokens.Access)
			if got.status != tt.status || !strings.Contains(got.body, tt.body) {
				t.Errorf("after: %d %s, want %d and %s", got.status, got.body, tt.status, tt.body)
			}
		})
	}
}

// TestAccessCacheEntries: an entry is used only for its own user and
// session, until its session ends or it is accessCacheTTL old; a write by
// another process (here: straight SQL, which the cache does not see) is
// seen once the entry is that old.
func TestAccessCacheEntries(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	st := e.srv.store
	aliceID := e.register("alice")
	e.register("bob")
	tokens := e.login("alice")
	sid := decodeClaims(t, tokens.Refresh)["sid"].(string)
	ctx, now, version := context.Background(), e.clock.now(), st.accounts.Load()
	if _, live, err := st.userForAccess(ctx, aliceID, sid, now); err != nil || !live {
		t.Fatalf("userForAccess: %v %v", live, err)
	}
	if _, ok := st.access.lookup(aliceID, sid, version, now); !ok {
		t.Fatal("a live session's answer is not kept")
	}
	if _, ok := st.access.lookup(aliceID+1, sid, version, now); ok {
		t.Error("an entry answers for another user's id")
	}
	ends := now.Add(e.srv.cfg.refreshTTL)
	if _, ok := st.access.lookup(aliceID, sid, version, ends); ok {
		t.Error("an entry outlives its session")
	}
	// Revoked behind the server's back: the entry answers until it is
	// accessCacheTTL old, then the database does.
	if err := st.db.inWriteTx(ctx, func(tx *txn) error {
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked = 1 WHERE id = ?`, sid)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, live, _ := st.userForAccess(ctx, aliceID, sid, now.Add(accessCacheTTL-time.Millisecond)); !live {
		t.Error("the entry was not used within its time")
	}
	if _, live, _ := st.userForAccess(ctx, aliceID, sid, now.Add(accessCacheTTL)); live {
		t.Error("a session revoked by another process is still live after accessCacheTTL")
	}
	// An answer read before an account write commits is not used after it.
	st.access.keep("x", user{ID: 1}, ends, version, now)
	st.committed(changed{account: true})
	if _, ok := st.access.lookup(1, "x", st.accounts.Load(), now); ok {
		t.Error("an answer read before an account write was used after it")
	}
}
