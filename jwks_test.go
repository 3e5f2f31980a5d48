package main

// jwks_test.go: EdDSA tokens and the published key set: RFC 8037's
// vectors, the algorithm a token cannot choose, GET /.well-known/jwks.json,
// and other services verifying the running server's tokens with the set
// alone (examples/verifier, and PyJWT) through rotations and a revocation.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RFC 8037, Appendix A: an Ed25519 key (A.1), its public half (A.2), its
// thumbprint (A.3) and a JWS it signs (A.4).
const (
	rfc8037Seed       = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
	rfc8037X          = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
	rfc8037Thumbprint = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
	rfc8037JWS        = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc." +
		"hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

// rfc8037Key is the key of Appendix A.
func rfc8037Key(t *testing.T) *tokenKey {
	t.Helper()
	seed, err := b64.DecodeString(rfc8037Seed)
	if err != nil {
		t.Fatal(err)
	}
	return edDSAKey(seed)
}

func TestRFC8037AppendixA(t *testing.T) {
	t.Parallel()
	k := rfc8037Key(t)
	if got := b64.EncodeToString(k.public); got != rfc8037X {
		t.Errorf("the public key: %s, want %s", got, rfc8037X)
	}
	if k.id != rfc8037Thumbprint {
		t.Errorf("the thumbprint (kid): %s, want %s", k.id, rfc8037Thumbprint)
	}
	dot := strings.LastIndex(rfc8037JWS, ".")
	input, wantSig := rfc8037JWS[:dot], rfc8037JWS[dot+1:]
	if got := b64.EncodeToString(k.signature(input)); got != wantSig {
		t.Errorf("the signature of A.4: %s, want %s", got, wantSig)
	}
	raw, _ := b64.DecodeString(wantSig)
	if !k.verifies(input, raw) || k.verifies(input+"x", raw) {
		t.Error("A.4's signature does not verify, or verifies another input")
	}
	// A.4's header has no kid: this server requires one of EdDSA tokens,
	// so even with its key in the ring the JWS is refused.
	s := newTokenSigner(newKeyring(k))
	if _, _, err := s.verifySigned(rfc8037JWS, testNow); !errors.Is(err, errTokenInvalid) {
		t.Errorf("A.4's JWS, which has no kid: %v, want invalid", err)
	}
	// The published set: exactly RFC 8037's members, and no private part.
	want := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + rfc8037X + `","kid":"` + rfc8037Thumbprint + `","alg":"EdDSA","use":"sig"}]}`
	if got := string(newKeyring(k).keySet(testNow)); got != want {
		t.Errorf("the key set:\n%s\nwant\n%s", got, want)
	}
}

// TestTheAlgorithmIsTheKeys: a token names its algorithm, but the key it
// names decides: the classic confusion (an HS256 token whose HMAC secret is
// the EdDSA key's public key, which anyone can read in the key set) is
// refused, and so is every other mismatch.
func TestTheAlgorithmIsTheKeys(t *testing.T) {
	t.Parallel()
	ed := rfc8037Key(t)
	hs := &tokenKey{id: "hs-key", secret: bytes.Repeat([]byte{7}, 32), legacy: true}
	s := newTokenSigner(newKeyring(ed, hs))
	payload := mustJSON(t, testClaims(accessToken))
	signEd := func(header string) string {
		input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
		return input + "." + b64.EncodeToString(ed25519.Sign(ed.private, []byte(input)))
	}
	jwkJSON := newKeyring(ed).keySet(testNow)
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"EdDSA, its kid", signEd(`{"alg":"EdDSA","kid":"` + ed.id + `","typ":"JWT"}`), true},
		{"HS256, the public key as the secret", forge(ed.public, `{"alg":"HS256","kid":"`+ed.id+`","typ":"JWT"}`, payload), false},
		{"HS256, x as the secret", forge([]byte(rfc8037X), `{"alg":"HS256","kid":"`+ed.id+`","typ":"JWT"}`, payload), false},
		{"HS256, the key set as the secret", forge(jwkJSON, `{"alg":"HS256","kid":"`+ed.id+`","typ":"JWT"}`, payload), false},
		{"HS256 without a kid, the public key as the secret", forge(ed.public, `{"alg":"HS256","typ":"JWT"}`, payload), false},
		{"EdDSA naming the HMAC key", signEd(`{"alg":"EdDSA","kid":"hs-key","typ":"JWT"}`), false},
		{"EdDSA without a kid (the legacy key is HS256)", signEd(`{"alg":"EdDSA","typ":"JWT"}`), false},
		{"alg of another case", signEd(`{"alg":"eddsa","kid":"` + ed.id + `"}`), false},
		{"alg Ed25519", signEd(`{"alg":"Ed25519","kid":"` + ed.id + `"}`), false},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none","kid":"`+ed.id+`"}`)) + "." + b64.EncodeToString([]byte(payload)) + ".", false},
		{"a short signature", signEd(`{"alg":"EdDSA","kid":"` + ed.id + `"}`)[:200], false},
	} {
		_, err := s.verify(tc.token, accessToken, testNow)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// The HMAC key still verifies its own tokens, kid or none.
	if _, err := s.verify(forge(hs.secret, `{"alg":"HS256","typ":"JWT"}`, payload), accessToken, testNow); err != nil {
		t.Errorf("the HMAC key's own token: %v", err)
	}
}

// TestKeySetRoute: GET /.well-known/jwks.json answers the EdDSA keys that
// verify, never an HMAC secret; caches may keep it a minute and ask again
// with its ETag.
func TestKeySetRoute(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	r := e.do("GET", "/.well-known/jwks.json", "", "")
	if r.status != 200 || r.body != `{"keys":[]}` {
		t.Errorf("with HS256 keys only: %d %s, want an empty set", r.status, r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "public, max-age=60" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("Cache-Control %q, Content-Type %q", cc, r.header.Get("Content-Type"))
	}

	// Sign with an EdDSA key now; the HMAC key verifies its tokens until
	// its window ends, and is never in the set.
	ed := rfc8037Key(t)
	old := &tokenKey{id: "test", secret: testKey, legacy: true, until: e.clock.now().Add(time.Hour)}
	e.srv.tokens.ring.Store(newKeyring(ed, old))
	r = e.do("GET", "/.well-known/jwks.json", "", "")
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	decode(t, r.body, &set)
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != ed.id || set.Keys[0]["x"] != rfc8037X || len(set.Keys[0]) != 6 {
		t.Errorf("the set with an EdDSA key: %s", r.body)
	}
	etag := r.header.Get("ETag")
	if again := e.do("GET", "/.well-known/jwks.json", "", "", "If-None-Match", etag); again.status != 304 || again.body != "" {
		t.Errorf("asked again with its ETag %s: %d %q, want 304", etag, again.status, again.body)
	}

	// A login signs with it, and the token works here.
	e.register("alice")
	tokens := e.login("alice")
	header, _ := b64.DecodeString(strings.Split(tokens.Access, ".")[0])
	if string(header) != `{"alg":"EdDSA","kid":"`+ed.id+`","typ":"JWT"}` {
		t.Errorf("the access token's header: %s", header)
	}
	if r := e.get("/api/profile/", tokens.Access); r.status != 200 {
		t.Errorf("the profile with an EdDSA token: %d %s", r.status, r.body)
	}
	if r := e.refresh(tokens.Refresh); r.status != 200 {
		t.Errorf("refresh with an EdDSA token: %d %s", r.status, r.body)
	}

	// Past its window a key leaves the set (and the ETag changes), even
	// before the ring is reloaded.
	e.srv.tokens.ring.Store(newKeyring(old, &tokenKey{id: ed.id, alg: algEdDSA, private: ed.private, public: ed.public,
		until: e.clock.now().Add(time.Minute)}))
	e.clock.advance(time.Minute)
	if r := e.do("GET", "/.well-known/jwks.json", "", "", "If-None-Match", etag); r.status != 200 || r.body != `{"keys":[]}` {
		t.Errorf("after the EdDSA key's window: %d %s", r.status, r.body)
	}
}

// TestOtherServicesVerifyWithTheKeySet: the running server, started with
// -signing-alg EdDSA, and two services that hold no secret: the
// examples/verifier module (built here), and PyJWT's PyJWKClient (Debian's
// python3-jwt). Both take its tokens; through a rotation to a new EdDSA key
// the old tokens still verify; after keys revoke the set no longer has the
// key, so they are refused (by the verifier once its copy is older than
// -max-age: 0 here, and the default one is checked not to fetch for every
// made-up kid); after a rotation to HS256 the new tokens verify only here.
func TestOtherServicesVerifyWithTheKeySet(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	verifierBin := filepath.Join(t.TempDir(), "verifier")
	if out, err := exec.Command("go", "build", "-C", "examples/verifier", "-o", verifierBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build examples/verifier: %v\n%s", err, out)
	}
	python := pyJWT(t)

	p := startServer(t, dir, "-signing-alg", "EdDSA", "-ip-limit", "0")
	jwksURL := p.base + "/.well-known/jwks.json"
	client := &http.Client{}
	// The verifiers fetch the set through a counter: a fetch is done
	// before the verifier answers, so the count is exact once it has.
	var fetches atomic.Int64
	counter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		status, body, err := call(client, "GET", jwksURL, "", "", nil)
		if err != nil {
			status = http.StatusBadGateway
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(counter.Close)
	cached := startVerifier(t, verifierBin, counter.URL)             // keeps the set a minute
	fresh := startVerifier(t, verifierBin, jwksURL, "-max-age", "0") // fetches it for every token
	whoami := func(v *verifierProcess, token string) (int, string) {
		status, body, err := call(client, "GET", v.base+"/whoami", token, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return status, body
	}
	// pyjwt verifies token with the key of its kid in the published set.
	pyjwt := func(token string) (string, error) {
		out, err := exec.Command(python, "-c", `import sys, jwt
key = jwt.PyJWKClient(sys.argv[1]).get_signing_key_from_jwt(sys.argv[2])
claims = jwt.decode(sys.argv[2], key.key, algorithms=["EdDSA"])
print(claims["user_id"], claims["username"], claims["token_type"])`, jwksURL, token).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	kidsOfSet := func() []string {
		status, body, err := call(client, "GET", jwksURL, "", "", nil)
		var set struct{ Keys []struct{ Kid string } }
		if err != nil || status != 200 || json.Unmarshal([]byte(body), &set) != nil {
			t.Fatalf("the key set: %d %s %v", status, body, err)
		}
		var kids []string
		for _, k := range set.Keys {
			kids = append(kids, k.Kid)
		}
		return kids
	}

	first := p.registerAndLogin(client, "alice")
	firstKid := headerKid(t, first.Access)
	if kids := kidsOfSet(); len(kids) != 1 || kids[0] != firstKid {
		t.Fatalf("the set %v, the token's kid %s", kids, firstKid)
	}
	for _, v := range []*verifierProcess{cached, fresh} {
		if status, body := whoami(v, first.Access); status != 200 || !strings.Contains(body, `"username":"alice"`) {
			t.Errorf("the verifier with the first token: %d %s", status, body)
		}
		if status, _ := whoami(v, first.Refresh); status != 401 {
			t.Errorf("the verifier took a refresh token as an access token: %d", status)
		}
	}
	if out, err := pyjwt(first.Access); err != nil || !strings.HasSuffix(out, " alice access") {
		t.Errorf("PyJWT with the first token: %v\n%s", err, out)
	}

	// A rotation to a new EdDSA key: both tokens verify everywhere; the
	// cached verifier fetched the set once for the new kid.
	jwtnotesCommand(t, "keys", "rotate", "-alg", "EdDSA", "-data", dir)
	second := p.registerAndLogin(client, "bob")
	secondKid := headerKid(t, second.Access)
	if kids := kidsOfSet(); len(kids) != 2 || secondKid == firstKid {
		t.Errorf("after the rotation the set has %v; the new kid is %s", kids, secondKid)
	}
	before := fetches.Load()
	for _, token := range []string{first.Access, second.Access} {
		if status, body := whoami(cached, token); status != 200 {
			t.Errorf("the cached verifier after the rotation: %d %s", status, body)
		}
		if out, err := pyjwt(token); err != nil {
			t.Errorf("PyJWT after the rotation: %v\n%s", err, out)
		}
	}
	if got := fetches.Load() - before; got != 1 {
		t.Errorf("the cached verifier fetched the set %d times for the new kid, want 1", got)
	}
	// A made-up kid within the minute: refused, and no fetch.
	madeUp := strings.Replace(second.Access, strings.Split(second.Access, ".")[0],
		b64.EncodeToString([]byte(`{"alg":"EdDSA","kid":"madeup","typ":"JWT"}`)), 1)
	if status, _ := whoami(cached, madeUp); status != 401 || fetches.Load()-before != 1 {
		t.Errorf("a made-up kid: %d, %d more fetches (want 401 and none)", status, fetches.Load()-before-1)
	}

	// keys revoke: the key leaves the set when the command returns, and
	// its tokens are refused by the server, PyJWT and the fresh verifier.
	jwtnotesCommand(t, "keys", "revoke", firstKid, "-data", dir)
	if kids := kidsOfSet(); len(kids) != 1 || kids[0] != secondKid {
		t.Errorf("after revoking %s the set has %v", firstKid, kids)
	}
	if status, _, _ := call(client, "GET", p.base+"/api/profile/", first.Access, "", nil); status != 401 {
		t.Errorf("the server with the revoked key's token: %d", status)
	}
	if status, body := whoami(fresh, first.Access); status != 401 {
		t.Errorf("the verifier with the revoked key's token: %d %s", status, body)
	}
	if out, err := pyjwt(first.Access); err == nil {
		t.Errorf("PyJWT took the revoked key's token: %s", out)
	}
	if status, _ := whoami(fresh, second.Access); status != 200 {
		t.Errorf("the verifier with the second key's token: %d", status)
	}

	// Back to HS256: its tokens verify at the server only; the EdDSA key
	// stays in the set until its tokens expire.
	jwtnotesCommand(t, "keys", "rotate", "-alg", "HS256", "-data", dir)
	third := p.registerAndLogin(client, "carol")
	if kids := kidsOfSet(); len(kids) != 1 || kids[0] != secondKid {
		t.Errorf("after the rotation to HS256 the set has %v", kids)
	}
	if status, _ := whoami(fresh, third.Access); status != 401 {
		t.Errorf("the verifier took an HS256 token: %d", status)
	}
	if status, _, _ := call(client, "GET", p.base+"/api/profile/", third.Access, "", nil); status != 200 {
		t.Errorf("the server with its HS256 token: %d", status)
	}

	// Started again with -signing-alg EdDSA, the server rotates to a new
	// EdDSA key; started with no -signing-alg, it keeps the current key.
	p.stop(syscall.SIGTERM)
	p = startServer(t, dir, "-signing-alg", "EdDSA")
	p.waitForLog("-signing-alg: a new current signing key")
	fourth := p.registerAndLogin(client, "dave")
	if kid := headerKid(t, fourth.Access); len(kid) != 43 {
		t.Errorf("after a start with -signing-alg EdDSA, tokens name %q", kid)
	}
	if status, _, _ := call(client, "GET", p.base+"/api/profile/", third.Access, "", nil); status != 200 {
		t.Errorf("the HS256 token after the switch back: %d", status)
	}
	p.stop(syscall.SIGTERM)
	p = startServer(t, dir)
	if kid := headerKid(t, p.registerAndLogin(client, "erin").Access); kid != headerKid(t, fourth.Access) {
		t.Errorf("a start without -signing-alg changed the key: %s, was %s", kid, headerKid(t, fourth.Access))
	}
}

// pyJWT is Debian's python3 with PyJWT and cryptography, or the test skips
// (fails under JWTNOTES_ALL_TOOLS).
func pyJWT(t *testing.T) string {
	t.Helper()
	python := "/usr/bin/python3" // Debian's, whatever else is first on PATH
	if err := exec.Command(python, "-c", "import jwt, cryptography").Run(); err != nil {
		if os.Getenv("JWTNOTES_ALL_TOOLS") != "" {
			t.Fatalf("%s has no PyJWT (Debian's python3-jwt, python3-cryptography), and JWTNOTES_ALL_TOOLS says every tool is: %v", python, err)
		}
		t.Skipf("%s has no PyJWT (Debian's python3-jwt; .ci/run installs it): %v", python, err)
	}
	return python
}

// verifierProcess is examples/verifier, running.
type verifierProcess struct {
	base string
	log  *syncBuffer
}

// startVerifier starts the verifier binary on a free port.
func startVerifier(t *testing.T, bin, jwksURL string, flags ...string) *verifierProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-jwks", jwksURL, "-addr", "127.0.0.1:0"}, flags...)...)
	log, base := startProgram(t, cmd, "listening on ")
	return &verifierProcess{base: base, log: log}
}
