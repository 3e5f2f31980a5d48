package main

// ids.go: the random identifiers jwtnotes hands out: token ids (jti),
// session ids and stored file names.
//
// It knows randomness and the one place where an id's shape matters to the
// database (tokenID), nothing else.

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// randomID returns 128 random bits as 32 lowercase hex characters, like
// simplejwt's uuid4().hex: session ids and stored file names.
func randomID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// tokenID returns a token id (jti) in randomID's form whose first 48 bits
// are the time in milliseconds, and the other 80 random, like a UUIDv7.
//
// Tuning. The blacklist is keyed by jti: ids that grow with time are added
// at the end of its B-tree, so the tokens rotated together fill one page,
// where random ids would each touch a page of their own, to be written to
// the WAL again and copied back at the next checkpoint (docs/PERFORMANCE.md).
func tokenID(now time.Time) string {
	var b [16]byte
	ms := now.UnixMilli()
	for i := range 6 { // big-endian, so that the hex sorts as the time does
		b[i] = byte(ms >> (40 - 8*i))
	}
	rand.Read(b[6:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}
