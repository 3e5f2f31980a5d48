package main

// jwt.go: JSON Web Tokens, signed and verified by hand: HS256 on
// crypto/hmac (the default), and EdDSA on crypto/ed25519, whose public
// keys other services can verify tokens with (jwks.go publishes them).
//
// Read it in this order: the claims and the ring of keys; sign, which turns
// claims into a compact token (header.payload.signature); verify, which
// checks a token strictly and returns its claims or a named error whose
// text is simplejwt's message for the same fault; then the checks verify
// makes, from the envelope to each claim. The algorithm is always the
// key's: a token's header names one, and a key of another is refused.
//
// It knows tokens and a ring of keys (the current key signs; each key
// verifies the tokens that name it by kid), not HTTP, SQL, where the keys
// come from (keys.go) or what is remembered of tokens verified before
// (tokencache.go). Their JSON is read strictly by readObject
// (strictjson.go); the two files build alone (bench/ links just them).

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
	// AMR is RFC 8176's authentication methods of the session's login:
	// ["pwd","otp"] or ["pwd","kba"] after a second factor (mfa.go); none
	// for a password alone, so that those tokens stay simplejwt's.
	AMR methods `json:"amr,omitempty"`
}

// methods is a list of RFC 8176 method names, kept as one string, space
// between names (so that claims stay comparable), written as a JSON list.
type methods string

func (m methods) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Fields(string(m))) }

// b64 is unpadded base64url. Strict rejects encodings whose unused trailing
// bits are not zero, so each byte string has exactly one accepted spelling.
var b64 = base64.RawURLEncoding.Strict()

// The two algorithms, as a header names them.
const (
	algHS256 = "HS256" // HMAC-SHA256: one secret signs and verifies
	algEdDSA = "EdDSA" // Ed25519: the private key signs, the public one verifies
)

// tokenKey is one key of the ring.
type tokenKey struct {
	id      string             // the kid of the tokens it signs
	alg     string             // algHS256 or algEdDSA
	secret  []byte             // HS256: at least 32 bytes
	private ed25519.PrivateKey // EdDSA
	public  ed25519.PublicKey  // EdDSA
	header  string             // the encoded header it signs with: {"alg":"…","kid":"…","typ":"JWT"}
	until   time.Time          // it verifies until then; zero: for as long as it is in the ring
	legacy  bool               // HS256: it also verifies tokens without a kid, signed before tokens had one
}

// signature is the key's signature of a token's signing input.
func (k *tokenKey) signature(input string) []byte {
	if k.alg == algEdDSA {
		return ed25519.Sign(k.private, []byte(input))
	}
	return mac(k.secret, input)
}

// verifies reports whether sig is the key's signature of input: an HMAC
// compared in constant time, or an Ed25519 signature checked against the
// public key.
func (k *tokenKey) verifies(input string, sig []byte) bool {
	if k.alg == algEdDSA {
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.public, []byte(input), sig)
	}
	return hmac.Equal(sig, mac(k.secret, input))
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
		if k.alg == "" {
			k.alg = algHS256
		}
		k.header = b64.EncodeToString([]byte(`{"alg":"` + k.alg + `","kid":"` + k.id + `","typ":"JWT"}`))
		ring.byID[k.id] = k
		if k.legacy {
			ring.legacy = k
		}
	}
	return ring
}

// tokenSigner signs with the current key of its ring and verifies with any
// key of it. The ring is replaced whole (keys.go reloads it), so a token is
// signed or verified under one ring throughout.
type tokenSigner struct {
	ring atomic.Pointer[keyring]
}

func newTokenSigner(ring *keyring) *tokenSigner {
	s := &tokenSigner{}
	s.ring.Store(ring)
	return s
}

// currentKid names the key that signs new tokens.
func (s *tokenSigner) currentKid() string { return s.ring.Load().current.id }

// sign returns the compact serialisation header.payload.signature of c,
// signed by the current key.
func (s *tokenSigner) sign(c claims) string { return s.signWith("", c) }

// signWith signs c with the key kid names, or with the current key if kid
// is "" or its key has left the ring since (revoked: a valid token with the
// same claims). Signing is deterministic: the same claims and key always
// give the same token.
func (s *tokenSigner) signWith(kid string, c claims) string {
	ring := s.ring.Load()
	k := ring.byID[kid]
	if k == nil {
		k = ring.current
	}
	payload, _ := json.Marshal(c) // a struct of strings and ints cannot fail
	input := k.header + "." + b64.EncodeToString(payload)
	return input + "." + b64.EncodeToString(k.signature(input))
}

// mac is HMAC-SHA256 of signingInput with secret.
func mac(secret []byte, signingInput string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signingInput))
	return m.Sum(nil)
}

// verify checks token and returns its claims. want is the token type the
// caller expects ("access" or "refresh"); "" accepts either of the two.
// now is the verifier's clock, passed in so that expiry is testable.
func (s *tokenSigner) verify(token, want string, now time.Time) (claims, error) {
	c, _, err := s.verifyKey(token, want, now)
	return c, err
}

// verifyKey is verify, and also returns the key that verified the token.
//
// The checks run in the order PyJWT and simplejwt run them, so that each
// fault gets the same message as in the original:
//  1. the signed envelope (verifySigned): anything wrong is errTokenInvalid;
//  2. the time claims exp, iat and nbf: a wrong type, a past exp or a
//     future iat or nbf is errTokenInvalid;
//  3. the claims simplejwt requires: exp, jti, token_type, then the type.
func (s *tokenSigner) verifyKey(token, want string, now time.Time) (claims, *tokenKey, error) {
	payload, k, err := s.verifySigned(token, now)
	if err != nil {
		return claims{}, nil, err
	}
	c, err := readPayload(payload, want, now)
	return c, k, err
}

// verifySigned checks the envelope of a token and returns its decoded payload
// and the key that verified it. The envelope must be exactly three segments
// of canonical unpadded base64url, a header that checkHeader accepts whose
// kid names a key of the ring that verifies at now and whose alg is that
// key's, and a signature by that key (an HMAC compared in constant time, or
// an Ed25519 signature). The signature is checked over the segments as
// received, never over re-encoded JSON.
func (s *tokenSigner) verifySigned(token string, now time.Time) ([]byte, *tokenKey, error) {
	headerSeg, rest, _ := strings.Cut(token, ".")
	payloadSeg, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sigSeg, ".") {
		return nil, nil, errTokenInvalid
	}
	alg, kid, hasKid, err := checkHeader(headerSeg)
	if err != nil {
		return nil, nil, err
	}
	// The key decides the algorithm: an HS256 token "signed" with an EdDSA
	// key's public key as its secret names that kid, and is refused here.
	k := s.ring.Load().key(kid, hasKid, now)
	if k == nil || k.alg != alg {
		return nil, nil, errTokenInvalid
	}
	sig, err := decodeSegment(sigSeg)
	if err != nil || !k.verifies(token[:len(headerSeg)+1+len(payloadSeg)], sig) {
		return nil, nil, errTokenInvalid
	}
	payload, err := decodeSegment(payloadSeg)
	return payload, k, err
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

// checkHeader reads a header segment: JSON whose alg is exactly "HS256"
// or "EdDSA", that has no "crit", and whose kid, if it has one, is a short
// printable string. It returns the alg and the kid. The header is trusted
// for nothing else: the kid is only looked up, exactly, and the alg must
// then be the key's (verifySigned): never the token's choice.
func checkHeader(seg string) (alg, kid string, hasKid bool, err error) {
	header, err := decodeSegment(seg)
	if err != nil {
		return "", "", false, err
	}
	h, ok := readObject(header)
	switch string(h["alg"]) {
	case `"HS256"`:
		alg = algHS256
	case `"EdDSA"`:
		alg = algEdDSA
	}
	if _, crit := h["crit"]; !ok || crit || alg == "" {
		return "", "", false, errTokenInvalid
	}
	raw, hasKid := h["kid"]
	if hasKid && !validKid(raw) {
		return "", "", false, errTokenInvalid
	}
	if hasKid {
		kid = string(raw[1 : len(raw)-1])
	}
	return alg, kid, hasKid, nil
}

// maxKidLen bounds a kid: this server's are 16 characters (HS256) or 43
// (EdDSA, the key's RFC 7638 thumbprint).
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

// readPayload checks the claims of a verified payload. Each claim is read
// by hand from readObject's members, which keeps apart "missing" (nil),
// "wrong type" and "present".
func readPayload(payload []byte, want string, now time.Time) (claims, error) {
	m, ok := readObject(payload)
	if !ok {
		return claims{}, errTokenInvalid
	}
	unix := now.Unix()
	exp, expOK := jsonSeconds(m["exp"])
	iat, iatOK := jsonSeconds(m["iat"])
	nbf, nbfOK := jsonSeconds(m["nbf"])
	if m["exp"] != nil && (!expOK || exp <= unix) || m["iat"] != nil && (!iatOK || iat > unix) ||
		m["nbf"] != nil && (!nbfOK || nbf > unix) {
		return claims{}, errTokenInvalid
	}
	switch {
	case m["exp"] == nil:
		return claims{}, errTokenNoExp
	case m["jti"] == nil:
		return claims{}, errTokenNoID
	case m["token_type"] == nil:
		return claims{}, errTokenNoType
	}
	tokenType := jsonString(m["token_type"]) // a non-string gives "": wrong type
	if tokenType != accessToken && tokenType != refreshToken || want != "" && tokenType != want {
		return claims{}, errTokenWrongType
	}
	// The rest identify the user and the session. A token we signed always
	// has them; one signed with a leaked key might not. A missing sid, or
	// one that is not a string, is "", which names no session.
	userID, err := strconv.ParseInt(string(m["user_id"]), 10, 64)
	if err != nil {
		return claims{}, errTokenNoUser
	}
	c := claims{TokenType: tokenType, Exp: exp, Iat: iat, JTI: jsonString(m["jti"]), UserID: userID,
		Username: jsonString(m["username"]), Email: jsonString(m["email"]), SessionID: jsonString(m["sid"])}
	var amr []string
	if raw := m["amr"]; raw != nil && json.Unmarshal(raw, &amr) == nil { // else none: only our own tokens carry it
		c.AMR = methods(strings.Join(amr, " "))
	}
	return c, nil
}

// jsonString reads a JSON string; anything else (or nothing) is "". A
// string without escapes, as every one this server writes, needs no
// decoder.
func jsonString(raw json.RawMessage) string {
	var s string
	switch {
	case len(raw) < 2 || raw[0] != '"':
	case bytes.IndexByte(raw, '\\') < 0:
		s = string(raw[1 : len(raw)-1])
	default:
		json.Unmarshal(raw, &s)
	}
	return s
}

// jsonSeconds reads a NumericDate: a JSON number, truncated to whole seconds
// as PyJWT's int() does, between 0 and the end of the year 9999. Strings,
// booleans, null and numbers outside that range are refused: a time beyond
// it would overflow the microseconds the store keeps.
func jsonSeconds(raw json.RawMessage) (int64, bool) {
	f, err := strconv.ParseFloat(string(raw), 64) // of a JSON value, only a number parses
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
