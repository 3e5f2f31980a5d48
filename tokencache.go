package main

// tokencache.go: access tokens verified recently, kept in memory with their
// claims, so that a client that sends the same token again is not checked
// again: no HMAC, no base64, no reading of its JSON. Tuning: what it buys
// is in docs/PERFORMANCE.md (tokencache.go).
//
// The invariant: an entry answers exactly what verify would answer. It is
// the token's exact text, so a token that differs in one byte is verified
// in full. It answers only while the ring of keys that verified it is the
// ring in use (a key revoked or added, or any reload, makes a new ring: each
// token is then checked in full once more), and only from the moment it was
// verified (its iat and nbf were before then) until the token's exp or its
// key's end, whichever comes first. Only tokens that verified are kept, so a
// forged one costs its full check every time. Whether its user and session
// still stand is not judged here: authenticate asks the store every time.
//
// It wraps jwt.go's signer from outside; it knows tokens, claims and rings,
// not HTTP and not SQL.

import (
	"sync"
	"time"
)

const (
	// verifiedTokensSize bounds the entries, and verifiedTokensBytes the
	// text they hold (the tokens and their claims' strings); when either
	// would be passed, all go.
	verifiedTokensSize  = 4096
	verifiedTokensBytes = 4 << 20
	// maxCachedToken: a longer token is verified every time, so that a
	// client cannot make the map hash or hold large keys. This server's
	// tokens are under 1.5 KB (a name of 150 characters and an email of
	// 254, at most 4 bytes a character, base64 on top).
	maxCachedToken = 2048
)

// verifiedTokens verifies access tokens with signer, and remembers those
// that verified. A nil *verifiedTokens is not valid: every server has one.
type verifiedTokens struct {
	signer  *tokenSigner
	mu      sync.Mutex
	entries map[string]verifiedToken
	bytes   int // of text held by entries (textSize)
}

type verifiedToken struct {
	claims claims
	ring   *keyring  // the ring that verified it
	from   time.Time // when it was verified
	until  time.Time // the earlier of its exp and its key's end
}

func newVerifiedTokens(signer *tokenSigner) *verifiedTokens {
	return &verifiedTokens{signer: signer, entries: make(map[string]verifiedToken)}
}

// verifyAccess is signer.verify(token, accessToken, now), answered from
// memory for a token verified before.
func (v *verifiedTokens) verifyAccess(token string, now time.Time) (claims, error) {
	if len(token) > maxCachedToken {
		return v.signer.verify(token, accessToken, now)
	}
	ring := v.signer.ring.Load() // before verifying: a ring changed meanwhile is not the one kept
	if c, ok := v.lookup(token, ring, now); ok {
		return c, nil
	}
	c, k, err := v.signer.verifyKey(token, accessToken, now)
	if err != nil {
		return c, err
	}
	until := time.Unix(c.Exp, 0) // verify refuses from the second of exp on
	if !k.until.IsZero() && k.until.Before(until) {
		until = k.until
	}
	v.keep(token, verifiedToken{claims: c, ring: ring, from: now, until: until})
	return c, nil
}

// lookup returns the claims of token if it was verified under ring and its
// answer still holds at now.
func (v *verifiedTokens) lookup(token string, ring *keyring, now time.Time) (claims, bool) {
	v.mu.Lock()
	e, ok := v.entries[token]
	v.mu.Unlock()
	if !ok || e.ring != ring || now.Before(e.from) || !now.Before(e.until) {
		return claims{}, false
	}
	return e.claims, true
}

// keep records a token that verified, in place of an entry kept under an
// older ring (or by another request meanwhile).
func (v *verifiedTokens) keep(token string, e verifiedToken) {
	size := textSize(token, e.claims)
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.entries[token]; ok { // replaced below
		v.bytes -= textSize(token, old.claims)
	}
	if len(v.entries) >= verifiedTokensSize || v.bytes+size > verifiedTokensBytes {
		clear(v.entries)
		v.bytes = 0
	}
	v.entries[token] = e
	v.bytes += size
}

// textSize is the memory an entry's strings take.
func textSize(token string, c claims) int {
	return len(token) + len(c.TokenType) + len(c.JTI) + len(c.Username) + len(c.Email) + len(c.SessionID)
}
