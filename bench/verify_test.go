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

func benchToken() string {
	s := &tokenSigner{key: benchKey}
	return s.sign(claims{
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
		s := &tokenSigner{key: benchKey}
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
