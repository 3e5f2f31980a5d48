package main

// lists.go: the notes list, a page at a time: GET /api/notes/ and
// GET /api/users/{id}/notes/ (and the query string and Link header that
// GET /api/security-log/ pages the same way with); and GET /api/users/{id}/,
// the name a list shows for a note's owner.
//
// Read it in a request's order: the two handlers, then writeNotesPage,
// which answers a page from memory (pagecache.go) or asks the store for
// one note more than the page holds (so it knows whether a next page
// exists, and says where it is in a Link header); planSearch, which asks
// the search index how a ?q= is answered, and spends the caller's budget
// of broad searches; then the query string (readPage).
//
// It knows the list's query string, pages and links, not SQL (notes.go).

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// listNotes is GET /api/notes/: the caller's notes and everyone's public
// notes, newest updated first, a page at a time.
func (s *server) listNotes(w http.ResponseWriter, r *http.Request, c *caller) error {
	page, err := readPage(r)
	if err != nil {
		return err
	}
	q := noteQuery{viewer: c.user.ID, search: page.search}
	if page.mine {
		q.owner = c.user.ID
	}
	return s.writeNotesPage(w, r, q, page)
}

// userNotes is GET /api/users/{id}/notes/: that user's public notes, or all
// of them if it is the caller.
func (s *server) userNotes(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errNotFoundAnswer
	}
	page, err := readPage(r)
	if err != nil {
		return err
	}
	exists, err := s.store.userExists(r.Context(), id)
	if err != nil {
		return err
	}
	if !exists {
		return errNotFoundAnswer
	}
	return s.writeNotesPage(w, r, noteQuery{viewer: c.user.ID, owner: id, search: page.search}, page)
}

// writeNotesPage answers one page of q. It asks for one note more than the
// page holds: if it comes, there is a next page, and the Link header says
// where (an absolute URL that keeps the other query parameters).
// A page answered moments ago, with no note written since that it could
// hold, comes from s.pages (pagecache.go).
func (s *server) writeNotesPage(w http.ResponseWriter, r *http.Request, q noteQuery, p page) error {
	key, version, now := pageKey{q.viewer, q.owner, q.search, p.limit, p.offset}, s.store.lists.version(q.viewer), s.now()
	body, more, ok := s.pages.get(key, version, now)
	if !ok {
		q.limit, q.offset = p.limit+1, p.offset
		if err := s.planSearch(r, &q); err != nil {
			return err
		}
		notes, err := s.store.listNotes(r.Context(), q)
		if err != nil {
			return err
		}
		if more = len(notes) > p.limit; more {
			notes = notes[:p.limit]
		}
		page, err := newNotesPage(notes)
		if err != nil {
			return err
		}
		body = page.body
		s.pages.put(key, version, now, page, more)
	}
	if more {
		s.linkNextPage(w, r, p)
	}
	return writeBody(w, http.StatusOK, body)
}

// linkNextPage says where the page after p is: a Link header with an
// absolute URL that keeps the other query parameters.
func (s *server) linkNextPage(w http.ResponseWriter, r *http.Request, p page) {
	next := r.URL.Query()
	next.Set("limit", strconv.Itoa(p.limit))
	next.Set("offset", strconv.Itoa(p.offset+p.limit))
	w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.baseURL(r), r.URL.EscapedPath(), next.Encode()))
}

// planSearch asks the search index for the candidates of q's search. A
// search it cannot narrow at a cost that does not grow with the notes is
// broad, and spends one of the caller's -search-limit a minute: one
// account cannot keep a core busy with searches.
func (s *server) planSearch(r *http.Request, q *noteQuery) error {
	if q.search == "" {
		return nil
	}
	ids, narrowed, err := s.store.searchCandidates(r.Context(), q.search)
	if err == nil && !narrowed {
		if wait := s.searches.take(strconv.FormatInt(q.viewer, 10), s.now()); wait > 0 {
			return throttled(wait)
		}
		var walk bool
		ids, walk, err = s.store.broadSearch(r.Context(), q.search)
		narrowed = !walk
	}
	q.candidates, q.indexed = ids, narrowed
	return err
}

// ---- the query string ----

// page is what a list's query string asks for.
type page struct {
	limit, offset int
	search        string
	mine          bool
}

// Page sizes: limit is 20 unless asked, and at most 100; a search is at
// most 200 characters.
const (
	defaultPageSize = 20
	maxPageSize     = 100
	maxSearchLen    = 200
)

// readPage reads limit, offset, q and mine from the query string.
func readPage(r *http.Request) (page, error) {
	query := r.URL.Query()
	errs := &fieldErrors{}
	// The last value of a repeated parameter counts, as in Django's QueryDict.
	last := func(name string) string {
		vs := query[name]
		if len(vs) == 0 {
			return ""
		}
		return vs[len(vs)-1]
	}
	p := page{limit: defaultPageSize, search: last("q")}
	if utf8.RuneCountInString(p.search) > maxSearchLen {
		errs.add("q", fmt.Sprintf("Ensure this field has no more than %d characters.", maxSearchLen))
	}
	if v := last("limit"); v != "" {
		p.limit = queryInt(errs, "limit", v, 1)
	}
	if v := last("offset"); v != "" {
		p.offset = queryInt(errs, "offset", v, 0)
	}
	if v := last("mine"); v != "" {
		mine, ok := parseBool(v)
		if !ok {
			errs.add("mine", msgNotBool)
		}
		p.mine = mine
	}
	p.limit = min(p.limit, maxPageSize)
	if errs.any() {
		return page{}, errs
	}
	return p, nil
}

// queryInt reads a whole number of at least least, as DRF's IntegerField.
// Numbers too large for an int are taken as the largest (a limit is capped
// anyway, and an offset that large is past every note).
func queryInt(errs *fieldErrors, name, v string, least int) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if errors.Is(err, strconv.ErrRange) { // a whole number, only too large either way
		if strings.HasPrefix(strings.TrimSpace(v), "-") {
			errs.add(name, fmt.Sprintf("Ensure this value is greater than or equal to %d.", least))
			return 0
		}
		return math.MaxInt32
	}
	if err != nil {
		errs.add(name, "A valid integer is required.")
		return 0
	}
	if n < least {
		errs.add(name, fmt.Sprintf("Ensure this value is greater than or equal to %d.", least))
	}
	return min(n, math.MaxInt32)
}

// userName is GET /api/users/{id}/: a user as others see them beside their
// public notes, by id and username; never the email or the rest of the
// profile.
func (s *server) userName(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errNotFoundAnswer
	}
	name, err := s.store.usernameOf(r.Context(), id)
	if errors.Is(err, errNotFound) {
		return errNotFoundAnswer
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}{id, name})
}
