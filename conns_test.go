package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeConn is one end of a pipe with the remote address a test chooses.
type fakeConn struct {
	net.Conn
	remote string
}

func (c fakeConn) RemoteAddr() net.Addr {
	addr, _ := net.ResolveTCPAddr("tcp", c.remote)
	return addr
}

// TestConnLimits: the listener's bookkeeping. At a cap it closes the
// connection quiet the longest (of the same address for the per-address
// cap), and refuses the new one when every candidate is busy; closed
// connections free their place.
func TestConnLimits(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := newConnLimits(3, 2)
	l.now = clock.now
	conn := func(remote string) (*trackedConn, net.Conn) {
		t.Helper()
		server, client := net.Pipe()
		clock.advance(time.Second)
		return l.admit(fakeConn{server, remote}), client
	}
	closed := func(client net.Conn) bool {
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := client.Read(make([]byte, 1))
		return err == io.EOF || err == io.ErrClosedPipe
	}

	a1, a1client := conn("192.0.2.1:1")
	a2, _ := conn("192.0.2.1:2")
	a2.busy.Add(1)
	a3, _ := conn("192.0.2.1:3") // over the per-address cap: a1 is quiet, a2 busy
	if a1 == nil || a2 == nil || a3 == nil || !closed(a1client) {
		t.Fatalf("per-address cap: a1 %v, a2 %v, a3 %v; a1 should have been closed", a1, a2, a3)
	}
	a3.busy.Add(1)
	if a4, _ := conn("192.0.2.1:4"); a4 != nil {
		t.Error("a fourth connection from a busy address was admitted")
	}
	b1, b1client := conn("192.0.2.2:1") // the third in all
	if b1 == nil {
		t.Fatal("another address was refused below the total cap")
	}
	c1, _ := conn("192.0.2.3:1") // over the total cap: b1 is the only quiet one
	if c1 == nil || !closed(b1client) {
		t.Fatalf("total cap: c1 %v; b1 should have been closed", c1)
	}
	c1.busy.Add(1)
	if d1, _ := conn("192.0.2.4:1"); d1 != nil {
		t.Error("admitted beyond the total cap with every connection busy")
	}
	c1.Close()
	if d1, _ := conn("192.0.2.4:1"); d1 == nil {
		t.Error("a closed connection did not free its place")
	}
	if n := len(l.open); n != 3 {
		t.Errorf("%d connections tracked, want 3", n)
	}
}

// TestConnectionCapsOnTheBinary: the real server with two connections per
// address. A quiet keep-alive connection is closed to make room for a new
// one; when both are busy in a handler, a third is closed unanswered.
func TestConnectionCapsOnTheBinary(t *testing.T) {
	t.Parallel()
	p := startServer(t, t.TempDir(), "-max-conns-per-ip", "2")
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	health := func(c net.Conn, r *bufio.Reader) error {
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(r, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	// busy starts a registration whose body is held back: its handler is
	// reading once the server has said 100 Continue.
	busy := func(c net.Conn, r *bufio.Reader) {
		t.Helper()
		fmt.Fprint(c, "POST /api/register/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
			"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n")
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("waiting for 100 Continue: %q %v", line, err)
		}
		r.ReadString('\n')
	}

	quiet, quietR := dial()
	if err := health(quiet, quietR); err != nil {
		t.Fatal(err)
	}
	held, heldR := dial()
	busy(held, heldR)
	fresh, freshR := dial()
	if err := health(fresh, freshR); err != nil {
		t.Fatalf("a new connection beside a quiet one: %v", err)
	}
	if err := health(quiet, quietR); err == nil {
		t.Error("the quiet connection was kept open beyond the cap")
	}
	busy(fresh, freshR)
	refused, refusedR := dial()
	if err := health(refused, refusedR); err == nil {
		t.Error("a third connection was served while two were busy")
	}
	fmt.Fprint(held, `{"x":1}   `) // the held bodies arrive: both answer
	fmt.Fprint(fresh, `{"x":1}   `)
	for _, r := range []*bufio.Reader{heldR, freshR} {
		if res, err := http.ReadResponse(r, nil); err != nil || res.StatusCode != 400 {
			t.Errorf("a held registration: %v %v", res, err)
		}
	}
}
