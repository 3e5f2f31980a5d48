package main

// passwords.go: checking a user's password under the failed-login budget,
// hashing and checking passwords, and Django's four password validators.
//
// Hashes are argon2id in the PHC string format, at most one per core but
// one at a time (hashSlots), so that a flood of logins queues instead of
// exhausting memory or every core. An unknown user is checked against a
// dummy hash, so the answer costs as much and reveals nothing.
//
// It knows passwords, and asks the store for a user's hash; not HTTP.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

var errWrongPassword = errors.New("wrong password")

// checkPassword finds the active user with this username and password, and
// returns them with the hash the password matched. A
// wrong password, an unknown user and an inactive user all give
// errNoActiveAccount, after the same work: an unknown user is checked against
// a dummy hash, so the answer takes as long and reveals nothing.
//
// Each account (and each unknown name) may fail at most -login-limit times in
// -login-window; past that it gets 429, even with the right password. The
// attempt takes its place in that budget before the hash runs, so that
// concurrent guesses cannot overshoot it, and gives it back if it succeeds.
//
// A wrong password for an account that exists goes into its security log,
// with where it came from, a moment later (logFailedLogin).
func (s *server) checkPassword(ctx context.Context, username, password string, from origin) (user, string, error) {
	if utf8.RuneCountInString(username) > maxUsernameLen {
		return user{}, "", errNoActiveAccount // nobody has such a name: no budget, no hash
	}
	account := foldKey(username)
	attempt := s.now()
	if wait := s.failedLogins.take(account, attempt); wait > 0 {
		return user{}, "", throttled(wait)
	}
	u, hash, err := s.store.credentials(ctx, username)
	if err != nil && !errors.Is(err, errNotFound) {
		return user{}, "", err
	}
	match, err := s.passwords.check(ctx, password, hash)
	if err != nil {
		return user{}, "", err
	}
	if !match && u.ID != 0 {
		s.logFailedLogin(event{userID: u.ID, kind: evLoginFailed, at: attempt, from: from})
	}
	if !match || !u.IsActive {
		return user{}, "", errNoActiveAccount
	}
	s.failedLogins.giveBack(account, attempt)
	return u, hash, nil
}

// logFailedLogin writes a wrong password for an account that exists to
// its security log off the request's path: the answer, and the time it
// takes, must be those of a name nobody has (a write of its own would
// tell them apart). The server's close waits for it.
func (s *server) logFailedLogin(e event) {
	s.background.Go(func() {
		if err := s.store.logEvent(context.Background(), e); err != nil {
			s.log.Error("a failed login was not written to the security log", "user", e.userID, "err", err)
		}
	})
}

// confirmPassword checks the password of a logged-in user who is about to
// change or delete their account, under the same failed-login budget as
// login, and returns the hash it matched (the change is made only if that
// is still the hash). It returns errWrongPassword if it does not match.
func (s *server) confirmPassword(ctx context.Context, u user, password string) (string, error) {
	account := foldKey(u.Username)
	attempt := s.now()
	if wait := s.failedLogins.take(account, attempt); wait > 0 {
		return "", throttled(wait)
	}
	hash, err := s.store.passwordHash(ctx, u.ID)
	if err != nil {
		return "", err
	}
	match, err := s.passwords.check(ctx, password, hash)
	if err != nil {
		return "", err
	}
	if !match {
		return "", errWrongPassword
	}
	s.failedLogins.giveBack(account, attempt)
	return hash, nil
}

// passwordProblems runs Django's four default password validators in their
// order and returns every message: similarity to the user's attributes,
// length, the common-password list (common), all digits.
func passwordProblems(common commonPasswords, password, username, email, firstName, lastName string) []string {
	var problems []string
	if attr := similarAttribute(password, map[string]string{
		"username": username, "email address": email, "first name": firstName, "last name": lastName,
	}); attr != "" {
		problems = append(problems, "The password is too similar to the "+attr+".")
	}
	if utf8.RuneCountInString(password) < 8 {
		problems = append(problems, "This password is too short. It must contain at least 8 characters.")
	}
	if common.contains(password) {
		problems = append(problems, "This password is too common.")
	}
	if password != "" && strings.IndexFunc(password, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		problems = append(problems, "This password is entirely numeric.")
	}
	return problems
}

// similarAttribute is Django's UserAttributeSimilarityValidator (max
// similarity 0.7): it returns the name of the first attribute (in Django's
// order) that the password is too similar to, comparing with the whole value
// and with each of its words.
//
// Its cost is bounded as Django bounds it since CVE-2021-45115: a part much
// shorter than the password cannot be similar enough, and is not compared
// (exceedsMaximumLengthRatio). So each comparison costs at most about 11
// times the part's length, and the parts come from attributes that passed
// their own length checks (the callers pass "" for one that did not).
func similarAttribute(password string, attrs map[string]string) string {
	pw := strings.ToLower(password)
	pwLen := utf8.RuneCountInString(pw)
	for _, name := range []string{"username", "first name", "last name", "email address"} {
		value := strings.ToLower(attrs[name])
		if value == "" {
			continue
		}
		parts := append(nonWordRuns.Split(value, -1), value)
		for _, part := range parts {
			if exceedsMaximumLengthRatio(pwLen, utf8.RuneCountInString(part)) {
				continue
			}
			if quickRatio(pw, part) >= maxSimilarity {
				return name
			}
		}
	}
	return ""
}

const maxSimilarity = 0.7

// exceedsMaximumLengthRatio is Django's test of the same name: a value at
// most a tenth of the password's length, and under maxSimilarity/2 of it,
// can never reach maxSimilarity.
func exceedsMaximumLengthRatio(passwordLen, valueLen int) bool {
	return passwordLen >= 10*valueLen && float64(valueLen) < maxSimilarity/2*float64(passwordLen)
}

var nonWordRuns = regexp.MustCompile(`[^\p{L}\p{N}_]+`)

// quickRatio is difflib.SequenceMatcher.quick_ratio: twice the number of
// characters the two strings share (as multisets) over their total length.
func quickRatio(a, b string) float64 {
	total := utf8.RuneCountInString(a) + utf8.RuneCountInString(b)
	if total == 0 {
		return 1
	}
	counts := map[rune]int{}
	for _, r := range b {
		counts[r]++
	}
	matches := 0
	for _, r := range a {
		if counts[r] > 0 {
			counts[r]--
			matches++
		}
	}
	return 2 * float64(matches) / float64(total)
}

//go:embed common-passwords.txt.gz
var commonPasswordsGz []byte

// commonPasswords is Django's list of 20,000 common passwords, sorted for
// binary search.
type commonPasswords []string

func loadCommonPasswords() (commonPasswords, error) {
	zr, err := gzip.NewReader(bytes.NewReader(commonPasswordsGz))
	if err != nil {
		return nil, err
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	list := strings.Fields(string(text))
	slices.Sort(list)
	return list, nil
}

// contains checks the password lower-cased and trimmed, as Django does.
func (c commonPasswords) contains(password string) bool {
	_, found := slices.BinarySearch(c, strings.TrimSpace(strings.ToLower(password)))
	return found
}

// argon2id parameters: OWASP's minimum (19 MiB, 2 passes, 1 lane).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// passwordHasher hashes and checks passwords with argon2id. Each hash takes
// 19 MiB and tens of milliseconds, so at most `slots` run at once: a flood
// of logins waits in line instead of exhausting memory.
type passwordHasher struct {
	slots chan struct{}
	dummy string // checked for unknown users, so they cost the same time
}

func newPasswordHasher(parallel int) *passwordHasher {
	// The dummy needs the parameters of a real hash, not a real hash: random
	// bytes in its place cost no 19 MiB at start and match no password.
	salt, key := make([]byte, argonSaltLen), make([]byte, argonKeyLen)
	rand.Read(salt)
	rand.Read(key)
	return &passwordHasher{slots: make(chan struct{}, max(1, parallel)), dummy: encodePHC(salt, key)}
}

// run waits for a free slot (or the request to go away), then runs f.
//
// argon2 allocates its 19 MiB afresh for every hash and never touches it
// again. Collecting right after each hash (the slot still held) hands those
// pages to the next hash instead of letting garbage pile up: with the memory
// limit main sets (hashMemoryLimit), a flood of logins holds the server at
// about slots × 19 MiB plus the rest, for a short GC cycle per hash.
func (p *passwordHasher) run(ctx context.Context, f func()) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.slots }()
	f()
	runtime.GC()
	return nil
}

// hashSlots is how many password hashes run at once: one per core but one,
// and at least one. A flood of logins (or of guesses) then leaves a core to
// serve everyone else, and holds at most slots × 19 MiB of hash memory.
func hashSlots(cpus int) int { return max(1, cpus-1) }

// hashMemoryLimit is the soft memory limit for the Go runtime: what the
// password hashes may hold at once, plus room for everything else.
func hashMemoryLimit(slots int) int64 {
	return int64(slots)*argonMemoryKiB*1024 + 18<<20
}

// hash returns the PHC string of a new salted argon2id hash of password.
func (p *passwordHasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	var key []byte
	err := p.run(ctx, func() {
		key = argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	})
	return encodePHC(salt, key), err
}

// check reports whether password matches the PHC string phc, in constant
// time. An empty or unreadable phc is checked against the dummy hash and
// never matches.
func (p *passwordHasher) check(ctx context.Context, password, phc string) (bool, error) {
	params, salt, want, ok := decodePHC(phc)
	if !ok {
		params, salt, want, _ = decodePHC(p.dummy)
	}
	var got []byte
	err := p.run(ctx, func() {
		got = argon2.IDKey([]byte(password), salt, params.time, params.memory, params.threads, uint32(len(want)))
	})
	return ok && err == nil && subtle.ConstantTimeCompare(got, want) == 1, err
}

type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
}

// encodePHC writes $argon2id$v=19$m=19456,t=2,p=1$salt$hash.
func encodePHC(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// decodePHC reads a string written by encodePHC. Parameters are read from
// the string, so hashes made with other settings keep working.
func decodePHC(phc string) (argonParams, []byte, []byte, bool) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return argonParams{}, nil, nil, false
	}
	var p argonParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory == 0 || p.time == 0 || p.threads == 0 {
		return argonParams{}, nil, nil, false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return argonParams{}, nil, nil, false
	}
	return p, salt, key, true
}
