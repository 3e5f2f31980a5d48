package main

// accesscache.go: the user and session behind recent access tokens, kept in
// memory so that an authenticated request need not ask SQLite for them.
//
// Tuning. Every authenticated request checks that its user exists and its
// session is live (store.userForAccess): one indexed query, 12% of the
// server's CPU in the harness's notes-list scenario (-cpuprofile). The
// answer changes only when a user or a session's revocation is written,
// and every such write goes through this server's one writer. So the store
// keeps the answers here and, after each of those writes commits and before
// it is answered, calls forget: every entry is dropped at once. A request
// that read the database before that commit cannot leave a stale entry
// behind: it records the generation before it reads, and an entry of an
// older generation is never used. Measured with scripts/perf-ab.sh
// (ROUNDS=3, 2026-12-02), the build without it against this one, CPU per
// request: create-note 1.20×, mixed 1.14×, notes-list 1.10×; refresh, which
// does not ask, 0.97×.
//
// Writes by another process (the sqlite3 shell) are not seen until an entry
// is accessCacheTTL old. jwtnotes flushexpiredtokens deletes only sessions
// that are over, which no entry outlives: an entry holds its session's end.
//
// It knows users and session ends, not SQL.

import (
	"sync"
	"time"
)

const (
	// accessCacheTTL is how long an entry is used at most.
	accessCacheTTL = time.Second
	// accessCacheSize bounds the entries; when full, all go.
	accessCacheSize = 10_000
)

// accessCache maps a session id to its user, for as long as nothing that
// could change the answer has been written. A nil *accessCache keeps
// nothing (the scale benchmark times the database).
type accessCache struct {
	mu      sync.Mutex
	gen     uint64 // bumped by forget
	entries map[string]accessEntry
}

type accessEntry struct {
	user    user
	ends    time.Time // the session's expiry
	fetched time.Time
	gen     uint64
}

func newAccessCache() *accessCache {
	return &accessCache{entries: make(map[string]accessEntry)}
}

// lookup returns the user of a live session of userID's, if known.
func (c *accessCache) lookup(userID int64, sessionID string, now time.Time) (user, bool) {
	if c == nil {
		return user{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[sessionID]
	gen := c.gen
	c.mu.Unlock()
	if !ok || e.gen != gen || e.user.ID != userID || !now.Before(e.ends) || now.Sub(e.fetched) >= accessCacheTTL {
		return user{}, false
	}
	return e.user, true
}

// generation is what a reader records before it asks the database.
func (c *accessCache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// keep records what the database said of a live session, read after
// generation returned gen; it is dropped if anything was forgotten since.
func (c *accessCache) keep(sessionID string, u user, ends time.Time, gen uint64, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= accessCacheSize {
		clear(c.entries)
	}
	c.entries[sessionID] = accessEntry{user: u, ends: ends, fetched: now, gen: gen}
}

// forget drops every entry: a user or a session's revocation was written.
func (c *accessCache) forget() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}
