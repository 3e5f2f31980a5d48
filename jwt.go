package main

// jwt.go: HS256 JSON Web Tokens, signed and verified by hand on crypto/hmac.
//
// It knows tokens, not HTTP or SQL. sign turns claims into a compact token;
// verify checks one strictly and returns its claims or a named error whose
// text is the message simplejwt gives for the same fault.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
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
	// Not the verifier's: the store finds a token rotated out or its session over.
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
	key  []byte
	macs sync.Pool // of hash.Hash: HMAC-SHA256 with key, ready to Reset and reuse
}

// randomID returns 128 random bits as 32 lowercase hex characters, like
// simplejwt's uuid4().hex: token ids (jti), session ids, stored file names.
func randomID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// tokenID returns a token id (jti) in randomID's form whose first 48 bits
// are the time in milliseconds, and the other 80 random, like a UUIDv7.
// The blacklist is keyed by jti: ids that grow with time are added at the
// end of its B-tree, so the tokens rotated together fill one page, where
// random ids would each touch a page of their own, to be written to the
// WAL again and copied back at the next checkpoint.
func tokenID(now time.Time) string {
	var b [16]byte
	ms := now.UnixMilli()
	for i := range 6 { // big-endian, so that the hex sorts as the time does
		b[i] = byte(ms >> (40 - 8*i))
	}
	rand.Read(b[6:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
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
// the same payload always gives the same token. So the store keeps a rotated
// token's replacement as its payload alone and the token is rebuilt from it
// during the grace period; a copy of the database without the key holds no
// usable token.
func (s *tokenSigner) signPayload(payloadSegment string) string {
	signingInput := jwtHeader + "." + payloadSegment
	var sum [sha256.Size]byte
	return signingInput + "." + b64.EncodeToString(s.mac(sum[:0], signingInput))
}

// mac is HMAC-SHA256 of signingInput, appended to dst. Setting up an HMAC
// (hashing the key into its pads) costs as much as using it, so set-up ones
// are kept in a pool.
func (s *tokenSigner) mac(dst []byte, signingInput string) []byte {
	m, _ := s.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, s.key)
	}
	m.Reset()
	io.WriteString(m, signingInput)
	dst = m.Sum(dst)
	s.macs.Put(m)
	return dst
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
	// Almost every token is one this server wrote: read that layout
	// directly. Anything else takes the general path, which gives each
	// missing or mistyped claim simplejwt's own message.
	if c, ok := readOwnPayload(payload); ok {
		return c, checkTimesAndType(c, want, now)
	}
	return readAnyPayload(payload, want, now)
}

// checkTimesAndType checks a token that has every claim: not expired, not
// issued in the future, and of the wanted type.
func checkTimesAndType(c claims, want string, now time.Time) error {
	switch {
	case c.Exp <= now.Unix() || c.Iat > now.Unix():
		return errTokenInvalid
	case c.TokenType != accessToken && c.TokenType != refreshToken || want != "" && c.TokenType != want:
		return errTokenWrongType
	}
	return nil
}

// readOwnPayload reads a payload in exactly the layout sign writes: the
// claims in their order, strings without escapes or control characters,
// whole numbers. For anything else it reports false.
func readOwnPayload(p []byte) (claims, bool) {
	var c claims
	r := layoutReader{p}
	ok := r.literal(`{"token_type":`) && r.str(&c.TokenType) &&
		r.literal(`,"exp":`) && r.integer(&c.Exp) &&
		r.literal(`,"iat":`) && r.integer(&c.Iat) &&
		r.literal(`,"jti":`) && r.str(&c.JTI) &&
		r.literal(`,"user_id":`) && r.integer(&c.UserID) &&
		r.literal(`,"username":`) && r.str(&c.Username) &&
		r.literal(`,"email":`) && r.str(&c.Email) &&
		r.literal(`,"sid":`) && r.str(&c.SessionID) &&
		r.literal(`}`) && len(r.rest) == 0
	return c, ok
}

// layoutReader consumes a byte slice piece by piece.
type layoutReader struct{ rest []byte }

func (r *layoutReader) literal(s string) bool {
	if len(r.rest) < len(s) || string(r.rest[:len(s)]) != s {
		return false
	}
	r.rest = r.rest[len(s):]
	return true
}

func (r *layoutReader) str(dst *string) bool {
	if len(r.rest) == 0 || r.rest[0] != '"' {
		return false
	}
	end := bytes.IndexByte(r.rest[1:], '"') + 1
	if end == 0 {
		return false
	}
	s := r.rest[1:end]
	for _, b := range s {
		if b < 0x20 || b == '\\' {
			return false
		}
	}
	if !utf8.Valid(s) {
		return false
	}
	*dst = string(s)
	r.rest = r.rest[end+1:]
	return true
}

// integer reads a JSON integer: an optional minus, then 0 or a digit 1-9
// and more digits.
func (r *layoutReader) integer(dst *int64) bool {
	n := 0
	if n < len(r.rest) && r.rest[n] == '-' {
		n++
	}
	start := n
	for n < len(r.rest) && '0' <= r.rest[n] && r.rest[n] <= '9' {
		n++
	}
	if n == start || r.rest[start] == '0' && n-start > 1 {
		return false
	}
	v, err := strconv.ParseInt(string(r.rest[:n]), 10, 64)
	if err != nil {
		return false
	}
	*dst, r.rest = v, r.rest[n:]
	return true
}

// readAnyPayload is the general path: one pass of encoding/json checks that
// the payload is a JSON object and cuts out the claims; each is then read by
// hand, which keeps apart "missing" (nil), "wrong type" and "present".
func readAnyPayload(payload []byte, want string, now time.Time) (claims, error) {
	if !utf8.Valid(payload) {
		return claims{}, errTokenInvalid
	}
	var raw struct {
		TokenType json.RawMessage `json:"token_type"`
		Exp       json.RawMessage `json:"exp"`
		Iat       json.RawMessage `json:"iat"`
		Nbf       json.RawMessage `json:"nbf"`
		JTI       json.RawMessage `json:"jti"`
		UserID    json.RawMessage `json:"user_id"`
		Username  json.RawMessage `json:"username"`
		Email     json.RawMessage `json:"email"`
		SessionID json.RawMessage `json:"sid"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return claims{}, errTokenInvalid // not a JSON object
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
// as PyJWT's int() does. Strings, booleans and null are refused. (raw is a
// valid JSON value: a number starts with '-' or a digit.)
func jsonSeconds(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(string(raw), 64) // a fraction or an exponent
	if err != nil {
		return 0, false // beyond float64
	}
	f = math.Trunc(f)
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(f), true
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
	// Our own header, byte for byte, needs no decoding; any other is read.
	if headerSeg != jwtHeader {
		if err := checkHeader(headerSeg); err != nil {
			return nil, err
		}
	}
	var sigBuf, wantBuf [sha256.Size]byte
	sig, err := decodeSegment(sigBuf[:0], sigSeg)
	if err != nil {
		return nil, err
	}
	signingInput := token[:len(headerSeg)+1+len(payloadSeg)]
	if !hmac.Equal(sig, s.mac(wantBuf[:0], signingInput)) {
		return nil, errTokenInvalid
	}
	return decodeSegment(nil, payloadSeg)
}

// checkHeader reads a header segment: JSON whose alg is exactly "HS256" and
// that has no "crit". The header is trusted for nothing but this check: the
// algorithm is fixed by the server, never chosen by the token.
func checkHeader(seg string) error {
	header, err := decodeSegment(nil, seg)
	if err != nil {
		return err
	}
	var h struct {
		Alg  *string         `json:"alg"`
		Crit json.RawMessage `json:"crit"`
	}
	if json.Unmarshal(header, &h) != nil || h.Alg == nil || *h.Alg != "HS256" || h.Crit != nil {
		return errTokenInvalid
	}
	return nil
}

// decodeSegment decodes one segment of canonical unpadded base64url,
// appending to dst. Go's decoder skips \r and \n, so those are refused
// first: a token has exactly one accepted spelling.
func decodeSegment(dst []byte, seg string) ([]byte, error) {
	if seg == "" || strings.ContainsAny(seg, "\r\n") {
		return nil, errTokenInvalid
	}
	b, err := b64.AppendDecode(dst, []byte(seg)) // refuses every other byte outside the alphabet, "=" too
	if err != nil {
		return nil, errTokenInvalid
	}
	return b, nil
}
