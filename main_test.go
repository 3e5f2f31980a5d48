package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunRefusesShortSecret(t *testing.T) {
	t.Parallel()
	secret := "too-short-secret"
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"jwtnotes", "-data", t.TempDir()},
		envOf(map[string]string{"JWT_SECRET": secret}), nil, io.Discard, &stderr)
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Fatalf("run = %v, want a usage error (exit code 2)", err)
	}
	if !strings.Contains(err.Error(), "JWT_SECRET") || strings.Contains(err.Error()+stderr.String(), secret) {
		t.Errorf("message %q should name JWT_SECRET and not show it", err)
	}
}

func TestRunRefusesBadCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"jwtnotes", "-no-such-flag"}, nil},
		{[]string{"jwtnotes", "launch"}, nil},
		{[]string{"jwtnotes", "serve", "extra"}, nil},
		{[]string{"jwtnotes", "-access-ttl", "0s"}, nil},
		{[]string{"jwtnotes"}, map[string]string{"ACCESS_TOKEN_LIFETIME": "soon"}},
		{[]string{"jwtnotes"}, map[string]string{"LOGIN_LIMIT": "many"}},
		{[]string{"jwtnotes", "-reset-ttl", "0s"}, nil},
		{[]string{"jwtnotes", "-smtp-port", "70000"}, nil},
		{[]string{"jwtnotes", "-mail-limit", "-1"}, nil},
		{[]string{"jwtnotes"}, map[string]string{"SMTP_PASSWORD": "secret"}}, // and no SMTP_USER
	} {
		t.Run(strings.Join(tc.args[1:], " ")+fmt.Sprint(tc.env), func(t *testing.T) {
			err := run(context.Background(), tc.args, envOf(tc.env), nil, io.Discard, io.Discard)
			var usage *usageError
			if !errors.As(err, &usage) {
				t.Errorf("run(%q, %v) = %v, want a usage error", tc.args, tc.env, err)
			}
		})
	}
}

// TestMailConfig: the mail flags fall back to their variables, the password
// comes from SMTP_PASSWORD only, and a From that is no address is refused
// at start, with the flag named.
func TestMailConfig(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"-smtp-host", "mail.example.com"}, envOf(map[string]string{
		"SMTP_HOST": "other.example.com", "SMTP_PORT": "2525", "SMTP_USER": "me", "SMTP_PASSWORD": "pw",
		"PASSWORD_RESET_TIMEOUT": "10m", "REQUIRE_VERIFIED_EMAIL": "1",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := mailConfig{host: "mail.example.com", port: 2525, user: "me", password: "pw", from: "jwtnotes <jwtnotes@localhost>"}
	if cfg.mail != want || cfg.resetTTL != 10*time.Minute || cfg.verifyTTL != 72*time.Hour || !cfg.requireVerifiedEmail || cfg.mailLimit != 5 {
		t.Errorf("config = %+v", cfg)
	}
	err = run(context.Background(), []string{"jwtnotes", "-data", t.TempDir(), "-addr", "127.0.0.1:0", "-mail-from", "not an address"},
		envOf(nil), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-mail-from") {
		t.Errorf("run with a bad -mail-from = %v", err)
	}
}

func TestConfigFlagsEnvAndDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"-access-ttl", "5m"}, envOf(map[string]string{
		"ACCESS_TOKEN_LIFETIME": "1m", "REFRESH_REUSE_GRACE": "3s", "CORS_ORIGINS": "http://a, http://b",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.accessTTL != 5*time.Minute || cfg.reuseGrace != 3*time.Second || cfg.addr != "127.0.0.1:8000" ||
		cfg.dataDir != "./data" || cfg.refreshTTL != 1200*time.Hour || cfg.sessionTTL != 2160*time.Hour ||
		cfg.loginLimit != 10 || cfg.loginWindow != 15*time.Minute || cfg.ipLimit != 60 ||
		strings.Join(cfg.corsOrigins, " ") != "http://a http://b" {
		t.Errorf("config = %+v", cfg)
	}
}

// TestRunServesAndStops starts the real server on a free port, uses it, and
// stops it as SIGTERM would (by ending the context): run returns nil.
func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderrR, stderrW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"jwtnotes", "serve", "-addr", "127.0.0.1:0", "-data", t.TempDir()},
			envOf(nil), nil, io.Discard, stderrW)
		stderrW.Close()
	}()
	lines := bufio.NewScanner(stderrR)
	var addr string
	for addr == "" && lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "msg=listening addr="); ok {
			addr, _, _ = strings.Cut(after, " ")
		}
	}
	go io.Copy(io.Discard, stderrR)
	if addr == "" {
		t.Fatalf("no listening line; run returned %v", <-done)
	}
	res, err := http.Get("http://" + addr + "/api/profile/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Errorf("GET /api/profile/ = %d, want 401", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after shutdown = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if _, err := http.Get("http://" + addr + "/api/profile/"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

// TestErrorsNameTheirCauseAndFix: each mistake of a first hour gets one
// message that says what is wrong, where, and what to do.
func TestErrorsNameTheirCauseAndFix(t *testing.T) {
	t.Parallel()
	runWith := func(args ...string) (stderr string, err error) {
		var buf bytes.Buffer
		err = run(context.Background(), append([]string{"jwtnotes"}, args...), envOf(nil), nil, io.Discard, &buf)
		return buf.String(), err
	}

	stderr, err := runWith("-no-such-flag")
	if err == nil || !strings.Contains(err.Error(), "-no-such-flag") || !strings.Contains(err.Error(), "jwtnotes -h") || stderr != "" {
		t.Errorf("a bad flag: %v, and on stderr %q (want the error once, from main)", err, stderr)
	}
	stderr, err = runWith("-h")
	for _, want := range []string{"flushexpiredtokens", "environment variable", "JWT_SECRET", "-addr", "(env ADDR)"} {
		if err != nil || !strings.Contains(stderr, want) {
			t.Errorf("-h: %v; the usage text lacks %q:\n%s", err, want, stderr)
		}
	}

	missing := filepath.Join(t.TempDir(), "typo")
	_, err = runWith("flushexpiredtokens", "-data", missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "-data") {
		t.Errorf("flushexpiredtokens in a folder without a database: %v", err)
	}
	if _, statErr := os.Stat(missing); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("flushexpiredtokens made %s: %v", missing, statErr)
	}

	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runWith("-addr", "127.0.0.1:0", "-data", filepath.Join(file, "data"))
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "-data") {
		t.Errorf("a data folder that cannot be made: %v", err)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		readOnly := t.TempDir()
		os.Chmod(readOnly, 0o500)
		defer os.Chmod(readOnly, 0o700)
		_, err = runWith("-addr", "127.0.0.1:0", "-data", readOnly)
		if err == nil || !strings.Contains(err.Error(), readOnly) || !strings.Contains(err.Error(), "not writable") {
			t.Errorf("a read-only data folder: %v", err)
		}
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = runWith("-addr", busy.Addr().String(), "-data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "-addr") {
		t.Errorf("a busy port: %v", err)
	}
}

// TestCodeMapListsEveryFile: GUIDE.md §5, the one map of the code, names
// every source and test file of the server, so that the map cannot fall behind.
func TestCodeMapListsEveryFile(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("GUIDE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(guide), "## 5. A map of the code")
	section, _, _ = strings.Cut(section, "\n## 6.")
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "schema.sql", "openapi.json") {
		if !strings.Contains(section, "`"+f+"`") {
			t.Errorf("GUIDE.md §5 does not name %s", f)
		}
	}
}
