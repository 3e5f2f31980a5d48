package main

// backup.go: `jwtnotes backup DEST` and `jwtnotes restore SRC`.
//
// A backup is a folder laid out as a data folder: notes.db, copied by
// SQLite's VACUUM INTO (one read transaction, so a snapshot of one moment,
// taken beside the server's writes without stopping or failing them); the
// media files that snapshot names; and the keys only when asked
// (-with-keys: jwt.keys, whoever holds them can sign tokens for every
// account; and mfa.key, which opens the TOTP secrets, sealing.go).
// Restore fills an empty data folder from one, after checking it: SQLite's
// integrity_check, and every file the database names is there.
//
// Media files are never changed, only added and deleted (a replaced image
// gets a new name), and a server deletes them only under the exclusive lock
// of media/.backup.lock (media.go), which a backup holds shared throughout.
// So every file the snapshot names is still there to be copied; the files
// are copied before the snapshot (most of them) and after it (those it
// names that were new), and those copied that it does not name are left
// out.
//
// It knows the data folder's layout, not HTTP or tokens.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// backupSummary is what a backup or a restore holds.
type backupSummary struct {
	users, notes, files int
	bytes               int64
	keys                bool // jwt.keys
	totpKey             bool // mfa.key
}

func (b backupSummary) String() string {
	keys := "the signing keys"
	if !b.keys {
		keys = "no signing keys"
	}
	if b.totpKey {
		keys += " and the TOTP key"
	}
	s := fmt.Sprintf("%d users, %d notes, %d media files (%.1f MiB), %s", b.users, b.notes, b.files, float64(b.bytes)/(1<<20), keys)
	return s
}

// backupDataDir copies the data folder dataDir into dest, which must not
// exist or be empty, while a server may be running on it. A backup that
// fails leaves dest empty.
func backupDataDir(ctx context.Context, dataDir, dest string, withKeys bool, getenv func(string) string) (sum backupSummary, err error) {
	source := filepath.Join(dataDir, "notes.db")
	if _, err := os.Stat(source); err != nil {
		return backupSummary{}, fmt.Errorf("no database in %s (is -data the server's data folder?): %w", dataDir, err)
	}

	if err := makeEmptyFolder(dest); err != nil {
		return backupSummary{}, err
	}
	defer func() {
		if err != nil { // dest was empty: what is in it now is this backup's
			entries, _ := os.ReadDir(dest)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dest, e.Name()))
			}
		}
	}()
	// Not query_only: SQLite counts VACUUM INTO as a write, though it only
	// reads this database.
	db, err := sql.Open("sqlite", dsn(source, "_pragma=busy_timeout(10000)"))
	if err != nil {
		return backupSummary{}, err
	}
	defer db.Close()

	// No server deletes a media file while this is held (media.go).
	lock, err := os.OpenFile(filepath.Join(dataDir, "media", backupLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return backupSummary{}, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
		return backupSummary{}, err
	}
	sum, err = copyDataDir(ctx, db, dataDir, dest)
	if err != nil {
		return sum, err
	}
	if withKeys && getenv("JWT_SECRET") == "" { // else the signing key is JWT_SECRET: kept where secrets are kept
		if err := copyFile(filepath.Join(dataDir, keysFileName), filepath.Join(dest, keysFileName)); err != nil {
			return sum, fmt.Errorf("the signing keys: %w", err)
		}
		sum.keys = true
	}
	if withKeys {
		err := copyFile(filepath.Join(dataDir, sealingKeyFile), filepath.Join(dest, sealingKeyFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // none: no server has started on this folder
			return sum, fmt.Errorf("the TOTP key: %w", err)
		}
		sum.totpKey = err == nil
	}
	return sum, syncFolder(dest)
}

// copyDataDir is the copy: files, snapshot, the files it added.
func copyDataDir(ctx context.Context, db *sql.DB, dataDir, dest string) (backupSummary, error) {
	media := filepath.Join(dataDir, "media")
	copied := map[string]bool{}
	for _, folder := range []string{coversFolder, imagesFolder} {
		names, err := os.ReadDir(filepath.Join(media, folder))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return backupSummary{}, err
		}
		for _, n := range names {
			rel := folder + "/" + n.Name()
			if strings.HasPrefix(n.Name(), ".tmp-") {
				continue
			}
			err := copyFile(filepath.Join(media, rel), filepath.Join(dest, "media", rel))
			if err == nil {
				copied[rel] = true
			} else if !errors.Is(err, fs.ErrNotExist) { // deleted just before the lock was taken: not named
				return backupSummary{}, err
			}
		}
	}

	snapshot := filepath.Join(dest, "notes.db")
	// Made empty and owner-only first: VACUUM INTO fills an empty file, and
	// keeps its mode. The copy holds what the database does.
	empty, err := os.OpenFile(snapshot, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backupSummary{}, err
	}
	empty.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, snapshot); err != nil {
		return backupSummary{}, fmt.Errorf("copy the database: %w", err)
	}
	sum, named, err := describeDatabase(ctx, snapshot, false)
	if err != nil {
		return sum, err
	}
	for _, rel := range named {
		if copied[rel] {
			continue
		}
		if err := copyFile(filepath.Join(media, rel), filepath.Join(dest, "media", rel)); err != nil {
			return sum, fmt.Errorf("the database names media/%s: %w", rel, err)
		}
		copied[rel] = true
	}
	// Files copied before the snapshot that it does not name (deleted or
	// replaced in between) are not part of the backup.
	wanted := map[string]bool{}
	for _, rel := range named {
		wanted[rel] = true
	}
	for rel := range copied {
		if !wanted[rel] {
			os.Remove(filepath.Join(dest, "media", rel))
		}
	}
	for _, rel := range named {
		info, err := os.Stat(filepath.Join(dest, "media", rel))
		if err != nil {
			return sum, err
		}
		sum.bytes += info.Size()
	}
	sum.files = len(named)
	for _, folder := range []string{"media/" + coversFolder, "media/" + imagesFolder, "media", "."} {
		if err := syncFolder(filepath.Join(dest, folder)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return sum, err
		}
	}
	return sum, nil
}

// describeDatabase opens the database file at path read-only and returns
// its counts and the media files it names ("images/<name>"). check runs
// SQLite's integrity_check first.
func describeDatabase(ctx context.Context, path string, check bool) (backupSummary, []string, error) {
	db, err := sql.Open("sqlite", dsn(path, "_pragma=query_only(1)"))
	if err != nil {
		return backupSummary{}, nil, err
	}
	defer db.Close()
	var sum backupSummary
	if check {
		var verdict string
		if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&verdict); err != nil {
			return sum, nil, fmt.Errorf("check %s: %w", path, err)
		}
		if verdict != "ok" {
			return sum, nil, fmt.Errorf("%s is damaged (integrity_check: %s)", path, verdict)
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM notes)`).Scan(&sum.users, &sum.notes); err != nil {
		return sum, nil, fmt.Errorf("read %s: %w", path, err)
	}
	rows, err := db.QueryContext(ctx, namedFilesQuery)
	if err != nil {
		return sum, nil, err
	}
	defer rows.Close()
	var named []string
	for rows.Next() {
		var rel string
		if err := rows.Scan(&rel); err != nil {
			return sum, nil, err
		}
		if !validMediaPath(rel) {
			return sum, nil, fmt.Errorf("%s names the file %q, which is not a media path", path, rel)
		}
		named = append(named, rel)
	}
	return sum, named, rows.Err()
}

// namedFilesQuery lists every file a row names, from the two partial
// indexes on the columns.
const namedFilesQuery = `SELECT cover_image FROM notes WHERE cover_image IS NOT NULL
	UNION SELECT cover_photo FROM users WHERE cover_photo IS NOT NULL`

// validMediaPath reports whether rel is "covers/<name>" or "images/<name>"
// with a plain name: a database from elsewhere cannot make restore copy
// from or to another place.
func validMediaPath(rel string) bool {
	folder, name, ok := strings.Cut(rel, "/")
	return ok && (folder == coversFolder || folder == imagesFolder) && name != "" && name != "." && name != ".." &&
		!strings.ContainsAny(name, `/\`)
}

// restoreDataDir fills dataDir (which must not exist or be empty) from the
// backup src, after checking it.
func restoreDataDir(ctx context.Context, src, dataDir string) (backupSummary, error) {
	root, err := filepath.EvalSymlinks(src) // the folder named: the one link a restore follows
	if err != nil {
		return backupSummary{}, fmt.Errorf("no backup in %s: %w", src, err)
	}
	src = root
	if err := refuseLinks(src); err != nil {
		return backupSummary{}, err
	}
	source := filepath.Join(src, "notes.db")
	if _, err := os.Stat(source); err != nil {
		return backupSummary{}, fmt.Errorf("no backup in %s (it has no notes.db): %w", src, err)
	}
	sum, named, err := describeDatabase(ctx, source, true)
	if err != nil {
		return sum, err
	}
	for _, rel := range named {
		info, err := os.Stat(filepath.Join(src, "media", rel))
		if err != nil {
			return sum, fmt.Errorf("the backup is not whole: the database names media/%s, which it lacks", rel)
		}
		sum.bytes += info.Size()
	}
	sum.files = len(named)
	_, keysErr := os.Stat(filepath.Join(src, keysFileName))
	sum.keys = keysErr == nil
	_, totpKeyErr := os.Stat(filepath.Join(src, sealingKeyFile))
	sum.totpKey = totpKeyErr == nil

	if err := makeEmptyFolder(dataDir); err != nil {
		return sum, err
	}
	// Everything goes into a folder beside dataDir first, renamed into place
	// at the end: a restore that fails half-way leaves dataDir empty.
	work, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dataDir)), ".restoring-")
	if err != nil {
		return sum, err
	}
	defer os.RemoveAll(work)
	if err := copyFile(source, filepath.Join(work, "notes.db")); err != nil {
		return sum, err
	}
	for _, rel := range named {
		if err := copyFile(filepath.Join(src, "media", rel), filepath.Join(work, "media", rel)); err != nil {
			return sum, err
		}
	}
	if sum.keys {
		if err := copyFile(filepath.Join(src, keysFileName), filepath.Join(work, keysFileName)); err != nil {
			return sum, err
		}
	}
	if sum.totpKey {
		if err := copyFile(filepath.Join(src, sealingKeyFile), filepath.Join(work, sealingKeyFile)); err != nil {
			return sum, err
		}
	}
	for _, folder := range []string{"media/" + coversFolder, "media/" + imagesFolder} {
		if err := os.MkdirAll(filepath.Join(work, folder), 0o700); err != nil {
			return sum, err
		}
		if err := syncFolder(filepath.Join(work, folder)); err != nil {
			return sum, err
		}
	}
	if err := syncFolder(work); err != nil {
		return sum, err
	}
	if err := checkShape(ctx, filepath.Join(work, "notes.db")); err != nil {
		return sum, err
	}
	if _, _, err := describeDatabase(ctx, filepath.Join(work, "notes.db"), true); err != nil {
		return sum, err
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return sum, err
	}
	if err := os.Rename(work, dataDir); err != nil {
		return sum, err
	}
	return sum, syncFolder(filepath.Dir(filepath.Clean(dataDir)))
}

// refuseLinks refuses a backup that holds a symbolic link anywhere in its
// tree (a folder media/images that leads elsewhere, not only a file): a
// restore copies regular files from inside the backup, and nothing else.
func refuseLinks(src string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("the backup holds a symbolic link, %s: a restore copies no link (nothing was changed)", path)
		}
		return nil
	})
}

// checkShape upgrades the database at path to this server's schema, and
// refuses it unless it is then of the shape a new database has
// (schemaShape): no table, index, trigger or view of its own, none missing.
func checkShape(ctx context.Context, path string) error {
	shapeOf := func(path string) (string, error) {
		db, err := sql.Open("sqlite", dsn(path, "_pragma=foreign_keys(1)"))
		if err != nil {
			return "", err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if err := migrate(ctx, db); err != nil {
			return "", err
		}
		return schemaShape(ctx, db)
	}
	got, err := shapeOf(path)
	if err != nil {
		return fmt.Errorf("the backup's database cannot be brought to this server's schema: %w", err)
	}
	fresh, err := os.MkdirTemp("", "jwtnotes-schema-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(fresh)
	want, err := shapeOf(filepath.Join(fresh, "notes.db"))
	if err != nil {
		return err
	}
	if got != want {
		gotLines, wantLines := strings.Split(got, "\n"), strings.Split(want, "\n")
		for i := range max(len(gotLines), len(wantLines)) {
			g, w := lineAt(gotLines, i), lineAt(wantLines, i)
			if g != w {
				return fmt.Errorf("the backup's database is not made as this server makes one (it has %q where a new one has %q): "+
					"a restore takes only a database this server made (nothing was changed)", truncate(g, 200), truncate(w, 200))
			}
		}
	}
	return nil
}

func lineAt(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(nothing)"
}

// makeEmptyFolder makes dir (mode 0700) unless it exists and is empty; a
// folder with anything in it is refused, never overwritten.
func makeEmptyFolder(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return err
	case len(entries) > 0:
		return &usageError{fmt.Sprintf("%s is not empty: choose a new or empty folder (nothing was changed)", dir)}
	}
	return nil
}

// copyFile copies the regular file from to the new file to (mode 0600,
// its folders made), synced. A symlink is not followed.
func copyFile(from, to string) error {
	in, err := os.OpenFile(from, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if info, err := in.Stat(); err != nil || !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", from)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncFolder(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
