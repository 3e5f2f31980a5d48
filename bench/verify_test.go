package main

// Verification of one access token, by the server's hand-written verifier
// and by github.com/golang-jwt/jwt/v5 (the usual library), HS256 and
// EdDSA, in one run:
//
//	cd bench && go test -bench . -benchmem -count 5

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	benchKey = []byte("0123456789abcdef0123456789abcdef")
	benchNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
)

func benchSigner() *tokenSigner {
	return newTokenSigner(newKeyring(&tokenKey{id: "bench", secret: benchKey}))
}

// benchEdDSAKey is an Ed25519 key of a fixed seed.
func benchEdDSAKey() *tokenKey { return edDSAKey(benchKey) }

var benchClaims = claims{
	TokenType: accessToken, Exp: benchNow.Add(time.Hour).Unix(), Iat: benchNow.Unix(),
	JTI: "0123456789abcdef0123456789abcdef", UserID: 7, Username: "alice",
	Email: "alice@example.com", SessionID: "fedcba9876543210fedcba9876543210",
}

func benchToken() string { return benchSigner().sign(benchClaims) }

// libClaims are the same claims as golang-jwt reads them.
type libClaims struct {
	TokenType string `json:"token_type"`
	UserID    int64  `json:"user_id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

func BenchmarkVerify(b *testing.B) {
	token := benchToken()

	b.Run("jwtnotes", func(b *testing.B) {
		s := benchSigner()
		b.ReportAllocs()
		for b.Loop() {
			c, err := s.verify(token, accessToken, benchNow)
			if err != nil || c.UserID != 7 {
				b.Fatal(c, err)
			}
		}
	})

	edToken := newTokenSigner(newKeyring(benchEdDSAKey())).sign(benchClaims)
	b.Run("jwtnotes-EdDSA", func(b *testing.B) {
		s := newTokenSigner(newKeyring(benchEdDSAKey()))
		b.ReportAllocs()
		for b.Loop() {
			c, err := s.verify(edToken, accessToken, benchNow)
			if err != nil || c.UserID != 7 {
				b.Fatal(c, err)
			}
		}
	})

	b.Run("golang-jwt-v5-EdDSA", func(b *testing.B) {
		parser := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(), jwt.WithTimeFunc(func() time.Time { return benchNow }))
		public := benchEdDSAKey().public
		keyFunc := func(*jwt.Token) (any, error) { return public, nil }
		b.ReportAllocs()
		for b.Loop() {
			var c libClaims
			_, err := parser.ParseWithClaims(edToken, &c, keyFunc)
			if err != nil || c.UserID != 7 || c.TokenType != "access" || c.ID == "" {
				b.Fatal(c, err)
			}
		}
	})

	b.Run("golang-jwt-v5", func(b *testing.B) {
		parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(), jwt.WithTimeFunc(func() time.Time { return benchNow }))
		keyFunc := func(*jwt.Token) (any, error) { return benchKey, nil }
		b.ReportAllocs()
		for b.Loop() {
			var c libClaims
			_, err := parser.ParseWithClaims(token, &c, keyFunc)
			if err != nil || c.UserID != 7 || c.TokenType != "access" || c.ID == "" {
				b.Fatal(c, err)
			}
		}
	})
}

// TestKeySetVerifies: tokens of a rotated ring, each naming its key by kid,
// verify in golang-jwt with its key-set API (a Keyfunc that returns a
// VerificationKeySet), and with a Keyfunc that looks the kid up.
func TestKeySetVerifies(t *testing.T) {
	oldKey, newKey := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	c := claims{TokenType: accessToken, Exp: benchNow.Add(time.Hour).Unix(), Iat: benchNow.Unix(),
		JTI: "0123456789abcdef0123456789abcdef", UserID: 7, SessionID: "s1"}
	before := newTokenSigner(newKeyring(&tokenKey{id: "old", secret: oldKey}))
	after := newTokenSigner(newKeyring(&tokenKey{id: "new", secret: newKey}, &tokenKey{id: "old", secret: oldKey}))
	tokens := map[string]string{"old": before.sign(c), "new": after.sign(c)}

	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return benchNow }))
	set := jwt.VerificationKeySet{Keys: []jwt.VerificationKey{oldKey, newKey}}
	byKid := map[string][]byte{"old": oldKey, "new": newKey}
	for kid, token := range tokens {
		if _, err := after.verify(token, accessToken, benchNow); err != nil {
			t.Errorf("jwtnotes, token of %s: %v", kid, err)
		}
		var lc libClaims
		parsed, err := parser.ParseWithClaims(token, &lc, func(*jwt.Token) (any, error) { return set, nil })
		if err != nil || parsed.Header["kid"] != kid || lc.UserID != 7 {
			t.Errorf("golang-jwt, key set, token of %s: %v (header %v)", kid, err, parsed.Header)
		}
		_, err = parser.ParseWithClaims(token, &libClaims{}, func(tok *jwt.Token) (any, error) {
			kid, _ := tok.Header["kid"].(string)
			return byKid[kid], nil
		})
		if err != nil {
			t.Errorf("golang-jwt, by kid, token of %s: %v", kid, err)
		}
	}
	// A token golang-jwt signs with a kid verifies here too.
	lib := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"token_type": "access", "exp": c.Exp, "iat": c.Iat,
		"jti": c.JTI, "user_id": 7, "sid": "s1"})
	lib.Header["kid"] = "new"
	signed, err := lib.SignedString(newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := after.verify(signed, accessToken, benchNow); err != nil {
		t.Errorf("a token golang-jwt signed: %v", err)
	}
}

// TestPublishedKeySetVerifiesEdDSA: golang-jwt verifies the EdDSA tokens of
// a rotated ring with nothing but the key set the server publishes (each
// key taken by the token's kid), refuses a token whose HS256 "signature"
// uses a published key as its secret, and a token golang-jwt signs with a
// published key's private half verifies here.
func TestPublishedKeySetVerifiesEdDSA(t *testing.T) {
	oldKey, newKey := edDSAKey([]byte("0123456789abcdef0123456789abcdef")), edDSAKey([]byte("fedcba9876543210fedcba9876543210"))
	hmacKey := &tokenKey{id: "hs", secret: benchKey}
	before := newTokenSigner(newKeyring(oldKey))
	after := newTokenSigner(newKeyring(newKey, oldKey, hmacKey))
	tokens := map[string]string{oldKey.id: before.sign(benchClaims), newKey.id: after.sign(benchClaims)}

	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg, Use string } `json:"keys"`
	}
	if err := json.Unmarshal(after.ring.Load().keySet(benchNow), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("the key set: %+v %v (want the two EdDSA keys, never the HMAC one)", set, err)
	}
	published := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := b64.DecodeString(k.X)
		if err != nil || k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Use != "sig" || thumbprint(x) != k.Kid {
			t.Errorf("a published key: %+v %v", k, err)
		}
		published[k.Kid] = x
	}
	byKid := func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		return published[kid], nil
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(func() time.Time { return benchNow }))
	for kid, token := range tokens {
		var lc libClaims
		parsed, err := parser.ParseWithClaims(token, &lc, byKid)
		if err != nil || parsed.Header["kid"] != kid || lc.UserID != 7 {
			t.Errorf("golang-jwt, token of %s: %v", kid, err)
		}
	}

	// The confusion, as golang-jwt would see it if a verifier let HS256 in
	// with the published bytes as the secret: refused by the method list.
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"token_type": "access", "exp": benchClaims.Exp,
		"iat": benchClaims.Iat, "jti": benchClaims.JTI, "user_id": 7, "sid": "s1"})
	forged.Header["kid"] = newKey.id
	signed, err := forged.SignedString([]byte(newKey.public))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.ParseWithClaims(signed, &libClaims{}, byKid); err == nil {
		t.Error("golang-jwt took an HS256 token signed with a public key")
	}
	if _, err := after.verify(signed, accessToken, benchNow); err == nil {
		t.Error("jwtnotes took an HS256 token signed with a public key")
	}

	// A token golang-jwt signs with the new key verifies here.
	lib := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"token_type": "access", "exp": benchClaims.Exp,
		"iat": benchClaims.Iat, "jti": benchClaims.JTI, "user_id": 7, "sid": "s1"})
	lib.Header["kid"] = newKey.id
	if signed, err = lib.SignedString(newKey.private); err != nil {
		t.Fatal(err)
	}
	if _, err := after.verify(signed, accessToken, benchNow); err != nil {
		t.Errorf("a token golang-jwt signed with EdDSA: %v", err)
	}
}
