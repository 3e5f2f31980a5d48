package main

// keys.go: where the HMAC key that signs every token comes from.
//
// JWT_SECRET when it is set, otherwise a random key made once and kept in
// DATA_DIR/jwt.key, outside the database: a copy of notes.db holds no
// usable token. The key is never logged and never a flag (flags show up in
// ps).
//
// It knows the key's file, not what the key signs.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// signingKey returns the HMAC key: JWT_SECRET when set (at least 32 bytes),
// otherwise 32 random bytes kept in DATA_DIR/jwt.key, made at the first start.
func signingKey(getenv func(string) string, dataDir string) ([]byte, error) {
	if secret := getenv("JWT_SECRET"); secret != "" {
		if len(secret) < 32 {
			return nil, &usageError{fmt.Sprintf("JWT_SECRET is %d bytes; it must be at least 32", len(secret))}
		}
		return []byte(secret), nil
	}
	path := filepath.Join(dataDir, "jwt.key")
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("%s holds %d bytes; it must hold at least 32", path, len(key))
	}
	return key, nil
}

// createKeyFile writes a new random key readable by its owner only. O_EXCL
// makes two servers starting at once agree on one key.
func createKeyFile(path string) ([]byte, error) {
	key := make([]byte, 32)
	rand.Read(key)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}
