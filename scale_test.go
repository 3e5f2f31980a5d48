package main

// The scale benchmark: every hot route on a database of a million rows and
// on one of a thousand, through the real handler, and the ratio of the two.
// A measurement, not a test; run it with
//
//	go test -run TestScale -v -scale -timeout 30m .
//
// It builds both databases with straight SQL (one password hash in all),
// then times each route on each, the two sizes alternating, and prints a
// table: the time per request on each and the ratio large/small. The page
// and session caches are off, so that each request costs what a first one
// does (-scale-cached turns them on).

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	scaleEnabled = flag.Bool("scale", false, "run TestScale: every hot route at 1,000 and 1,000,000 rows")
	scaleCached  = flag.Bool("scale-cached", false, "TestScale with the page and session caches on")
)

// scaleDB fills a fresh test server's database: users users (user1 ...),
// one note each but for user1, who holds big notes (one in ten public); a
// live session each, and five blacklist rows each.
func scaleDB(t *testing.T, users, big int) *testEnv {
	t.Helper()
	e := newTestEnv(t, func(c *config) {
		c.ipLimit, c.loginLimit, c.writeLimit, c.maxNotes, c.maxNotesMB, c.searchLimit = 0, 0, 0, 0, 0, 0
	})
	if !*scaleCached {
		// Every request asks the database, as a first request would: the
		// caches would answer the same pages and sessions from memory.
		e.srv.pages, e.srv.store.access = nil, nil
	}
	hash, err := e.srv.passwords.hash(context.Background(), testPassword)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO users (username, username_key, email, email_key, password, date_joined)
		SELECT 'user' || i, 'user' || i, 'user' || i || '@example.com', 'user' || i || '@example.com', ?, 0 FROM n`,
		users, hash)
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO notes (user_id, title, body, search, is_public, created, updated, size)
		SELECT iif(i <= ?, 1, i - ? + 1), 'note ' || i, 'some words of note ' || i,
			'note ' || i || char(0) || 'some words of note ' || i, i % 10 = 0, i, i, 30 FROM n`,
		users, big, big)
	e.exec(`UPDATE users SET notes_count = iif(id = 1, ?, 1), notes_bytes = iif(id = 1, ?, 30)`, big, 30*big)
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO sessions (id, user_id, created, last_used, expires) SELECT printf('%032x', i), i, 0, 0, 9e15 FROM n`,
		users)
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO blacklist (jti, expires, blacklisted_at)
		SELECT printf('%032x', i), 9e15, 0 FROM n`, 5*users)
	built := time.Since(start)
	// The triggers wrote every note down as pending: the indexer's batches
	// take them in, then merge the index, as after any bulk load.
	start = time.Now()
	e.catchUp()
	caughtUp := time.Since(start)
	start = time.Now()
	if err := e.srv.store.search.merge(context.Background()); err != nil { // as the indexer does after a catch-up
		t.Fatal(err)
	}
	t.Logf("%d users: built in %v, search index caught up in %v and merged in %v", users, built.Round(time.Millisecond),
		caughtUp.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return e
}

// scaleRoute is one route to time: setup runs untimed before each call.
type scaleRoute struct {
	name  string
	calls int
	call  func(e *testEnv, s *scaleState) response
}

// scaleState is what the routes share on one database.
type scaleState struct {
	tokens  tokenPair
	lastID  int64 // a note of user1 to update
	spare   []tokenPair
	lastUsr string
}

func TestScale(t *testing.T) {
	if !*scaleEnabled {
		t.Skip("a measurement: run with -scale")
	}
	// user1 holds 100 notes of the small database's thousand: as many as
	// the profile embeds, so that its answer is as long on both.
	small, large := scaleDB(t, 1_000, 100), scaleDB(t, 1_000_000, 50_000)
	states := map[*testEnv]*scaleState{}
	for e, users := range map[*testEnv]int{small: 1_000, large: 1_000_000} {
		s := &scaleState{tokens: e.login("user1"), lastUsr: fmt.Sprint("user", users)}
		for range 40 {
			s.spare = append(s.spare, e.login("user2"))
		}
		s.lastID = e.createNote(s.tokens.Access, `{"title":"to edit"}`).ID
		states[e] = s
	}
	get := func(path string) func(*testEnv, *scaleState) response {
		return func(e *testEnv, s *scaleState) response { return e.get(path, s.tokens.Access) }
	}
	login := func(name func(*scaleState) string) func(*testEnv, *scaleState) response {
		return func(e *testEnv, s *scaleState) response {
			return e.postJSON("/api/token/", fmt.Sprintf(`{"username":%q,"password":%q}`, name(s), testPassword))
		}
	}
	routes := []scaleRoute{
		{"login, first user", 5, login(func(*scaleState) string { return "user1" })},
		{"login, last user", 5, login(func(s *scaleState) string { return s.lastUsr })},
		{"login, unknown user", 5, login(func(*scaleState) string { return "nobody" })},
		{"GET /api/sessions/ (authenticated GET)", 300, get("/api/sessions/")},
		{"refresh", 300, func(e *testEnv, s *scaleState) response {
			res := e.refresh(s.tokens.Refresh)
			if res.status == 200 {
				decode(e.t, res.body, &s.tokens)
			}
			return res
		}},
		{"notes list", 300, get("/api/notes/")},
		{"notes list, mine=1", 300, get("/api/notes/?mine=1")},
		{"search, many matches", 300, get("/api/notes/?q=words")},
		{"search, no match", 300, get("/api/notes/?q=zebra")},
		{"user notes", 300, get("/api/users/1/notes/")},
		{"profile", 100, get("/api/profile/")},
		{"create note", 300, func(e *testEnv, s *scaleState) response {
			return e.withToken("POST", "/api/notes/", s.tokens.Access, `{"title":"new","body":"text"}`)
		}},
		{"update note", 300, func(e *testEnv, s *scaleState) response {
			return e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", s.lastID), s.tokens.Access, `{"body":"edited"}`)
		}},
		{"delete note", 300, func(e *testEnv, s *scaleState) response {
			n := e.createNote(s.tokens.Access, `{"title":"to delete"}`)
			return e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", n.ID), s.tokens.Access, "")
		}},
		{"logout", 40, func(e *testEnv, s *scaleState) response {
			p := s.spare[0]
			s.spare = s.spare[1:]
			return e.postJSON("/api/token/blacklist/", fmt.Sprintf(`{"refresh":%q}`, p.Refresh))
		}},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-40s %12s %12s %8s\n", "route", "1,000 rows", "1,000,000", "ratio")
	worst := 0.0
	for _, r := range routes {
		var took [2]time.Duration
		for round := range 2 { // each size twice, alternating; the faster round counts
			for i, e := range []*testEnv{small, large} {
				s := states[e]
				start := time.Now()
				for range r.calls / 2 {
					if res := r.call(e, s); res.status >= 300 && !(strings.HasPrefix(r.name, "login, unknown") && res.status == 401) {
						t.Fatalf("%s: %d %s", r.name, res.status, truncate(res.body, 200))
					}
				}
				if d := time.Since(start) / time.Duration(r.calls/2); round == 0 || d < took[i] {
					took[i] = d
				}
			}
		}
		ratio := float64(took[1]) / float64(took[0])
		worst = max(worst, ratio)
		fmt.Fprintf(&b, "%-40s %12v %12v %8.2f\n", r.name, took[0].Round(time.Microsecond), took[1].Round(time.Microsecond), ratio)
	}
	fmt.Fprintf(&b, "worst ratio %.2f; peak RSS of this process %d MB\n", worst, procStatus(os.Getpid(), "VmHWM")/1024)
	t.Log(b.String())
}

// TestScaleFlush: a flush of a million expired blacklist rows beside
// writers. It deletes in transactions of flushBatch rows, so the writers'
// latency (p99 of note creates) should rise little while it runs.
//
//	go test -run TestScaleFlush -v -scale .
func TestScaleFlush(t *testing.T) {
	if !*scaleEnabled {
		t.Skip("a measurement: run with -scale")
	}
	e := newTestEnv(t, func(c *config) { c.writeLimit, c.maxNotes, c.maxNotesMB = 0, 0, 0 })
	e.register("alice")
	tokens := e.login("alice")
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
		INSERT INTO blacklist (jti, expires, blacklisted_at) SELECT printf('%032x', i), 1, 0 FROM n`)
	creates := func(n int) []time.Duration {
		var mu sync.Mutex
		var took []time.Duration
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range n / 8 {
					start := time.Now()
					res := e.withToken("POST", "/api/notes/", tokens.Access, `{"title":"t"}`)
					d := time.Since(start)
					if res.status != 201 {
						t.Errorf("create: %d", res.status)
						return
					}
					mu.Lock()
					took = append(took, d)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		slices.Sort(took)
		return took
	}
	p99 := func(d []time.Duration) time.Duration { return d[len(d)*99/100] }
	quiet := creates(4000)
	flushed := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		if _, _, err := e.srv.store.flushExpired(context.Background(), e.clock.now()); err != nil {
			t.Error(err)
		}
		flushed <- time.Since(start)
	}()
	busy := creates(4000)
	flushTook := <-flushed
	t.Logf("create p99: %v alone, %v beside a flush of 1,000,000 rows (ratio %.2f); the flush took %v",
		p99(quiet).Round(time.Microsecond), p99(busy).Round(time.Microsecond),
		float64(p99(busy))/float64(p99(quiet)), flushTook.Round(time.Millisecond))
}

// TestSearchCost: what a search costs beside a plain list on 50,000 public
// notes of common words (200 of them, 20 to 60 a note), through the real
// handler with the caches off: the searches an attacker would send (common
// words that match nothing, a long run of them, one of the words), each as
// a ratio to the plain list. A measurement, run with -scale:
//
//	go test -run TestSearchCost -v -scale .
func TestSearchCost(t *testing.T) {
	if !*scaleEnabled {
		t.Skip("a measurement: run with -scale")
	}
	e := newTestEnv(t, func(c *config) {
		c.ipLimit, c.loginLimit, c.writeLimit, c.maxNotes, c.maxNotesMB, c.searchLimit = 0, 0, 0, 0, 0, 0
	})
	e.srv.pages, e.srv.store.access = nil, nil
	words := strings.Fields(`the of and to a in is it you that he was for on are with as I his they be at one have this
		from or had by hot word but what some we can out other were all there when up use your how said an each she
		which do their time if will way about many then them write would like so these her long make thing see him two
		has look more day could go come did number sound no most people my over know water than call first who may down
		side been now find any new work part take get place made live where after back little only round man year came
		show every good me give our under name very through just form sentence great think say help low line differ turn
		cause much mean before move right boy old too same tell does set three want air well also play small end put home
		read hand port large spell add even land here must big high such follow act why ask men change went light kind
		off need house picture try us again animal point mother world near build self earth father`)
	e.register("reader")
	e.register("writer") // user 2, who wrote the notes
	random := rand.New(rand.NewSource(1))
	if err := e.srv.store.write(context.Background(), func(tx *txn, _ *changed) error {
		for i := range 50_000 {
			var w []string
			for range 20 + random.Intn(40) {
				w = append(w, words[random.Intn(len(words))])
			}
			title, body := strings.Join(w[:3], " "), strings.Join(w[3:], " ")
			if _, err := tx.ExecContext(context.Background(), `INSERT INTO notes (user_id, title, body, search, is_public,
				created, updated, size) VALUES (2, ?, ?, ?, 1, ?, ?, ?)`, title, body, searchKey(title, body), i, i, len(title)+len(body)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.catchUp()
	if err := e.srv.store.search.merge(context.Background()); err != nil {
		t.Fatal(err)
	}
	access := e.login("reader").Access
	timeOf := func(q string) time.Duration {
		path := "/api/notes/?q=" + url.QueryEscape(q)
		if q == "" {
			path = "/api/notes/"
		}
		const calls = 50
		start := time.Now()
		for range calls {
			if res := e.get(path, access); res.status != 200 {
				t.Fatalf("%s: %d %s", path, res.status, res.body)
			}
		}
		return time.Since(start) / calls
	}
	plain := timeOf("")
	fmt.Printf("%-50s %10s %8s %s\n", "q", "per call", "× list", "narrowed")
	for _, q := range []string{"", strings.Repeat("the ", 49) + "zq", "the of and to a in is it you that he was for",
		"write would like so these", "xyzzy", "ing", "the", "of the", "the the the", "zq"} {
		_, narrowed, _ := e.srv.store.searchCandidates(context.Background(), q)
		d := timeOf(q)
		fmt.Printf("%-50.50q %10v %8.1f %v\n", q, d.Round(time.Microsecond), float64(d)/float64(plain), narrowed)
	}
}
