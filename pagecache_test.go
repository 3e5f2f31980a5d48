package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPageCacheForgetsOnEveryNoteWrite: a page just answered (so kept in the
// cache) shows every note write that could change it, right after it is
// answered: the viewer's own private notes, anyone's public ones, a note
// turning private, a deletion, an account's deletion.
func TestPageCacheForgetsOnEveryNoteWrite(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice").Access
	bobID := e.register("bob")
	bob := e.login("bob").Access
	pages := []string{"/api/notes/", "/api/notes/?q=word", "/api/notes/?mine=1",
		fmt.Sprintf("/api/users/%d/notes/", bobID), fmt.Sprintf("/api/users/%d/notes/?limit=1", aliceID)}
	// seen lists, for each page, the ids alice gets; it also checks that
	// asking again is answered from the cache, with the same body.
	seen := func() string {
		t.Helper()
		var all []string
		for _, path := range pages {
			first := e.get(path, alice)
			all = append(all, fmt.Sprint(listIDs(t, first)))
			if again := e.get(path, alice); again.body != first.body || again.header.Get("Link") != first.header.Get("Link") {
				t.Fatalf("%s asked twice: %s, then %s", path, first.body, again.body)
			}
		}
		return strings.Join(all, " ")
	}
	var b1, b2, a1 noteJSON
	for _, step := range []struct {
		name  string
		write func()
		want  func() string
	}{
		{"nothing yet", func() {}, func() string { return "[] [] [] [] []" }},
		{"bob's private note", func() { b1 = e.createNote(bob, `{"title":"a word"}`) }, func() string { return "[] [] [] [] []" }},
		{"bob's note made public", func() {
			e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", b1.ID), bob, `{"is_public":true}`)
		}, func() string { return fmt.Sprintf("[%d] [%d] [] [%d] []", b1.ID, b1.ID, b1.ID) }},
		{"alice's private note", func() { a1 = e.createNote(alice, `{"title":"words"}`) }, func() string {
			return fmt.Sprintf("[%d %d] [%d %d] [%d] [%d] [%d]", a1.ID, b1.ID, a1.ID, b1.ID, a1.ID, b1.ID, a1.ID)
		}},
		{"alice's note edited", func() {
			e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", a1.ID), alice, `{"title":"other"}`)
		}, func() string {
			return fmt.Sprintf("[%d %d] [%d] [%d] [%d] [%d]", a1.ID, b1.ID, b1.ID, a1.ID, b1.ID, a1.ID)
		}},
		{"bob's note made private", func() {
			e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", b1.ID), bob, `{"is_public":false}`)
		}, func() string { return fmt.Sprintf("[%d] [] [%d] [] [%d]", a1.ID, a1.ID, a1.ID) }},
		{"bob's public note", func() { b2 = e.createNote(bob, `{"title":"word","is_public":true}`) }, func() string {
			return fmt.Sprintf("[%d %d] [%d] [%d] [%d] [%d]", b2.ID, a1.ID, b2.ID, a1.ID, b2.ID, a1.ID)
		}},
		{"bob's public note deleted", func() {
			e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", b2.ID), bob, ``)
		}, func() string { return fmt.Sprintf("[%d] [] [%d] [] [%d]", a1.ID, a1.ID, a1.ID) }},
		{"bob's account deleted", func() {
			b2 = e.createNote(bob, `{"title":"word","is_public":true}`)
			e.get("/api/notes/", alice) // kept with bob's note in it
			e.do("DELETE", "/api/profile/", "application/json", `{"password":"`+testPassword+`"}`, "Authorization", "Bearer "+bob)
			pages[3] = fmt.Sprintf("/api/users/%d/notes/", aliceID)
		}, func() string { return fmt.Sprintf("[%d] [] [%d] [%d] [%d]", a1.ID, a1.ID, a1.ID, a1.ID) }},
	} {
		step.write()
		if got, want := seen(), step.want(); got != want {
			t.Errorf("after %s: alice's pages hold %s, want %s", step.name, got, want)
		}
	}
	if len(e.srv.pages.pages) == 0 {
		t.Error("no page was kept: this test tested nothing")
	}
}

// TestPageCacheBounds: pages that are large, or of a long search, are not
// kept, the bodies kept stay under pageCacheBytes and the pages under
// pageCacheEntries, and a page is used only
// under its version, for pageCacheTTL.
func TestPageCacheBounds(t *testing.T) {
	t.Parallel()
	c := newPageCache()
	v, now := listVersion{}, time.Now()
	c.put(pageKey{viewer: 1}, v, now, make([]byte, pageCacheMaxBody+1), false)
	c.put(pageKey{viewer: 2, search: strings.Repeat("q", pageCacheMaxSearch+1)}, v, now, []byte("[]"), false)
	if len(c.pages) != 0 {
		t.Errorf("%d pages kept, want none", len(c.pages))
	}
	for i := range 2 * pageCacheBytes / pageCacheMaxBody {
		c.put(pageKey{viewer: int64(i)}, v, now, make([]byte, pageCacheMaxBody), false)
		if c.bytes > pageCacheBytes {
			t.Fatalf("%d bytes kept, more than %d", c.bytes, pageCacheBytes)
		}
	}
	for i := range 2 * pageCacheEntries { // empty pages: few bytes, many keys
		c.put(pageKey{viewer: 1, offset: i}, v, now, []byte("[]"), false)
		if len(c.pages) > pageCacheEntries {
			t.Fatalf("%d pages kept, more than %d", len(c.pages), pageCacheEntries)
		}
	}
	c.put(pageKey{viewer: 1}, v, now, []byte("[]"), false)
	if _, _, ok := c.get(pageKey{viewer: 1}, v, now.Add(pageCacheTTL-time.Millisecond)); !ok {
		t.Error("a page was not used within its time")
	}
	if _, _, ok := c.get(pageKey{viewer: 1}, listVersion{public: 1}, now); ok {
		t.Error("a page was used under another version")
	}
	if _, _, ok := c.get(pageKey{viewer: 1}, v, now.Add(pageCacheTTL)); ok {
		t.Error("a page was used after pageCacheTTL")
	}
}
