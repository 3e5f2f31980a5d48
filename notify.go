package main

// notify.go: the mails that tell a user of something done to their
// account that they may not have done themselves: a login from a device
// the account has not seen for 30 days, a refresh token used again (its
// session revoked), the password or the email changed (the email's to the
// old address), the second factor turned on or off.
//
// They go through the mail queue (mail.go) like the recovery mails, and
// -security-mails=false turns them off. An account gets at most
// -mail-limit of them an hour. None holds a link that does anything: a
// mail that says "if this was not you" must not be a way in itself.
//
// It knows the letters and when a device is new, not how mail is sent.

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// newDeviceDays is how long a device (a user agent on a network) stays
// known to an account after it logged in.
const newDeviceDays = 30

// notify queues a mail to u about something done to their account.
func (s *server) notify(u user, subject, text string) {
	if !s.cfg.securityMails {
		return
	}
	s.queueNotice(u, func(context.Context) (letter, bool, error) {
		return letter{to: u.Email, subject: subject, text: greeting(u) + text + signOff}, true, nil
	})
}

// queueNotice queues write; a letter it writes is sent within the
// account's hourly budget (counted then: a login from a known device
// writes none, and spends none).
func (s *server) queueNotice(u user, write writeLetter) {
	queued := s.mail.send(func(ctx context.Context) (letter, bool, error) {
		l, ok, err := write(ctx)
		if !ok || err != nil {
			return l, ok, err
		}
		if s.mailsTo.take("notify:"+strconv.FormatInt(u.ID, 10), s.now()) > 0 {
			s.log.Info("security mail not sent: -mail-limit reached for this account", "user", u.ID)
			return letter{}, false, nil
		}
		return l, true, nil
	})
	if !queued {
		s.log.Error("security mail not sent: the mail queue is full", "user", u.ID)
	}
}

func greeting(u user) string { return "Hello " + u.Username + ",\n\n" }

const signOff = `
If this was you, there is nothing to do. If it was not, change your
password, end the sessions you do not know in the Sessions view, and turn
on two-factor authentication in the Security view. Your account's
security log lists what happened, from where.
`

// notifyNewDevice mails u if the login of sess came from a device the
// account has not logged in from for newDeviceDays (not for its first
// login ever). The look at the log is the login's, after its password
// hash: a login of a known device queues nothing.
func (s *server) notifyNewDevice(ctx context.Context, u user, sess session) {
	if !s.cfg.securityMails {
		return
	}
	since := sess.Created.AddDate(0, 0, -newDeviceDays)
	seen, before, err := s.store.seenDevice(ctx, u.ID, sess.UserAgent, networkOf(sess.IP), sess.ID, since)
	if err != nil {
		s.log.Error("a login's device could not be looked up: no mail", "user", u.ID, "err", err)
		return
	}
	if seen || !before {
		return
	}
	s.notify(u, "A new login to your jwtnotes account", fmt.Sprintf(
		`your account was logged in to at %s (UTC) from a device it had not
seen for %d days:

  address:    %s
  browser:    %s
`, sess.Created.UTC().Format(time.DateTime), newDeviceDays, sess.IP, orNone(sess.UserAgent)))
}

// notifyReuse mails u that a copied refresh token was caught.
func (s *server) notifyReuse(r *http.Request, u user) {
	s.notify(u, "A session of your jwtnotes account was stopped", fmt.Sprintf(
		`a refresh token of one of your sessions was used again at %s (UTC),
after it had been replaced by a new one. Two parties held it: an app on
one of your devices, and maybe someone who copied it. The server logged
that session out.

The token came from:

  address:    %s
  browser:    %s
`, s.now().UTC().Format(time.DateTime), s.clientIP(r), orNone(r.UserAgent())))
}

// notifyPasswordChanged mails u that their password was changed.
func (s *server) notifyPasswordChanged(r *http.Request, u user) {
	s.notify(u, "Your jwtnotes password was changed", fmt.Sprintf(
		`the password of your account was changed at %s (UTC), and every other
session of it was logged out. The change came from:

  address:    %s
  browser:    %s
`, s.now().UTC().Format(time.DateTime), s.clientIP(r), orNone(r.UserAgent())))
}

// notifyEmailChanged mails the address before (before is the user as they
// were) that the account's email is now another.
func (s *server) notifyEmailChanged(r *http.Request, before user, now string) {
	s.notify(before, "The email address of your jwtnotes account was changed", fmt.Sprintf(
		`the email address of your account was changed at %s (UTC), from this
one to %s. Mails about your account (password resets too) go there
from now on. The change came from:

  address:    %s
  browser:    %s
`, s.now().UTC().Format(time.DateTime), now, s.clientIP(r), orNone(r.UserAgent())))
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// networkOf is the network an address is in, as a device is recognised
// by: its /24 for IPv4, its /48 for IPv6 (a home or an office, whatever
// address it has today).
func networkOf(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	bits := 48
	if addr.Unmap().Is4() {
		addr, bits = addr.Unmap(), 24
	}
	prefix, _ := addr.Prefix(bits)
	return prefix.String()
}
