// Command verifier is a second service that trusts jwtnotes's access
// tokens without its secret: it checks their EdDSA signatures with the keys
// of /.well-known/jwks.json and answers GET /whoami. The standard library only.
//
// It keeps the key set -max-age (a minute, the server's Cache-Control), and
// fetches it sooner for a kid it does not have (a rotation), at most once a
// minute (made-up kids must not become a flood of fetches). A key jwtnotes
// revokes is refused here within -max-age: a service that must know at once
// asks jwtnotes (GET /api/profile/ with the token).
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

var (
	b64        = base64.RawURLEncoding.Strict()
	errInvalid = errors.New("token not valid")
)

// keySet is this service's copy of jwtnotes's public keys, by kid.
type keySet struct {
	url         string
	maxAge      time.Duration
	client      http.Client
	mu          sync.Mutex
	keys        map[string]ed25519.PublicKey
	fetched     time.Time // when keys were fetched
	lastUnknown time.Time // the last fetch an unknown kid caused
}

// key is the public key named kid: from the copy while it is fresh and knows
// kid (or an unknown kid caused a fetch this minute), else from a new fetch.
func (s *keySet) key(kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	stale := now.Sub(s.fetched) >= s.maxAge
	if _, known := s.keys[kid]; !known && !stale && now.Sub(s.lastUnknown) >= time.Minute {
		stale, s.lastUnknown = true, now // a rotation, perhaps
	}
	if stale {
		if err := s.fetch(); err != nil {
			return nil, err
		}
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, errInvalid // no key of that kid
}

// fetch replaces the copy with the set published now: its Ed25519 signing
// keys named by their RFC 7638 thumbprint, as jwtnotes names them.
func (s *keySet) fetch() error {
	resp, err := s.client.Get(s.url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg, Use string } `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the key set: %s (%v)", resp.Status, err)
	}
	keys := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := b64.DecodeString(k.X)
		sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + k.X + `"}`))
		if err == nil && len(x) == ed25519.PublicKeySize && k.Kty == "OKP" && k.Crv == "Ed25519" &&
			k.Alg == "EdDSA" && k.Use == "sig" && k.Kid == b64.EncodeToString(sum[:]) {
			keys[k.Kid] = x
		}
	}
	s.keys, s.fetched = keys, time.Now()
	log.Printf("fetched the key set: %d key(s)", len(keys))
	return nil
}

// claims is what this service reads of an access token.
type claims struct {
	TokenType string `json:"token_type"`
	Exp       int64  `json:"exp"`
	UserID    int64  `json:"user_id"`
	Username  string `json:"username"`
}

// verify returns the claims of a valid access token. The algorithm is EdDSA,
// the only one known here: a header naming another (HS256 "signed" with a
// public key, or none) or no kid is refused before any key is looked up.
func (s *keySet) verify(token string) (claims, error) {
	var header struct{ Alg, Kid string }
	var c claims
	parts := strings.Split(token, ".")
	if len(token) > 4096 || len(parts) != 3 || decode(parts[0], &header) != nil || header.Alg != "EdDSA" || header.Kid == "" {
		return c, errInvalid
	}
	key, err := s.key(header.Kid)
	if err != nil {
		return c, err // errInvalid, or the key set out of reach
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || !ed25519.Verify(key, []byte(parts[0]+"."+parts[1]), sig) || decode(parts[1], &c) != nil ||
		c.TokenType != "access" || time.Now().Unix() >= c.Exp {
		return c, errInvalid
	}
	return c, nil
}

// decode reads one base64url segment of JSON into v.
func decode(segment string, v any) error {
	raw, err := b64.DecodeString(segment)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func main() {
	jwks := flag.String("jwks", "http://localhost:8000/.well-known/jwks.json", "where jwtnotes publishes its public keys")
	addr := flag.String("addr", "localhost:8001", "the address to listen on")
	maxAge := flag.Duration("max-age", time.Minute, "how long a fetched key set is used before it is fetched again")
	flag.Parse()
	keys := &keySet{url: *jwks, maxAge: *maxAge, client: http.Client{Timeout: 5 * time.Second}}

	http.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := keys.verify(token)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case errors.Is(err, errInvalid):
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"detail":"token not valid"}`)
		case err != nil:
			log.Print(err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"detail":"the key set is out of reach"}`)
		default:
			json.NewEncoder(w).Encode(map[string]any{"user_id": c.UserID, "username": c.Username, "expires": time.Unix(c.Exp, 0).UTC()})
		}
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("verifying tokens with %s; listening on http://%s", *jwks, ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}
