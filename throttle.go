package main

// throttle.go: how many requests a client address or an account may make.
//
// A sliding-window limiter per key, and DRF's 429 answer with Retry-After.
// The client address is the connection's, or with -trust-proxy the one the
// proxy in front of us saw.
//
// It knows counting and addresses, not what is being counted.

import (
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
// window: it keeps the times of each key's recent events). Its memory is
// bounded: at most maxLimiterKeys keys, each with at most limit times; keys
// whose events are all older than the window are swept out once a window,
// and if that is not enough, arbitrary keys are dropped.
type limiter struct {
	mu        sync.Mutex
	limit     int
	window    time.Duration
	events    map[string][]int64 // unix nanoseconds, oldest first
	lastSweep int64
}

// maxLimiterKeys bounds a limiter's memory: 20,000 keys of at most 60 times
// each is under 12 MB.
const maxLimiterKeys = 20000

// newLimiter returns a limiter; a limit of 0 turns it off.
func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, events: map[string][]int64{}}
}

// take records an event for key at now and returns 0, or, if key has had
// limit events in the last window, records nothing and returns how long
// until the oldest of them leaves the window.
func (l *limiter) take(key string, now time.Time) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := now.UnixNano()
	l.sweep(t)
	recent := l.recent(key, t)
	if len(recent) >= l.limit {
		return time.Duration(recent[0] + int64(l.window) - t)
	}
	l.events[key] = append(recent, t)
	return 0
}

// giveBack removes the event that take recorded for key at now: an attempt
// that turned out not to count (a login that succeeded).
func (l *limiter) giveBack(key string, now time.Time) {
	if l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	events := l.events[key]
	if i := slices.Index(events, now.UnixNano()); i >= 0 {
		l.events[key] = slices.Delete(events, i, i+1)
	}
	if len(l.events[key]) == 0 {
		delete(l.events, key)
	}
}

// recent returns key's events still inside the window at t.
func (l *limiter) recent(key string, t int64) []int64 {
	events := l.events[key]
	start := t - int64(l.window)
	i := 0
	for i < len(events) && events[i] <= start {
		i++
	}
	return events[i:]
}

// sweep drops keys with no recent events, at most once a window, and keeps
// the number of keys under maxLimiterKeys.
func (l *limiter) sweep(t int64) {
	if t-l.lastSweep < int64(l.window) && len(l.events) < maxLimiterKeys {
		return
	}
	l.lastSweep = t
	for key := range l.events {
		if len(l.recent(key, t)) == 0 {
			delete(l.events, key)
		}
	}
	for key := range l.events { // map order is random: arbitrary keys go
		if len(l.events) < maxLimiterKeys*9/10 {
			break
		}
		delete(l.events, key)
	}
}

// clientIP is the address of the connection, or with -trust-proxy the last
// address in X-Forwarded-For: the one the proxy in front of us saw. (Earlier
// entries come from the client and prove nothing.)
func (s *server) clientIP(r *http.Request) string {
	if s.cfg.trustProxy {
		forwarded := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
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
