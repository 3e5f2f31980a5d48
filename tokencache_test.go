package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestVerifyAccessAnswersAsVerify: whatever the clock and the ring do, an
// access token verified before gets from verifyAccess exactly what verify
// would say of it now: tokens of a key that ends or is revoked, that expire,
// that are not valid yet, or that a clock set back makes not valid yet.
func TestVerifyAccessAnswersAsVerify(t *testing.T) {
	t.Parallel()
	current := &tokenKey{id: "current", secret: testKey}
	retiring := &tokenKey{id: "retiring", secret: []byte(strings.Repeat("r", 32)), until: testNow.Add(30 * time.Minute)}
	s := newTokenSigner(newKeyring(current, retiring))
	v := newVerifiedTokens(s)
	withKey := func(k *tokenKey, payload string) string {
		return forge(k.secret, `{"alg":"HS256","kid":"`+k.id+`","typ":"JWT"}`, payload)
	}
	at := func(c claims, iat, exp time.Duration) claims {
		c.Iat, c.Exp = testNow.Add(iat).Unix(), testNow.Add(exp).Unix()
		return c
	}
	valid := s.sign(testClaims(accessToken))
	tokens := map[string]string{
		"valid":               valid,
		"of the retiring key": withKey(retiring, mustJSON(t, testClaims(accessToken))),
		"expiring in 5 min":   s.sign(at(testClaims(accessToken), 0, 5*time.Minute)),
		"issued in 10 min":    s.sign(at(testClaims(accessToken), 10*time.Minute, time.Hour)),
		"not before 10 min": withKey(current, fmt.Sprintf(`{"token_type":"access","exp":%d,"iat":%d,"nbf":%d,"jti":"j","user_id":7,"sid":"s1"}`,
			testNow.Add(time.Hour).Unix(), testNow.Unix(), testNow.Add(10*time.Minute).Unix())),
		"a refresh token": s.sign(testClaims(refreshToken)),
		"tampered":        valid[:len(valid)-2] + "AA",
		"too long to keep": withKey(current, fmt.Sprintf(`{"token_type":"access","exp":%d,"iat":%d,"jti":"j","user_id":7,"sid":"s1","pad":"%s"}`,
			testNow.Add(time.Hour).Unix(), testNow.Unix(), strings.Repeat("p", maxCachedToken))),
	}
	if len(tokens["too long to keep"]) <= maxCachedToken {
		t.Fatalf("the long token is %d bytes, not over maxCachedToken", len(tokens["too long to keep"]))
	}

	steps := []struct {
		name   string
		offset time.Duration
		revoke bool // the retiring key leaves the ring before this step
	}{
		{"now", 0, false},
		{"a second on", time.Second, false},
		{"just before 5 min", 5*time.Minute - time.Nanosecond, false},
		{"at 5 min", 5 * time.Minute, false},
		{"at 10 min", 10 * time.Minute, false},
		{"the clock set back", -time.Minute, false},
		{"just before 30 min", 30*time.Minute - time.Nanosecond, false},
		{"at 30 min", 30 * time.Minute, false},
		{"at 20 min, the retiring key revoked", 20 * time.Minute, true},
		{"at 59 min", 59 * time.Minute, false},
		{"at an hour", time.Hour, false},
	}
	hits := 0
	for _, step := range steps {
		now := testNow.Add(step.offset)
		if step.revoke {
			s.ring.Store(newKeyring(current))
		}
		for name, token := range tokens {
			wantClaims, wantErr := s.verify(token, accessToken, now)
			for try := range 2 { // the second try can only be answered from memory
				if _, kept := v.lookup(token, s.ring.Load(), now); kept && try == 1 {
					hits++
				}
				got, err := v.verifyAccess(token, now)
				if got != wantClaims || err != wantErr {
					t.Errorf("%s, token %s, try %d: verifyAccess = %+v, %v; verify = %+v, %v",
						step.name, name, try+1, got, err, wantClaims, wantErr)
				}
			}
		}
	}
	if hits == 0 {
		t.Error("no token was ever answered from memory")
	}
	if _, kept := v.lookup(tokens["too long to keep"], s.ring.Load(), testNow.Add(time.Second)); kept {
		t.Error("a token over maxCachedToken was kept")
	}
}

// TestKeptTokenIsKeptAgainAfterAReload: a token kept under a ring that was
// since replaced is checked in full once, then answered from memory again.
func TestKeptTokenIsKeptAgainAfterAReload(t *testing.T) {
	t.Parallel()
	key := &tokenKey{id: "k", secret: testKey}
	s := newTokenSigner(newKeyring(key))
	v := newVerifiedTokens(s)
	token := s.sign(testClaims(accessToken))
	if _, err := v.verifyAccess(token, testNow); err != nil {
		t.Fatal(err)
	}
	s.ring.Store(newKeyring(key)) // a reload of the same key
	if _, kept := v.lookup(token, s.ring.Load(), testNow); kept {
		t.Fatal("a token kept under the old ring is answered under the new one")
	}
	if _, err := v.verifyAccess(token, testNow); err != nil {
		t.Fatal(err)
	}
	if _, kept := v.lookup(token, s.ring.Load(), testNow); !kept {
		t.Error("after its check under the new ring, the token is not kept")
	}
	if want := textSize(token, testClaims(accessToken)); v.bytes != want {
		t.Errorf("%d bytes counted for one token, want %d", v.bytes, want)
	}
}

// TestVerifiedTokensAreBounded: however many tokens verify, at most
// verifiedTokensSize are kept, holding at most verifiedTokensBytes of text,
// whether the tokens are short or as long as this server signs.
func TestVerifiedTokensAreBounded(t *testing.T) {
	t.Parallel()
	v := newVerifiedTokens(singleKeySigner(testKey))
	s := v.signer
	for _, long := range []bool{false, true} {
		for i := range 2*verifiedTokensSize + 1 {
			c := testClaims(accessToken)
			c.JTI = fmt.Sprint(i)
			if long { // the longest name and email a user may have
				c.Username = strings.Repeat("𠀀", 150) // 4 bytes each
				c.Email = strings.Repeat("e", 242) + "@example.com"
			}
			token := s.sign(c)
			if _, err := v.verifyAccess(token, testNow); err != nil {
				t.Fatal(err)
			}
			if long && i == 0 && len(token) > maxCachedToken {
				t.Fatalf("a token of the longest name is %d bytes, over maxCachedToken: it would never be kept", len(token))
			}
			v.mu.Lock()
			n, bytes := len(v.entries), v.bytes
			v.mu.Unlock()
			if n > verifiedTokensSize || bytes > verifiedTokensBytes {
				t.Fatalf("%d tokens kept, holding %d bytes: more than %d or %d", n, bytes, verifiedTokensSize, verifiedTokensBytes)
			}
		}
	}
}

// TestKeptTokenExpiresThroughTheAPI: a token the server has verified before
// is refused, with the contract's answer, from the second its exp names.
func TestKeptTokenExpiresThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	tokens := e.login("alice")
	if res := e.get("/api/profile/", tokens.Access); res.status != 200 {
		t.Fatalf("the token, fresh: %d %s", res.status, res.body)
	}
	exp := time.Unix(int64(decodeClaims(t, tokens.Access)["exp"].(float64)), 0)
	e.clock.advance(exp.Sub(e.clock.now()) - time.Millisecond)
	if res := e.get("/api/profile/", tokens.Access); res.status != 200 {
		t.Fatalf("a millisecond before exp: %d %s", res.status, res.body)
	}
	e.clock.advance(time.Millisecond)
	want(t, e.get("/api/profile/", tokens.Access), 401, bodyAccessRefused("Token is invalid or expired"))
}

// BenchmarkVerifyAccess: an access token checked in full, and the same
// token again, answered from memory (go test -run XXX -bench VerifyAccess).
func BenchmarkVerifyAccess(b *testing.B) {
	token := singleKeySigner(testKey).sign(testClaims(accessToken))
	b.Run("full", func(b *testing.B) {
		s := singleKeySigner(testKey)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.verify(token, accessToken, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("kept", func(b *testing.B) {
		v := newVerifiedTokens(singleKeySigner(testKey))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.verifyAccess(token, testNow); err != nil {
				b.Fatal(err)
			}
		}
	})
}
