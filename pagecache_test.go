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
		t.Run(step.name, func(t *testing.T) {
			step.write()
			if got, want := seen(), step.want(); got != want {
				t.Errorf("after %s: alice's pages hold %s, want %s", step.name, got, want)
			}
		})
	}
	if e.srv.pages.entries == 0 {
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
	v, now, emptyPage := listVersion{}, time.Now(), notesPage{body: []byte("[]")}
	c.put(pageKey{viewer: 1}, v, now, notesPage{body: make([]byte, pageCacheMaxBody+1)}, false)
	c.put(pageKey{viewer: 2, search: strings.Repeat("q", pageCacheMaxSearch+1)}, v, now, emptyPage, false)
	if c.entries != 0 {
		t.Errorf("%d pages kept, want none", c.entries)
	}
	for i := range 2 * pageCacheBytes / pageCacheMaxBody {
		c.put(pageKey{viewer: int64(i)}, v, now, notesPage{body: make([]byte, pageCacheMaxBody)}, false)
		if c.bytes > pageCacheBytes {
			t.Fatalf("%d bytes kept, more than %d", c.bytes, pageCacheBytes)
		}
	}
	for i := range 2 * pageCacheEntries { // empty pages: few bytes, many keys
		c.put(pageKey{viewer: 1, offset: i}, v, now, emptyPage, false)
		if c.entries > pageCacheEntries {
			t.Fatalf("%d pages kept, more than %d", c.entries, pageCacheEntries)
		}
	}
	c.put(pageKey{viewer: 1}, v, now, emptyPage, false)
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

// TestPageCacheTakesANewPrivateNote: after a private note is created, the
// owner's first pages are answered from the cache with the note at their
// head, and each answer, body and Link, is byte for byte what the database
// gives with the cache off: pages that fill up, a page of one, pages that
// are not patched (an offset, a search, someone else's notes), a public
// note, and a note written with the clock set back, which is not the
// newest.
func TestPageCacheTakesANewPrivateNote(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice").Access
	bobID := e.register("bob")
	bob := e.login("bob").Access
	e.createNote(bob, `{"title":"bob's public note","is_public":true}`)
	e.createNote(alice, `{"title":"alice's first note"}`)
	paths := []string{"/api/notes/", "/api/notes/?mine=1", fmt.Sprintf("/api/users/%d/notes/", aliceID),
		"/api/notes/?limit=3", "/api/notes/?limit=1", "/api/notes/?offset=1", "/api/notes/?q=note",
		fmt.Sprintf("/api/users/%d/notes/", bobID)}
	// patched are the pages that take a new private note (the default page
	// size is more than the notes written here).
	patched := []pageKey{{aliceID, 0, "", defaultPageSize, 0}, {aliceID, aliceID, "", defaultPageSize, 0},
		{aliceID, 0, "", 3, 0}, {aliceID, 0, "", 1, 0}}
	check := func(after string, wantPatched bool) {
		t.Helper()
		version := e.srv.store.lists.version(aliceID)
		for _, key := range patched {
			if _, _, ok := e.srv.pages.get(key, version, e.clock.now()); ok != wantPatched {
				t.Errorf("after %s: page %+v kept under the current version: %v, want %v", after, key, ok, wantPatched)
			}
		}
		for _, path := range paths {
			cached := e.get(path, alice)
			pages := e.srv.pages
			e.srv.pages = nil
			fresh := e.get(path, alice)
			e.srv.pages = pages
			if cached.body != fresh.body || cached.header.Get("Link") != fresh.header.Get("Link") {
				t.Errorf("after %s, %s from the cache:\n%s %s\nfrom the database:\n%s %s", after, path,
					cached.body, cached.header.Get("Link"), fresh.body, fresh.header.Get("Link"))
			}
		}
	}
	check("the first notes", false)
	for i := range 4 {
		e.clock.advance(time.Millisecond)
		e.createNote(alice, fmt.Sprintf(`{"title":"note %d","body":"a \"quoted\" <b>body</b>"}`, i))
		check(fmt.Sprintf("private note %d", i), true)
	}
	e.createNote(alice, `{"title":"a public note","is_public":true}`)
	check("a public note", false)
	e.clock.advance(-10 * time.Millisecond) // before the notes above, in the token's second
	e.createNote(alice, `{"title":"written with the clock set back"}`)
	check("a note written with the clock set back", false)
	if ids := listIDs(t, e.get("/api/notes/?mine=1", alice)); len(ids) != 7 {
		t.Errorf("alice's notes: %v, want 7", ids)
	}
}

// TestPageCacheCreatedKeepsOnlyWhatItKnows: created patches a page only if
// it was current just before the write it is told of; a page read after
// the commit but before the count holds the note already, and is given the
// version as it is.
func TestPageCacheCreatedKeepsOnlyWhatItKnows(t *testing.T) {
	t.Parallel()
	now := time.Now()
	older := note{ID: 1, UserID: 7, Title: "older", Updated: now}
	newer := note{ID: 2, UserID: 7, Title: "newer", Updated: now}
	withOlder, _ := newNotesPage([]note{older})
	withBoth, _ := newNotesPage([]note{newer, older})
	item, _ := marshalJSON(newNoteJSON(newer))
	key := pageKey{viewer: 7, limit: 20}
	before, moved := listVersion{3, 4}, listVersion{3, 5}
	for _, c := range []struct {
		name    string
		kept    notesPage
		version listVersion
		want    string // the page under moved; "" if none
	}{
		{"current before the write", withOlder, before, string(withBoth.body)},
		{"read after the commit", withBoth, before, string(withBoth.body)},
		{"already stale", withOlder, listVersion{3, 3}, ""},
		{"another public write since", withOlder, listVersion{2, 4}, ""},
	} {
		pages := newPageCache()
		pages.put(key, c.version, now, c.kept, false)
		pages.created(7, moved, orderOf(newer), item)
		body, _, ok := pages.get(key, moved, now)
		if got := string(body); !ok && c.want != "" || ok && got != c.want {
			t.Errorf("%s: kept %v %s, want %q", c.name, ok, got, c.want)
		}
	}
}
