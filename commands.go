package main

// commands.go: the commands beside serve, as manage.py's are beside
// Django's server: flushexpiredtokens (which a running server also does
// once an hour), keys, backup and restore.
//
// run (main.go) reads the command line and calls one of them; each says
// what it did on stdout, in a line a person can read. The work itself is
// the store's, keys.go's and backup.go's.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"
)

// flushExpiredTokens is the command of the same name (simplejwt's management
// command): it deletes expired blacklist rows and ended sessions, once.
func flushExpiredTokens(ctx context.Context, cfg config, stdout io.Writer) error {
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	tokens, sessions, err := st.flushExpired(ctx, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %d blacklisted tokens and %d sessions\n", tokens, sessions)
	return nil
}

// openExistingStore opens the server's database for a command. Opening
// would create an empty database where there is none: a typo in -data would
// then "succeed" and change nothing.
func openExistingStore(ctx context.Context, cfg config) (*store, error) {
	if _, err := os.Stat(cfg.database()); err != nil {
		return nil, fmt.Errorf("no database in %s (is -data the server's data folder?): %w", cfg.dataDir, err)
	}
	return openStore(ctx, cfg.dataDir, cfg.sqliteSettings())
}

// manageKeys is the keys command: rotate, list or revoke (keys.go).
func manageKeys(cfg config, getenv func(string) string, command, kid, alg string, stdout io.Writer) error {
	now := time.Now()
	switch command {
	case "rotate":
		kid, retired, err := rotateKeys(cfg, getenv, now, alg)
		if err != nil {
			return err
		}
		if !retired {
			fmt.Fprintf(stdout, "new current key %s, the first\n", kid)
		} else {
			fmt.Fprintf(stdout, "new current key %s; the previous one verifies its tokens until %s\n",
				kid, now.Add(tokenWindow(cfg)).UTC().Truncate(time.Second).Format(time.RFC3339))
		}
		return reportServers(cfg.dataDir, "sign with it", stdout)
	case "revoke":
		replacement, err := revokeKey(cfg, getenv, kid, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: every token it signed is refused from now on\n", kid)
		if replacement != "" {
			fmt.Fprintf(stdout, "it was the current key: new current key %s\n", replacement)
		}
		return reportServers(cfg.dataDir, "refuse "+kid, stdout)
	case "list":
		keys, current, err := listKeys(cfg, getenv, now)
		if err != nil {
			return err
		}
		table := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0) // columns as wide as their widest kid
		defer table.Flush()
		fmt.Fprintln(table, "KID\tALG\tAGE\tSTATE\tVERIFIES UNTIL")
		for _, k := range keys {
			until := "while current"
			if k.Until != nil {
				until = k.Until.Format(time.RFC3339)
			}
			state := "retired"
			switch {
			case k.Revoked != nil:
				state, until = "revoked", "-"
			case k.ID == current:
				state = "current"
			}
			fmt.Fprintf(table, "%s\t%s\t%s\t%s\t%s\n", k.ID, cmp.Or(k.Alg, algHS256), age(now.Sub(k.Created)), state, until)
		}
	}
	return nil
}

// reportServers tells the servers running on dataDir to load the keys as
// the command left them, waits until each has, and says so (what they now
// do: doing). A server that did not answer is an error: the command cannot
// make sure.
func reportServers(dataDir, doing string, stdout io.Writer) error {
	confirmed, late, err := notifyServers(dataDir)
	switch {
	case err != nil:
		return err
	case len(late) > 0:
		return fmt.Errorf("%d server(s) running on %s did not confirm the new keys within %v (%s): "+
			"they may not %s until they read the file, within a second if they run at all",
			len(late), dataDir, keysConfirmTimeout, strings.Join(late, ", "), doing)
	case confirmed == 0:
		fmt.Fprintf(stdout, "no server is running on %s: the next one to start loads these keys\n", dataDir)
	default:
		fmt.Fprintf(stdout, "the %d server(s) running on %s now %s\n", confirmed, dataDir, doing)
	}
	return nil
}

// age is a duration as keys list shows it: days, else hours, else minutes.
func age(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

// flushHourly runs the same clean-up once an hour until ctx ends, and drops
// the signing keys whose window has passed from the keys file (keysDir; ""
// when the key is JWT_SECRET).
func flushHourly(ctx context.Context, st *store, keysDir string, log *slog.Logger) {
	ticker := time.NewTicker(time.Hour)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			tokens, sessions, err := st.flushExpired(ctx, time.Now())
			if err != nil && ctx.Err() == nil {
				log.Error("flush expired tokens", "err", err)
				continue
			}
			log.Info("flushed expired tokens", "tokens", tokens, "sessions", sessions)
			if keysDir == "" {
				continue
			}
			if dropped, err := pruneKeys(keysDir, time.Now()); err != nil {
				log.Error("drop expired signing keys", "err", err)
			} else if dropped > 0 {
				log.Info("dropped signing keys past their window", "keys", dropped)
			}
		}
	}
}

// backupCommand is jwtnotes backup DEST [-with-keys] (backup.go).
func backupCommand(ctx context.Context, cfg config, folder string, withKeys bool, getenv func(string) string, stdout io.Writer) error {
	start := time.Now()
	sum, err := backupDataDir(ctx, cfg.dataDir, folder, withKeys, getenv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s in %v\n", sum, folder, time.Since(start).Round(time.Millisecond))
	return nil
}

// restoreCommand is jwtnotes restore SRC (backup.go).
func restoreCommand(ctx context.Context, cfg config, folder string, getenv func(string) string, stdout io.Writer) error {
	sum, err := restoreDataDir(ctx, folder, cfg.dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", sum, cfg.dataDir)
	if !sum.keys && getenv("JWT_SECRET") == "" {
		fmt.Fprintf(stdout, "the backup holds no signing keys: put the old jwt.keys into %s, or run jwtnotes keys rotate -data %s "+
			"(every session will have to log in again)\n", cfg.dataDir, cfg.dataDir)
	}
	return nil
}

// usersCommand is jwtnotes users list, show NAME, deactivate NAME, activate
// NAME and set-password NAME, as manage.py's changepassword and the admin
// give them. It works beside a running server: the server sees a change
// within a second (what it keeps in memory lives a second at most when
// another process writes). It never shows a password hash.
func usersCommand(ctx context.Context, cfg config, sub, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	st, err := openExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	if sub == "list" {
		users, err := st.listUsers(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-6s  %-20s  %-30s  %-8s  %-6s  %s\n", "ID", "USERNAME", "EMAIL", "VERIFIED", "ACTIVE", "LAST LOGIN")
		for _, u := range users {
			fmt.Fprintf(stdout, "%-6d  %-20s  %-30s  %-8s  %-6s  %s\n", u.ID, u.Username, u.Email,
				yesNo(u.EmailVerified), yesNo(u.IsActive), timeOrNever(u.LastLogin))
		}
		return nil
	}
	u, sessions, notes, err := st.userNamed(ctx, name, now)
	if errors.Is(err, errNotFound) {
		return &usageError{fmt.Sprintf("no user %q (jwtnotes users list shows them)", name)}
	}
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		fmt.Fprintf(stdout, "id          %d\nusername    %s\nemail       %s\nname        %s\nverified    %s\nactive      %s\n"+
			"joined      %s\nlast login  %s\nsessions    %d live\nnotes       %d\n",
			u.ID, u.Username, u.Email, strings.TrimSpace(u.FirstName+" "+u.LastName), yesNo(u.EmailVerified),
			yesNo(u.IsActive), u.DateJoined.Format(time.RFC3339), timeOrNever(u.LastLogin), sessions, notes)
	case "deactivate", "activate":
		if err := st.setActive(ctx, u.ID, sub == "activate", now); err != nil {
			return err
		}
		if sub == "activate" {
			fmt.Fprintf(stdout, "activated %s: they can log in again\n", u.Username)
			return nil
		}
		fmt.Fprintf(stdout, "deactivated %s: %d sessions revoked; a running server refuses their tokens within a second\n", u.Username, sessions)
	case "mfa-off":
		if err := st.disableTOTPByAdministrator(ctx, u.ID, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "two-factor authentication is off for %s: they log in with their password alone, and may enrol again\n", u.Username)
	case "set-password":
		password, err := readNewPassword(stdin, stderr)
		if err != nil {
			return err
		}
		common, err := loadCommonPasswords()
		if err != nil {
			return err
		}
		if problems := passwordProblems(common, password, u.Username, u.Email, u.FirstName, u.LastName); len(problems) > 0 {
			return &usageError{"the password is refused: " + strings.Join(problems, " ")}
		}
		hash, err := newPasswordHasher(1).hash(ctx, password)
		if err != nil {
			return err
		}
		if err := st.setPassword(ctx, u.ID, hash, now); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s set: %d sessions revoked; they log in again with it\n", u.Username, sessions)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}

// readNewPassword reads a password: from a terminal, twice and not echoed,
// after a prompt on prompt; from anything else (a pipe, a file), its first
// line.
func readNewPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	lines := bufio.NewReader(stdin)
	readLine := func() (string, error) {
		line, err := lines.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, isFile := stdin.(*os.File)
	if !isFile {
		return readLine()
	}
	restore, isTerminal := echoOff(f)
	if !isTerminal {
		return readLine()
	}
	defer restore()
	fmt.Fprint(prompt, "New password: ")
	first, err := readLine()
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "\nAgain: ")
	second, err := readLine()
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if first != second {
		return "", &usageError{"the two passwords differ; nothing was changed"}
	}
	return first, nil
}

// echoOff turns the terminal f's echo off, if f is a terminal, and returns
// how to turn it on again.
func echoOff(f *os.File) (restore func(), isTerminal bool) {
	fd := f.Fd()
	var state syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&state))); e != 0 {
		return nil, false
	}
	quiet := state
	quiet.Lflag &^= syscall.ECHO
	syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&quiet)))
	return func() { syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&state))) }, true
}
