package main

// jwt.go: HS256 JSON Web Tokens, signed and verified by hand on crypto/hmac.
//
// Read it in this order: sign turns claims into a compact token
// (header.payload.signature); verify checks a token strictly and returns its
// claims, or a named error whose text is the message simplejwt gives for the
// same fault; then the checks verify makes, from the envelope to each claim.
//
// It knows tokens and their key, not HTTP, SQL or where tokens are kept.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Token types, the value of the token_type claim.
const (
	accessToken  = "access"
	refreshToken = "refresh"
)

// tokenError is a verdict on a token. Its text is the message simplejwt
// gives for the same fault, word for word, because clients show it and the
// contract quotes it (hence the capital letters).
type tokenError string

func (e tokenError) Error() string { return string(e) }

const (
	errTokenInvalid   tokenError = "Token is invalid or expired"
	errTokenNoExp     tokenError = "Token has no 'exp' claim"
	errTokenNoID      tokenError = "Token has no id"
	errTokenNoType    tokenError = "Token has no type"
	errTokenWrongType tokenError = "Token has wrong type"
	errTokenNoUser    tokenError = "Token contained no recognizable user identification"
	// Not the verifier's: a valid token that was rotated out or whose session ended.
	errTokenBlacklisted tokenError = "Token is blacklisted"
)

// claims is the payload of every token this server signs. The field order is
// the order of the JSON, which is the order simplejwt writes (sid added last).
type claims struct {
	TokenType string `json:"token_type"`
	Exp       int64  `json:"exp"`
	Iat       int64  `json:"iat"`
	JTI       string `json:"jti"`
	UserID    int64  `json:"user_id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	SessionID string `json:"sid"`
}

// jwtHeader is the one header this server writes, already encoded:
// base64url of {"alg":"HS256","typ":"JWT"}.
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// b64 is unpadded base64url. Strict rejects encodings whose unused trailing
// bits are not zero, so each byte string has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// tokenSigner holds the HMAC key. It is the only thing that knows the key.
type tokenSigner struct {
	key []byte
}

// sign returns the compact serialisation header.payload.signature.
func (s *tokenSigner) sign(c claims) string {
	return s.signPayload(encodeClaims(c))
}

// encodeClaims returns the payload segment of a token with claims c.
func encodeClaims(c claims) string {
	payload, _ := json.Marshal(c) // a struct of strings and ints cannot fail
	return b64.EncodeToString(payload)
}

// signPayload signs an encoded payload segment. Signing is deterministic:
// the same payload always gives the same token. So a rotated token's
// replacement can be kept as its payload alone and the token rebuilt from it
// later; whoever holds only payloads holds no usable token.
func (s *tokenSigner) signPayload(payloadSegment string) string {
	signingInput := jwtHeader + "." + payloadSegment
	return signingInput + "." + b64.EncodeToString(s.mac(signingInput))
}

// mac is HMAC-SHA256 of signingInput with the key.
func (s *tokenSigner) mac(signingInput string) []byte {
	m := hmac.New(sha256.New, s.key)
	io.WriteString(m, signingInput)
	return m.Sum(nil)
}

// verify checks token and returns its claims. want is the token type the
// caller expects ("access" or "refresh"); "" accepts either of the two.
// now is the verifier's clock, passed in so that expiry is testable.
//
// The checks run in the order PyJWT and simplejwt run them, so that each
// fault gets the same message as in the original:
//  1. the signed envelope (verifySigned): anything wrong is errTokenInvalid;
//  2. the time claims exp, iat and nbf: wrong type, past exp or a future
//     iat/nbf is errTokenInvalid;
//  3. the claims simplejwt requires: exp, jti, token_type, then the type.
func (s *tokenSigner) verify(token, want string, now time.Time) (claims, error) {
	payload, err := s.verifySigned(token)
	if err != nil {
		return claims{}, err
	}
	return readPayload(payload, want, now)
}

// verifySigned checks the envelope of a token and returns its decoded payload:
// exactly three segments of canonical unpadded base64url, a JSON header whose
// alg is exactly "HS256" and that has no "crit", and a signature that matches,
// compared in constant time. The signature is computed over the segments as
// received, never over re-encoded JSON.
func (s *tokenSigner) verifySigned(token string) ([]byte, error) {
	headerSeg, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errTokenInvalid
	}
	payloadSeg, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigSeg, ".") {
		return nil, errTokenInvalid
	}
	if err := checkHeader(headerSeg); err != nil {
		return nil, err
	}
	sig, err := decodeSegment(sigSeg)
	if err != nil {
		return nil, err
	}
	signingInput := token[:len(headerSeg)+1+len(payloadSeg)]
	if !hmac.Equal(sig, s.mac(signingInput)) {
		return nil, errTokenInvalid
	}
	return decodeSegment(payloadSeg)
}

// checkHeader reads a header segment: JSON whose alg is exactly "HS256" and
// that has no "crit". The header is trusted for nothing but this check: the
// algorithm is fixed by the server, never chosen by the token.
func checkHeader(seg string) error {
	header, err := decodeSegment(seg)
	if err != nil {
		return err
	}
	h, ok := readObject(header)
	if _, crit := h["crit"]; !ok || crit || string(h["alg"]) != `"HS256"` {
		return errTokenInvalid
	}
	return nil
}

// readObject reads a JSON object strictly and returns its members, each
// value as it was written: the text must be valid UTF-8 with nothing after
// the object, and each name must come once. Names are matched exactly by
// the caller. (encoding/json alone would match "Exp" to exp, take the last
// of two "token_type" members, and turn invalid UTF-8 into U+FFFD.) It is
// read by hand, in one pass, without decoding the values: they are what
// readPayload looks at, and a test holds its verdict to encoding/json's.
func readObject(data []byte) (map[string]json.RawMessage, bool) {
	if !utf8.Valid(data) {
		return nil, false
	}
	r := &jsonReader{data: data}
	if !r.next('{') {
		return nil, false
	}
	members := make(map[string]json.RawMessage, 9)
	for first := true; !r.next('}'); first = false {
		if !first && !r.next(',') {
			return nil, false
		}
		r.space()
		start := r.i
		if !r.skipString() {
			return nil, false
		}
		name := jsonString(data[start:r.i])
		if _, seen := members[name]; seen || !r.next(':') {
			return nil, false
		}
		r.space()
		start = r.i
		if !r.skipValue(0) {
			return nil, false
		}
		members[name] = data[start:r.i]
	}
	r.space()
	return members, r.i == len(data)
}

// jsonReader walks JSON text, checking its grammar (RFC 8259) as it goes.
type jsonReader struct {
	data []byte
	i    int
}

func (r *jsonReader) space() {
	for r.i < len(r.data) && (r.data[r.i] == ' ' || r.data[r.i] == '\t' || r.data[r.i] == '\n' || r.data[r.i] == '\r') {
		r.i++
	}
}

// next skips white space and then c, if c is what comes.
func (r *jsonReader) next(c byte) bool {
	r.space()
	if r.i < len(r.data) && r.data[r.i] == c {
		r.i++
		return true
	}
	return false
}

func (r *jsonReader) literal(s string) bool {
	if !bytes.HasPrefix(r.data[r.i:], []byte(s)) {
		return false
	}
	r.i += len(s)
	return true
}

func (r *jsonReader) skipString() bool {
	if r.i >= len(r.data) || r.data[r.i] != '"' {
		return false
	}
	for r.i++; r.i < len(r.data); r.i++ {
		switch c := r.data[r.i]; {
		case c == '"':
			r.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			r.i++
			if r.i >= len(r.data) {
				return false
			}
			switch r.data[r.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if r.i+4 >= len(r.data) {
					return false
				}
				for _, h := range r.data[r.i+1 : r.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				r.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func (r *jsonReader) digits() bool {
	start := r.i
	for r.i < len(r.data) && '0' <= r.data[r.i] && r.data[r.i] <= '9' {
		r.i++
	}
	return r.i > start
}

func (r *jsonReader) skipNumber() bool {
	if r.i < len(r.data) && r.data[r.i] == '-' {
		r.i++
	}
	if r.i < len(r.data) && r.data[r.i] == '0' {
		r.i++
	} else if !r.digits() {
		return false
	}
	if r.i < len(r.data) && r.data[r.i] == '.' {
		r.i++
		if !r.digits() {
			return false
		}
	}
	if r.i < len(r.data) && (r.data[r.i] == 'e' || r.data[r.i] == 'E') {
		r.i++
		if r.i < len(r.data) && (r.data[r.i] == '+' || r.data[r.i] == '-') {
			r.i++
		}
		if !r.digits() {
			return false
		}
	}
	return true
}

// skipValue skips one value; depth bounds how deep arrays and objects nest.
func (r *jsonReader) skipValue(depth int) bool {
	if r.i >= len(r.data) || depth > 32 {
		return false
	}
	switch c := r.data[r.i]; {
	case c == '"':
		return r.skipString()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return r.skipNumber()
	case c == '[' || c == '{':
		end := map[byte]byte{'[': ']', '{': '}'}[c]
		r.i++
		for first := true; !r.next(end); first = false {
			if !first && !r.next(',') {
				return false
			}
			r.space()
			if c == '{' {
				if !r.skipString() || !r.next(':') {
					return false
				}
				r.space()
			}
			if !r.skipValue(depth + 1) {
				return false
			}
		}
		return true
	}
	return false
}

// decodeSegment decodes one segment of canonical unpadded base64url. Go's decoder skips \r and \n, so those are refused
// first: a token has exactly one accepted spelling.
func decodeSegment(seg string) ([]byte, error) {
	if seg == "" || strings.ContainsAny(seg, "\r\n") {
		return nil, errTokenInvalid
	}
	b, err := b64.DecodeString(seg) // refuses every other byte outside the alphabet, "=" too
	if err != nil {
		return nil, errTokenInvalid
	}
	return b, nil
}

// readPayload checks the claims of a verified payload: readObject cuts the
// payload into its members; each claim is then read by hand, which keeps
// apart "missing" (nil), "wrong type" and "present".
func readPayload(payload []byte, want string, now time.Time) (claims, error) {
	members, ok := readObject(payload)
	if !ok {
		return claims{}, errTokenInvalid
	}
	raw := struct{ TokenType, Exp, Iat, Nbf, JTI, UserID, Username, Email, SessionID json.RawMessage }{
		members["token_type"], members["exp"], members["iat"], members["nbf"], members["jti"],
		members["user_id"], members["username"], members["email"], members["sid"],
	}

	var c claims
	unix := now.Unix()
	if raw.Exp != nil {
		exp, ok := jsonSeconds(raw.Exp)
		if !ok || exp <= unix {
			return claims{}, errTokenInvalid
		}
		c.Exp = exp
	}
	if raw.Iat != nil {
		iat, ok := jsonSeconds(raw.Iat)
		if !ok || iat > unix {
			return claims{}, errTokenInvalid
		}
		c.Iat = iat
	}
	if raw.Nbf != nil {
		nbf, ok := jsonSeconds(raw.Nbf)
		if !ok || nbf > unix {
			return claims{}, errTokenInvalid
		}
	}

	switch {
	case raw.Exp == nil:
		return claims{}, errTokenNoExp
	case raw.JTI == nil:
		return claims{}, errTokenNoID
	case raw.TokenType == nil:
		return claims{}, errTokenNoType
	}
	c.TokenType = jsonString(raw.TokenType) // a non-string gives "": wrong type
	if c.TokenType != accessToken && c.TokenType != refreshToken || want != "" && c.TokenType != want {
		return claims{}, errTokenWrongType
	}

	// The rest identify the user and the session. A token we signed always
	// has them; one signed with a leaked key might not.
	userID, err := strconv.ParseInt(string(raw.UserID), 10, 64)
	if err != nil {
		return claims{}, errTokenNoUser
	}
	c.UserID = userID
	c.JTI = jsonString(raw.JTI)
	c.Username = jsonString(raw.Username)
	c.Email = jsonString(raw.Email)
	c.SessionID = jsonString(raw.SessionID) // missing or not a string: "", which names no session
	return c, nil
}

// jsonString reads a JSON string; anything else (or nothing) is "". A string
// without escapes, as every one this server writes, needs no decoder.
func jsonString(raw json.RawMessage) string {
	if len(raw) < 2 || raw[0] != '"' {
		return ""
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	json.Unmarshal(raw, &s)
	return s
}

// jsonSeconds reads a NumericDate: a JSON number, truncated to whole seconds
// as PyJWT's int() does, between 0 and the end of the year 9999. Strings,
// booleans, null and numbers outside that range are refused: a time beyond
// it would overflow the microseconds the store keeps (an exp of 1e19 once
// became a blacklist row that had "expired" in 1969).
func jsonSeconds(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true // exact, where a float64 would round
	}
	return int64(math.Trunc(f)), true
}

// maxNumericDate is 9999-12-31T23:59:59Z in Unix seconds.
const maxNumericDate = 253402300799
