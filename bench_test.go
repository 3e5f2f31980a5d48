package main

import (
	"encoding/json"
	"fmt"
	"testing"
)

// Benchmarks of the hot paths through the real handler (router, auth,
// SQLite on a temp file), as the perf harness drives them:
//
//	go test -run XXX -bench Handler -benchmem .
func BenchmarkHandler(b *testing.B) {
	e := newTestEnv(b, func(c *config) { c.ipLimit = 0; c.loginLimit = 0 })
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
			json.Unmarshal([]byte(res.body), &chain)
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
}
