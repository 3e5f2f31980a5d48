package main

// accesscache.go: the user and session behind recent access tokens, kept in
// memory so that an authenticated request need not ask SQLite for them.
// Tuning: what it buys is in docs/PERFORMANCE.md (accesscache.go).
//
// The invariant: an answer is used only while no write of an account (a
// user's row, or a session's revocation) has committed since it was read.
// The store counts those writes (store.accounts, moved by committed after
// each such write and before it is answered); a reader takes the count
// before it asks the database, and its answer is kept under that count and
// used only while the count has not moved. So an answer read before a
// commit is never used after it. Writes by another process (the sqlite3
// shell) are seen once an answer is accessCacheTTL old. The flush deletes
// only sessions that are over, which no answer outlives: it holds its
// session's end.
//
// It knows users, session ends and counts, not SQL.

import (
	"sync"
	"time"
)

const (
	// accessCacheTTL is how long an answer is used at most.
	accessCacheTTL = time.Second
	// accessCacheSize bounds the answers kept; when full, all go.
	accessCacheSize = 10_000
)

// accessCache maps a session id to its user. A nil *accessCache keeps
// nothing (the scale benchmark times the database).
type accessCache struct {
	mu      sync.Mutex
	entries map[string]accessEntry
}

type accessEntry struct {
	user    user
	ends    time.Time // the session's expiry
	fetched time.Time
	version uint64 // the count of account writes it was read under
}

func newAccessCache() *accessCache {
	return &accessCache{entries: make(map[string]accessEntry)}
}

// lookup returns the user of a live session of userID's, if one was read
// under version.
func (c *accessCache) lookup(userID int64, sessionID string, version uint64, now time.Time) (user, bool) {
	if c == nil {
		return user{}, false
	}
	c.mu.Lock()
	e, ok := c.entries[sessionID]
	c.mu.Unlock()
	if !ok || e.version != version || e.user.ID != userID || !now.Before(e.ends) || now.Sub(e.fetched) >= accessCacheTTL {
		return user{}, false
	}
	return e.user, true
}

// keep records what the database said of a live session, read under
// version.
func (c *accessCache) keep(sessionID string, u user, ends time.Time, version uint64, now time.Time) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= accessCacheSize {
		clear(c.entries)
	}
	c.entries[sessionID] = accessEntry{user: u, ends: ends, fetched: now, version: version}
}
