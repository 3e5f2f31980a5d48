package main

// jwt.go: HS256 JSON Web Tokens, signed and verified by hand on crypto/hmac.
//
// Read it in this order: sign turns claims into a compact token
// (header.payload.signature); verify checks a token strictly and returns its
// claims, or a named error whose text is the message simplejwt gives for the
// same fault; then the checks verify makes, from the envelope to each claim.
//
// It knows tokens and their keys (a key ring: the current key signs, each
// key verifies the tokens that name it by kid), not HTTP, SQL, where tokens
// are kept or where the keys come from (keys.go). Their JSON is read
// strictly by readObject (strictjson.go).

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
	"sync/atomic"
	"time"
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

// b64 is unpadded base64url. Strict rejects encodings whose unused trailing
// bits are not zero, so each byte string has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// tokenKey is one HMAC key of the ring.
type tokenKey struct {
	id     string    // the kid of the tokens it signs
	secret []byte    // at least 32 bytes
	header string    // the encoded header it signs with: {"alg":"HS256","kid":"…","typ":"JWT"}
	until  time.Time // it verifies until then; zero: for as long as it is in the ring
	legacy bool      // it also verifies tokens without a kid, signed before tokens had one
}

// keyring is the keys at one moment: current signs, every key verifies the
// tokens that name it. A revoked key is simply not in it.
type keyring struct {
	current *tokenKey
	byID    map[string]*tokenKey
	legacy  *tokenKey // the key that verifies tokens without a kid, or nil
}

// newKeyring makes a ring of keys, the current one first.
func newKeyring(current *tokenKey, others ...*tokenKey) *keyring {
	ring := &keyring{current: current, byID: map[string]*tokenKey{}}
	for _, k := range append([]*tokenKey{current}, others...) {
		k.header = b64.EncodeToString([]byte(`{"alg":"HS256","kid":"` + k.id + `","typ":"JWT"}`))
		ring.byID[k.id] = k
		if k.legacy {
			ring.legacy = k
		}
	}
	return ring
}

// key is the key that verifies a token naming kid (hasKid false: naming
// none) at now, or nil.
func (ring *keyring) key(kid string, hasKid bool, now time.Time) *tokenKey {
	k := ring.legacy
	if hasKid {
		k = ring.byID[kid]
	}
	if k == nil || !k.until.IsZero() && !now.Before(k.until) {
		return nil
	}
	return k
}

// tokenSigner signs with the current key of its ring and verifies with any
// key of it. It is the only thing that knows the keys. The ring is replaced
// whole (keys.go reloads it), so a request sees one ring throughout.
type tokenSigner struct {
	ring atomic.Pointer[keyring]
	// unknownKid is called when a token names a kid the ring lacks (a key
	// made by another process since the ring was loaded); nil: nothing to
	// reload. It rate-limits itself.
	unknownKid func()
	// verified is the access tokens verified before (tokencache.go), for
	// verifyAccess; nil keeps none.
	verified *verifiedTokens
}

func newTokenSigner(ring *keyring) *tokenSigner {
	s := &tokenSigner{verified: newVerifiedTokens()}
	s.ring.Store(ring)
	return s
}

// sign returns the compact serialisation header.payload.signature, signed
// by the current key.
func (s *tokenSigner) sign(c claims) string {
	return s.signInput(s.unsigned(c))
}

// unsigned is the signing input of a token with claims c: header.payload,
// the header naming the current key. It is no usable token; signInput makes
// one of it.
func (s *tokenSigner) unsigned(c claims) string {
	return s.ring.Load().current.header + "." + encodeClaims(c)
}

// encodeClaims returns the payload segment of a token with claims c.
func encodeClaims(c claims) string {
	payload, _ := json.Marshal(c) // a struct of strings and ints cannot fail
	return b64.EncodeToString(payload)
}

// signInput signs a signing input made by unsigned, with the key its header
// names. Signing is deterministic: the same input always gives the same
// token, so a rotated token's replacement can be kept unsigned and the very
// same token rebuilt from it later; whoever holds only the inputs holds no
// usable token. An input whose key has left the ring since (or a bare
// payload segment, as kept before tokens had a kid) is signed by the
// current key instead: a valid token with the same claims.
func (s *tokenSigner) signInput(input string) string {
	ring := s.ring.Load()
	k := ring.current
	header, payload, found := strings.Cut(input, ".")
	if !found {
		payload = header
	} else if named := ring.byHeader(header); named != nil {
		k = named
	}
	input = k.header + "." + payload
	return input + "." + b64.EncodeToString(mac(k.secret, input))
}

// byHeader is the key whose header is h, or nil.
func (ring *keyring) byHeader(h string) *tokenKey {
	for _, k := range ring.byID {
		if k.header == h {
			return k
		}
	}
	return nil
}

// mac is HMAC-SHA256 of signingInput with secret.
func mac(secret []byte, signingInput string) []byte {
	m := hmac.New(sha256.New, secret)
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
	c, _, err := s.verifyWith(token, want, now)
	return c, err
}

// verifyWith is verify, and also returns the key that verified the token.
func (s *tokenSigner) verifyWith(token, want string, now time.Time) (claims, *tokenKey, error) {
	payload, k, err := s.verifySigned(token, now)
	if err != nil {
		return claims{}, nil, err
	}
	c, err := readPayload(payload, want, now)
	if err != nil {
		return claims{}, nil, err
	}
	return c, k, nil
}

// verifySigned checks the envelope of a token and returns its decoded payload
// and the key that verified it. The envelope must be exactly three segments
// of canonical unpadded base64url, a JSON header whose alg is exactly
// "HS256", that has no "crit" and whose kid names a key of the ring that
// verifies at now, and a signature by that key that matches, compared in
// constant time. The signature is computed over the segments as received,
// never over re-encoded JSON.
func (s *tokenSigner) verifySigned(token string, now time.Time) ([]byte, *tokenKey, error) {
	headerSeg, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, nil, errTokenInvalid
	}
	payloadSeg, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigSeg, ".") {
		return nil, nil, errTokenInvalid
	}
	kid, hasKid, err := checkHeader(headerSeg)
	if err != nil {
		return nil, nil, err
	}
	k := s.ring.Load().key(kid, hasKid, now)
	if k == nil && hasKid && s.unknownKid != nil && s.ring.Load().byID[kid] == nil {
		s.unknownKid() // perhaps a key made since the ring was loaded
		k = s.ring.Load().key(kid, hasKid, now)
	}
	if k == nil {
		return nil, nil, errTokenInvalid
	}
	sig, err := decodeSegment(sigSeg)
	if err != nil {
		return nil, nil, err
	}
	signingInput := token[:len(headerSeg)+1+len(payloadSeg)]
	if !hmac.Equal(sig, mac(k.secret, signingInput)) {
		return nil, nil, errTokenInvalid
	}
	payload, err := decodeSegment(payloadSeg)
	if err != nil {
		return nil, nil, err
	}
	return payload, k, nil
}

// checkHeader reads a header segment: JSON whose alg is exactly "HS256",
// that has no "crit", and whose kid, if it has one, is a short printable
// string. It returns the kid. The header is trusted for nothing else: the
// algorithm is fixed by the server, never chosen by the token, and the kid
// is only looked up, exactly.
func checkHeader(seg string) (kid string, hasKid bool, err error) {
	header, err := decodeSegment(seg)
	if err != nil {
		return "", false, err
	}
	h, ok := readObject(header)
	if _, crit := h["crit"]; !ok || crit || string(h["alg"]) != `"HS256"` {
		return "", false, errTokenInvalid
	}
	raw, hasKid := h["kid"]
	if hasKid && !validKid(raw) {
		return "", false, errTokenInvalid
	}
	if hasKid {
		kid = string(raw[1 : len(raw)-1])
	}
	return kid, hasKid, nil
}

// maxKidLen bounds a kid: this server's are 16 characters.
const maxKidLen = 64

// validKid reports whether raw (JSON) is a string of 1 to maxKidLen
// printable ASCII characters without escapes: nothing to decode, so it is
// compared byte for byte.
func validKid(raw json.RawMessage) bool {
	if len(raw) < 3 || len(raw) > maxKidLen+2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// decodeSegment decodes one segment of canonical unpadded base64url. Go's
// decoder skips \r and \n, so those are refused first: a token has exactly
// one accepted spelling.
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
