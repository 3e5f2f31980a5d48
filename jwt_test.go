package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// testNow is the clock of the token tests.
var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func testClaims(tokenType string) claims {
	return claims{
		TokenType: tokenType,
		Exp:       testNow.Add(time.Hour).Unix(),
		Iat:       testNow.Unix(),
		JTI:       "0123456789abcdef0123456789abcdef",
		UserID:    7,
		Username:  "alice",
		Email:     "alice@example.com",
		SessionID: "s1",
	}
}

// singleKeySigner is a signer with one key, kid "test", that also verifies
// tokens without a kid (as JWT_SECRET's key does).
func singleKeySigner(key []byte) *tokenSigner {
	return newTokenSigner(newKeyring(&tokenKey{id: "test", secret: key, legacy: true}))
}

// forge signs any header and payload with key, as an attacker who knows the
// key (or a test) could.
func forge(key []byte, header, payload string) string {
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	return input + "." + b64.EncodeToString(mac(key, input))
}

func TestSignWritesSimplejwtLayout(t *testing.T) {
	t.Parallel()
	s := singleKeySigner(testKey)
	token := s.sign(testClaims(accessToken))
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("got %d segments, want 3", len(parts))
	}
	header, _ := b64.DecodeString(parts[0])
	// PyJWT's header with a kid: its members sorted.
	if got, want := string(header), `{"alg":"HS256","kid":"test","typ":"JWT"}`; got != want {
		t.Errorf("header = %s, want %s", got, want)
	}
	payload, _ := b64.DecodeString(parts[1])
	want := `{"token_type":"access","exp":1795957200,"iat":1795953600,"jti":"0123456789abcdef0123456789abcdef",` +
		`"user_id":7,"username":"alice","email":"alice@example.com","sid":"s1"}`
	if string(payload) != want {
		t.Errorf("payload = %s\nwant      %s", payload, want)
	}
	got, err := s.verify(token, accessToken, testNow)
	if err != nil || got != testClaims(accessToken) {
		t.Errorf("verify(sign(c)) = %+v, %v; want the claims back", got, err)
	}
}

func TestRandomIDIs32LowercaseHex(t *testing.T) {
	t.Parallel()
	a, b := randomID(), randomID()
	if len(a) != 32 || strings.Trim(a, "0123456789abcdef") != "" || a == b {
		t.Errorf("randomID() = %q, %q; want two different 32-character lowercase hex strings", a, b)
	}
}

// TestVerifyRFC7515Example checks the verifier against the HS256 example of
// RFC 7515, Appendix A.1: a token signed by someone else, whose header and
// payload JSON hold CRLFs, verified over its segments as received.
func TestVerifyRFC7515Example(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/rfc7515-a1.json")
	if err != nil {
		t.Fatal(err)
	}
	var example struct {
		JWK struct {
			K string `json:"k"`
		} `json:"jwk"`
		Compact string `json:"compact"`
		Payload string `json:"payload_bytes"`
	}
	if err := json.Unmarshal(raw, &example); err != nil {
		t.Fatal(err)
	}
	key, err := base64.RawURLEncoding.DecodeString(example.JWK.K)
	if err != nil {
		t.Fatal(err)
	}
	s := singleKeySigner(key)

	payload, _, err := s.verifySigned(example.Compact, time.Date(2011, 3, 22, 18, 42, 59, 0, time.UTC))
	if err != nil {
		t.Fatalf("verifySigned: %v", err)
	}
	if string(payload) != example.Payload {
		t.Errorf("payload = %q, want %q", payload, example.Payload)
	}

	// exp is 2011-03-22T18:43:00Z. Before it, the token passes the signature
	// and time checks and stops only at this API's own claim rules (it has no
	// jti); from exp on, it is expired.
	before := time.Date(2011, 3, 22, 18, 42, 59, 0, time.UTC)
	if _, err := s.verify(example.Compact, "", before); !errors.Is(err, errTokenNoID) {
		t.Errorf("verify before exp: %v, want %v", err, errTokenNoID)
	}
	at := time.Date(2011, 3, 22, 18, 43, 0, 0, time.UTC)
	if _, err := s.verify(example.Compact, "", at); !errors.Is(err, errTokenInvalid) {
		t.Errorf("verify at exp: %v, want %v", err, errTokenInvalid)
	}
	// Another key, or one flipped signature bit, and it fails.
	if _, _, err := singleKeySigner(testKey).verifySigned(example.Compact, before); !errors.Is(err, errTokenInvalid) {
		t.Errorf("verify with another key: %v, want %v", err, errTokenInvalid)
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	s := singleKeySigner(testKey)
	// A token with "-" or "_" in its signature, so that the standard
	// base64 alphabet spells it differently.
	c := testClaims(accessToken)
	good := s.sign(c)
	for i := 0; !strings.ContainsAny(strings.Split(good, ".")[2], "-_"); i++ {
		c.JTI = fmt.Sprint(i)
		good = s.sign(c)
	}
	parts := strings.Split(good, ".")
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	payload := func(mutate func(map[string]any)) string {
		m := map[string]any{"token_type": "access", "exp": testNow.Unix() + 60, "iat": testNow.Unix(),
			"jti": "j", "user_id": 7, "sid": "s1"}
		mutate(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	keep := func(map[string]any) {}
	// flip changes the last character so the decoded bytes change.
	flip := func(seg string) string {
		last := seg[len(seg)-1]
		repl := byte('A')
		if last == 'A' {
			repl = 'B'
		}
		return seg[:len(seg)-1] + string(repl)
	}
	// nonCanonical changes only unused trailing bits of the signature (32
	// bytes: 43 characters, the last carrying 2 unused bits).
	nonCanonical := func(seg string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alphabet, seg[len(seg)-1])
		return seg[:len(seg)-1] + string(alphabet[i|1])
	}

	tests := []struct {
		name  string
		token string
		want  string
		err   error
	}{
		{"empty", "", accessToken, errTokenInvalid},
		{"garbage", "not.a.jwt", accessToken, errTokenInvalid},
		{"two segments", parts[0] + "." + parts[1], accessToken, errTokenInvalid},
		{"four segments", good + "." + parts[2], accessToken, errTokenInvalid},
		{"empty signature", parts[0] + "." + parts[1] + ".", accessToken, errTokenInvalid},
		{"padded signature", good + "=", accessToken, errTokenInvalid},
		{"padded payload", parts[0] + "." + parts[1] + "==." + parts[2], accessToken, errTokenInvalid},
		{"non-canonical base64", parts[0] + "." + parts[1] + "." + nonCanonical(parts[2]), accessToken, errTokenInvalid},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(good), accessToken, errTokenInvalid},
		{"CRLF inside a segment", parts[0] + "." + parts[1][:10] + "\r\n" + parts[1][10:] + "." + parts[2], accessToken, errTokenInvalid},
		{"space around", " " + good, accessToken, errTokenInvalid},
		{"bad signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), accessToken, errTokenInvalid},
		{"other key", forge([]byte("another key of thirty-two bytes!!"), hs256, payload(keep)), accessToken, errTokenInvalid},
		{"alg none", b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + ".", accessToken, errTokenInvalid},
		{"alg none signed", forge(testKey, `{"alg":"none"}`, payload(keep)), accessToken, errTokenInvalid},
		{"alg HS512", forge(testKey, `{"alg":"HS512","typ":"JWT"}`, payload(keep)), accessToken, errTokenInvalid},
		{"alg RS256", forge(testKey, `{"alg":"RS256","typ":"JWT"}`, payload(keep)), accessToken, errTokenInvalid},
		{"alg hs256", forge(testKey, `{"alg":"hs256"}`, payload(keep)), accessToken, errTokenInvalid},
		{"no alg", forge(testKey, `{"typ":"JWT"}`, payload(keep)), accessToken, errTokenInvalid},
		{"crit", forge(testKey, `{"alg":"HS256","crit":["exp"]}`, payload(keep)), accessToken, errTokenInvalid},
		{"header not an object", forge(testKey, `["HS256"]`, payload(keep)), accessToken, errTokenInvalid},
		{"payload not an object", forge(testKey, hs256, `"hello"`), accessToken, errTokenInvalid},
		{"payload not JSON", forge(testKey, hs256, `{"exp":`), accessToken, errTokenInvalid},
		{"expired", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = testNow.Unix() - 1 })), accessToken, errTokenInvalid},
		{"exp is now", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = testNow.Unix() })), accessToken, errTokenInvalid},
		{"exp a string", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = "9999999999" })), accessToken, errTokenInvalid},
		{"exp null", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = nil })), accessToken, errTokenInvalid},
		{"iat in the future", forge(testKey, hs256, payload(func(m map[string]any) { m["iat"] = testNow.Unix() + 1 })), accessToken, errTokenInvalid},
		{"iat a string", forge(testKey, hs256, payload(func(m map[string]any) { m["iat"] = "1" })), accessToken, errTokenInvalid},
		{"nbf in the future", forge(testKey, hs256, payload(func(m map[string]any) { m["nbf"] = testNow.Unix() + 1 })), accessToken, errTokenInvalid},
		{"nbf a boolean", forge(testKey, hs256, payload(func(m map[string]any) { m["nbf"] = true })), accessToken, errTokenInvalid},
		{"no exp", forge(testKey, hs256, payload(func(m map[string]any) { delete(m, "exp") })), accessToken, errTokenNoExp},
		{"no jti", forge(testKey, hs256, payload(func(m map[string]any) { delete(m, "jti") })), accessToken, errTokenNoID},
		{"no token_type", forge(testKey, hs256, payload(func(m map[string]any) { delete(m, "token_type") })), accessToken, errTokenNoType},
		{"refresh for access", s.sign(testClaims(refreshToken)), accessToken, errTokenWrongType},
		{"access for refresh", good, refreshToken, errTokenWrongType},
		{"type foo", forge(testKey, hs256, payload(func(m map[string]any) { m["token_type"] = "foo" })), "", errTokenWrongType},
		{"type not a string", forge(testKey, hs256, payload(func(m map[string]any) { m["token_type"] = 1 })), "", errTokenWrongType},
		{"no user_id", forge(testKey, hs256, payload(func(m map[string]any) { delete(m, "user_id") })), accessToken, errTokenNoUser},
		{"user_id a string", forge(testKey, hs256, payload(func(m map[string]any) { m["user_id"] = "7" })), accessToken, errTokenNoUser},
		{"100 KB token", good + strings.Repeat("A", 100<<10), accessToken, errTokenInvalid},
		// Member names match exactly and come once; the text is valid UTF-8.
		{"Alg for alg", forge(testKey, `{"Alg":"HS256"}`, payload(keep)), accessToken, errTokenInvalid},
		{"alg twice", forge(testKey, `{"alg":"HS256","alg":"none"}`, payload(keep)), accessToken, errTokenInvalid},
		{"header with more after it", forge(testKey, hs256+`{}`, payload(keep)), accessToken, errTokenInvalid},
		{"Exp for exp", forge(testKey, hs256, `{"token_type":"access","Exp":1896554800,"jti":"j","user_id":7}`), accessToken, errTokenNoExp},
		{"Token_Type after token_type", forge(testKey, hs256, `{"token_type":"access","Token_Type":"refresh","exp":1896554800,"jti":"j","user_id":7}`), refreshToken, errTokenWrongType},
		{"token_type twice", forge(testKey, hs256, `{"token_type":"access","token_type":"refresh","exp":1896554800,"jti":"j","user_id":7}`), refreshToken, errTokenInvalid},
		{"invalid UTF-8", forge(testKey, hs256, "{\"token_type\":\"access\",\"exp\":1896554800,\"jti\":\"j\xff\",\"user_id\":7}"), accessToken, errTokenInvalid},
		{"payload with more after it", forge(testKey, hs256, payload(keep)+` 1`), accessToken, errTokenInvalid},
		// Times are within 1970 to 9999.
		{"exp 1e19", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = 1e19 })), accessToken, errTokenInvalid},
		{"exp past 9999", forge(testKey, hs256, payload(func(m map[string]any) { m["exp"] = 253402300800 })), accessToken, errTokenInvalid},
		{"iat negative", forge(testKey, hs256, payload(func(m map[string]any) { m["iat"] = -1 })), accessToken, errTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.verify(tt.token, tt.want, testNow)
			if !errors.Is(err, tt.err) {
				t.Errorf("verify = %v, want %v", err, tt.err)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	t.Parallel()
	s := singleKeySigner(testKey)
	hs256 := `{"alg":"HS256","typ":"JWT"}`
	tests := []struct {
		name, token, want string
	}{
		{"ours, either type", s.sign(testClaims(refreshToken)), ""},
		{"no iat (as simplejwt)", forge(testKey, hs256, `{"token_type":"access","exp":1896554800,"jti":"j","user_id":7,"sid":"s"}`), accessToken},
		{"fractional exp", forge(testKey, hs256, `{"token_type":"access","exp":1896554800.5,"jti":"j","user_id":7}`), accessToken},
		{"header without typ", forge(testKey, `{"alg":"HS256"}`, `{"token_type":"access","exp":1896554800,"jti":"j","user_id":7}`), accessToken},
		{"past nbf", forge(testKey, hs256, `{"token_type":"access","exp":1896554800,"nbf":1,"jti":"j","user_id":7}`), accessToken},
		{"CRIT is not crit", forge(testKey, `{"alg":"HS256","CRIT":["exp"]}`, `{"token_type":"access","exp":1896554800,"jti":"j","user_id":7}`), accessToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.verify(tt.token, tt.want, testNow); err != nil {
				t.Errorf("verify = %v, want nil", err)
			}
		})
	}
}

// FuzzVerify mutates a valid token: nothing panics, and no token other than
// the one signed verifies.
func FuzzVerify(f *testing.F) {
	// An HS256 key and an EdDSA one: a token of either, mutated, must not
	// verify (Ed25519 signatures, as crypto/ed25519 checks them, have one
	// encoding each, as canonical base64 does).
	ed := edDSAKey(bytes.Repeat([]byte{9}, 32))
	s := newTokenSigner(newKeyring(&tokenKey{id: "test", secret: testKey, legacy: true}, ed))
	good := s.sign(testClaims(accessToken))
	goodEd := s.signWith(ed.id, testClaims(accessToken))
	if _, err := s.verify(goodEd, accessToken, testNow); err != nil {
		f.Fatalf("the EdDSA token: %v", err)
	}
	for _, token := range []string{good, goodEd} {
		f.Add(token)
		f.Add(token + "=")
		f.Add(strings.Replace(token, ".", "..", 1))
	}
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.verify(token, "", testNow)
		if err == nil && token != good && token != goodEd {
			t.Fatalf("a mutated token verified: %q (claims %+v)", token, c)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	s := singleKeySigner(testKey)
	c := testClaims(accessToken)
	b.ReportAllocs()
	for b.Loop() {
		s.sign(c)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := singleKeySigner(testKey)
	token := s.sign(testClaims(accessToken))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.verify(token, accessToken, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPayloadRoundTrip: whatever claims are signed, verify gives back the
// same claims (strings with quotes, control characters or invalid UTF-8
// included, which encoding/json writes as escapes or U+FFFD).
func FuzzPayloadRoundTrip(f *testing.F) {
	f.Add("access", int64(7), "alice", "a@example.com", "sid")
	f.Add("refresh", int64(-1), "a\"b\\c\u2028", "\x00\x1f", "")
	f.Fuzz(func(t *testing.T, tokenType string, userID int64, username, email, sid string) {
		if !utf8.ValidString(username) || !utf8.ValidString(email) || !utf8.ValidString(sid) {
			return // encoding/json writes U+FFFD: a different string, as it should
		}
		c := testClaims(accessToken)
		c.TokenType, c.UserID, c.Username, c.Email, c.SessionID = tokenType, userID, username, email, sid
		got, err := readPayload([]byte(encodeClaimsJSON(c)), "", testNow)
		switch {
		case tokenType != accessToken && tokenType != refreshToken:
			if err != errTokenWrongType {
				t.Fatalf("token_type %q: %v", tokenType, err)
			}
		case err != nil || got != c:
			t.Fatalf("claims %+v: read back %+v, %v", c, got, err)
		}
	})
}

func encodeClaimsJSON(c claims) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// TestTokenIDs: 32 lowercase hex characters like simplejwt's jti, different
// every time, and in the order of their time (the blacklist's B-tree then
// grows at its end).
func TestTokenIDs(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	a, b, later := tokenID(now), tokenID(now), tokenID(now.Add(time.Millisecond))
	for _, id := range []string{a, b, later} {
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Fatalf("token id %q", id)
		}
	}
	if a == b {
		t.Error("two token ids of the same millisecond are equal")
	}
	if !(a < later && b < later) {
		t.Errorf("ids do not sort by time: %s, %s, then %s", a, b, later)
	}
	if a[:12] != fmt.Sprintf("%012x", now.UnixMilli()) {
		t.Errorf("id %s does not start with the time in ms, %012x", a, now.UnixMilli())
	}
}

// FuzzReadObject holds readObject to encoding/json's reading of the same
// text: what it accepts is a valid JSON object whose members are those
// json.Unmarshal finds, each value as written; what json.Unmarshal accepts
// as an object, readObject accepts too unless a name comes twice or the
// text is not valid UTF-8.
func FuzzReadObject(f *testing.F) {
	for _, seed := range []string{
		`{"alg":"HS256","typ":"JWT"}`, `{"a":[1,{"b":null}],"c":"\u00e9\"","d":-0.5e+3}`, `{}`, ` { "x" : true } `,
		`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":1}x`, `{"a":01}`, `{"a":"\x01"}`, "{\"a\":\"\xff\"}", `{"a":[1,]}`, `["a"]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := readObject(data)
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(data, &want)
		if ok {
			if wantErr != nil || !utf8.Valid(data) {
				t.Fatalf("%q: readObject accepts what encoding/json refuses (%v)", data, wantErr)
			}
			for name, value := range want {
				if !bytes.Equal(got[name], bytes.TrimSpace(value)) {
					t.Fatalf("%q: member %q is %q, encoding/json reads %q", data, name, got[name], value)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%q: %d members, encoding/json %d", data, len(got), len(want))
			}
			return
		}
		if wantErr == nil && want != nil && utf8.Valid(data) && !hasRepeatedName(data) {
			t.Fatalf("%q: readObject refuses an object encoding/json reads", data)
		}
	})
}

// hasRepeatedName reports whether a JSON object names a member twice at
// its top level, walking its names with encoding/json's tokenizer.
func hasRepeatedName(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	seen := map[string]bool{}
	if open, err := dec.Token(); err != nil || open != json.Delim('{') {
		return false
	}
	for dec.More() {
		token, err := dec.Token()
		name, _ := token.(string)
		var value json.RawMessage
		if err != nil || seen[name] || dec.Decode(&value) != nil {
			return err == nil && seen[name]
		}
		seen[name] = true
	}
	return false
}
