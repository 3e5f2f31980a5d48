package main

// search.go: the trigram index that answers ?q= without reading every note.
//
// A search is a substring of a note's title or body, in any case
// (notes.search holds both, lower-cased). Walking the notes newest first and
// testing each one stops soon when many match, but a word that matches
// nothing reads every note the caller may see, and costs more the more
// notes there are. So notes_search (schema.sql) holds every
// trigram, every three characters in a row, of every note, with where it
// stands, in an SQLite FTS5 table. A search of three characters or more is
// asked of it as a phrase, its trigrams one after another: the notes that
// hold the search itself, everyone's, which the query then narrows to those
// the caller may see. When they are many (candidatesCap), the walk finds a
// page of them soon enough, and is used instead.
//
// What a search may still miss is what the index has not seen yet. Writing
// to an FTS5 table costs a lot per transaction and little per row (kept in
// step with every note write by triggers, it made a note's insert cost
// many times its own: docs/PERFORMANCE.md), so the index is kept in
// batches. Triggers only write down which
// notes changed (notes_search_pending) or went (notes_search_gone), in the
// transaction of the change, so that nothing is lost to a crash; the
// indexer below folds them into notes_search, a batch at a time, when
// indexBatch notes have changed or indexDelay after the first change. A
// search reads the candidates of the index and the notes still pending
// (with candidatesCap or more pending, as under a stream of writes or after
// a bulk load, it walks until the indexer has caught up), and checks each: a
// note the index knows in an older version is found, or not, by its text
// as it is now.
//
// It knows the three search tables and the writer's inWriteTx, not HTTP.

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"time"
)

const (
	// indexBatch is how many changed notes start a batch at once, and how
	// many rows of each of the two tables one batch takes at most. A batch
	// is one segment of the index, which FTS5 merges with others later (16
	// at a time: schema.sql): the bigger the segments, the fewer merges.
	indexBatch = 2000
	// indexDelay is how long a change waits for others before it is
	// indexed anyway.
	indexDelay = 500 * time.Millisecond
	// candidatesCap: a search that this many notes or more hold walks the
	// notes in order instead (listQuery), which finds a page of such a
	// common substring soon; reading and sorting that many candidates
	// would cost more.
	candidatesCap = 200
	// mergeAfter is how many batches in a row make a catch-up after which
	// the index is merged (merge), and mergePages how much one merge
	// transaction writes (pages of 4 KB).
	mergeAfter = 20
	mergePages = 200
	// matchRunes is how much of a search is asked of the index at most
	// (each character more is one more trigram to look up).
	matchRunes = 24
)

// searchIndex keeps notes_search up to date. committed (store.go) counts
// the notes each committed write changed into changes, and wakes it.
type searchIndex struct {
	db      *sqliteDB
	changes *workCount    // notes changed since the last batch began
	stop    chan struct{} // closed by close
	stopped sync.WaitGroup
}

// startSearchIndex starts the indexer on changes. It first folds in
// whatever an earlier run left pending.
func startSearchIndex(db *sqliteDB, changes *workCount) *searchIndex {
	x := &searchIndex{db: db, changes: changes, stop: make(chan struct{})}
	changes.add(indexBatch)
	x.stopped.Add(1)
	go x.run()
	return x
}

// close stops the indexer; what is pending stays in the tables for the
// next start.
func (x *searchIndex) close() {
	close(x.stop)
	x.stopped.Wait()
}

// run waits for changes and indexes them in batches until close.
func (x *searchIndex) run() {
	defer x.stopped.Done()
	backlog := 0 // batches in a row that left rows behind
	for {
		select {
		case <-x.changes.wake:
		case <-x.stop:
			return
		}
		// A first change: wait for a full batch, or indexDelay.
		timer := time.NewTimer(indexDelay)
	gather:
		for x.changes.n.Load() < indexBatch {
			select {
			case <-x.changes.wake:
			case <-timer.C:
				break gather
			case <-x.stop:
				timer.Stop()
				return
			}
		}
		timer.Stop()
		x.changes.n.Store(0)
		more, err := x.indexBatch(context.Background())
		if err != nil {
			// The rows stay pending, searches still find their notes, and
			// the next change tries again.
			slog.Error("search index: batch failed", "err", err)
			continue
		}
		if more {
			backlog++
			x.changes.add(indexBatch)
			continue
		}
		if backlog >= mergeAfter {
			if err := x.merge(context.Background()); err != nil {
				slog.Error("search index: merge failed", "err", err)
			}
		}
		backlog = 0
	}
}

// merge merges the index's segments into one, mergePages pages a write
// transaction, so that other writes go in between. After a long catch-up
// the index is many segments, and a search looks a trigram up in each. In
// between, FTS5's own automerge keeps the count of segments low.
func (x *searchIndex) merge(ctx context.Context) error {
	for worked := true; worked; {
		err := x.db.inWriteTx(ctx, func(tx *txn) error {
			// A merge that found segments to merge changes two rows or
			// more (SQLite's FTS5 documentation).
			var before, after int64
			if err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&before); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO notes_search (notes_search, rank) VALUES ('merge', ?)`,
				-mergePages); err != nil {
				return err
			}
			err := tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&after)
			worked = after-before >= 2
			return err
		})
		if err != nil {
			return err
		}
		select {
		case <-x.stop:
			return nil
		default:
		}
	}
	return nil
}

// indexBatch folds up to indexBatch rows of each of notes_search_gone and
// notes_search_pending into notes_search, in one write transaction, and
// says whether rows are left.
func (x *searchIndex) indexBatch(ctx context.Context) (more bool, err error) {
	err = x.db.inWriteTx(ctx, func(tx *txn) error {
		more = false
		for _, step := range []struct {
			last string   // the highest id of this batch
			fold []string // into the index, up to it
			left string   // whether rows remain after it
		}{
			{ // notes that went: their rows in the index go
				last: `SELECT max(note_id) FROM (SELECT note_id FROM notes_search_gone ORDER BY note_id LIMIT :batch)`,
				fold: []string{
					`DELETE FROM notes_search WHERE rowid IN (SELECT note_id FROM notes_search_gone WHERE note_id <= :last)`,
					`DELETE FROM notes_search_gone WHERE note_id <= :last`,
				},
				left: `SELECT EXISTS(SELECT 1 FROM notes_search_gone)`,
			},
			{ // notes written: an older version goes, the text as it is now comes in
				last: `SELECT max(note_id) FROM (SELECT note_id FROM notes_search_pending ORDER BY note_id LIMIT :batch)`,
				fold: []string{
					`DELETE FROM notes_search WHERE rowid IN
						(SELECT note_id FROM notes_search_pending WHERE note_id <= :last AND indexed = 1)`,
					// CROSS JOIN: pending first, then each note by its id (not
					// every note up to :last, checked against pending)
					`INSERT INTO notes_search (rowid, search) SELECT n.id, n.search
						FROM notes_search_pending p CROSS JOIN notes n ON n.id = p.note_id WHERE p.note_id <= :last`,
					`DELETE FROM notes_search_pending WHERE note_id <= :last`,
				},
				left: `SELECT EXISTS(SELECT 1 FROM notes_search_pending)`,
			},
		} {
			var last sql.NullInt64
			if err := tx.QueryRowContext(ctx, step.last, sql.Named("batch", indexBatch)).Scan(&last); err != nil {
				return err
			}
			if !last.Valid {
				continue // nothing waits
			}
			for _, query := range step.fold {
				if _, err := tx.ExecContext(ctx, query, sql.Named("last", last.Int64)); err != nil {
					return err
				}
			}
			var left bool
			if err := tx.QueryRowContext(ctx, step.left).Scan(&left); err != nil {
				return err
			}
			more = more || left
		}
		return nil
	})
	return more, err
}

// trigramMatch is the FTS5 query for search (already folded): one phrase,
// quoted so that every character is literal, which the trigram tokenizer
// turns into the search's trigrams one after another. Its candidates are
// the notes that hold the search itself. A long search asks for its first
// matchRunes characters only: as few notes hold them, and every candidate
// is checked for the whole. ok is false for a search under three
// characters, which the index cannot answer.
func trigramMatch(search string) (match string, ok bool) {
	runes := []rune(search)
	if len(runes) < 3 {
		return "", false
	}
	runes = runes[:min(len(runes), matchRunes)]
	return `"` + strings.ReplaceAll(string(runes), `"`, `""`) + `"`, true
}

// indexAnswers reports whether the index answers a search for match
// cheaply: fewer than candidatesCap notes hold its trigrams, and fewer than
// that wait to be indexed (many do after a bulk load, until the indexer
// has caught up). Else the search walks the notes, as it would without the
// index.
func indexAnswers(ctx context.Context, db *sqliteDB, match string) (bool, error) {
	var candidates, pending int
	err := db.queryRow(ctx, `SELECT
			(SELECT count(*) FROM (SELECT rowid FROM notes_search WHERE notes_search MATCH :match LIMIT :cap)),
			(SELECT count(*) FROM (SELECT note_id FROM notes_search_pending LIMIT :cap))`,
		sql.Named("match", match), sql.Named("cap", candidatesCap)).Scan(&candidates, &pending)
	return candidates < candidatesCap && pending < candidatesCap, err
}

// indexedSearchQuery is the SQL of listNotes for a search answered from the
// index: the candidates and the notes not indexed yet, those the viewer may
// see that hold the substring, sorted.
func indexedSearchQuery(q noteQuery) string {
	visible := `(user_id = :viewer OR is_public = 1)`
	if q.owner != 0 {
		// The unary + keeps SQLite from walking all of the owner's notes
		// (notes_user_updated) instead of looking up the candidates.
		visible += ` AND +user_id = :owner`
	}
	return `SELECT ` + noteColumns + ` FROM notes
		WHERE id IN (SELECT rowid FROM notes_search WHERE notes_search MATCH :match
				UNION ALL SELECT note_id FROM notes_search_pending)
			AND ` + visible + ` AND instr(search, :search) > 0
		ORDER BY updated DESC, id DESC LIMIT :limit OFFSET :offset`
}
