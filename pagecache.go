package main

// pagecache.go: recent pages of the notes list, kept as the JSON they were
// answered with, until a note they could hold is written.
//
// Tuning: what it buys is in docs/PERFORMANCE.md (pagecache.go, and its
// head splice).
//
// The invariant: a page is used only while no note it could hold has been
// written since it was read. Which pages a note write can change is known:
// a private note, only its owner's pages; a public one, or one that turns
// public or private, everyone's. The store counts those writes
// (listVersions, store.go), after each commits and before it is answered;
// a page is kept with the counts it was read under, and used only while
// they have not moved (nor pageCacheTTL passed).
//
// A private note just created need not cost its owner a read: it is the
// newest, so the first page of each of the owner's lists is the page as it
// was with the note at its head (created below).
//
// It knows pages, their keys, the list's order and the counts of note
// writes, not SQL and not HTTP.

import (
	"bytes"
	"encoding/json"
	"sync"
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
	notesPage
	version listVersion
	read    time.Time
	more    bool // there is a next page
}

// notesPage is a page of the list as it is answered, and what it takes to
// put a note at its head: where each note ends in the JSON, and the place
// in the list's order of the first.
type notesPage struct {
	body  []byte    // the JSON array of the notes
	ends  []int     // ends[i] is the offset just past the i-th note in body
	first noteOrder // the first note's; zero on an empty page
}

// noteOrder is a note's place in the list: newest updated first, then the
// highest id.
type noteOrder struct {
	updated time.Time
	id      int64
}

func orderOf(n note) noteOrder { return noteOrder{n.Updated, n.ID} }

// before reports whether a comes before b in the list.
func (a noteOrder) before(b noteOrder) bool {
	return a.updated.After(b.updated) || a.updated.Equal(b.updated) && a.id > b.id
}

// newNotesPage is the page of notes: their JSON as marshalJSON writes a
// list of them, byte for byte, with where each ends.
func newNotesPage(notes []note) (notesPage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	p := notesPage{ends: make([]int, 0, len(notes))}
	b.WriteByte('[')
	for i, n := range notes {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(newNoteJSON(n)); err != nil {
			return notesPage{}, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		p.ends = append(p.ends, b.Len())
	}
	b.WriteByte(']')
	p.body = b.Bytes()
	if len(notes) > 0 {
		p.first = orderOf(notes[0])
	}
	return p, nil
}

// withHead is the page of at most limit notes that p becomes when a note
// that comes before all of p's is written: item, the note's JSON, then p's
// notes but the last if p was full. full reports whether it was (the last
// note now begins the next page).
func (p notesPage) withHead(item []byte, order noteOrder, limit int) (q notesPage, full bool) {
	kept := min(len(p.ends), limit-1)
	q.body = make([]byte, 0, len(item)+len(p.body)+2)
	q.body = append(append(q.body, '['), item...)
	q.ends = append(make([]int, 0, kept+1), len(q.body))
	if kept > 0 {
		q.body = append(q.body, ',')
		shift := len(q.body) - 1 // p's offset 1, its first note, is here now
		q.body = append(q.body, p.body[1:p.ends[kept-1]]...)
		for _, end := range p.ends[:kept] {
			q.ends = append(q.ends, end+shift)
		}
	}
	q.body = append(q.body, ']')
	q.first = order
	return q, len(p.ends) == limit
}

// pageCache maps a page to its body while its version holds. A nil
// *pageCache keeps nothing (the scale benchmark times the database).
type pageCache struct {
	mu      sync.Mutex
	pages   map[int64]map[pageKey]cachedPage // by viewer
	entries int                              // pages kept
	bytes   int                              // their bodies' bytes
}

func newPageCache() *pageCache {
	return &pageCache{pages: make(map[int64]map[pageKey]cachedPage)}
}

// get returns the page of key if it was kept under version, less than
// pageCacheTTL ago.
func (c *pageCache) get(key pageKey, version listVersion, now time.Time) (body []byte, more, ok bool) {
	if c == nil {
		return nil, false, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[key.viewer][key]
	if !ok || p.version != version || now.Sub(p.read) >= pageCacheTTL {
		return nil, false, false
	}
	return p.body, p.more, true
}

// put keeps a page read at now under version (both taken before it was
// read).
func (c *pageCache) put(key pageKey, version listVersion, now time.Time, page notesPage, more bool) {
	if c == nil || len(page.body) > pageCacheMaxBody || len(key.search) > pageCacheMaxSearch {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop(key)
	if c.bytes+len(page.body) > pageCacheBytes || c.entries >= pageCacheEntries {
		clear(c.pages)
		c.entries, c.bytes = 0, 0
	}
	viewer := c.pages[key.viewer]
	if viewer == nil {
		viewer = make(map[pageKey]cachedPage)
		c.pages[key.viewer] = viewer
	}
	viewer[key] = cachedPage{notesPage: page, version: version, read: now, more: more}
	c.entries++
	c.bytes += len(page.body)
}

// drop forgets the page of key, if it is kept. c.mu is held.
func (c *pageCache) drop(key pageKey) {
	viewer := c.pages[key.viewer]
	if old, ok := viewer[key]; ok {
		delete(viewer, key)
		c.entries--
		c.bytes -= len(old.body)
		if len(viewer) == 0 {
			delete(c.pages, key.viewer)
		}
	}
}

// created is told of a private note of owner's just created, whose write
// moved owner's version to moved, and of its JSON (item). Each first page
// of owner's lists that holds the note (all notes, mine, owner's own; no
// search) and was current just before the write becomes, under moved, the
// page with the note at its head: it is the newest note. A page read
// between the commit and the count holds the note already and is only
// given the version. Any other page is left to its version, which moved
// on: it is read again, as when a note is updated or deleted. The note's
// place is checked, not assumed: a note updated "in the future" (a clock
// set back) stays above it, and its pages are read again.
func (c *pageCache) created(owner int64, moved listVersion, order noteOrder, item []byte) {
	if c == nil {
		return
	}
	current := listVersion{moved.public, moved.private - 1} // moved is the count of this write
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, p := range c.pages[owner] {
		if key.offset != 0 || key.search != "" || key.owner != 0 && key.owner != owner || p.version != current {
			continue
		}
		switch {
		case len(p.ends) > 0 && p.first == order: // read after the commit
		case len(p.ends) == 0 || order.before(p.first):
			page, full := p.withHead(item, order, key.limit)
			if len(page.body) > pageCacheMaxBody || c.bytes+len(page.body)-len(p.body) > pageCacheBytes {
				continue
			}
			c.bytes += len(page.body) - len(p.body)
			p.notesPage, p.more = page, p.more || full
		default:
			continue
		}
		p.version = moved
		c.pages[owner][key] = p
	}
}
