package main

// Verification of one access token, by the server's hand-written verifier
// and by github.com/golang-jwt/jwt/v5 (the usual library), in one run:
//
//	cd bench && go test -bench . -benchmem -count 5

import (
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

func benchToken() string {
	return benchSigner().sign(claims{
		TokenType: accessToken, Exp: benchNow.Add(time.Hour).Unix(), Iat: benchNow.Unix(),
		JTI: "0123456789abcdef0123456789abcdef", UserID: 7, Username: "alice",
		Email: "alice@example.com", SessionID: "fedcba9876543210fedcba9876543210",
	})
}

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
