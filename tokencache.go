package main

// tokencache.go: access tokens verified recently, kept in memory with their
// claims, so that a client that sends the same token again is not checked
// again: no HMAC, no base64, no reading of its JSON.
//
// Tuning. Checking an access token's envelope and claims (jwt.go's verify)
// is the same work for the same bytes every time a client sends its token,
// for as long as the token lives: 5.5 µs and 35 allocations a check, 86 ns
// and none from memory (BenchmarkVerify in bench/). Measured with
// scripts/perf-ab.sh (ROUNDS=4, DUR=5s, 2026-12-03), this build against the
// same build that verifies every request (verified nil), CPU per request:
// notes-list 0.81× (req/s 1.22×), create-note 0.86× (1.13×); refresh,
// which sends no access token, 0.95×; mixed 0.94× and 1.07× in two runs,
// whose rounds spread from 0.89× to 1.27×.
//
// An entry holds no more than verify would answer. It is the token's exact
// text, so a token that differs in one byte is a different key and is
// verified in full. It answers only while the ring of keys that verified it
// is the ring in use: a key revoked or added makes a new ring (keys.go), and
// so does any reload, even of the same keys (a token naming an unknown kid
// makes one at most once a second), after which each token kept is checked
// in full once more. And it answers only from the moment it was verified (a
// token's iat and nbf were before then) until the token's exp or its key's
// end, whichever comes first. Only tokens that verified are kept, so a
// forged or broken one costs its full check every time. What the token
// stands for, its user and its session, is not judged here: authenticate
// asks the store on every request (which keeps answers of its own:
// accesscache.go).
//
// It knows tokens, claims and rings, not HTTP and not SQL.

import (
	"sync"
	"time"
)

const (
	// verifiedTokensSize bounds the entries, and verifiedTokensBytes the
	// text they hold (the tokens and their claims' strings); when either
	// would be passed, all go. A token of this server is about 400 bytes
	// with a short name and email.
	verifiedTokensSize  = 4096
	verifiedTokensBytes = 4 << 20
	// maxCachedToken: a longer token is verified every time, so that a
	// client cannot make the map hash or hold large keys. This server's
	// tokens are under 1.5 KB: a username of 150 characters and an email
	// of 254, at most 4 bytes a character, base64 on top.
	maxCachedToken = 2048
)

// verifiedTokens maps the text of an access token to what verify said of
// it. A nil *verifiedTokens keeps nothing.
type verifiedTokens struct {
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

func newVerifiedTokens() *verifiedTokens {
	return &verifiedTokens{entries: make(map[string]verifiedToken)}
}

// verifyAccess is verify(token, accessToken, now), answered from memory for
// a token verified before.
func (s *tokenSigner) verifyAccess(token string, now time.Time) (claims, error) {
	ring := s.ring.Load() // before verifying: a ring changed meanwhile is not the one kept
	if c, ok := s.verified.lookup(token, ring, now); ok {
		return c, nil
	}
	c, k, err := s.verifyWith(token, accessToken, now)
	if err != nil {
		return claims{}, err
	}
	until := time.Unix(c.Exp, 0) // verify refuses from the second of exp on
	if !k.until.IsZero() && k.until.Before(until) {
		until = k.until
	}
	s.verified.keep(token, verifiedToken{claims: c, ring: ring, from: now, until: until})
	return c, nil
}

// lookup returns the claims of token if it was verified under ring and its
// answer still holds at now.
func (v *verifiedTokens) lookup(token string, ring *keyring, now time.Time) (claims, bool) {
	if v == nil || len(token) > maxCachedToken {
		return claims{}, false
	}
	v.mu.Lock()
	e, ok := v.entries[token]
	v.mu.Unlock()
	if !ok || e.ring != ring || now.Before(e.from) || !now.Before(e.until) {
		return claims{}, false
	}
	return e.claims, true
}

// keep records a token that verified.
func (v *verifiedTokens) keep(token string, e verifiedToken) {
	if v == nil || len(token) > maxCachedToken {
		return
	}
	size := textSize(token, e.claims)
	v.mu.Lock()
	defer v.mu.Unlock()
	if old, ok := v.entries[token]; ok { // kept under an older ring, or by a request meanwhile
		delete(v.entries, token)
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
