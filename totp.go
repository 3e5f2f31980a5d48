package main

// totp.go: the second factor's arithmetic. One-time codes as RFC 6238
// (TOTP) computes them over RFC 4226 (HOTP), by hand on crypto/hmac as
// jwt.go's HS256 is; the otpauth:// URI an authenticator app reads; and
// recovery codes.
//
// A code is HMAC-SHA1 of the number of 30-second steps since 1970 under a
// 20-byte secret the server and the app share, cut to 6 digits. The
// server accepts the step before and after its own (clocks drift), and
// remembers the newest step a code was accepted for, so that a code works
// once (mfa.go). A recovery code is 80 random bits for when the phone is
// lost; the server keeps only its SHA-256, and it works once.
//
// It knows codes, secrets and URIs, not HTTP or SQL; where a secret is
// kept is factors.go's, sealed (sealing.go).

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"net/url"
	"strings"
	"time"
)

// The parameters of RFC 6238 that every authenticator app assumes.
const (
	totpDigits     = 6
	totpStep       = 30 * time.Second
	totpSkew       = 1  // steps accepted either side of the server's own
	totpSecretSize = 20 // bytes: the size of SHA-1's output, as RFC 4226 recommends
	totpIssuer     = "jwtnotes"
)

// base32NoPad is how secrets are written for people and apps: RFC 4648
// base32 without padding, as the otpauth format has it.
var base32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// newTOTPSecret is a new shared secret: 20 random bytes.
func newTOTPSecret() []byte {
	secret := make([]byte, totpSecretSize)
	rand.Read(secret)
	return secret
}

// hotp is RFC 4226's HOTP value of counter under secret, as a string of
// digits digits (leading zeros kept): HMAC-SHA1, then the "dynamic
// truncation" of section 5.3, then the last digits of the number.
func hotp(secret []byte, counter uint64, digits int) string {
	m := hmac.New(sha1.New, secret)
	binary.Write(m, binary.BigEndian, counter)
	sum := m.Sum(nil)
	offset := sum[len(sum)-1] & 0x0f
	value := binary.BigEndian.Uint32(sum[offset:]) & 0x7fffffff
	code := make([]byte, digits)
	for i := digits - 1; i >= 0; i-- {
		code[i] = byte('0' + value%10)
		value /= 10
	}
	return string(code)
}

// totpStepAt is the time step t falls in: RFC 6238's T = floor(unix / 30).
func totpStepAt(t time.Time) int64 {
	return t.Unix() / int64(totpStep/time.Second)
}

// totpMatch checks code against the steps around now's and returns the
// step it matches. Only steps after last (the newest step a code was
// accepted for) count: a code is used once, and an older one never after a
// newer. Every step of the window is computed and compared in constant
// time, so the time taken says nothing of which step, if any, matched.
func totpMatch(secret []byte, code string, now time.Time, last int64) (step int64, ok bool) {
	if len(code) != totpDigits {
		return 0, false
	}
	current := totpStepAt(now)
	for s := current - totpSkew; s <= current+totpSkew; s++ {
		candidate := hotp(secret, uint64(s), totpDigits)
		if subtle.ConstantTimeCompare([]byte(candidate), []byte(code)) == 1 && s > last && !ok {
			step, ok = s, true
		}
	}
	return step, ok
}

// otpauthURI is the key URI an authenticator app reads (from the QR code,
// or typed in): Google Authenticator's format, which every app follows.
// The label says whose account it is, on which site.
func otpauthURI(username string, secret []byte) string {
	label := url.PathEscape(totpIssuer) + ":" + url.PathEscape(username)
	query := url.Values{
		"secret": {base32NoPad.EncodeToString(secret)}, "issuer": {totpIssuer},
		"algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"},
	}
	return "otpauth://totp/" + label + "?" + query.Encode()
}

// ---- recovery codes ----

const (
	recoveryCodeCount = 10
	recoveryCodeLen   = 16 // characters of recoveryAlphabet: 80 bits
	maxCodeLen        = 64 // what a code field may hold before any work is done on it
)

// recoveryAlphabet is 32 characters without the look-alikes i, l, o and u,
// so that a code copied by hand comes back right; each character is 5
// bits.
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newRecoveryCodes is a new set of recovery codes, written as people read
// them: xxxx-xxxx-xxxx-xxxx.
func newRecoveryCodes() []string {
	codes := make([]string, recoveryCodeCount)
	for i := range codes {
		random := make([]byte, recoveryCodeLen)
		rand.Read(random)
		var b strings.Builder
		for j, r := range random {
			if j > 0 && j%4 == 0 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[r&31]) // 256 is a multiple of 32: every character equally likely
		}
		codes[i] = b.String()
	}
	return codes
}

// recoveryCodeHash is what the store keeps of a recovery code: the SHA-256
// of its characters, lower-cased, without the dashes and spaces a person
// may type. 80 random bits need no slow hash: nobody can try 2^80 of
// them, and a fast one costs a login nothing. ok is false for text that
// cannot be a recovery code.
func recoveryCodeHash(code string) (hash []byte, ok bool) {
	code = strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	if len(code) != recoveryCodeLen || strings.Trim(code, recoveryAlphabet) != "" {
		return nil, false
	}
	sum := sha256.Sum256([]byte(code))
	return sum[:], true
}

// isTOTPCode reports whether code has the shape of a TOTP code: six digits.
// Anything else is taken as a recovery code.
func isTOTPCode(code string) bool {
	return len(code) == totpDigits && strings.Trim(code, "0123456789") == ""
}
