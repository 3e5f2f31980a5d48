package main

// commands.go: the commands beside serve, as manage.py's are beside
// Django's server: flushexpiredtokens (which a running server also does
// once an hour), keys, backup and restore.
//
// run (main.go) reads the command line and calls one of them; each says
// what it did on stdout, in a line a person can read. The work itself is
// the store's, keys.go's and backup.go's.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// flushExpiredTokens is the command of the same name (simplejwt's management
// command): it deletes expired blacklist rows and ended sessions, once.
func flushExpiredTokens(ctx context.Context, cfg config, stdout io.Writer) error {
	// Opening would create an empty database where there is none: a typo in
	// -data would then "succeed" and delete nothing.
	if _, err := os.Stat(filepath.Join(cfg.dataDir, "notes.db")); err != nil {
		return fmt.Errorf("no database in %s (is -data the server's data folder?): %w", cfg.dataDir, err)
	}
	st, err := openStore(ctx, cfg.dataDir, cfg.sqliteSettings())
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

// manageKeys is the keys command: rotate, list or revoke (keys.go).
func manageKeys(cfg config, getenv func(string) string, command, kid string, stdout io.Writer) error {
	now := time.Now()
	switch command {
	case "rotate":
		kid, retired, err := rotateKeys(cfg, getenv, now)
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
		fmt.Fprintf(stdout, "%-16s  %-8s  %-9s  %s\n", "KID", "AGE", "STATE", "VERIFIES UNTIL")
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
			fmt.Fprintf(stdout, "%-16s  %-8s  %-9s  %s\n", k.ID, age(now.Sub(k.Created)), state, until)
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
