package main

// keys.go: where the keys that sign and verify tokens come from, and how
// they are rotated: HMAC keys (HS256, the default) or Ed25519 keys (EdDSA,
// -signing-alg, whose public halves jwks.go publishes).
//
// JWT_SECRET, when it is set, is the one key. Otherwise the keys live in
// DATA_DIR/jwt.keys, outside the database (a copy of notes.db holds no
// usable token), mode 0600, replaced whole by an atomic rename, each change
// made under a lock. The last key of the file that is neither retired nor
// revoked is current: it signs. `jwtnotes keys rotate` retires it and makes
// a new current key; a retired key keeps verifying the tokens that name it
// until the last of them could have expired (the token lifetime, bounded
// by the session lifetime), then it is dropped (by the server's hourly
// clean-up, or the next keys command). `jwtnotes keys revoke KID`
// ends a key at once. A running server reads the file again when it
// changes (checked once a second), on SIGHUP, and when a token names a kid
// it does not know (at most once a second).
//
// A rotation may change the algorithm (keys rotate -alg EdDSA): the old key
// keeps verifying its tokens through its window, as any retired key does.
//
// Keys are never logged, never printed, never a flag (flags show up in ps).
// It knows the keys' file and their lifetimes, not what they sign.

import (
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

const (
	keysFileName   = "jwt.keys"
	legacyKeyFile  = "jwt.key" // the one key of servers before key rotation
	minSecretBytes = 32
)

// storedKey is one key of the keys file.
type storedKey struct {
	ID      string     `json:"kid"`
	Alg     string     `json:"alg,omitempty"` // "EdDSA", or none for HS256 (as keys before EdDSA were written)
	Secret  string     `json:"secret"`        // base64url: HS256's secret, at least 32 bytes; EdDSA's 32-byte seed
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"` // when a newer key became current
	Revoked *time.Time `json:"revoked,omitempty"` // when it was revoked: it verifies nothing
	// Until is when the last token it signed can expire, set when it stops
	// signing; past it the key is dropped from the file.
	Until  *time.Time `json:"verifies_until,omitempty"`
	Legacy bool       `json:"legacy,omitempty"` // the key of jwt.key: it also verifies tokens without a kid
}

type keysFile struct {
	Keys []storedKey `json:"keys"`
}

// current is the key that signs: the last one neither retired nor revoked.
func (f *keysFile) current() *storedKey {
	for i := len(f.Keys) - 1; i >= 0; i-- {
		if k := &f.Keys[i]; k.Retired == nil && k.Revoked == nil {
			return k
		}
	}
	return nil
}

// tokenWindow is how long after a key stops signing a token it signed can
// still be valid: the longer token lifetime, but no token outlives its
// session.
func tokenWindow(cfg config) time.Duration {
	return min(max(cfg.accessTTL, cfg.refreshTTL), cfg.sessionTTL)
}

// ---- the server's side: loading, and following changes ----

// startingKeyring is the key ring a server starts with: loadKeyring's,
// after a rotation when -signing-alg names another algorithm than the
// current key's (the old key verifies its tokens through its window, as
// after keys rotate -alg). Without -signing-alg the keys file decides.
func startingKeyring(cfg config, getenv func(string) string, now time.Time, log *slog.Logger) (*keyring, error) {
	ring, err := loadKeyring(getenv, cfg.dataDir, now, cfg.signingAlg)
	if err != nil || cfg.signingAlg == "" || ring.current.alg == cfg.signingAlg || getenv("JWT_SECRET") != "" {
		return ring, err
	}
	kid, _, err := rotateKeys(cfg, getenv, now, cfg.signingAlg)
	if err != nil {
		return nil, err
	}
	log.Info("-signing-alg: a new current signing key; the previous one verifies its tokens until they expire",
		"alg", cfg.signingAlg, "kid", kid, "previous", ring.current.id, "previous_alg", ring.current.alg)
	return loadKeyring(getenv, cfg.dataDir, now, cfg.signingAlg)
}

// loadKeyring is the key ring of a server: JWT_SECRET's one key, or the
// keys file's (made at the first start, with a key of alg, HS256 if none,
// or from jwt.key if an older server left one). now drops keys whose window
// has passed.
func loadKeyring(getenv func(string) string, dataDir string, now time.Time, alg string) (*keyring, error) {
	if secret := getenv("JWT_SECRET"); secret != "" {
		if len(secret) < minSecretBytes {
			return nil, &usageError{fmt.Sprintf("JWT_SECRET is %d bytes; it must be at least %d", len(secret), minSecretBytes)}
		}
		return newKeyring(&tokenKey{id: secretKid(secret), secret: []byte(secret), legacy: true}), nil
	}
	path := filepath.Join(dataDir, keysFileName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createKeysFile(dataDir, now, alg); err != nil {
			return nil, err
		}
	}
	f, _, err := readKeysFile(path)
	if err != nil {
		return nil, err
	}
	return f.ring(now)
}

// secretKid names JWT_SECRET's key: derived from it, so that tokens of
// another secret name another (unknown) key.
func secretKid(secret string) string {
	sum := sha256.Sum256([]byte("jwtnotes kid\x00" + secret))
	return "env-" + hex.EncodeToString(sum[:6])
}

// ring is the verifying keys of f at now, the current one signing.
func (f *keysFile) ring(now time.Time) (*keyring, error) {
	cur := f.current()
	if cur == nil {
		return nil, errors.New("it has no current key (every key is retired or revoked): run jwtnotes keys rotate")
	}
	var current *tokenKey
	var others []*tokenKey
	for i := range f.Keys {
		k := &f.Keys[i]
		if k.Revoked != nil || k.Until != nil && !now.Before(*k.Until) {
			continue
		}
		secret, _ := b64.DecodeString(k.Secret) // checked by readKeysFile
		t := &tokenKey{id: k.ID, secret: secret, legacy: k.Legacy}
		if k.Alg == algEdDSA {
			t = edDSAKey(secret)
		}
		if k.Until != nil {
			t.until = *k.Until
		}
		if k == cur {
			current = t
		} else {
			others = append(others, t)
		}
	}
	return newKeyring(current, others...), nil
}

// readKeysFile reads and checks the keys file: owner-only, whole JSON, each
// key with a valid kid and a long enough secret, no kid twice. It returns
// the file's digest too (keysDigest), which names what was read.
func readKeysFile(path string) (*keysFile, string, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, "", fmt.Errorf("the signing keys: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, "", fmt.Errorf("the signing keys: %s is not a regular file", path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, "", fmt.Errorf("the signing keys: %s has mode %04o; others can read it, which leaks every token "+
			"(make it the owner's only: chmod 600 %s)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("the signing keys: %w", err)
	}
	var f keysFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, "", fmt.Errorf("the signing keys: %s is not a keys file (%v); restore it from a backup, "+
			"or remove it and run jwtnotes keys rotate (every session will have to log in again)", path, err)
	}
	seen := map[string]bool{}
	for _, k := range f.Keys {
		secret, err := b64.DecodeString(k.Secret)
		switch {
		case !validKid(json.RawMessage(`"` + k.ID + `"`)):
			return nil, "", fmt.Errorf("the signing keys: %s has a key with the invalid kid %q", path, k.ID)
		case seen[k.ID]:
			return nil, "", fmt.Errorf("the signing keys: %s has the kid %q twice", path, k.ID)
		case k.Alg != "" && k.Alg != algEdDSA:
			return nil, "", fmt.Errorf("the signing keys: key %s of %s has the algorithm %q (HS256 or EdDSA)", k.ID, path, k.Alg)
		case k.Alg == algEdDSA && (err != nil || len(secret) != ed25519.SeedSize || edDSAKey(secret).id != k.ID):
			return nil, "", fmt.Errorf("the signing keys: key %s of %s is not an Ed25519 seed whose thumbprint is its kid", k.ID, path)
		case k.Alg == "" && (err != nil || len(secret) < minSecretBytes):
			return nil, "", fmt.Errorf("the signing keys: key %s of %s has no secret of at least %d bytes (base64url)", k.ID, path, minSecretBytes)
		}
		seen[k.ID] = true
	}
	return &f, keysDigest(data), nil
}

// createKeysFile makes the keys file of a data folder that has none: from
// jwt.key (the one key of an older server, which keeps verifying its tokens
// without a kid), or a new key. A folder that has a database but neither
// file has lost its keys: that is an error, not a silent new key.
func createKeysFile(dataDir string, now time.Time, alg string) error {
	return withKeysLock(dataDir, func(path string) error {
		if _, err := os.Lstat(path); err == nil {
			return nil // another process made it first
		}
		legacyPath := filepath.Join(dataDir, legacyKeyFile)
		old, err := os.ReadFile(legacyPath)
		switch {
		case err == nil && len(old) >= minSecretBytes:
			f := &keysFile{Keys: []storedKey{newStoredKey(now, algHS256)}}
			f.Keys[0].Secret, f.Keys[0].Legacy = b64.EncodeToString(old), true
			if err := writeKeysFile(path, f); err != nil {
				return err
			}
			return os.Remove(legacyPath) // the keys file holds it now
		case err == nil:
			return fmt.Errorf("%s holds %d bytes; it must hold at least %d", legacyPath, len(old), minSecretBytes)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if _, err := os.Stat(filepath.Join(dataDir, "notes.db")); err == nil {
			return fmt.Errorf("the signing keys: %s is missing, but %s has a database: restore the keys file "+
				"with the database, or run jwtnotes keys rotate -data %s to start with a new key "+
				"(every session will have to log in again)", path, dataDir, dataDir)
		}
		return writeKeysFile(path, &keysFile{Keys: []storedKey{newStoredKey(now, cmp.Or(alg, algHS256))}})
	})
}

// newStoredKey is a new random key of alg: an HMAC secret with a random
// kid, or an Ed25519 seed named by its public key's thumbprint.
func newStoredKey(now time.Time, alg string) storedKey {
	created := now.UTC().Truncate(time.Second)
	if alg == algEdDSA {
		seed := make([]byte, ed25519.SeedSize)
		rand.Read(seed)
		return storedKey{ID: edDSAKey(seed).id, Alg: algEdDSA, Secret: b64.EncodeToString(seed), Created: created}
	}
	secret := make([]byte, minSecretBytes)
	rand.Read(secret)
	id := make([]byte, 8)
	rand.Read(id)
	return storedKey{ID: hex.EncodeToString(id), Secret: b64.EncodeToString(secret), Created: created}
}

// keyWatcher reloads a running server's ring when the keys file changes.
type keyWatcher struct {
	path   string
	signer *tokenSigner
	log    *slog.Logger

	mu         sync.Mutex
	stamp      fileStamp     // of the file last loaded
	registered *registration // where keys commands learn what it loaded (keynotify.go)
	reloaded   func()        // tests: called after every load
}

// fileStamp tells a changed file: a rename gives a new inode.
type fileStamp struct {
	ino     uint64
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{size: info.Size(), modTime: info.ModTime()}
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// watchKeys follows the keys file of dataDir for signer until done closes:
// once a second, and at once on each value of hup (SIGHUP, which a keys
// command sends: keynotify.go). It registers the server first, so that
// every command from then on waits for it, and loads the file once more;
// the caller closes the registration when the server stops. hup must
// already receive SIGHUP, whose default would end the process.
func watchKeys(dataDir string, signer *tokenSigner, log *slog.Logger, hup <-chan os.Signal, done <-chan struct{}) (*keyWatcher, error) {
	registered, err := register(dataDir)
	if err != nil {
		return nil, err
	}
	w := &keyWatcher{path: filepath.Join(dataDir, keysFileName), signer: signer, log: log, registered: registered}
	w.reload("the server starts")
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-hup:
				w.reload("SIGHUP")
			case <-tick.C:
				if stampOf(w.path) != w.stamp {
					w.reload("the file changed")
				}
			}
		}
	}()
	return w, nil
}

// reload reads the keys file and replaces the ring. A file that cannot be
// read leaves the ring as it was, and says so in the log.
func (w *keyWatcher) reload(why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamp := stampOf(w.path)
	f, digest, err := readKeysFile(w.path)
	var ring *keyring
	if err == nil {
		ring, err = f.ring(time.Now())
	}
	if err != nil {
		w.log.Error("keys not reloaded; the ones loaded before stay", "why", why, "err", err)
		w.stamp = stamp // not again until it changes
		return
	}
	w.signer.ring.Store(ring)
	w.stamp = stamp
	w.registered.loaded(digest) // a keys command waiting for this server may go on
	w.log.Info("keys reloaded", "why", why, "current", ring.current.id, "verifying", len(ring.byID))
	if w.reloaded != nil {
		w.reloaded()
	}
}

// ---- the command's side: keys rotate, list, revoke ----

// rotateKeys retires the current key (it verifies for the token window yet)
// and makes a new current key of alg (none: of the current key's, so that
// a rotation changes the algorithm only when asked), whose kid it returns,
// and whether there was a key before it. Keys past their window are
// dropped.
func rotateKeys(cfg config, getenv func(string) string, now time.Time, alg string) (kid string, retired bool, err error) {
	err = changeKeys(cfg, getenv, now, func(f *keysFile) error {
		if cur := f.current(); cur != nil {
			alg = cmp.Or(alg, cur.Alg)
			cur.Retired, cur.Until, retired = timeRef(now), timeRef(now.Add(tokenWindow(cfg))), true
		}
		k := newStoredKey(now, cmp.Or(alg, algHS256))
		f.Keys, kid = append(f.Keys, k), k.ID
		return nil
	})
	return kid, retired, err
}

// revokeKey ends the key kid at once: every token it signed stops
// verifying. If it was the current key a new one takes its place (its kid
// is returned; "" otherwise).
func revokeKey(cfg config, getenv func(string) string, kid string, now time.Time) (string, error) {
	var replacement string
	err := changeKeys(cfg, getenv, now, func(f *keysFile) error {
		cur := f.current()
		for i := range f.Keys {
			k := &f.Keys[i]
			if k.ID != kid {
				continue
			}
			if k.Revoked != nil {
				return fmt.Errorf("key %s is already revoked", kid)
			}
			k.Revoked = timeRef(now)
			if k.Until == nil || k.Until.After(now.Add(tokenWindow(cfg))) {
				k.Until = timeRef(now.Add(tokenWindow(cfg))) // listed as revoked until then
			}
			if k == cur {
				n := newStoredKey(now, cmp.Or(k.Alg, algHS256)) // the same algorithm
				f.Keys, replacement = append(f.Keys, n), n.ID
			}
			return nil
		}
		return &usageError{fmt.Sprintf("no key %q (jwtnotes keys list shows them)", kid)}
	})
	return replacement, err
}

// listKeys is the keys of the file that still verify or are listed as
// revoked, and the current one, as keys list shows them: never a secret.
func listKeys(cfg config, getenv func(string) string, now time.Time) (keys []storedKey, current string, err error) {
	if getenv("JWT_SECRET") != "" {
		return nil, "", errSecretIsTheKey
	}
	path := filepath.Join(cfg.dataDir, keysFileName)
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("no keys file %s (is -data the server's data folder? the server makes it at its first start)", path)
	}
	f, _, err := readKeysFile(path)
	if err != nil {
		return nil, "", err
	}
	if c := f.current(); c != nil {
		current = c.ID
	}
	for _, k := range f.Keys {
		if k.Until == nil || now.Before(*k.Until) {
			k.Secret = ""
			keys = append(keys, k)
		}
	}
	return keys, current, nil
}

var errSecretIsTheKey = &usageError{"JWT_SECRET is set: it is the only key, and changing it is the rotation " +
	"(unset it to use the keys file and jwtnotes keys)"}

// changeKeys runs change on the keys file of cfg.dataDir under its lock,
// after dropping the keys past their window, and writes the result. A data
// folder without a keys file gets one (rotate then makes its second key).
func changeKeys(cfg config, getenv func(string) string, now time.Time, change func(*keysFile) error) error {
	if getenv("JWT_SECRET") != "" {
		return errSecretIsTheKey
	}
	if _, err := os.Stat(cfg.dataDir); err != nil {
		return fmt.Errorf("no data folder %s (is -data the server's data folder?): %w", cfg.dataDir, err)
	}
	return withKeysLock(cfg.dataDir, func(path string) error {
		f := &keysFile{}
		if _, err := os.Lstat(path); err == nil {
			if f, _, err = readKeysFile(path); err != nil {
				return err
			}
		} else if old, err := os.ReadFile(filepath.Join(cfg.dataDir, legacyKeyFile)); err == nil && len(old) >= minSecretBytes {
			k := newStoredKey(now, algHS256)
			k.Secret, k.Legacy = b64.EncodeToString(old), true
			f.Keys = []storedKey{k}
		}
		f.Keys = slices.DeleteFunc(f.Keys, func(k storedKey) bool { return k.Until != nil && !now.Before(*k.Until) })
		if err := change(f); err != nil {
			return err
		}
		if err := writeKeysFile(path, f); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(cfg.dataDir, legacyKeyFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

// pruneKeys drops the keys of dataDir's file whose window has passed (the
// server's hourly clean-up), rewriting the file only if it drops one.
func pruneKeys(dataDir string, now time.Time) (int, error) {
	dropped := 0
	err := withKeysLock(dataDir, func(path string) error {
		f, _, err := readKeysFile(path)
		if err != nil {
			return err
		}
		before := len(f.Keys)
		f.Keys = slices.DeleteFunc(f.Keys, func(k storedKey) bool { return k.Until != nil && !now.Before(*k.Until) })
		if dropped = before - len(f.Keys); dropped == 0 {
			return nil
		}
		return writeKeysFile(path, f)
	})
	return dropped, err
}

func timeRef(t time.Time) *time.Time {
	t = t.UTC().Truncate(time.Second)
	return &t
}

// withKeysLock runs fn holding an exclusive lock on DATA_DIR/jwt.keys.lock,
// so that two processes changing the keys do not lose each other's change.
func withKeysLock(dataDir string, fn func(path string) error) error {
	lock, err := os.OpenFile(filepath.Join(dataDir, keysFileName+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("the signing keys: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("the signing keys: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	return fn(filepath.Join(dataDir, keysFileName))
}

// writeKeysFile replaces the keys file atomically: a temporary file of mode
// 0600, synced, renamed over the old one, and the folder synced, so a crash
// leaves the old file or the new one, never a part.
func writeKeysFile(path string, f *keysFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jwt.keys-")
	if err != nil {
		return fmt.Errorf("the signing keys: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
