package main

// conns.go: how many connections the server holds open, in total and per
// client address.
//
// Every connection costs a file descriptor and some memory, whether or not
// it ever sends a request, so a client could hold thousands of idle
// keep-alive connections until the process has no descriptor left. The
// listener therefore admits a connection only while there is room: below
// -max-conns in all and -max-conns-per-ip from its address. When there is
// none, it closes a quiet connection to make room (one with no request in a
// handler, the one quiet the longest), and only if every connection is
// busy does it close the new one.
//
// It knows connections and addresses, not HTTP routes.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// connLimits is the bookkeeping of the open connections.
type connLimits struct {
	total, perAddress int
	now               func() time.Time

	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	byAddr map[string]int
}

func newConnLimits(total, perAddress int) *connLimits {
	return &connLimits{total: total, perAddress: perAddress, now: time.Now,
		open: map[*trackedConn]struct{}{}, byAddr: map[string]int{}}
}

// trackedConn is an admitted connection. busy counts its requests that are
// in a handler; quietSince is when the last of them ended (or when it was
// accepted).
type trackedConn struct {
	net.Conn
	limits     *connLimits
	addr       string
	busy       atomic.Int32
	quietSince atomic.Int64 // unix nanoseconds
	closeOnce  sync.Once
}

func (c *trackedConn) Close() error {
	c.closeOnce.Do(func() { c.limits.forget(c) })
	return c.Conn.Close()
}

// CloseWrite half-closes the connection. net/http does so before it hangs
// up on a client that is still sending (its 431 for headers past the
// limit): the client reads the whole answer before the close, instead of a
// reset. Without it a wrapped *net.TCPConn would hide its own.
func (c *trackedConn) CloseWrite() error {
	if tcp, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return tcp.CloseWrite()
	}
	return nil
}

// admit registers c, making room first if needed, and returns it tracked;
// nil means there was no room and the caller closes c.
func (l *connLimits) admit(c net.Conn) *trackedConn {
	addr, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		addr = c.RemoteAddr().String()
	}
	l.mu.Lock()
	var victim *trackedConn
	if l.byAddr[addr] >= l.perAddress {
		victim = l.quietest(addr)
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
	} else if len(l.open) >= l.total {
		victim = l.quietest("")
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
	}
	if victim != nil {
		l.forgetLocked(victim)
	}
	tc := &trackedConn{Conn: c, limits: l, addr: addr}
	tc.quietSince.Store(l.now().UnixNano())
	l.open[tc] = struct{}{}
	l.byAddr[addr]++
	l.mu.Unlock()
	if victim != nil {
		victim.Close() // forgotten already: only the socket closes
	}
	return tc
}

// quietest is the connection (of addr, or of anyone for "") with no request
// in a handler that has been quiet the longest, or nil if all are busy.
func (l *connLimits) quietest(addr string) *trackedConn {
	var best *trackedConn
	for c := range l.open {
		if (addr == "" || c.addr == addr) && c.busy.Load() == 0 &&
			(best == nil || c.quietSince.Load() < best.quietSince.Load()) {
			best = c
		}
	}
	return best
}

func (l *connLimits) forget(c *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetLocked(c)
}

func (l *connLimits) forgetLocked(c *trackedConn) {
	if _, ok := l.open[c]; !ok {
		return
	}
	delete(l.open, c)
	if l.byAddr[c.addr]--; l.byAddr[c.addr] <= 0 {
		delete(l.byAddr, c.addr)
	}
}

// limitedListener admits connections through limits.
type limitedListener struct {
	net.Listener
	limits *connLimits
}

func (ln *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc := ln.limits.admit(c); tc != nil {
			return tc, nil
		}
		c.Close() // no room: every connection is busy
	}
}

type connKey struct{}

// connContext puts the connection into its requests' contexts
// (http.Server.ConnContext), for markBusy.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn() // under HTTPS: the connection the limits track
	}
	return context.WithValue(ctx, connKey{}, c)
}

// markBusy counts a request as busy on its connection while its handler
// runs. It ends before net/http sends the last of the answer, so a client
// that has read its answer finds the connection quiet.
func (l *connLimits) markBusy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*trackedConn); ok {
			c.busy.Add(1)
			defer func() {
				c.quietSince.Store(l.now().UnixNano())
				c.busy.Add(-1)
			}()
		}
		next.ServeHTTP(w, r)
	})
}
