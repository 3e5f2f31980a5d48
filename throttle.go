package main

// throttle.go: how many requests a client address or an account may make.
//
// A sliding-window limiter per key, and DRF's 429 answer with Retry-After.
// The client address is the connection's, or with -trust-proxy the one the
// proxy in front of us saw.
//
// It knows counting and addresses, not what is being counted.

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// throttleAddress spends one request of the client address's budget for
// login and register (-ip-limit a minute), or answers 429.
func (s *server) throttleAddress(r *http.Request) error {
	if wait := s.perAddress.take(s.clientIP(r), s.now()); wait > 0 {
		return throttled(wait)
	}
	return nil
}

// throttled is DRF's 429: the wait in whole seconds, rounded up, in the body
// and in Retry-After.
func throttled(wait time.Duration) *apiError {
	seconds := int((wait + time.Second - 1) / time.Second)
	unit := "seconds"
	if seconds == 1 {
		unit = "second"
	}
	return &apiError{
		status: http.StatusTooManyRequests,
		body:   detail{fmt.Sprintf("Request was throttled. Expected available in %d %s.", seconds, unit)},
		header: http.Header{"Retry-After": {strconv.Itoa(seconds)}},
	}
}

// limiter allows at most limit events per key in any window (a sliding
// window: it keeps the times of each key's recent events).
//
// Its memory is bounded whatever a client sends: a key is stored as its
// SHA-256, never as the text it came from, and there are at most maxKeys
// keys of at most limit times each. When a new key finds it full, every key
// below its limit goes; a key that has reached its limit is never dropped
// before its window has passed, so a flood of other keys cannot unlock an
// account. If every key is at its limit, a new key is let through
// unrecorded (the budget per client address still holds); reaching that
// needs maxKeys × limit events in one window, far more password hashes
// than a window has time for.
type limiter struct {
	mu      sync.Mutex
	limit   int
	window  time.Duration
	maxKeys int
	events  map[limiterKey][]int64 // unix nanoseconds, oldest first
}

type limiterKey [sha256.Size]byte

// maxLimiterKeys bounds a limiter's memory: 20,000 keys of at most 60 times
// each is under 12 MB.
const maxLimiterKeys = 20000

// newLimiter returns a limiter; a limit of 0 turns it off.
func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, maxKeys: maxLimiterKeys, events: map[limiterKey][]int64{}}
}

// take records an event for key at now and returns 0, or, if key has had
// limit events in the last window, records nothing and returns how long
// until the oldest of them leaves the window.
func (l *limiter) take(key string, now time.Time) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	k := limiterKey(sha256.Sum256([]byte(key)))
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now.UnixNano()
	recent := l.recent(k, t)
	if len(recent) >= l.limit {
		return time.Duration(recent[0] + int64(l.window) - t)
	}
	if _, known := l.events[k]; !known && len(l.events) >= l.maxKeys {
		for other := range l.events { // full: the keys below their limit go
			if len(l.recent(other, t)) < l.limit {
				delete(l.events, other)
			}
		}
		if len(l.events) >= l.maxKeys {
			return 0 // full of keys at their limit: see the type's comment
		}
	}
	l.events[k] = append(recent, t)
	return 0
}

// giveBack removes the event that take recorded for key at now: an attempt
// that turned out not to count (a login that succeeded).
func (l *limiter) giveBack(key string, now time.Time) {
	if l.limit <= 0 {
		return
	}
	k := limiterKey(sha256.Sum256([]byte(key)))
	l.mu.Lock()
	defer l.mu.Unlock()
	events := l.events[k]
	if i := slices.Index(events, now.UnixNano()); i >= 0 {
		l.events[k] = slices.Delete(events, i, i+1)
	}
	if len(l.events[k]) == 0 {
		delete(l.events, k)
	}
}

// recent returns k's events still inside the window at t.
func (l *limiter) recent(k limiterKey, t int64) []int64 {
	events := l.events[k]
	start := t - int64(l.window)
	i := 0
	for i < len(events) && events[i] <= start {
		i++
	}
	return events[i:]
}

// clientIP is the address of the connection, or with -trust-proxy the last
// address in X-Forwarded-For: the one the proxy in front of us appended,
// after everything the client sent. The header may come as several lines
// (a client can send its own before the proxy's), and they are one list in
// order, so the last entry of the last line is the proxy's. (Earlier entries
// come from the client and prove nothing.)
func (s *server) clientIP(r *http.Request) string {
	if client := r.Header.Get(clientHeader); client != "" && fromForwarder(r, s.cfg.forwarders) {
		return client // a LiteFS replica forwarded it, and says whose it is (replica.go)
	}
	if lines := r.Header.Values("X-Forwarded-For"); s.cfg.trustProxy && len(lines) > 0 {
		forwarded := strings.Split(lines[len(lines)-1], ",")
		if last := strings.TrimSpace(forwarded[len(forwarded)-1]); last != "" {
			return last
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttleWrites spends one of the caller's writes a minute (-write-limit),
// or answers 429: one account cannot fill the disk or the notes table.
func (s *server) throttleWrites(c *caller) error {
	if wait := s.writes.take(strconv.FormatInt(c.user.ID, 10), s.now()); wait > 0 {
		return throttled(wait)
	}
	return nil
}
