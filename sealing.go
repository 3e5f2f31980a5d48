package main

// sealing.go: the key that seals the TOTP secrets in the database, so that
// a copy of notes.db alone does not give anybody's second factor away.
//
// The key is 32 random bytes in DATA_DIR/mfa.key, beside jwt.keys and like
// it outside the database, mode 0600, made at the first start. A secret is
// sealed with AES-256-GCM, a fresh random nonce each time, and its user's
// id as additional data: a sealed secret copied to another user's row
// does not open. A backup holds the key only with -with-keys (backup.go);
// restored without it, TOTP codes no longer work, and the recovery codes
// (kept as hashes, not sealed) are how those users log in again.
//
// It knows the key's file and the cipher, not TOTP (totp.go) or where
// sealed secrets are kept (factors.go).

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const sealingKeyFile = "mfa.key"

// sealer seals and opens secrets under the data folder's key.
type sealer struct {
	aead cipher.AEAD
}

var errSealBroken = errors.New("a sealed secret does not open with this server's mfa.key")

// loadSealer reads DATA_DIR/mfa.key, making it first if there is none.
func loadSealer(dataDir string) (*sealer, error) {
	path := filepath.Join(dataDir, sealingKeyFile)
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		rand.Read(key)
		text = []byte(base64.RawURLEncoding.EncodeToString(key) + "\n")
		// O_EXCL: of two processes starting at once, one makes the key and
		// the other reads it.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return loadSealer(dataDir)
		}
		if err != nil {
			return nil, fmt.Errorf("make %s: %w", path, err)
		}
		_, err = f.Write(text)
		if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	} else if err != nil {
		return nil, err
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%s is not 32 bytes of base64url: restore it from a backup taken with -with-keys", path)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal is secret sealed for user id: the nonce, then the ciphertext.
func (s *sealer) seal(id int64, secret []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, secret, sealedFor(id))
}

// open is the secret sealed for user id, or errSealBroken.
func (s *sealer) open(id int64, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errSealBroken
	}
	secret, err := s.aead.Open(nil, sealed[:n], sealed[n:], sealedFor(id))
	if err != nil {
		return nil, errSealBroken
	}
	return secret, nil
}

// sealedFor is the additional data of user id's secret.
func sealedFor(id int64) []byte {
	return []byte("jwtnotes totp secret of user " + strconv.FormatInt(id, 10))
}
