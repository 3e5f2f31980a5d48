package main

// media.go: the uploaded images, as files under DATA_DIR/media.
//
// A file is written under a random name, synced and renamed into place
// before the row that names it is committed, and deleted only after the row
// that named it is gone, so a served name never points at half a file. Every
// operation goes through an os.Root: nothing outside the folder can be
// reached, by ".." or by a symlink.
//
// It knows files, not HTTP. Its one question to the database, at start, is
// whether a row names a file (sweepMedia).

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// ---- media files ----

// The folders of DATA_DIR/media.
const (
	coversFolder = "covers" // profile cover photos
	imagesFolder = "images" // note cover images
)

// imageFile is an uploaded image that the handlers have checked: its bytes
// and the file extension of its detected type.
type imageFile struct {
	data []byte
	ext  string
}

// size is how many bytes img holds; 0 for no image.
func (img *imageFile) size() int {
	if img == nil {
		return 0
	}
	return len(img.data)
}

// openMedia creates DATA_DIR/media and its folders and opens it as an
// os.Root: every later file operation is confined to it (no "..", no
// symlink out).
func openMedia(dataDir string) (*os.Root, error) {
	dir := filepath.Join(dataDir, "media")
	for _, folder := range []string{coversFolder, imagesFolder} {
		if err := os.MkdirAll(filepath.Join(dir, folder), 0o700); err != nil {
			return nil, err
		}
	}
	return os.OpenRoot(dir)
}

// withNewFile saves img (if any) under folder, runs fn with its path (nil
// for no image), and deletes the file again if fn fails: a file exists only
// for a row that was committed. (A crash between the two can leave an
// unreferenced file, never a referenced file that is missing or partial.)
func (s *store) withNewFile(folder string, img *imageFile, fn func(path *string) error) error {
	if img == nil {
		return fn(nil)
	}
	path, err := s.saveMedia(folder, img)
	if err != nil {
		return err
	}
	if err := fn(&path); err != nil {
		s.media.Remove(path) // no committed row names it: no backup can want it
		return err
	}
	return nil
}

// saveMedia writes img under folder with a random name (128 bits) and
// returns "folder/name.ext". It writes a temporary file, syncs it and renames
// it into place, so a crash never leaves half a file under a served name.
func (s *store) saveMedia(folder string, img *imageFile) (string, error) {
	final := path.Join(folder, randomID()+"."+img.ext)
	tmp := path.Join(folder, ".tmp-"+randomID())
	f, err := s.media.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(img.data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.media.Rename(tmp, final)
	}
	if err != nil {
		s.media.Remove(tmp)
		return "", err
	}
	return final, nil
}

// ---- deleting the files no row names ----
//
// committed (store.go) puts the files that a committed write left unnamed
// (a replaced image, a deleted note's) into s.unnamed; sweep deletes them.
// It deletes only under the exclusive lock of media/.backup.lock: while a
// backup holds it shared (backup.go), no file that its snapshot of the
// database names may vanish before it is copied, so the deletions wait. A
// file that cannot be deleted is left behind: an unreferenced file harms
// nothing, and the next start sweeps it (sweepMedia).

// backupLockName is the lock file a backup shares and deletions take.
const backupLockName = ".backup.lock"

// sweep deletes what s.unnamed holds, whenever it holds something, until
// Close. While a backup runs it waits for the lock, and Close does not wait
// for it.
func (s *store) sweep() {
	for {
		select {
		case <-s.unnamed.wake:
		case <-s.closing:
			return
		}
		syscall.Flock(int(s.mediaLock.Fd()), syscall.LOCK_EX) // until no backup holds it
		for paths := s.unnamed.take(); len(paths) > 0; paths = s.unnamed.take() {
			for _, p := range paths {
				s.media.Remove(p)
			}
			s.unnamed.done(len(paths))
		}
		syscall.Flock(int(s.mediaLock.Fd()), syscall.LOCK_UN)
	}
}

// waitForRemovals returns once every file handed to the sweeper is
// deleted (for tests).
func (s *store) waitForRemovals() {
	q := &s.unnamed
	q.mu.Lock()
	for q.pending > 0 {
		q.idle.Wait()
	}
	q.mu.Unlock()
}

// mediaFiles lists the names in folder ("covers" or "images").
func (s *store) mediaFiles(folder string) ([]string, error) {
	dir, err := s.media.Open(folder)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return dir.Readdirnames(-1)
}

// openMediaFile opens a stored file for reading. Anything the os.Root will
// not open (missing, or a symlink out of the folder) is errNotFound.
func (s *store) openMediaFile(p string) (*os.File, error) {
	f, err := s.media.Open(p)
	if err != nil {
		return nil, errNotFound
	}
	return f, nil
}

// sweepMedia deletes what a crash can leave in the media folders: temporary
// files of uploads cut short, and stored files that no row names (written,
// but their row never committed). It runs at start, before the server
// takes requests (no upload is in flight), and returns how many files went.
// Each file's row is found by an index.
func (s *store) sweepMedia(ctx context.Context) (int, error) {
	removed := 0
	for _, folder := range []string{coversFolder, imagesFolder} {
		names, err := s.mediaFiles(folder)
		if err != nil {
			return removed, err
		}
		for _, name := range names {
			path := folder + "/" + name
			if !strings.HasPrefix(name, ".tmp-") {
				named, err := s.exists(ctx, `SELECT EXISTS(SELECT 1 FROM notes WHERE cover_image = ?1)
					OR EXISTS(SELECT 1 FROM users WHERE cover_photo = ?1)`, path)
				if err != nil {
					return removed, err
				}
				if named {
					continue
				}
			}
			s.unnamed.add(path)
			removed++
		}
	}
	return removed, nil
}
