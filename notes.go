package main

// notes.go: the notes, as rows: created, read, updated and deleted within
// their owner's quota, and listed a page at a time.
//
// It is the store's (store.go) as much as users and sessions are, in a file
// of its own: it knows SQL, not HTTP. A list is two index walks merged
// (listQuery); a search of three characters or more may be answered from
// the trigram index instead (search.go).

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// note is a row of notes.
type note struct {
	ID         int64
	UserID     int64
	Title      string
	Body       string
	CoverImage string // "" when there is none
	IsPublic   bool
	Created    time.Time
	Updated    time.Time
}

// noteFields are the fields of a create or a partial update; nil leaves a
// field as it is (or, on create, at its default).
type noteFields struct {
	Title       *string
	Body        *string
	IsPublic    *bool
	Image       *imageFile // a new cover image
	RemoveImage bool
}

// noteColumns are unqualified so that INSERT ... RETURNING can use them too.
const noteColumns = `id, user_id, title, body, coalesce(cover_image, ''), is_public, created, updated`

// scanNote reads noteColumns, followed by any extra destinations.
func scanNote(row interface{ Scan(...any) error }, n *note, extra ...any) error {
	var created, updated int64
	err := row.Scan(append([]any{&n.ID, &n.UserID, &n.Title, &n.Body, &n.CoverImage, &n.IsPublic, &created, &updated}, extra...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return errNotFound
	}
	n.Created, n.Updated = fromMicros(created), fromMicros(updated)
	return err
}

// searchKey is what ?q= looks in: title and body, lower-cased, apart.
func searchKey(title, body string) string {
	return foldKey(title) + "\x00" + foldKey(body)
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// createNote stores a new note of user userID within q, or returns
// errUserGone or a quota error. It returns the user's list version that
// counts the note too (pagecache.go).
//
// The note is built here from what was inserted, not read back with
// RETURNING: SQLite collects RETURNING rows in a temporary table, which cost
// as much again as the insert, inside the one writer.
func (s *store) createNote(ctx context.Context, userID int64, f noteFields, now time.Time, q quota) (n note, listed listVersion, err error) {
	n = note{UserID: userID, Title: deref(f.Title), Body: deref(f.Body), IsPublic: deref(f.IsPublic),
		Created: fromMicros(micros(now)), Updated: fromMicros(micros(now))}
	size := noteSize(n.Title, n.Body, f.Image.size())
	err = s.withNewFile(imagesFolder, f.Image, func(image *string) error {
		n.CoverImage = deref(image)
		return s.write(ctx, func(tx *txn, ch *changed) error {
			ch.notes = append(ch.notes, noteWrite{owner: userID, public: n.IsPublic, listed: &listed})
			if err := chargeNotes(ctx, tx, userID, 1, size, q); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO notes
					(user_id, title, body, search, cover_image, is_public, created, updated, size)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				userID, n.Title, n.Body, searchKey(n.Title, n.Body), image, n.IsPublic, micros(now), micros(now), size)
			if err != nil {
				return err
			}
			n.ID, err = res.LastInsertId()
			return err
		})
	})
	return n, listed, err
}

// noteFor returns note id if viewer may read it: their own, or public.
// Someone else's private note is errNotFound, as if it did not exist.
func (s *store) noteFor(ctx context.Context, id, viewer int64) (note, error) {
	var n note
	err := scanNote(s.db.queryRow(ctx, `SELECT `+noteColumns+` FROM notes n
		WHERE n.id = ? AND (n.user_id = ? OR n.is_public)`, id, viewer), &n)
	return n, err
}

// updateNote applies f to note id of owner within q and returns it as
// saved; errNotFound if it is gone or not theirs (checked again here, inside
// the write transaction), or a quota error if it grows past q. A replaced
// or removed image is deleted after commit.
func (s *store) updateNote(ctx context.Context, id, owner int64, f noteFields, now time.Time, q quota) (note, error) {
	var n note
	err := s.withNewFile(imagesFolder, f.Image, func(newImage *string) error {
		return s.write(ctx, func(tx *txn, ch *changed) error {
			var oldSize int64
			err := scanNote(tx.QueryRowContext(ctx, `SELECT `+noteColumns+`, size FROM notes n
				WHERE n.id = ? AND n.user_id = ?`, id, owner), &n, &oldSize)
			if err != nil {
				return err
			}
			wasPublic := n.IsPublic
			imageBytes := oldSize - noteSize(n.Title, n.Body, 0) // what the kept image counts
			if f.Title != nil {                                  // "" is a title too
				n.Title = *f.Title
			}
			if f.Body != nil {
				n.Body = *f.Body
			}
			if f.IsPublic != nil {
				n.IsPublic = *f.IsPublic
			}
			if newImage != nil || f.RemoveImage {
				if n.CoverImage != "" {
					ch.files = append(ch.files, n.CoverImage)
				}
				n.CoverImage, imageBytes = deref(newImage), int64(f.Image.size())
			}
			n.Updated = now
			size := noteSize(n.Title, n.Body, int(imageBytes))
			if err := chargeNotes(ctx, tx, owner, 0, size-oldSize, q); err != nil {
				return err
			}
			ch.notes = append(ch.notes, noteWrite{owner: owner, public: wasPublic || n.IsPublic})
			_, err = tx.ExecContext(ctx, `UPDATE notes SET title = ?, body = ?, search = ?, is_public = ?,
				cover_image = nullif(?, ''), updated = ?, size = ? WHERE id = ?`,
				n.Title, n.Body, searchKey(n.Title, n.Body), n.IsPublic, n.CoverImage, micros(now), size, id)
			return err
		})
	})
	if err != nil {
		return note{}, err
	}
	return n, nil
}

// deleteNote deletes note id of owner, and then its image.
func (s *store) deleteNote(ctx context.Context, id, owner int64) error {
	return s.write(ctx, func(tx *txn, ch *changed) error {
		var image sql.NullString
		var size int64
		var public bool
		err := tx.QueryRowContext(ctx, `DELETE FROM notes WHERE id = ? AND user_id = ? RETURNING cover_image, size, is_public`,
			id, owner).Scan(&image, &size, &public)
		if errors.Is(err, sql.ErrNoRows) {
			return errNotFound
		}
		if err != nil {
			return err
		}
		ch.notes = append(ch.notes, noteWrite{owner: owner, public: public})
		if image.Valid {
			ch.files = append(ch.files, image.String)
		}
		return chargeNotes(ctx, tx, owner, -1, -size, quota{})
	})
}

// noteQuery selects a page of the notes viewer may see.
type noteQuery struct {
	viewer int64
	owner  int64  // only this user's notes; 0 for everyone's
	search string // a substring of title or body, any case; "" for all
	limit  int    // -1 for no limit
	offset int
	// indexed: the search index names candidates (searchCandidates), the
	// only notes that may hold search; else the notes are walked.
	indexed    bool
	candidates []int64
}

// listNotes returns the notes of q, newest updated first.
//
// Everyone's visible notes are two index walks, each already newest first:
// the caller's own notes (notes_user_updated) and the public notes
// (notes_public_updated). Under one ORDER BY that both indexes give, SQLite
// merges the two walks row by row, drops a note both give, and stops when
// the page is full, with no sort and no temporary table (EXPLAIN QUERY
// PLAN: MERGE (UNION)). One
// walk over all notes would step over every private note of everyone else.
// The query is built from fixed pieces; every value goes in as a named
// argument.
func (s *store) listNotes(ctx context.Context, q noteQuery) ([]note, error) {
	if strings.ContainsRune(q.search, 0) {
		return nil, nil // NUL only separates title from body: it matches no text
	}
	query, args := listQuery(q), []any{sql.Named("viewer", q.viewer), sql.Named("owner", q.owner),
		sql.Named("search", foldKey(q.search)), sql.Named("limit", q.limit), sql.Named("offset", q.offset)}
	if q.search != "" && q.indexed {
		ids, _ := json.Marshal(q.candidates) // ints cannot fail
		query, args = indexedSearchQuery(q), append(args, sql.Named("ids", string(ids)))
	}
	rows, err := s.db.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var notes []note
	for rows.Next() {
		var n note
		if err := scanNote(rows, &n); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}

// searchCandidates is what the search index says of search at a cost that
// does not grow with the notes (search.go): the only notes that may hold
// it, or narrowed false when only broader work can tell (broadSearch).
func (s *store) searchCandidates(ctx context.Context, search string) (ids []int64, narrowed bool, err error) {
	if strings.ContainsRune(search, 0) {
		return nil, true, nil // NUL only separates title from body: no note holds it
	}
	return s.search.candidates(ctx, foldKey(search))
}

// broadSearch is what the search index says of search with work that grows
// with the notes: the notes that may hold it, or walk when the notes must
// be walked in order.
func (s *store) broadSearch(ctx context.Context, search string) (ids []int64, walk bool, err error) {
	return s.search.broadCandidates(ctx, foldKey(search))
}

// listQuery is the SQL of listNotes for q.
func listQuery(q noteQuery) string {
	walk := func(where string) string {
		w := `SELECT ` + noteColumns + ` FROM notes WHERE ` + where
		if q.search != "" {
			// instr, not LIKE: % and _ in the search are ordinary characters.
			w += ` AND instr(search, :search) > 0`
		}
		return w
	}
	// UNION, not UNION ALL of the others' public notes: a viewer's own
	// public notes are in both walks, and SQLite's merge drops the second
	// of each pair as it goes; skipping them in the second walk instead
	// read every public note of a viewer who has many.
	query := walk(`user_id = :viewer`) + ` UNION ` + walk(`is_public = 1`)
	if q.owner != 0 {
		query = walk(`user_id = :owner AND (user_id = :viewer OR is_public = 1)`)
	}
	return query + ` ORDER BY updated DESC, id DESC LIMIT :limit OFFSET :offset`
}
