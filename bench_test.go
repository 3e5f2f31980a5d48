package main

import (
	"context"
	"fmt"
	"testing"
)

// Benchmarks of the hot paths through the real handler (router, auth,
// SQLite on a temp file), as the perf harness drives them:
//
//	go test -run XXX -bench Handler -benchmem .
func BenchmarkHandler(b *testing.B) {
	e := newTestEnv(b, func(c *config) { c.ipLimit = 0; c.loginLimit = 0; c.writeLimit = 0; c.maxNotes = 0 })
	e.register("alice")
	tokens := e.login("alice")
	for i := range 20 {
		e.createNote(tokens.Access, fmt.Sprintf(`{"title":"note %d","body":"Some text of a note, not too long.","is_public":%v}`, i, i%2 == 0))
	}

	b.Run("notes-list", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if res := e.get("/api/notes/", tokens.Access); res.status != 200 {
				b.Fatal(res.status, res.body)
			}
		}
	})
	b.Run("refresh", func(b *testing.B) {
		b.ReportAllocs()
		chain := e.login("alice")
		for b.Loop() {
			res := e.refresh(chain.Refresh)
			if res.status != 200 {
				b.Fatal(res.status, res.body)
			}
			decode(b, res.body, &chain)
		}
	})
	b.Run("create-note", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res := e.withToken("POST", "/api/notes/create/", tokens.Access, `{"title":"bench","body":"a note","is_public":false}`)
			if res.status != 201 {
				b.Fatal(res.status, res.body)
			}
		}
	})
	// Many clients at once, as under the harness: the writer commits the
	// writes that queue together in one transaction (group commit), and
	// writes/commit says how many that was on average.
	b.Run("create-note-parallel", func(b *testing.B) {
		b.ReportAllocs()
		st := e.srv.store
		commits, writes := st.db.commits.Load(), st.db.committed.Load()
		b.SetParallelism(16) // 16 goroutines per core
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res := e.withToken("POST", "/api/notes/create/", tokens.Access, `{"title":"bench","body":"a note","is_public":false}`)
				if res.status != 201 {
					b.Error(res.status, res.body)
					return
				}
			}
		})
		b.ReportMetric(float64(st.db.committed.Load()-writes)/float64(max(1, st.db.commits.Load()-commits)), "writes/commit")
	})
}

// BenchmarkCredentialsAtScale looks users up by name, as login does, in a
// table of a million users: the first, the last and a name nobody has must
// cost the same (an index lookup each), or login time would grow with the
// table and tell who exists.
//
//	go test -run XXX -bench CredentialsAtScale .
func BenchmarkCredentialsAtScale(b *testing.B) {
	e := newTestEnv(b)
	const users = 1_000_000
	e.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
		INSERT INTO users (username, username_key, email, email_key, password, date_joined)
		SELECT 'user' || i, 'user' || i, 'user' || i || '@example.com', 'user' || i || '@example.com', 'x', 0 FROM n`, users)
	ctx := context.Background()
	for _, name := range []string{"user1", fmt.Sprint("user", users), "nobody"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := e.srv.store.credentials(ctx, name); err != nil && err != errNotFound {
					b.Fatal(err)
				}
			}
		})
	}
}
