package main

// search.go: the trigram index that answers ?q= without reading every note.
//
// A search is a substring of a note's title or body, in any case
// (notes.search holds both, lower-cased). Walking the notes newest first and
// testing each one stops soon when many match, but a word that matches
// nothing reads every note the caller may see, and costs more the more
// notes there are. So notes_search (schema.sql) holds every
// trigram, every three characters in a row, of every note, with where it
// stands, in an SQLite FTS5 table. A search of three characters or more
// has trigrams: the notes that hold the search hold each of them. So the
// rarest of its trigrams (the first found held by few notes) names the
// candidates, few, which are read and checked for the whole search. When
// every trigram is common the index cannot narrow it cheaply, and the
// notes are walked in order, which finds a page of a common substring soon
// and reads every note to find a rare one: such a search is "broad", and
// an account may make only so many a minute (-search-limit).
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
// as it is now. (A note whose new text is pending is a candidate whatever
// the index says of its older one.)
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
	// candidatesCap: a trigram held by fewer notes is rare enough for its
	// notes to be read one by one; one held by more says nothing cheap.
	candidatesCap = 500
	// denseCap: a search that this many notes or more hold walks the notes
	// in order instead (listQuery), which finds a page of them soon;
	// reading and sorting that many candidates would cost more.
	denseCap = 1000
	// mergeAfter is how many batches in a row make a catch-up after which
	// the index is merged (merge), and mergePages how much one merge
	// transaction writes (pages of 4 KB).
	mergeAfter = 20
	mergePages = 200
	// probedTrigrams bounds the trigrams of one search that are looked up.
	probedTrigrams = 16
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

// candidates asks the index which notes may hold search (already folded),
// at a cost that does not grow with the notes: up to probedTrigrams of its
// trigrams are looked up, each for at most candidatesCap notes, until one
// is held by fewer. Those notes, and the notes not indexed yet, are the
// candidates, the only notes that may hold the search (each is then read,
// and checked for the whole search). narrowed is false when the index
// cannot name them so: the search is under three characters, every
// trigram looked up is common, or candidatesCap notes wait to be indexed
// (as after a bulk load). Then only broader work can tell (broadCandidates).
func (x *searchIndex) candidates(ctx context.Context, search string) (ids []int64, narrowed bool, err error) {
	pending, ok, err := x.pending(ctx, search)
	if !ok {
		return nil, false, err
	}
	for _, trigram := range probedTrigramsOf([]rune(search)) {
		ids, err := x.rowids(ctx, `SELECT rowid FROM notes_search WHERE notes_search MATCH :match LIMIT :cap`,
			phrase(trigram), candidatesCap)
		if err != nil || len(ids) < candidatesCap {
			return append(ids, pending...), err == nil, err
		}
	}
	return nil, false, nil
}

// broadCandidates is what the index can say of a search candidates could
// not narrow, with work that grows with the notes: the notes that hold the
// search whole (its trigrams in a row, a phrase), unless denseCap or more
// do, or it cannot be asked (under three characters, too many notes
// pending). Then walk: the notes must be walked in order (listQuery),
// which finds a page of a common substring soon, and reads every note the
// caller may see when few hold it.
func (x *searchIndex) broadCandidates(ctx context.Context, search string) (ids []int64, walk bool, err error) {
	pending, ok, err := x.pending(ctx, search)
	if !ok {
		return nil, true, err
	}
	ids, err = x.rowids(ctx, `SELECT rowid FROM notes_search WHERE notes_search MATCH :match LIMIT :cap`,
		phrase(search), denseCap)
	return append(ids, pending...), len(ids) >= denseCap, err
}

// pending is the notes not indexed yet, if the index can be asked of
// search at all: it is three characters or more, and fewer than
// candidatesCap notes wait.
func (x *searchIndex) pending(ctx context.Context, search string) (ids []int64, ok bool, err error) {
	if len([]rune(search)) < 3 {
		return nil, false, nil
	}
	ids, err = x.rowids(ctx, `SELECT note_id FROM notes_search_pending LIMIT :cap`, "", candidatesCap)
	return ids, err == nil && len(ids) < candidatesCap, err
}

// phrase is text as an FTS5 phrase, quoted so that every character is
// literal: the trigram tokenizer makes it the text's trigrams in a row.
func phrase(text string) string {
	return `"` + strings.ReplaceAll(text, `"`, `""`) + `"`
}

// probedTrigramsOf is the trigrams of search that candidates looks up, at
// most probedTrigrams of the distinct ones: first those with a space in the
// middle (the end of a word and the start of the next: in a text of words,
// the rarest), then others spread from the first to the last.
func probedTrigramsOf(runes []rune) []string {
	var spaced, rest []string
	seen := map[string]bool{}
	for i := 0; i+3 <= len(runes); i++ {
		t := string(runes[i : i+3])
		switch {
		case seen[t]:
		case runes[i+1] == ' ':
			spaced = append(spaced, t)
		default:
			rest = append(rest, t)
		}
		seen[t] = true
	}
	probed := spaced[:min(len(spaced), probedTrigrams)]
	if room := probedTrigrams - len(probed); len(rest) <= room {
		probed = append(probed, rest...)
	} else {
		for i := range room {
			probed = append(probed, rest[i*(len(rest)-1)/max(room-1, 1)])
		}
	}
	return probed
}

// rowids runs query (with :cap, and :match when match is not "") for ids.
func (x *searchIndex) rowids(ctx context.Context, query, match string, limit int) ([]int64, error) {
	rows, err := x.db.query(ctx, query, sql.Named("cap", limit), sql.Named("match", match))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// indexedSearchQuery is the SQL of listNotes for a search the index
// answers: of the candidates (:ids, a JSON array), those the viewer may see
// that hold the substring, sorted.
func indexedSearchQuery(q noteQuery) string {
	visible := `(user_id = :viewer OR is_public = 1)`
	if q.owner != 0 {
		// The unary + keeps SQLite from walking all of the owner's notes
		// (notes_user_updated) instead of looking up the candidates.
		visible += ` AND +user_id = :owner`
	}
	return `SELECT ` + noteColumns + ` FROM notes
		WHERE id IN (SELECT value FROM json_each(:ids)) AND ` + visible + ` AND instr(search, :search) > 0
		ORDER BY updated DESC, id DESC LIMIT :limit OFFSET :offset`
}
