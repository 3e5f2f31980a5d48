package main

// pagecache.go: recent pages of the notes list, kept as the JSON they were
// answered with, until a note they could hold is written.
//
// Tuning. A page of the list is two index walks in SQLite and the JSON of
// up to 100 notes: about 40% of the server's CPU per request in the
// harness's notes-list scenario (-cpuprofile), for an answer that changes
// only when a note changes. Which pages a note write can change is known
// (listVersions below): a private note, only its owner's pages; a
// public one, or one that turns public or private, everyone's. The store
// counts those writes, after each commits and before it is answered; a
// page is kept with the counts it was read under, and used only while they
// have not moved (nor a second passed: pageCacheTTL). Measured with
// scripts/perf-ab.sh (ROUNDS=3, 2026-12-02), the build without it against
// this one: notes-list 4.2× the CPU per request and 0.28× the requests a
// second; mixed, whose lists are 70% of its requests and whose creates are
// private notes, 1.81× and 0.61×; refresh and create-note 1.00×.
//
// It knows pages, their keys and the counts of note writes, not SQL and
// not HTTP.

import (
	"sync"
	"sync/atomic"
	"time"
)

const (
	// pageCacheTTL is how long a page is used at most: notes written by
	// another process (the sqlite3 shell) show after it.
	pageCacheTTL = time.Second
	// pageCacheBytes bounds the bodies kept, and pageCacheEntries the
	// pages (many empty pages, ?offset= past the end, hold few bytes each);
	// when either is full, all go.
	pageCacheBytes   = 4 << 20
	pageCacheEntries = 10_000
	// pageCacheMaxBody: a larger page is not kept.
	pageCacheMaxBody = 64 << 10
	// pageCacheMaxSearch: a page of a longer ?q= is not kept (its key
	// would be as long).
	pageCacheMaxSearch = 100
)

// pageKey is everything a page depends on but the notes.
type pageKey struct {
	viewer, owner int64
	search        string
	limit, offset int
}

type cachedPage struct {
	version listVersion
	read    time.Time
	body    []byte
	more    bool // there is a next page
}

// pageCache maps a page to its body while its version holds. A nil
// *pageCache keeps nothing (the scale benchmark times the database).
type pageCache struct {
	mu    sync.Mutex
	pages map[pageKey]cachedPage
	bytes int
}

func newPageCache() *pageCache {
	return &pageCache{pages: make(map[pageKey]cachedPage)}
}

// get returns the page of key if it was kept under version, less than
// pageCacheTTL ago.
func (c *pageCache) get(key pageKey, version listVersion, now time.Time) (body []byte, more, ok bool) {
	if c == nil {
		return nil, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[key]
	if !ok || p.version != version || now.Sub(p.read) >= pageCacheTTL {
		return nil, false, false
	}
	return p.body, p.more, true
}

// put keeps a page read at now under version (both taken before it was
// read).
func (c *pageCache) put(key pageKey, version listVersion, now time.Time, body []byte, more bool) {
	if c == nil || len(body) > pageCacheMaxBody || len(key.search) > pageCacheMaxSearch {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.pages[key]; ok {
		c.bytes -= len(old.body)
	}
	if c.bytes+len(body) > pageCacheBytes || len(c.pages) >= pageCacheEntries {
		clear(c.pages)
		c.bytes = 0
	}
	c.pages[key] = cachedPage{version: version, read: now, body: body, more: more}
	c.bytes += len(body)
}

// listVersion is what a page of viewer's depends on: the count of writes
// of public notes, and of private notes of viewer's.
type listVersion struct{ public, private uint64 }

// listVersions counts note writes, as the store reports them. Private
// writes are counted in slots by owner: owners that share a slot forget
// each other's pages too, which costs a read and is never wrong.
type listVersions struct {
	public  atomic.Uint64
	private [1024]atomic.Uint64
}

// version is viewer's, taken before a page is read.
func (v *listVersions) version(viewer int64) listVersion {
	return listVersion{v.public.Load(), v.private[uint64(viewer)%uint64(len(v.private))].Load()}
}

// changed records a committed write of a note of owner's that is or was
// public (public) or else private.
func (v *listVersions) changed(owner int64, public bool) {
	if public {
		v.public.Add(1)
		return
	}
	v.private[uint64(owner)%uint64(len(v.private))].Add(1)
}
