package main

// keys_test.go: the signing keys: the keys file, rotation, the overlap
// window, revocation, a running server following changes made by another
// process, and bad key files.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keysConfig is the default configuration on dir.
func keysConfig(t *testing.T, dir string) config {
	t.Helper()
	cfg, err := parseConfig([]string{"-data", dir}, envOf(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// readKeys reads the keys file of dir, secrets included.
func readKeys(t *testing.T, dir string) *keysFile {
	t.Helper()
	f, _, err := readKeysFile(filepath.Join(dir, keysFileName))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// headerKid is the kid of a token's header ("" for none).
func headerKid(t *testing.T, token string) string {
	t.Helper()
	_, kid, _, err := checkHeader(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func TestKeysFileIsMadeOnceAndKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	first, err := loadKeyring(envOf(nil), dir, now, algHS256)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, keysFileName))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 || len(first.current.secret) != 32 || len(first.current.id) != 16 {
		t.Errorf("jwt.keys mode %v, key of %d bytes, kid %q; want 0600, 32 bytes, 16 characters",
			info.Mode().Perm(), len(first.current.secret), first.current.id)
	}
	second, err := loadKeyring(envOf(nil), dir, now, algHS256)
	if err != nil || second.current.id != first.current.id || !bytes.Equal(second.current.secret, first.current.secret) {
		t.Errorf("a second start made another key (%v)", err)
	}
	secret := strings.Repeat("s", 32)
	fromEnv, err := loadKeyring(envOf(map[string]string{"JWT_SECRET": secret}), dir, now, algHS256)
	if err != nil || string(fromEnv.current.secret) != secret || !fromEnv.current.legacy {
		t.Errorf("JWT_SECRET was not the one key: %v", err)
	}
	var usage *usageError
	if _, err := loadKeyring(envOf(map[string]string{"JWT_SECRET": "short"}), dir, now, algHS256); !errors.As(err, &usage) {
		t.Errorf("a short JWT_SECRET: %v, want a usage error", err)
	}
}

// TestOldKeyFileBecomesTheLegacyKey: a data folder of a server before key
// rotation keeps its key; tokens it signed (without a kid) keep working
// while that key verifies.
func TestOldKeyFileBecomesTheLegacyKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := bytes.Repeat([]byte{7}, 32)
	if err := os.WriteFile(filepath.Join(dir, legacyKeyFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	oldToken := forge(old, `{"alg":"HS256","typ":"JWT"}`, mustJSON(t, testClaims(accessToken)))
	ring, err := loadKeyring(envOf(nil), dir, testNow, algHS256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ring.current.secret, old) || !ring.current.legacy {
		t.Fatal("jwt.key's key is not the current, legacy key")
	}
	if _, err := os.Stat(filepath.Join(dir, legacyKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Error("jwt.key is still there beside jwt.keys")
	}
	s := newTokenSigner(ring)
	if _, err := s.verify(oldToken, accessToken, testNow); err != nil {
		t.Errorf("a token of the old server: %v", err)
	}
	if kid := headerKid(t, s.sign(testClaims(accessToken))); kid != ring.current.id {
		t.Errorf("new tokens name kid %q, want %q", kid, ring.current.id)
	}

	// After a rotation the legacy key verifies tokens without a kid for the
	// window, then nothing.
	cfg := keysConfig(t, dir)
	if _, _, err := rotateKeys(cfg, envOf(nil), testNow, algHS256); err != nil {
		t.Fatal(err)
	}
	ring, _ = readKeys(t, dir).ring(testNow)
	s.ring.Store(ring)
	if _, err := s.verify(oldToken, accessToken, testNow); err != nil {
		t.Errorf("in the window: %v", err)
	}
	later := testNow.Add(tokenWindow(cfg))
	ring, _ = readKeys(t, dir).ring(later)
	s.ring.Store(ring)
	if _, err := s.verify(forge(old, `{"alg":"HS256","typ":"JWT"}`, mustJSON(t, claimsAt(later))), accessToken, later); !errors.Is(err, errTokenInvalid) {
		t.Errorf("a token without a kid after the window: %v, want invalid", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// claimsAt are test claims issued at now.
func claimsAt(now time.Time) claims {
	c := testClaims(accessToken)
	c.Iat, c.Exp = now.Unix(), now.Add(time.Hour).Unix()
	return c
}

// TestRotationOverlapAndRevocation: after a rotation tokens of both keys
// verify; the old key's end after the window; a revoked key's at once.
func TestRotationOverlapAndRevocation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := keysConfig(t, dir)
	now := testNow
	ring, err := loadKeyring(envOf(nil), dir, now, algHS256)
	if err != nil {
		t.Fatal(err)
	}
	s := newTokenSigner(ring)
	first := s.sign(claimsAt(now))
	firstKid := ring.current.id

	newKid, retired, err := rotateKeys(cfg, envOf(nil), now, algHS256)
	if err != nil || newKid == firstKid || !retired {
		t.Fatalf("rotate: %q, %v, %v", newKid, retired, err)
	}
	ring, _ = readKeys(t, dir).ring(now)
	s.ring.Store(ring)
	second := s.sign(claimsAt(now))
	if headerKid(t, second) != newKid {
		t.Fatalf("after rotating, tokens name %q, want %q", headerKid(t, second), newKid)
	}
	for _, token := range []string{first, second} {
		if _, err := s.verify(token, accessToken, now); err != nil {
			t.Errorf("token of %s in the overlap: %v", headerKid(t, token), err)
		}
	}
	keys, current, err := listKeys(cfg, envOf(nil), now)
	if err != nil || len(keys) != 2 || current != newKid || keys[0].Until == nil ||
		!keys[0].Until.Equal(now.Add(tokenWindow(cfg)).Truncate(time.Second)) || keys[0].Secret != "" {
		t.Errorf("keys list: %+v, current %q, %v", keys, current, err)
	}

	// The window ends: the old key verifies nothing, and the next change
	// of the file drops it.
	end := now.Add(tokenWindow(cfg))
	ring, _ = readKeys(t, dir).ring(end)
	s.ring.Store(ring)
	late := forgeWithKid(t, dir, firstKid, claimsAt(end))
	if _, err := s.verify(late, accessToken, end); !errors.Is(err, errTokenInvalid) {
		t.Errorf("the old key after its window: %v, want invalid", err)
	}
	if _, err := s.verify(s.sign(claimsAt(end)), accessToken, end); err != nil {
		t.Errorf("the current key: %v", err)
	}
	if dropped, err := pruneKeys(dir, end.Add(-time.Second)); err != nil || dropped != 0 {
		t.Errorf("a second before the window ends, the clean-up dropped %d keys (%v)", dropped, err)
	}
	if dropped, err := pruneKeys(dir, end); err != nil || dropped != 1 {
		t.Errorf("the clean-up at the window's end dropped %d keys (%v), want 1", dropped, err)
	}
	for _, k := range readKeys(t, dir).Keys {
		if k.ID == firstKid {
			t.Error("the key past its window is still in the file")
		}
	}
	if _, _, err := rotateKeys(cfg, envOf(nil), end, algHS256); err != nil {
		t.Fatal(err)
	}

	// Revoke the current key: its tokens stop at once, a new key signs.
	ring, _ = readKeys(t, dir).ring(end)
	s.ring.Store(ring)
	revoked := ring.current.id
	token := s.sign(claimsAt(end))
	replacement, err := revokeKey(cfg, envOf(nil), revoked, end)
	if err != nil || replacement == "" {
		t.Fatalf("revoke the current key: %q, %v", replacement, err)
	}
	ring, _ = readKeys(t, dir).ring(end)
	s.ring.Store(ring)
	if _, err := s.verify(token, accessToken, end); !errors.Is(err, errTokenInvalid) {
		t.Errorf("a token of a revoked key: %v, want invalid", err)
	}
	if headerKid(t, s.sign(claimsAt(end))) != replacement {
		t.Error("after revoking the current key, its replacement does not sign")
	}
	var usage *usageError
	if _, err := revokeKey(cfg, envOf(nil), "nosuchkey", end); !errors.As(err, &usage) {
		t.Errorf("revoke an unknown kid: %v", err)
	}
	if _, _, err := rotateKeys(cfg, envOf(map[string]string{"JWT_SECRET": strings.Repeat("s", 32)}), end, algHS256); !errors.As(err, &usage) {
		t.Errorf("rotate with JWT_SECRET set: %v, want a usage error", err)
	}
}

// forgeWithKid signs claims with the key kid of dir's keys file.
func forgeWithKid(t *testing.T, dir, kid string, c claims) string {
	t.Helper()
	for _, k := range readKeys(t, dir).Keys {
		if k.ID == kid {
			secret, _ := b64.DecodeString(k.Secret)
			return forge(secret, `{"alg":"HS256","kid":"`+kid+`","typ":"JWT"}`, mustJSON(t, c))
		}
	}
	t.Fatalf("no key %s", kid)
	return ""
}

// TestKidIsLookedUpExactly: a kid names a key byte for byte; anything that
// is not a short printable string, or names no key, is invalid.
func TestKidIsLookedUpExactly(t *testing.T) {
	t.Parallel()
	a := &tokenKey{id: "key-a", secret: bytes.Repeat([]byte{1}, 32)}
	b := &tokenKey{id: "key-b", secret: bytes.Repeat([]byte{2}, 32)}
	s := newTokenSigner(newKeyring(a, b))
	payload := mustJSON(t, testClaims(accessToken))
	for _, tc := range []struct {
		name, header string
		key          []byte
		ok           bool
	}{
		{"current key", `{"alg":"HS256","kid":"key-a","typ":"JWT"}`, a.secret, true},
		{"other key", `{"alg":"HS256","kid":"key-b"}`, b.secret, true},
		{"the other key's kid, this key's signature", `{"alg":"HS256","kid":"key-b"}`, a.secret, false},
		{"unknown kid", `{"alg":"HS256","kid":"key-c"}`, a.secret, false},
		{"kid of another case", `{"alg":"HS256","kid":"KEY-A"}`, a.secret, false},
		{"no kid, no legacy key", `{"alg":"HS256","typ":"JWT"}`, a.secret, false},
		{"empty kid", `{"alg":"HS256","kid":""}`, a.secret, false},
		{"kid with an escape", `{"alg":"HS256","kid":"key\u002da"}`, a.secret, false},
		{"kid with a space", `{"alg":"HS256","kid":"key a"}`, a.secret, false},
		{"kid not a string", `{"alg":"HS256","kid":1}`, a.secret, false},
		{"kid twice", `{"alg":"HS256","kid":"key-a","kid":"key-a"}`, a.secret, false},
		{"long kid", `{"alg":"HS256","kid":"` + strings.Repeat("k", 65) + `"}`, a.secret, false},
	} {
		_, err := s.verify(forge(tc.key, tc.header, payload), accessToken, testNow)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestRevokedKeyIsRefusedWhenTheCommandReturns: once jwtnotes keys revoke
// returns, the running server refuses the key's tokens, access and refresh
// alike, at once: the command waits for every server on the data folder to
// load the new keys. Three rounds, each revoking the key of a fresh login
// right after a rotation retired it.
func TestRevokedKeyIsRefusedWhenTheCommandReturns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServer(t, dir, "-ip-limit", "0")
	client := &http.Client{}
	// A registration its server left behind when it died: removed, never signalled.
	stale := filepath.Join(dir, serversDirName, "999999999-deadbeef")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		tokens := p.registerAndLogin(client, fmt.Sprint("user", round))
		kid := headerKid(t, tokens.Access)
		if out := jwtnotesCommand(t, "keys", "rotate", "-data", dir); !strings.Contains(out, "the 1 server(s) running on") {
			t.Errorf("keys rotate said %q", out)
		}
		out := jwtnotesCommand(t, "keys", "revoke", kid, "-data", dir)
		if !strings.Contains(out, "now refuse "+kid) {
			t.Errorf("keys revoke said %q", out)
		}
		status, body, _ := call(client, "GET", p.base+"/api/profile/", tokens.Access, "", nil)
		if status != 401 {
			t.Errorf("round %d: the revoked key's access token right after the command: %d %s", round, status, body)
		}
		status, body, _ = call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
			strings.NewReader(`{"refresh":"`+tokens.Refresh+`"}`))
		if status != 401 || body != bodyTokenInvalid {
			t.Errorf("round %d: the revoked key's refresh token right after the command: %d %s", round, status, body)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a dead server's registration was kept: %v", err)
	}
	p.stop(syscall.SIGTERM)
	if out := jwtnotesCommand(t, "keys", "rotate", "-data", dir); !strings.Contains(out, "no server is running on") {
		t.Errorf("keys rotate with no server running said %q", out)
	}
}

// TestBadKeysFilesStopTheStart: a keys file others can read, a corrupt
// one, one with a short secret or a kid twice, and a missing one beside a
// database: each stops the server before it listens, with what to do.
func TestBadKeysFilesStopTheStart(t *testing.T) {
	t.Parallel()
	good := func(t *testing.T, dir string) {
		if _, err := loadKeyring(envOf(nil), dir, time.Now(), algHS256); err != nil {
			t.Fatal(err)
		}
	}
	path := func(dir string) string { return filepath.Join(dir, keysFileName) }
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"readable by others", func(t *testing.T, dir string) { good(t, dir); os.Chmod(path(dir), 0o644) }, "chmod 600"},
		{"corrupt", func(t *testing.T, dir string) { os.WriteFile(path(dir), []byte(`{"keys":[`), 0o600) }, "is not a keys file"},
		{"short secret", func(t *testing.T, dir string) {
			os.WriteFile(path(dir), []byte(`{"keys":[{"kid":"k1","secret":"c2hvcnQ","created":"2026-12-01T00:00:00Z"}]}`), 0o600)
		}, "at least 32 bytes"},
		{"a kid twice", func(t *testing.T, dir string) {
			good(t, dir)
			f := readKeys(t, dir)
			f.Keys = append(f.Keys, f.Keys[0])
			writeKeysFile(path(dir), f)
		}, "twice"},
		{"no current key", func(t *testing.T, dir string) {
			good(t, dir)
			f := readKeys(t, dir)
			f.Keys[0].Revoked = timeRef(time.Now())
			writeKeysFile(path(dir), f)
		}, "no current key"},
		{"missing beside a database", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "notes.db"), nil, 0o600)
		}, "keys rotate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			var stderr bytes.Buffer
			err := run(context.Background(), []string{"jwtnotes", "-data", dir, "-addr", "127.0.0.1:0"}, envOf(nil), nil, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("start: %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(stderr.String(), "listening") {
				t.Error("it listened anyway")
			}
		})
	}
}

// TestGraceAnswerSurvivesARotation: a refresh token presented twice within
// the grace period gets the same new token both times, even when the keys
// rotated in between.
func TestGraceAnswerSurvivesARotation(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	old := e.login("alice")
	first := e.rotate(old.Refresh)
	oldKey := e.srv.tokens.ring.Load().current
	newKey := &tokenKey{id: "next", secret: bytes.Repeat([]byte{9}, 32)}
	e.srv.tokens.ring.Store(newKeyring(newKey, &tokenKey{id: oldKey.id, secret: oldKey.secret, legacy: true}))
	again := e.rotate(old.Refresh)
	if again.Refresh != first.Refresh || headerKid(t, again.Access) != "next" {
		t.Errorf("the grace answer after a rotation: refresh %v (want the first answer's), access kid %q",
			again.Refresh == first.Refresh, headerKid(t, again.Access))
	}
}

// TestKeysRotateWhileTheServerRuns is the whole thing from outside: the
// real server, and `jwtnotes keys` run by another process beside it.
func TestKeysRotateWhileTheServerRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServer(t, dir)
	client := &http.Client{Timeout: 10 * time.Second}
	old := p.registerAndLogin(client, "alice")
	oldKid := headerKid(t, old.Access)

	keys := func(args ...string) string {
		t.Helper()
		return jwtnotesCommand(t, append([]string{"keys"}, append(args, "-data", dir)...)...)
	}
	out := keys("rotate")
	newKid := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(out, "new current key "))[0], ";")
	p.waitForLog("current=" + newKid) // the file changed: reloaded within a second

	status, body, _ := call(client, "POST", p.base+"/api/token/", "", "application/json",
		strings.NewReader(`{"username":"alice","password":"`+testPassword+`"}`))
	var fresh tokenPair
	if status != 200 || json.Unmarshal([]byte(body), &fresh) != nil || headerKid(t, fresh.Access) != newKid {
		t.Fatalf("a login after the rotation: %d %s", status, body)
	}
	for _, token := range []string{old.Access, fresh.Access} {
		if status, body, _ := call(client, "GET", p.base+"/api/profile/", token, "", nil); status != 200 {
			t.Errorf("GET /api/profile/ with a token of %s: %d %s", headerKid(t, token), status, body)
		}
	}
	if list := keys("list"); !strings.Contains(list, oldKid) || !strings.Contains(list, newKid) ||
		!strings.Contains(list, "current") || !strings.Contains(list, "retired") {
		t.Errorf("keys list:\n%s", list)
	}

	// The emergency: revoke the old key. SIGHUP makes the server read it now.
	keys("revoke", oldKid)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitForLog("verifying=1")
	if status, _, _ := call(client, "GET", p.base+"/api/profile/", old.Access, "", nil); status != 401 {
		t.Errorf("an access token of the revoked key: %d, want 401", status)
	}
	status, body, _ = call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
		strings.NewReader(`{"refresh":"`+old.Refresh+`"}`))
	if status != 401 || !strings.Contains(body, "Token is invalid or expired") {
		t.Errorf("a refresh token of the revoked key: %d %s, want 401 invalid", status, body)
	}
	if status, _, _ := call(client, "GET", p.base+"/api/profile/", fresh.Access, "", nil); status != 200 {
		t.Errorf("the current key's token after the revocation: %d", status)
	}
	if list := keys("list"); strings.Contains(list, readKeys(t, dir).Keys[0].Secret) {
		t.Error("keys list shows a secret")
	}
	if p.stop(syscall.SIGTERM) != 0 {
		t.Error("the server did not exit cleanly")
	}
}
