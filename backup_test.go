package main

// backup_test.go: jwtnotes backup and restore, with the real binary: a
// backup taken under write load (images replaced under it too) restores to
// a server that has every write acknowledged before the backup began.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// jwtnotesCommand runs the binary with args (JWT_SECRET unset) and returns
// its output, or stops the test.
func jwtnotesCommand(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(serverBinary(t), args...)
	cmd.Env = append(os.Environ(), "JWT_SECRET=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("jwtnotes %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBackupUnderLoadRestoresEveryAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServer(t, dir, "-write-limit", "0", "-ip-limit", "0", "-reuse-grace", "0s")
	client := &http.Client{Timeout: 20 * time.Second}
	alice := p.registerAndLogin(client, "alice")
	status, body, _ := call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
		strings.NewReader(`{"refresh":"`+alice.Refresh+`"}`))
	var rotated tokenPair
	if status != 200 || json.Unmarshal([]byte(body), &rotated) != nil {
		t.Fatalf("refresh: %d %s", status, body)
	}

	w := startBackupWriters(t, p, client, rotated.Access)
	defer w.stop() // before the servers stop, even when the test fails
	before := w.waitForNotes(200)
	backup := filepath.Join(t.TempDir(), "backup")
	out := jwtnotesCommand(t, "backup", backup, "-with-keys", "-data", dir)
	during := len(w.notes()) - len(before)
	w.stop()
	t.Logf("%d notes acknowledged before the backup began, %d while it ran; %s", len(before), during, strings.TrimSpace(out))
	if !strings.Contains(out, "the signing keys") || during == 0 {
		t.Errorf("backup said %q; %d writes were acknowledged while it ran (want some)", out, during)
	}
	for _, key := range []string{keysFileName, sealingKeyFile} {
		if info, err := os.Stat(filepath.Join(backup, key)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("the backup's %s: %v %v", key, info, err)
		}
	}

	restored := filepath.Join(t.TempDir(), "restored")
	out = jwtnotesCommand(t, "restore", backup, "-data", restored)
	if !strings.HasPrefix(out, "restored ") || !strings.Contains(out, "the TOTP key") {
		t.Errorf("restore said %q", out)
	}
	if a, b := readFile(t, filepath.Join(dir, sealingKeyFile)), readFile(t, filepath.Join(restored, sealingKeyFile)); a != b {
		t.Error("the restored mfa.key is not the server's")
	}
	if _, _, err := describeDatabase(context.Background(), filepath.Join(restored, "notes.db"), true); err != nil {
		t.Errorf("the restored database: %v", err)
	}
	q := startServer(t, restored, "-reuse-grace", "0s") // as the first: no grace answer for the replay below
	checkRestoredNotes(t, q, client, rotated.Access, before, w.replacedID)
	status, body, _ = call(client, "POST", q.base+"/api/token/refresh/", "", "application/json",
		strings.NewReader(`{"refresh":"`+alice.Refresh+`"}`))
	if status != 401 || !strings.Contains(body, "blacklisted") {
		t.Errorf("a refresh token rotated out before the backup, on the restored server: %d %s", status, body)
	}
	for _, s := range []*serverProcess{p, q} {
		if s.stop(syscall.SIGTERM) != 0 {
			t.Error("a server did not exit cleanly")
		}
	}
}

// backupWriters write notes (one in four with an image) and replace one
// note's image again and again (each replacement deletes a file), keeping
// what was acknowledged.
type backupWriters struct {
	t          *testing.T
	p          *serverProcess
	mu         sync.Mutex
	acked      map[int64]string // note id -> its image path ("" for none)
	replacedID int64
	done       chan struct{}
	running    sync.WaitGroup
	stop       func()
}

func startBackupWriters(t *testing.T, p *serverProcess, client *http.Client, access string) *backupWriters {
	w := &backupWriters{t: t, p: p, acked: map[int64]string{}, done: make(chan struct{})}
	w.stop = sync.OnceFunc(func() { close(w.done); w.running.Wait() })
	for writer := range 3 {
		w.running.Go(func() {
			for i := writer; w.going(); i += 3 {
				w.create(client, access, i)
			}
		})
	}
	ct, b := multipartBody(map[string]string{"title": "replaced"}, "cover_image", "a.png", pngImage(3, 3))
	_, body, _ := call(client, "POST", p.base+"/api/notes/", access, ct, strings.NewReader(b))
	var n noteJSON
	json.Unmarshal([]byte(body), &n)
	w.replacedID = n.ID
	w.running.Go(func() {
		for i := 0; w.going(); i++ {
			ct, b := multipartBody(nil, "cover_image", "b.png", pngImage(5+i%9, 5))
			call(client, "PATCH", fmt.Sprintf("%s/api/notes/%d/", p.base, n.ID), access, ct, strings.NewReader(b))
		}
	})
	return w
}

func (w *backupWriters) going() bool {
	select {
	case <-w.done:
		return false
	default:
		return true
	}
}

// create writes note i, and records it if acknowledged.
func (w *backupWriters) create(client *http.Client, access string, i int) {
	contentType, body := "application/json", fmt.Sprintf(`{"title":"note %d","body":"written under a backup"}`, i)
	if i%4 == 0 {
		contentType, body = multipartBody(map[string]string{"title": fmt.Sprint("note ", i)}, "cover_image", "a.png", pngImage(4+i%7, 4))
	}
	status, answer, _ := call(client, "POST", w.p.base+"/api/notes/", access, contentType, strings.NewReader(body))
	var n noteJSON
	if status != 201 || json.Unmarshal([]byte(answer), &n) != nil {
		if w.going() { // else the test is ending
			w.t.Errorf("create: %d %s", status, answer)
		}
		return
	}
	w.mu.Lock()
	w.acked[n.ID] = deref(n.CoverImage)
	w.mu.Unlock()
}

// notes is a copy of the notes acknowledged so far.
func (w *backupWriters) notes() map[int64]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	notes := make(map[int64]string, len(w.acked))
	for id, image := range w.acked {
		notes[id] = image
	}
	return notes
}

// waitForNotes waits until n notes are acknowledged, and returns them.
func (w *backupWriters) waitForNotes(n int) map[int64]string {
	for {
		if notes := w.notes(); len(notes) >= n {
			return notes
		}
		select { // the next log line: a request answered
		case <-w.p.logged:
		case <-time.After(30 * time.Second):
			w.t.Fatal("the writers made no progress")
		}
	}
}

// checkRestoredNotes: every note acknowledged before the backup began is
// on the restored server with its image, and so is the note whose image was
// being replaced, with the image of the moment of the backup.
func checkRestoredNotes(t *testing.T, q *serverProcess, client *http.Client, access string, before map[int64]string, replacedID int64) {
	t.Helper()
	for id, image := range before {
		status, body, _ := call(client, "GET", fmt.Sprintf("%s/api/notes/%d/", q.base, id), access, "", nil)
		if status != 200 {
			t.Errorf("note %d, acknowledged before the backup began: %d %s", id, status, body)
			continue
		}
		if image != "" {
			if status, _, _ := call(client, "GET", q.base+image, "", "", nil); status != 200 {
				t.Errorf("the image of note %d: %d", id, status)
			}
		}
	}
	status, body, _ := call(client, "GET", fmt.Sprintf("%s/api/notes/%d/", q.base, replacedID), access, "", nil)
	var n noteJSON
	if status != 200 || json.Unmarshal([]byte(body), &n) != nil || n.CoverImage == nil {
		t.Errorf("the note whose image was being replaced: %d %s", status, body)
	} else if status, _, _ := call(client, "GET", q.base+*n.CoverImage, "", "", nil); status != 200 {
		t.Errorf("its image, as of the backup: %d", status)
	}
}

// TestBackupAndRestoreRefuseWhatTheyShouldNot: a folder that is not empty
// is never written into; a backup without the database or with a missing
// file, and a damaged database, are refused by restore.
func TestBackupAndRestoreRefuseWhatTheyShouldNot(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	ct, body := multipartBody(map[string]string{"title": "x"}, "cover_image", "a.png", pngImage(3, 3))
	if res := e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+tokens.Access); res.status != 201 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	dataDir := e.srv.cfg.dataDir
	noEnv := envOf(nil)

	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "something"), []byte("x"), 0o600)
	if _, err := backupDataDir(ctx, dataDir, full, false, noEnv); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("backup into a folder that is not empty: %v", err)
	}
	if _, err := backupDataDir(ctx, t.TempDir(), filepath.Join(t.TempDir(), "b"), false, noEnv); err == nil {
		t.Error("a backup of a folder without a database succeeded")
	}
	// With JWT_SECRET, the signing key is no file: -with-keys copies the
	// TOTP key alone.
	secretOnly := filepath.Join(t.TempDir(), "b")
	sum, err := backupDataDir(ctx, dataDir, secretOnly, true, envOf(map[string]string{"JWT_SECRET": strings.Repeat("s", 32)}))
	if err != nil || sum.keys || !sum.totpKey {
		t.Errorf("-with-keys with JWT_SECRET set: %+v %v", sum, err)
	}
	if _, err := os.Stat(filepath.Join(secretOnly, keysFileName)); err == nil {
		t.Error("a jwt.keys in a backup of a server whose key is JWT_SECRET")
	}

	// A backup that fails (here: -with-keys, and the test server's key is
	// not a file) leaves its folder empty.
	failed := filepath.Join(t.TempDir(), "f")
	if _, err := backupDataDir(ctx, dataDir, failed, true, noEnv); err == nil {
		t.Error("-with-keys without a keys file succeeded")
	}
	if entries, err := os.ReadDir(failed); err != nil || len(entries) != 0 {
		t.Errorf("a failed backup left %d entries (%v)", len(entries), err)
	}

	backup := filepath.Join(t.TempDir(), "b")
	sum, err = backupDataDir(ctx, dataDir, backup, false, noEnv)
	if err != nil || sum.users != 1 || sum.notes != 1 || sum.files != 1 || sum.keys || sum.totpKey {
		t.Fatalf("backup: %+v %v", sum, err)
	}
	if _, err := restoreDataDir(ctx, backup, full); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a folder that is not empty: %v", err)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Error("the folder that was not empty was changed")
	}

	// A backup that lacks a file its database names.
	images, _ := os.ReadDir(filepath.Join(backup, "media", imagesFolder))
	os.Rename(filepath.Join(backup, "media", imagesFolder, images[0].Name()), filepath.Join(t.TempDir(), "away"))
	target := filepath.Join(t.TempDir(), "restored")
	if _, err := restoreDataDir(ctx, backup, target); err == nil || !strings.Contains(err.Error(), "not whole") {
		t.Errorf("restore of a backup missing a file: %v", err)
	}
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		t.Error("a refused restore left files in the data folder")
	}

	// A damaged database.
	damaged := filepath.Join(t.TempDir(), "d")
	if _, err := backupDataDir(ctx, dataDir, damaged, false, noEnv); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(damaged, "notes.db")
	data, _ := os.ReadFile(db)
	for i := 4096; i < len(data) && i < 4096*3; i++ { // the pages after the header
		data[i] ^= 0x5a
	}
	os.WriteFile(db, data, 0o600)
	if _, err := restoreDataDir(ctx, damaged, filepath.Join(t.TempDir(), "r")); err == nil {
		t.Error("a damaged database was restored")
	}

	// The query that lists the named files reads the two partial indexes.
	plan := strings.Join(queryPlan(t, e.srv.store.db.read.db, namedFilesQuery), "\n")
	if !strings.Contains(plan, "notes_cover_image") || !strings.Contains(plan, "users_cover_photo") {
		t.Errorf("the named files' plan:\n%s", plan)
	}
}

// TestRestoreRefusesForeignObjectsAndLinks: a backup whose database holds
// a trigger, view, table or index this server does not make is refused
// (a trigger could make every new note public), and so is one with a
// symbolic link anywhere in its tree, a folder too; the data folder stays
// empty. An untouched backup restores.
func TestRestoreRefusesForeignObjectsAndLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTestEnv(t)
	e.register("alice")
	e.createNote(e.login("alice").Access, `{"title":"private"}`)
	fresh := func(t *testing.T) string {
		backup := filepath.Join(t.TempDir(), "b")
		if _, err := backupDataDir(ctx, e.srv.cfg.dataDir, backup, false, envOf(nil)); err != nil {
			t.Fatal(err)
		}
		return backup
	}
	refused := func(t *testing.T, backup, because string) {
		t.Helper()
		target := filepath.Join(t.TempDir(), "restored")
		_, err := restoreDataDir(ctx, backup, target)
		if err == nil || !strings.Contains(err.Error(), because) {
			t.Errorf("restore: %v, want a refusal that says %q", err, because)
		}
		if entries, _ := os.ReadDir(target); len(entries) > 0 {
			t.Errorf("a refused restore left %d entries in the data folder", len(entries))
		}
	}
	for _, extra := range []string{
		`CREATE TRIGGER everything_public AFTER INSERT ON notes BEGIN UPDATE notes SET is_public = 1 WHERE id = new.id; END`,
		`CREATE VIEW all_notes AS SELECT * FROM notes`,
		`CREATE TABLE spare (x)`,
		`CREATE INDEX notes_title ON notes(title)`,
		`DROP INDEX notes_public_updated`,
	} {
		t.Run(extra, func(t *testing.T) {
			backup := fresh(t)
			db, err := sql.Open("sqlite", dsn(filepath.Join(backup, "notes.db"), ""))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(extra); err != nil {
				t.Fatal(err)
			}
			db.Close()
			refused(t, backup, "not made as this server makes one")
		})
	}
	t.Run("media/images a link to another folder", func(t *testing.T) {
		backup := fresh(t)
		elsewhere := t.TempDir()
		images := filepath.Join(backup, "media", imagesFolder)
		if err := os.RemoveAll(images); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(images), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(elsewhere, images); err != nil {
			t.Fatal(err)
		}
		refused(t, backup, "symbolic link")
	})
	t.Run("untouched", func(t *testing.T) {
		if _, err := restoreDataDir(ctx, fresh(t), filepath.Join(t.TempDir(), "restored")); err != nil {
			t.Errorf("an untouched backup: %v", err)
		}
	})
}

// TestDatabaseFilesAreOwnerOnly: notes.db, its -wal and -shm, and a
// backup's copy are the owner's only (they hold password hashes, emails and
// private notes); a database an older server made readable by others is
// narrowed at the next start.
func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice") // a write: the -wal and -shm exist
	dataDir := e.srv.cfg.dataDir
	backup := filepath.Join(t.TempDir(), "b")
	if _, err := backupDataDir(context.Background(), dataDir, backup, false, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dataDir, "notes.db"), filepath.Join(dataDir, "notes.db-wal"),
		filepath.Join(dataDir, "notes.db-shm"), filepath.Join(backup, "notes.db")} {
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", path, info, err)
		}
	}
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, "notes.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := openStore(context.Background(), old, sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if info, err := os.Stat(filepath.Join(old, "notes.db")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("a database of mode 0644, opened: %v %v, want 0600", info, err)
	}
}

// TestDeletionsWaitForABackup: while a backup holds the media lock, a
// replaced image's old file stays (the backup's snapshot may name it); the
// server deletes it once the backup lets go. Without a backup, at once.
func TestDeletionsWaitForABackup(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	ct, body := multipartBody(map[string]string{"title": "x"}, "cover_image", "a.png", pngImage(3, 3))
	var n noteJSON
	decode(t, e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+tokens.Access).body, &n)
	media := filepath.Join(e.srv.cfg.dataDir, "media")
	replace := func() string { // the old file's path
		old := strings.TrimPrefix(*n.CoverImage, "/media/")
		ct, body := multipartBody(nil, "cover_image", "b.png", pngImage(4, 4))
		res := e.do("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), ct, body, "Authorization", "Bearer "+tokens.Access)
		decode(t, res.body, &n)
		return filepath.Join(media, old)
	}
	old := replace()
	e.srv.store.waitForRemovals()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("without a backup, the replaced file stays: %v", err)
	}

	lock, err := os.OpenFile(filepath.Join(media, backupLockName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	first, second := replace(), replace()
	for _, f := range []string{first, second} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("during a backup, a replaced file is gone: %v", err)
		}
	}
	syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	e.srv.store.waitForRemovals()
	for _, f := range []string{first, second} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("after the backup, a replaced file stays: %v", err)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
