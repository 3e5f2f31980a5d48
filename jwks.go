package main

// jwks.go: the public keys of the EdDSA signing keys, as a JSON Web Key
// Set (RFC 7517, with RFC 8037's Ed25519 keys), which GET
// /.well-known/jwks.json answers: another service verifies this server's
// access tokens with it, holding no secret.
//
// A key is in the set while it verifies tokens: the current one, and a
// retired one until its window ends. A revoked key is not in the ring, so
// not in the set, from the moment the server reloads its keys. HS256 keys
// are never in it (an HMAC key signs as well as it verifies): with only
// those, the set is empty.
//
// It knows JWKs and the ring, not HTTP (handlers.go serves the set); it
// builds with jwt.go alone (bench/ links it).

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"time"
)

// jwk is the public key of an EdDSA key, as the set lists it.
type jwk struct {
	Kty string `json:"kty"` // "OKP": an octet key pair (RFC 8037)
	Crv string `json:"crv"` // "Ed25519"
	X   string `json:"x"`   // the public key, base64url
	Kid string `json:"kid"` // the kid of the tokens it verifies: its thumbprint
	Alg string `json:"alg"` // "EdDSA"
	Use string `json:"use"` // "sig"
}

// thumbprint is an Ed25519 public key's RFC 7638 thumbprint: the SHA-256 of
// its required members in lexical order with no whitespace, base64url. It
// is the kid of the tokens the key signs, so that a verifier can check
// that a key is the one it names.
func thumbprint(public ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(public) + `"}`))
	return b64.EncodeToString(sum[:])
}

// edDSAKey is the EdDSA key of a 32-byte seed (its private key), named by
// its thumbprint.
func edDSAKey(seed []byte) *tokenKey {
	private := ed25519.NewKeyFromSeed(seed)
	public := private.Public().(ed25519.PublicKey)
	return &tokenKey{id: thumbprint(public), alg: algEdDSA, private: private, public: public}
}

// keySet is the JSON of the ring's EdDSA keys that verify at now, ordered
// by kid: {"keys":[...]}.
func (ring *keyring) keySet(now time.Time) []byte {
	keys := []jwk{}
	for _, k := range ring.byID {
		if k.alg == algEdDSA && (k.until.IsZero() || now.Before(k.until)) {
			keys = append(keys, jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(k.public), Kid: k.id, Alg: algEdDSA, Use: "sig"})
		}
	}
	slices.SortFunc(keys, func(a, b jwk) int { return cmp.Compare(a.Kid, b.Kid) })
	body, _ := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{keys}) // strings only: it cannot fail
	return body
}
