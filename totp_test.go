package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHOTPVectors: RFC 4226 Appendix D, the ten values of its secret.
func TestHOTPVectors(t *testing.T) {
	t.Parallel()
	secret := []byte("12345678901234567890")
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, code := range want {
		if got := hotp(secret, uint64(counter), 6); got != code {
			t.Errorf("HOTP(%d) = %s, want %s", counter, got, code)
		}
	}
}

// TestTOTPVectors: RFC 6238 Appendix B, its SHA-1 rows (8 digits there;
// the last six are what 6 digits give).
func TestTOTPVectors(t *testing.T) {
	t.Parallel()
	secret := []byte("12345678901234567890")
	for unix, code := range map[int64]string{
		59: "94287082", 1111111109: "07081804", 1111111111: "14050471",
		1234567890: "89005924", 2000000000: "69279037", 20000000000: "65353130",
	} {
		step := totpStepAt(time.Unix(unix, 0))
		if got := hotp(secret, uint64(step), 8); got != code {
			t.Errorf("TOTP at %d = %s, want %s", unix, got, code)
		}
		if got := hotp(secret, uint64(step), 6); got != code[2:] {
			t.Errorf("6-digit TOTP at %d = %s, want %s", unix, got, code[2:])
		}
	}
}

// TestTOTPWindowAndReplay: a code of the step before, now or after is
// taken, one two steps away is not, and no code is taken for a step at or
// before the last one accepted.
func TestTOTPWindowAndReplay(t *testing.T) {
	t.Parallel()
	secret := newTOTPSecret()
	now := time.Unix(1_800_000_015, 0)
	step := totpStepAt(now)
	for offset, ok := range map[int64]bool{-2: false, -1: true, 0: true, 1: true, 2: false} {
		code := hotp(secret, uint64(step+offset), totpDigits)
		got, matched := totpMatch(secret, code, now, 0)
		if matched != ok || ok && got != step+offset {
			t.Errorf("a code %d steps away: step %d, %v; want %v", offset, got, matched, ok)
		}
	}
	code := hotp(secret, uint64(step), totpDigits)
	if _, ok := totpMatch(secret, code, now, step); ok {
		t.Error("the code of a step already used was taken again")
	}
	if _, ok := totpMatch(secret, hotp(secret, uint64(step-1), totpDigits), now, step); ok {
		t.Error("an older code was taken after a newer one")
	}
	if _, ok := totpMatch(secret, code+"0", now, 0); ok {
		t.Error("seven digits were taken")
	}
}

// TestOathtoolCodesAreTaken: Debian's oathtool, a real authenticator,
// given the secret as the otpauth URI writes it, makes codes this server
// takes, at several moments.
func TestOathtoolCodesAreTaken(t *testing.T) {
	t.Parallel()
	oathtool := outsideTool(t, "oathtool", "oathtool")
	secret := newTOTPSecret()
	uri, err := url.Parse(otpauthURI("alice", secret))
	if err != nil {
		t.Fatal(err)
	}
	written := uri.Query().Get("secret")
	for _, at := range []time.Time{time.Unix(1_800_000_000, 0), time.Unix(1_900_000_029, 0), time.Now()} {
		out, err := exec.Command(oathtool, "--totp", "-b", "--now", at.UTC().Format("2006-01-02 15:04:05 UTC"), written).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		code := strings.TrimSpace(string(out))
		if step, ok := totpMatch(secret, code, at, 0); !ok || step != totpStepAt(at) {
			t.Errorf("oathtool's code %s at %v was not taken", code, at)
		}
	}
}

func TestOtpauthURI(t *testing.T) {
	t.Parallel()
	secret := []byte("12345678901234567890")
	got := otpauthURI("ana maría", secret)
	want := "otpauth://totp/jwtnotes:ana%20mar%C3%ADa?algorithm=SHA1&digits=6&issuer=jwtnotes&period=30&secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	if got != want {
		t.Errorf("otpauthURI:\n got %s\nwant %s", got, want)
	}
}

func TestRecoveryCodes(t *testing.T) {
	t.Parallel()
	codes := newRecoveryCodes()
	seen := map[string]bool{}
	for _, code := range codes {
		if len(code) != 19 || strings.Count(code, "-") != 3 || seen[code] {
			t.Fatalf("recovery code %q", code)
		}
		seen[code] = true
		hash, ok := recoveryCodeHash(code)
		typed, typedOK := recoveryCodeHash(" " + strings.ToUpper(strings.ReplaceAll(code, "-", " ")) + " ")
		if !ok || !typedOK || !bytes.Equal(hash, typed) {
			t.Errorf("%q typed in capitals with spaces is not the same code", code)
		}
	}
	if len(codes) != recoveryCodeCount {
		t.Errorf("%d codes", len(codes))
	}
	for _, bad := range []string{"", "123456", "abcd-efgh-ijkm-npqr", strings.Repeat("a", 17)} {
		if _, ok := recoveryCodeHash(bad); ok {
			t.Errorf("%q was read as a recovery code", bad)
		}
	}
}

// TestQRCodeIsRead: Debian's zbarimg, a real decoder, reads back what
// qrcode.go drew, from short texts to the longest an otpauth URI can be
// here, across the versions with one, several and many blocks and with
// version information (7 and up).
func TestQRCodeIsRead(t *testing.T) {
	t.Parallel()
	zbarimg := outsideTool(t, "zbarimg", "zbar-tools")
	texts := []string{"a", otpauthURI("alice", newTOTPSecret()),
		otpauthURI(strings.Repeat("é", maxUsernameLen), newTOTPSecret())}
	for _, n := range []int{20, 100, 150, 300, 600, 1000} {
		texts = append(texts, strings.Repeat("0123456789abcdef", n)[:n])
	}
	for _, text := range texts {
		q, err := newQRCode([]byte(text))
		if err != nil {
			t.Fatalf("%d bytes: %v", len(text), err)
		}
		path := filepath.Join(t.TempDir(), "qr.png")
		writeQRPNG(t, q, path)
		out, err := exec.Command(zbarimg, "--quiet", "--raw", "-Sbinary", path).Output()
		if err != nil {
			t.Fatalf("zbarimg could not read %d bytes (version %d): %v", len(text), (q.size-17)/4, err)
		}
		if got := strings.TrimSuffix(string(out), "\n"); got != text {
			t.Errorf("version %d read as %q, want %q", (q.size-17)/4, got, text)
		}
	}
	if _, err := newQRCode(make([]byte, 2332)); err == nil {
		t.Error("more than version 40 holds was drawn")
	}
}

// writeQRPNG draws q, 4 pixels a module, with its quiet zone, as a PNG.
func writeQRPNG(t *testing.T, q *qrCode, path string) {
	const scale, quiet = 4, 4
	n := (q.size + 2*quiet) * scale
	img := image.NewGray(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			mx, my := x/scale-quiet, y/scale-quiet
			c := color.Gray{Y: 255}
			if mx >= 0 && my >= 0 && mx < q.size && my < q.size && q.dark[my][mx] {
				c.Y = 0
			}
			img.SetGray(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}
