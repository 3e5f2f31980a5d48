package main

// mail.go: sending mail, over SMTP (net/smtp) or, when no mail server is
// configured, into the server's log, as Django's console backend does, so
// that `go run .` works with no set-up.
//
// Mail is sent by one goroutine from a bounded queue: a slow or failing mail
// server never holds up, or fails, the request that caused a mail. A letter
// is written when its turn comes, and no sooner than about a second after
// it was queued (mailDelay) (its function may find there is nothing to
// send), then sent; a send that fails for a reason that may pass is tried
// again later, a few times, and after the last try the letter is dropped
// with an ERROR line. Nothing is dropped silently, not even at shutdown.
//
// It knows SMTP, the queue and the log, not what the mails say or why they
// are sent (recovery.go). Log lines name the recipient and the subject,
// never the text: it holds a link with a token. Only the log backend shows
// the text, because showing it is its whole point, and its line says so.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mailConfig is where mail goes: the -smtp-* flags and SMTP_PASSWORD.
type mailConfig struct {
	host     string // "" for the log backend
	port     int
	user     string // "" to send without logging in
	password string // from the environment only: flags show up in ps
	from     string // the From header, e.g. "jwtnotes <noreply@notes.example>"
}

// letter is one mail to one person. link is the link the mail is about,
// which the log backend shows on a line of its own, ready to copy.
type letter struct {
	to, subject, text, link string
}

// writeLetter composes a letter when its turn in the queue comes. ok false
// means there is nothing to send (an address nobody has, say).
type writeLetter func(ctx context.Context) (l letter, ok bool, err error)

const (
	mailQueueSize   = 1000
	mailDialTimeout = 10 * time.Second
	mailTimeout     = 30 * time.Second // the whole conversation with the mail server, per attempt
)

// mailDelay is about how long a letter waits in the queue before it is
// written (between half and one and a half times it, at random). Writing
// it at once would put its work (a lookup, a token written) beside the
// answer of the request that asked for it, on the same CPUs, and an
// address that has an account would be answered more slowly than one that
// has none, which a patient client could measure (GUIDE.md §6). Later, and
// at a random moment, the work falls on no request in particular.
const mailDelay = time.Second

// mailRetries are the waits before each new try of a letter that failed.
var mailRetries = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute}

type mailer struct {
	cfg  mailConfig
	from string // the envelope sender: cfg.from's address
	tls  *tls.Config
	// needTLS: STARTTLS or no mail. Mail may travel unencrypted only to a
	// mail server on this machine.
	needTLS bool
	retries []time.Duration
	delay   time.Duration // mailDelay; 0 in tests
	log     *slog.Logger
	now     func() time.Time

	queue   chan queued
	stopped chan struct{} // closed when the sender goroutine has ended

	mu       sync.Mutex
	closing  bool
	inFlight sync.WaitGroup         // letters queued or waiting to be retried
	waiting  map[*time.Timer]queued // letters waiting for their next try
}

// queued is a letter in the queue: not yet written (write; not before
// due) or written and failed before (tries of them).
type queued struct {
	write  writeLetter
	due    time.Time
	letter letter
	tries  int
}

// newMailer checks cfg and starts the sender. close stops it.
func newMailer(cfg mailConfig, log *slog.Logger, now func() time.Time) (*mailer, error) {
	from, err := mail.ParseAddress(cfg.from)
	if err != nil {
		return nil, fmt.Errorf("-mail-from %q is not a mail address: %w", cfg.from, err)
	}
	m := &mailer{
		cfg: cfg, from: from.Address, retries: mailRetries, delay: mailDelay, log: log, now: now,
		tls:     &tls.Config{ServerName: cfg.host, MinVersion: tls.VersionTLS12},
		needTLS: !isLocalhost(cfg.host),
		queue:   make(chan queued, mailQueueSize),
		stopped: make(chan struct{}),
		waiting: map[*time.Timer]queued{},
	}
	go m.run()
	return m, nil
}

// send queues a letter. It returns false, and queues nothing, when the
// queue is full or the server is stopping: the caller answers 503.
func (m *mailer) send(write writeLetter) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return false
	}
	m.inFlight.Add(1) // before the letter is in the queue: the sender may be done with it at once
	select {
	case m.queue <- queued{write: write, due: time.Now().Add(m.delay/2 + rand.N(m.delay+1))}:
		return true
	default:
		m.inFlight.Done()
		return false
	}
}

// run sends the queued letters, one at a time, until close.
func (m *mailer) run() {
	defer close(m.stopped)
	for q := range m.queue {
		m.deliver(q)
	}
}

// deliver writes (if not yet) and sends one letter, and on a failure that
// may pass schedules its next try.
func (m *mailer) deliver(q queued) {
	time.Sleep(time.Until(q.due)) // letters come in about the order they are due: this waits little but for the first
	ctx, cancel := context.WithTimeout(context.Background(), mailTimeout)
	defer cancel()
	if q.write != nil {
		l, ok, err := q.write(ctx)
		if err != nil {
			m.log.Error("mail not sent: it could not be written", "err", err)
		}
		if err != nil || !ok {
			m.inFlight.Done()
			return
		}
		q.write, q.letter = nil, l
	}
	err := m.transmit(ctx, q.letter)
	if err == nil {
		m.inFlight.Done()
		return
	}
	q.tries++
	var reply *textproto.Error
	permanent := errors.As(err, &reply) && reply.Code >= 500 // 5xx: the server will never take it
	if permanent || q.tries > len(m.retries) {
		m.log.Error("mail not sent, given up", "to", q.letter.to, "subject", q.letter.subject, "tries", q.tries, "err", err)
		m.inFlight.Done()
		return
	}
	wait := m.retries[q.tries-1]
	m.log.Warn("mail not sent, will try again", "to", q.letter.to, "subject", q.letter.subject, "in", wait, "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		m.log.Error("mail not sent, given up: the server is stopping", "to", q.letter.to, "subject", q.letter.subject)
		m.inFlight.Done()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(wait, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.waiting[t]; !ok {
			return // close took it
		}
		delete(m.waiting, t)
		select {
		case m.queue <- q:
		default:
			m.log.Error("mail not sent, given up: the mail queue is full", "to", q.letter.to, "subject", q.letter.subject)
			m.inFlight.Done()
		}
	})
	m.waiting[t] = q
}

// close stops taking letters and sends those queued, until ctx ends. Every
// letter not sent by then (queued, or waiting for a retry) gets an ERROR
// line.
func (m *mailer) close(ctx context.Context) {
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	m.closing = true
	for t, q := range m.waiting { // a timer that fired meanwhile finds itself gone, and does nothing
		t.Stop()
		delete(m.waiting, t)
		m.log.Error("mail not sent, given up: the server stopped before its next try", "to", q.letter.to, "subject", q.letter.subject)
		m.inFlight.Done()
	}
	close(m.queue) // send (under mu) and the timers (under mu, and waiting is empty) no longer write to it
	m.mu.Unlock()
	select {
	case <-m.stopped:
	case <-ctx.Done():
		m.log.Error("mail not sent, given up: the server stopped with letters in the queue", "letters", len(m.queue))
	}
}

// wait returns once every letter queued so far is sent or given up (for
// tests: a letter's fate, without sleeping).
func (m *mailer) wait() { m.inFlight.Wait() }

// transmit hands a letter to the mail server, or to the log.
func (m *mailer) transmit(ctx context.Context, l letter) error {
	msg, err := m.message(l)
	if err != nil {
		return err
	}
	if m.cfg.host == "" {
		m.log.Warn("MAIL NOT SENT (no -smtp-host): the log backend prints it here instead, link and token included",
			"to", l.to, "subject", l.subject, "link", l.link, "text", l.text)
		return nil
	}
	return m.smtpSend(ctx, l.to, msg)
}

// smtpSend is one SMTP conversation, within mailDialTimeout to connect and
// mailTimeout in all. STARTTLS is used when the server offers it, and is
// required unless the server is this machine.
func (m *mailer) smtpSend(ctx context.Context, to string, msg []byte) error {
	dialer := net.Dialer{Timeout: mailDialTimeout}
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(m.cfg.host, strconv.Itoa(m.cfg.port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, m.cfg.host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(m.tls); err != nil {
			return err
		}
	} else if m.needTLS {
		return fmt.Errorf("%s does not offer STARTTLS, which is required for a mail server on another machine", m.cfg.host)
	}
	if m.cfg.user != "" {
		// PlainAuth itself refuses to send the password unencrypted, except to localhost.
		if err := c.Auth(smtp.PlainAuth("", m.cfg.user, m.cfg.password, m.cfg.host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// isLocalhost reports whether host names this machine: the one case where
// mail may travel unencrypted.
func isLocalhost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// message is the letter as an RFC 5322 message: plain UTF-8 text, quoted-
// printable so that every line stays short and 7-bit.
func (m *mailer) message(l letter) ([]byte, error) {
	for _, v := range []string{l.to, l.subject} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("a header of the mail holds a line break") // a validated address never does
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@jwtnotes>\r\n",
		m.cfg.from, l.to, l.subject, m.now().Format(time.RFC1123Z), randomID())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(l.text, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
