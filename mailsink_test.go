package main

// mailsink_test.go: a small SMTP server for the tests, on the standard
// library: it takes mail on 127.0.0.1 and hands each message to the test,
// and can be told to offer STARTTLS, to refuse mail for a while, or to
// hold its greeting (a mail server that hangs).

import (
	"bytes"
	"crypto/tls"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
)

type mailSink struct {
	t        testing.TB
	ln       net.Listener
	port     int
	received chan sunkMail

	mu      sync.Mutex
	tls     *tls.Config   // offer STARTTLS with this, if set
	refuse  int           // refuse the next so many messages at DATA...
	code    string        // ...with this reply ("451 try later")
	hold    chan struct{} // if set, greet only once it is closed
	greeted chan struct{} // a connection arrived and waits for hold
}

// sunkMail is one message the sink took.
type sunkMail struct {
	from, to string
	tls      bool
	header   mail.Header
	text     string // the body, quoted-printable decoded
}

// link is the mailed link's token for purpose ("reset", "verify").
func (m sunkMail) link(t testing.TB, purpose string) string {
	t.Helper()
	found := regexp.MustCompile(`/#` + purpose + `/([A-Za-z0-9_-]{43})\b`).FindStringSubmatch(m.text)
	if found == nil {
		t.Fatalf("no %s link in the mail:\n%s", purpose, m.text)
	}
	return found[1]
}

func newMailSink(t testing.TB) *mailSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mailSink{t: t, ln: ln, port: ln.Addr().(*net.TCPAddr).Port,
		received: make(chan sunkMail, 100), greeted: make(chan struct{}, 100)}
	t.Cleanup(func() { ln.Close() })
	go s.serve()
	return s
}

// set changes how the sink behaves, for the connections that come next.
func (s *mailSink) set(f func(*mailSink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// useFor points a test configuration's mail at the sink.
func (s *mailSink) useFor(cfg *config) {
	cfg.mail.host, cfg.mail.port = "127.0.0.1", s.port
}

// next is the next message the sink took; it fails the test if there is
// none queued (call after e.srv.mail.wait()).
func (s *mailSink) next() sunkMail {
	s.t.Helper()
	select {
	case m := <-s.received:
		return m
	default:
		s.t.Fatal("no mail arrived")
		return sunkMail{}
	}
}

// none fails the test if a message is waiting.
func (s *mailSink) none() {
	s.t.Helper()
	select {
	case m := <-s.received:
		s.t.Fatalf("unexpected mail to %s: %s", m.to, m.header.Get("Subject"))
	default:
	}
}

func (s *mailSink) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(conn)
	}
}

func (s *mailSink) session(conn net.Conn) {
	defer conn.Close()
	s.mu.Lock()
	hold, tlsConfig := s.hold, s.tls
	s.mu.Unlock()
	if hold != nil {
		s.greeted <- struct{}{}
		<-hold
	}
	tp := textproto.NewConn(conn)
	reply := func(line string) { tp.PrintfLine("%s", line) }
	reply("220 sink ESMTP")
	var from, to string
	secure := false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			if tlsConfig != nil && !secure {
				reply("250-sink")
				reply("250 STARTTLS")
			} else {
				reply("250 sink")
			}
		case "STARTTLS":
			reply("220 go ahead")
			tlsConn := tls.Server(conn, tlsConfig)
			if tlsConn.Handshake() != nil {
				return
			}
			conn, secure = tlsConn, true
			tp = textproto.NewConn(conn)
		case "MAIL":
			from = strings.Trim(strings.TrimPrefix(arg, "FROM:"), "<>")
			reply("250 ok")
		case "RCPT":
			to = strings.Trim(strings.TrimPrefix(arg, "TO:"), "<>")
			reply("250 ok")
		case "DATA":
			reply("354 go on")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.mu.Lock()
			refused := s.refuse > 0
			if refused {
				s.refuse--
				reply(s.code)
			}
			s.mu.Unlock()
			if !refused {
				s.received <- parseSunkMail(s.t, from, to, secure, data)
				reply("250 taken")
			}
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not here")
		}
	}
}

func parseSunkMail(t testing.TB, from, to string, secure bool, data []byte) sunkMail {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Errorf("the sink got a malformed message: %v\n%s", err, data)
		return sunkMail{from: from, to: to}
	}
	body := io.Reader(msg.Body)
	if msg.Header.Get("Content-Transfer-Encoding") == "quoted-printable" {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		t.Errorf("the sink could not decode a message: %v", err)
	}
	return sunkMail{from: from, to: to, tls: secure, header: msg.Header, text: strings.ReplaceAll(string(text), "\r\n", "\n")}
}
