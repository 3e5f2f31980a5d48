package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// catchUp folds every pending change into the trigram index, as the
// indexer does in the background, and checks that nothing is left.
func (e *testEnv) catchUp() {
	e.t.Helper()
	waiting := e.count(`SELECT (SELECT count(*) FROM notes_search_pending) + (SELECT count(*) FROM notes_search_gone)`)
	for batches := 0; ; batches++ {
		more, err := e.srv.store.search.indexBatch(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if !more {
			break
		}
		if batches > waiting/indexBatch+2 {
			e.t.Fatal("the index never catches up")
		}
	}
	if n := e.count(`SELECT (SELECT count(*) FROM notes_search_pending) + (SELECT count(*) FROM notes_search_gone)`); n != 0 {
		e.t.Fatalf("%d rows still pending after catching up", n)
	}
}

// TestSearchIndexKeepsTheAnswers: a search answers the same whether the
// index holds every note, none of them (all pending), or an older version
// of some (written since): the index only finds candidates faster.
func TestSearchIndexKeepsTheAnswers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	e.register("bob")
	bob := e.login("bob").Access
	a1 := e.createNote(alice, `{"title":"Shopping","body":"milk, eggs and bread"}`)
	e.clock.advance(time.Second)
	b1 := e.createNote(bob, `{"title":"Bob's public recipe","body":"Milk \"quoted\" 100% sure_thing","is_public":true}`)
	e.clock.advance(time.Second)
	b2 := e.createNote(bob, `{"title":"Bob private","body":"milk diary"}`)
	e.clock.advance(time.Second)
	a2 := e.createNote(alice, `{"title":"ÉCOLE","body":"über straße","is_public":true}`)
	e.clock.advance(time.Second)

	searches := func(state string, want map[string][]int64) {
		t.Helper()
		for q, ids := range want {
			if got := listIDs(t, e.get("/api/notes/?q="+q, alice)); fmt.Sprint(got) != fmt.Sprint(ids) {
				t.Errorf("%s: ?q=%s = %v, want %v", state, q, got, ids)
			}
		}
	}
	before := map[string][]int64{
		"MILK":                  {b1.ID, a1.ID}, // not bob's private one
		"eggs%20and":            {a1.ID},
		"%22quoted%22":          {b1.ID}, // a quote is a character, not FTS5 syntax
		"100%25%20sure_":        {b1.ID},
		"s_re":                  {},
		"%C3%A9cole":            {a2.ID}, // école
		"STRASSE":               {},      // folding is lower-casing: ß stays ß
		"stra%C3%9Fe":           {a2.ID},
		"bread" + "%00" + "bob": {},
		"shopping%00milk":       {}, // NUL only separates title from body
		"diary":                 {},
	}
	// Every note pending, the index empty: as a database written by the
	// triggers alone.
	e.exec(`DELETE FROM notes_search`)
	e.exec(`INSERT OR REPLACE INTO notes_search_pending (note_id, indexed) SELECT id, 0 FROM notes`)
	searches("all pending", before)
	e.catchUp()
	if n := e.count(`SELECT count(*) FROM notes_search WHERE notes_search MATCH '"milk"'`); n != 3 {
		t.Fatalf("the index holds %d notes with milk, want 3", n)
	}
	searches("all indexed", before)

	// Written since: the index holds the old text of a1 and b1, and b2 is gone.
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", a1.ID), alice, `{"body":"cheese"}`)
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", b1.ID), bob, `{"is_public":false}`)
	e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", b2.ID), bob, ``)
	a3 := e.createNote(alice, `{"body":"more milk"}`)
	after := map[string][]int64{
		"milk":   {a3.ID},
		"cheese": {a1.ID},
		"bread":  {},
		"quoted": {},
	}
	searches("written since", after)
	e.catchUp()
	searches("indexed again", after)
	if n := e.count(`SELECT count(*) FROM notes_search WHERE notes_search MATCH '"milk"'`); n != 2 {
		t.Errorf("the index holds %d notes with milk, want 2 (b1's text and a3)", n)
	}
	// A note deleted before it was ever indexed leaves nothing behind.
	gone := e.createNote(alice, `{"body":"fleeting"}`)
	e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", gone.ID), alice, ``)
	if n := e.count(`SELECT count(*) FROM notes_search_pending WHERE note_id = ?`, gone.ID) +
		e.count(`SELECT count(*) FROM notes_search_gone WHERE note_id = ?`, gone.ID); n != 0 {
		t.Errorf("a note never indexed left %d rows to fold in", n)
	}
}

// TestSearchIndexInBatches: more changes than a batch take several, and the
// account's deletion takes its notes out of the index.
func TestSearchIndexInBatches(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice").Access
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO notes (user_id, title, search, created, updated) SELECT ?, 'n' || i, 'n' || i || char(0), i, i FROM n`,
		2*indexBatch+7, aliceID)
	if got := listIDs(t, e.get("/api/notes/?q=n1007&limit=5", alice)); len(got) != 1 {
		t.Errorf("pending: ?q=n1007 found %v", got)
	}
	e.catchUp()
	if n := e.count(`SELECT count(*) FROM notes_search WHERE notes_search MATCH '"n1007"'`); n != 1 {
		t.Errorf("the index holds %d notes for n1007, want 1", n)
	}
	if got := listIDs(t, e.get("/api/notes/?q=n1007&limit=5", alice)); len(got) != 1 {
		t.Errorf("indexed: ?q=n1007 found %v", got)
	}
	if err := e.srv.store.search.merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, e.get("/api/notes/?q=n1007&limit=5", alice)); len(got) != 1 {
		t.Errorf("merged: ?q=n1007 found %v", got)
	}
	if res := e.do("DELETE", "/api/profile/", "application/json", `{"password":"`+testPassword+`"}`,
		"Authorization", "Bearer "+alice); res.status != 204 {
		t.Fatalf("delete account: %d %s", res.status, res.body)
	}
	if n := e.count(`SELECT count(*) FROM notes_search_gone`); n != 2*indexBatch+7 {
		t.Errorf("%d notes to take out of the index, want %d", n, 2*indexBatch+7)
	}
	e.catchUp()
	if n := e.count(`SELECT count(*) FROM notes_search WHERE notes_search MATCH '"n10"'`); n != 0 {
		t.Errorf("the index still holds %d of the deleted account's notes", n)
	}
}

// TestSearchOfACommonSubstringWalks: when candidatesCap notes or more
// hold every trigram of the search (here: someone else's private notes), or
// wait to be indexed, the index names no candidates and the search walks
// the caller's notes in order instead, and still answers right.
func TestSearchOfACommonSubstringWalks(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	bobID := e.register("bob")
	mine := e.createNote(alice, `{"body":"zebra crossing"}`)
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO notes (user_id, body, search, created, updated) SELECT ?, 'zebra', char(0) || 'zebra', i, i FROM n`,
		candidatesCap, bobID)
	indexed := func(search string) bool {
		t.Helper()
		_, indexed, err := e.srv.store.searchCandidates(context.Background(), search)
		if err != nil {
			t.Fatal(err)
		}
		return indexed
	}
	// Before the indexer has caught up, that many notes pending are as
	// many candidates: a walk.
	if indexed("crossing") {
		t.Fatalf("with %d notes pending, the index named the candidates of crossing", candidatesCap)
	}
	if got := listIDs(t, e.get("/api/notes/?q=crossing", alice)); fmt.Sprint(got) != fmt.Sprint([]int64{mine.ID}) {
		t.Errorf("?q=crossing = %v, want alice's note %d", got, mine.ID)
	}
	e.catchUp()
	if !indexed("crossing") || indexed("zebra") {
		t.Fatalf("caught up: crossing indexed %v (want true), zebra %v (want false)", indexed("crossing"), indexed("zebra"))
	}
	if got := listIDs(t, e.get("/api/notes/?q=zebra", alice)); fmt.Sprint(got) != fmt.Sprint([]int64{mine.ID}) {
		t.Errorf("?q=zebra = %v, want alice's note %d alone", got, mine.ID)
	}
}

func TestProbedTrigrams(t *testing.T) {
	long := []rune("abcdefghijklmnopqrstuvwxyz0123456789")
	for search, want := range map[string]string{
		"abc":                   "[abc]",
		`a"b c`:                 `[b c a"b "b ]`,
		"the of and":            "[e o f a the he   of of   an and]",
		"écoles":                "[éco col ole les]",
		strings.Repeat("é", 30): "[ééé]",
		string(long):            "[abc cde efg ghi ijk lmn nop pqr rst tuv wxy yz0 012 234 456 789]",
	} {
		if got := fmt.Sprint(probedTrigramsOf([]rune(search))); got != want {
			t.Errorf("probedTrigramsOf(%q) = %s; want %s", search, got, want)
		}
	}
}

// TestBroadSearchesAreLimited: a search the index cannot narrow at a cost
// that does not grow with the notes (here, under three characters) spends
// one of the account's -search-limit a minute, and past it gets 429; one
// the index narrows is never refused; a q over 200 characters is a 400.
func TestBroadSearchesAreLimited(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.searchLimit = 2 })
	e.register("alice")
	alice := e.login("alice").Access
	e.createNote(alice, `{"title":"zebra crossing"}`)
	e.catchUp()
	for i, q := range []string{"ze", "br"} {
		if res := e.get("/api/notes/?q="+q, alice); res.status != 200 {
			t.Fatalf("broad search %d: %d %s", i+1, res.status, res.body)
		}
	}
	res := e.get("/api/notes/?q=ra", alice)
	wantThrottled(t, res, 60)
	if res := e.get("/api/notes/?q=crossing", alice); res.status != 200 || len(listIDs(t, res)) != 1 {
		t.Errorf("a narrowed search past the limit: %d %s", res.status, res.body)
	}
	// The attack's search: common words and a rare end. Narrowed.
	if _, narrowed, err := e.srv.store.searchCandidates(context.Background(), strings.Repeat("the ", 49)+"zq"); err != nil || !narrowed {
		t.Errorf("the 49 common words and zq: narrowed %v, %v", narrowed, err)
	}
	want(t, e.get("/api/notes/?q="+strings.Repeat("a", 201), alice), 400, `{"q":["Ensure this field has no more than 200 characters."]}`)
}
