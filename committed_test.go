package main

// committed_test.go: every write reaches memory. Each write route of the
// API runs right after the answers that memory keeps were read (a profile,
// both users' lists, a search); then each answer is read again twice, with
// the caches as the write left them and with them emptied, which is the
// database's own answer. The two must be the same, byte for byte: a write
// path that forgot to tell committed (store.go) shows here.

import (
	"context"
	"fmt"
	"testing"
)

func TestEveryWriteReachesMemory(t *testing.T) {
	t.Parallel()
	// world is one case's users, sessions and notes.
	type world struct {
		e                 *testEnv
		sink              *mailSink
		alice, other, bob tokenPair // other: a second session of alice's
		private, public   noteJSON  // alice's
		bobsPublic        noteJSON
		aliceVerifyLink   string
		aliceID           int64
	}
	const newPassword = "New-Battery-77"
	for _, tc := range []struct {
		name  string // the write's method and path
		write func(w *world)
	}{
		{"POST /api/token/", func(w *world) { w.e.login("alice") }},
		{"POST /api/token/refresh/", func(w *world) { w.e.rotate(w.other.Refresh) }},
		{"POST /api/token/refresh/ (a reuse)", func(w *world) {
			w.e.rotate(w.other.Refresh)
			w.e.clock.advance(w.e.srv.cfg.reuseGrace + 1)
			w.e.refresh(w.other.Refresh)
		}},
		{"POST /api/token/blacklist/", func(w *world) {
			w.e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, w.alice.Refresh))
		}},
		{"POST /api/register/", func(w *world) { w.e.register("carol") }},
		{"PATCH /api/profile/", func(w *world) {
			w.e.withToken("PATCH", "/api/profile/", w.other.Access, `{"username":"alicia","email":"alicia@example.com"}`)
		}},
		{"DELETE /api/profile/", func(w *world) {
			w.e.withToken("DELETE", "/api/profile/", w.other.Access, `{"password":"`+testPassword+`"}`)
		}},
		{"POST /api/profile/password/", func(w *world) {
			w.e.withToken("POST", "/api/profile/password/", w.other.Access,
				`{"old_password":"`+testPassword+`","new_password":"`+newPassword+`","new_password2":"`+newPassword+`"}`)
		}},
		{"POST /api/password/reset/confirm/", func(w *world) {
			w.e.postJSON("/api/password/reset/confirm/", confirmBody(w.e.askReset(w.sink, "alice@example.com"), newPassword))
		}},
		{"POST /api/email/verify/", func(w *world) {
			w.e.postJSON("/api/email/verify/", fmt.Sprintf(`{"token":%q}`, w.aliceVerifyLink))
		}},
		{"DELETE /api/sessions/{id}/", func(w *world) {
			w.e.withToken("DELETE", "/api/sessions/"+decodeClaims(t, w.alice.Refresh)["sid"].(string)+"/", w.other.Access, "")
		}},
		{"DELETE /api/sessions/", func(w *world) { w.e.withToken("DELETE", "/api/sessions/", w.other.Access, "") }},
		{"POST /api/notes/ (private)", func(w *world) { w.e.createNote(w.alice.Access, `{"title":"words, new"}`) }},
		{"POST /api/notes/ (public)", func(w *world) { w.e.createNote(w.bob.Access, `{"title":"words, public","is_public":true}`) }},
		{"PATCH /api/notes/{id}/ (made public)", func(w *world) {
			w.e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", w.private.ID), w.alice.Access, `{"is_public":true}`)
		}},
		{"PATCH /api/notes/{id}/ (made private)", func(w *world) {
			w.e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", w.public.ID), w.alice.Access, `{"is_public":false}`)
		}},
		{"PUT /api/notes/{id}/update/ (a new title)", func(w *world) {
			w.e.withToken("PUT", fmt.Sprintf("/api/notes/%d/update/", w.bobsPublic.ID), w.bob.Access, `{"title":"other words"}`)
		}},
		{"DELETE /api/notes/{id}/", func(w *world) {
			w.e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", w.public.ID), w.alice.Access, "")
		}},
		{"jwtnotes flushexpiredtokens", func(w *world) {
			w.e.srv.store.flushExpired(context.Background(), w.e.clock.now())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, sink := newMailEnv(t, func(c *config) { c.ipLimit, c.writeLimit = 0, 0 })
			w := &world{e: e, sink: sink}
			w.aliceID, w.aliceVerifyLink = e.registerMailed(sink, "alice")
			e.registerMailed(sink, "bob")
			w.alice, w.other, w.bob = e.login("alice"), e.login("alice"), e.login("bob")
			w.private = e.createNote(w.alice.Access, `{"title":"words, private"}`)
			w.public = e.createNote(w.alice.Access, `{"title":"words, public","is_public":true}`)
			w.bobsPublic = e.createNote(w.bob.Access, `{"title":"words, bob's","is_public":true}`)
			reads := []struct{ path, access string }{
				{"/api/profile/", w.alice.Access},
				{"/api/notes/", w.alice.Access},
				{"/api/notes/?mine=1", w.alice.Access},
				{"/api/notes/", w.bob.Access},
				{"/api/notes/?q=words", w.bob.Access},
				{fmt.Sprintf("/api/users/%d/notes/", w.aliceID), w.bob.Access},
			}
			answers := func() []response {
				var got []response
				for _, read := range reads {
					got = append(got, e.get(read.path, read.access))
				}
				return got
			}
			answers() // now in memory
			tc.write(w)
			remembered := answers()
			e.srv.pages, e.srv.store.access = newPageCache(), newAccessCache() // memory emptied
			fresh := answers()
			for i, read := range reads {
				got, want := remembered[i], fresh[i]
				if got.status != want.status || got.body != want.body || got.header.Get("Link") != want.header.Get("Link") {
					t.Errorf("GET %s after the write: from memory %d %s\nfrom the database %d %s",
						read.path, got.status, truncate(got.body, 300), want.status, truncate(want.body, 300))
				}
			}
		})
	}
}
