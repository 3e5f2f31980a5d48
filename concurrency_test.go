package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentNoteWrites: 64 goroutines write notes at once; every write
// succeeds (no "database is locked") and the counts are exact.
func TestConcurrentNoteWrites(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.writeLimit = 0 }) // one account writing as fast as it can
	e.register("alice")
	access := e.login("alice").Access
	const writers, each = 64, 5
	statuses := make(chan string, writers*each*2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				res := e.withToken("POST", "/api/notes/", access, fmt.Sprintf(`{"title":"w%d-%d","body":"x"}`, w, i))
				if res.status != http.StatusCreated {
					statuses <- fmt.Sprintf("create: %d %s", res.status, res.body)
					continue
				}
				var n noteJSON
				if !decodeOK(t, res.body, &n) {
					return
				}
				res = e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), access, `{"body":"edited"}`)
				if res.status != http.StatusOK {
					statuses <- fmt.Sprintf("update: %d %s", res.status, res.body)
				}
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		t.Error(s)
	}
	if n := e.count(`SELECT count(*) FROM notes WHERE body = 'edited'`); n != writers*each {
		t.Errorf("%d notes written and edited, want %d", n, writers*each)
	}
	if n := e.count(`SELECT count(DISTINCT title) FROM notes`); n != writers*each {
		t.Errorf("%d distinct notes, want %d", n, writers*each)
	}
}

// TestConcurrentPasswordChangeAndRefresh: while one device changes the
// password, another refreshes. Whichever commits first, the other device
// ends up with no usable token.
func TestConcurrentPasswordChangeAndRefresh(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.loginLimit = 0; c.ipLimit = 0 })
	e.register("alice")
	passwords := []string{testPassword, "New-Battery-77"}
	for round := range 6 {
		old, next := passwords[round%2], passwords[(round+1)%2]
		login := func() tokenPair {
			res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":"alice","password":%q}`, old))
			var p tokenPair
			decode(t, res.body, &p)
			return p
		}
		here, there := login(), login()
		var refreshed response
		var wg sync.WaitGroup
		wg.Go(func() { refreshed = e.refresh(there.Refresh) })
		wg.Go(func() {
			res := e.withToken("POST", "/api/profile/password/", here.Access,
				fmt.Sprintf(`{"old_password":%q,"new_password":%q,"new_password2":%q}`, old, next, next))
			if res.status != 200 {
				t.Errorf("password change: %d %s", res.status, res.body)
			}
		})
		wg.Wait()
		tokens := []string{there.Access}
		if refreshed.status == 200 {
			var p tokenPair
			decode(t, refreshed.body, &p)
			tokens = append(tokens, p.Access)
			if res := e.refresh(p.Refresh); res.status != 401 {
				t.Errorf("round %d: the refresh token minted during the change still works: %d", round, res.status)
			}
		}
		for _, access := range tokens {
			if res := e.get("/api/profile/", access); res.status != 401 {
				t.Errorf("round %d: an old session's access token still works: %d", round, res.status)
			}
		}
		if res := e.get("/api/profile/", here.Access); res.status != 200 {
			t.Errorf("round %d: the session that changed the password: %d", round, res.status)
		}
	}
}

// TestConcurrentLoginAndPasswordChange: a login that checked the old
// password just before it changed gets no session.
func TestConcurrentLoginAndPasswordChange(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.loginLimit = 0; c.ipLimit = 0 })
	e.register("alice")
	here := e.login("alice")
	var logins []response
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":"alice","password":%q}`, testPassword))
			mu.Lock()
			logins = append(logins, res)
			mu.Unlock()
		})
	}
	wg.Go(func() {
		e.withToken("POST", "/api/profile/password/", here.Access,
			`{"old_password":"Correct-Horse-42","new_password":"New-Battery-77","new_password2":"New-Battery-77"}`)
	})
	wg.Wait()
	for _, res := range logins {
		if res.status != 200 {
			continue
		}
		var p tokenPair
		decode(t, res.body, &p)
		if got := e.get("/api/profile/", p.Access).status; got != 401 {
			t.Errorf("a session made with the old password works: %d", got)
		}
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE revoked IS NULL`); n != 1 {
		t.Errorf("%d live sessions, want only the one that changed the password", n)
	}
}

// TestConcurrentDeleteAndNoteCreate: notes with images are created while
// the account is deleted. Nothing of the user is left: no rows, no files.
func TestConcurrentDeleteAndNoteCreate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			ct, body := multipartBody(map[string]string{"title": fmt.Sprint(i)}, "cover_image", "x.png", pngImage(2, 2))
			res := e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access)
			if res.status != 201 && res.status != 401 {
				t.Errorf("create during delete: %d %s", res.status, res.body)
			}
		})
	}
	wg.Go(func() {
		res := e.withToken("DELETE", "/api/profile/", access, `{"password":"Correct-Horse-42"}`)
		if res.status != 204 {
			t.Errorf("delete: %d %s", res.status, res.body)
		}
	})
	wg.Wait()
	for _, table := range []string{"users", "notes", "sessions"} {
		if n := e.count(`SELECT count(*) FROM ` + table); n != 0 {
			t.Errorf("%d %s rows left", n, table)
		}
	}
	if files := e.mediaFiles(imagesFolder); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

// TestGroupCommit runs one batch of writes as the writer would: each write
// sees the ones before it, and a write that fails, panics or whose caller
// has gone leaves no trace while the others commit.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	e.srv.mail.wait() // its verification mail's token is written: no other commit comes
	st := e.srv.store
	ctx := context.Background()
	insert := func(tx *txn, title string) error { return insertBareNote(tx, aliceID, title) }
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ranCanceled := false
	var sawFirst int
	batch := []writeJob{
		{ctx: ctx, fn: func(tx *txn) error { return insert(tx, "kept 1") }},
		{ctx: ctx, fn: func(tx *txn) error {
			if err := insert(tx, "failed"); err != nil {
				return err
			}
			return errors.New("refused")
		}},
		{ctx: ctx, fn: func(tx *txn) error {
			insert(tx, "panicked")
			panic("boom")
		}},
		{ctx: canceled, fn: func(tx *txn) error { ranCanceled = true; return insert(tx, "canceled") }},
		{ctx: ctx, fn: func(tx *txn) error {
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM notes WHERE title = 'kept 1'`).Scan(&sawFirst); err != nil {
				return err
			}
			return insert(tx, "kept 2")
		}},
	}
	commits := st.db.commits.Load()
	results := make([]error, len(batch))
	if err := st.db.runBatch(batch, results); err != nil {
		t.Fatal(err)
	}
	if results[0] != nil || results[4] != nil {
		t.Errorf("the good writes failed: %v, %v", results[0], results[4])
	}
	if results[1] == nil || results[1].Error() != "refused" {
		t.Errorf("failing write: %v", results[1])
	}
	if results[2] == nil || !strings.Contains(results[2].Error(), "panic in a write transaction: boom") {
		t.Errorf("panicking write: %v", results[2])
	}
	if !errors.Is(results[3], context.Canceled) || ranCanceled {
		t.Errorf("write of a gone caller: %v, ran %v", results[3], ranCanceled)
	}
	if sawFirst != 1 {
		t.Errorf("a later write saw %d of the earlier one's notes, want 1", sawFirst)
	}
	if got := st.db.commits.Load() - commits; got != 1 {
		t.Errorf("%d commits for one batch", got)
	}
	var titles []string
	rows, err := st.db.query(ctx, `SELECT title FROM notes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var title string
		if err := rows.Scan(&title); err != nil {
			t.Fatal(err)
		}
		titles = append(titles, title)
	}
	rows.Close()
	if fmt.Sprint(titles) != "[kept 1 kept 2]" {
		t.Errorf("notes after the batch: %q", titles)
	}
}

// insertBareNote is a write of the group-commit tests: a note with a title.
func insertBareNote(tx *txn, userID int64, title string) error {
	_, err := tx.ExecContext(context.Background(), `INSERT INTO notes (user_id, title, created, updated) VALUES (?, ?, 0, 0)`, userID, title)
	return err
}

// TestGroupCommitLostTransaction: when SQLite gives the transaction up (here
// a write ends it behind the writer's back), no write of the batch reports
// success, and none is kept.
func TestGroupCommitLostTransaction(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	st := e.srv.store
	ctx := context.Background()
	batch := []writeJob{
		{ctx: ctx, fn: func(tx *txn) error { return insertBareNote(tx, aliceID, "lost") }},
		{ctx: ctx, fn: func(tx *txn) error {
			_, err := tx.ExecContext(ctx, `ROLLBACK`)
			return err
		}},
	}
	for i := range batch {
		batch[i].done = make(chan error, 1)
	}
	st.db.commitBatch(batch)
	for i, job := range batch {
		if err := <-job.done; err == nil {
			t.Errorf("write %d reported success in a lost transaction", i)
		}
	}
	if n := e.count(`SELECT count(*) FROM notes`); n != 0 {
		t.Errorf("%d notes kept from a lost transaction", n)
	}
	// The writer goes on with the next write.
	e.createNote(e.login("alice").Access, `{"title":"after"}`)
}

// TestWriteAfterClose: a write that arrives after Close is refused, not
// left waiting for a writer that has stopped.
func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	st, err := openStore(context.Background(), t.TempDir(), sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	err = st.db.inWriteTx(context.Background(), func(tx *txn) error { return nil })
	if !errors.Is(err, errStoreClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

// TestPragmas: the settings the DSN asks for are the ones the connections
// have (a misspelt pragma would be ignored without a word).
func TestPragmas(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	st := e.srv.store
	for _, c := range []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{st.db.write.db, "journal_mode", "wal"},
		{st.db.write.db, "synchronous", "2"}, // FULL
		{st.db.write.db, "wal_autocheckpoint", strconv.Itoa(walCheckpointPages)},
		{st.db.write.db, "foreign_keys", "1"},
		{st.db.write.db, "busy_timeout", "10000"},
		{st.db.read.db, "query_only", "1"},
		{st.db.read.db, "foreign_keys", "1"},
		{st.db.read.db, "cache_size", "-1024"},
	} {
		t.Run(c.pragma, func(t *testing.T) {
			var got string
			if err := c.db.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("PRAGMA %s = %s, want %s", c.pragma, got, c.want)
			}
		})
	}
	// With -litestream the writer leaves checkpoints to Litestream.
	st2, err := openStore(context.Background(), t.TempDir(), sqliteSettings{externalCheckpoints: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	var got string
	if err := st2.db.write.db.QueryRow("PRAGMA wal_autocheckpoint").Scan(&got); err != nil || got != "0" {
		t.Errorf("with -litestream, PRAGMA wal_autocheckpoint = %s (%v), want 0", got, err)
	}
}

// TestCheckpointerKeepsTheLogShort: the checkpointer copies the log back
// beside the writer, and the writer's own checkpoint at walCheckpointPages
// lets the log start over: notes.db-wal stays near that size while many
// times as many pages are written. With -litestream nobody checkpoints.
//
// The bound is twice walCheckpointPages: the log outgrows that size while
// the writer's checkpoint waits for the checkpointer's to end (up to 1.30×
// in twenty runs on an idle machine; a bound of 1.25× failed one run in
// four). A log that never starts over, as with autocheckpoint 0, grew to
// 89 MB here.
func TestCheckpointerKeepsTheLogShort(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	id := e.register("alice")
	st := e.srv.store
	ctx := context.Background()
	body := "a note"
	wal := filepath.Join(e.srv.cfg.dataDir, "notes.db-wal")
	const pageBytes = 4096 + 24 // a page and its frame header
	var largest int64
	writes := 0
	// Each write changes three pages or more (the note, the index by user,
	// the user's totals): three times as many as the log may hold.
	for ; writes < walCheckpointPages; writes++ {
		if _, _, err := st.createNote(ctx, id, noteFields{Body: &body}, time.Now(), quota{1 << 40, 1 << 50}); err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		largest = max(largest, info.Size())
	}
	if st.db.checkpointed.Load() == 0 {
		t.Errorf("%d writes, and the checkpointer never checkpointed", writes)
	}
	if limit := int64(2*walCheckpointPages) * pageBytes; largest > limit {
		t.Errorf("notes.db-wal grew to %d bytes over %d writes, more than %d", largest, writes, limit)
	}
	t.Logf("%d writes, %d checkpoints, notes.db-wal at most %d bytes", writes, st.db.checkpointed.Load(), largest)
}
