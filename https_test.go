package main

// https_test.go: HTTPS served by the binary itself: certificates from a
// real ACME CA (Let's Encrypt's test CA, Pebble, run here: skipped when it
// is not installed, except under JWTNOTES_ALL_TOOLS), and a certificate of
// the user's own; HTTP/2, HSTS, the Secure cookie, links on the HTTPS
// address, plain HTTP redirected, names not ours refused, a restart that
// asks the CA for nothing, and the errors that name their fix.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHTTPSFlags(t *testing.T) {
	t.Parallel()
	var usage *usageError
	for _, args := range [][]string{
		{"-domain", "https://notes.example.com"},
		{"-domain", "notes.example.com:443"},
		{"-domain", "*.example.com"},
		{"-domain", "localhost"},
		{"-domain", "notes.example.com", "-tls-cert", "c.pem", "-tls-key", "k.pem"},
		{"-tls-cert", "c.pem"},
		{"-domain", "notes.example.com", "-https-addr", ""},
	} {
		if _, err := parseConfig(args, envOf(nil), io.Discard); !errors.As(err, &usage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	cfg, err := parseConfig([]string{"-domain", "Notes.example.com, api.example.com", "-https-addr", ":8443"}, envOf(nil), io.Discard)
	if err != nil || len(cfg.https.domains) != 2 || cfg.https.publicURL() != "https://notes.example.com:8443" {
		t.Errorf("-domain: %+v, public URL %q, %v", cfg.https.domains, cfg.https.publicURL(), err)
	}
	cfg, _ = parseConfig([]string{"-domain", "notes.example.com"}, envOf(nil), io.Discard)
	if cfg.https.publicURL() != "https://notes.example.com" || cfg.https.acmeDirectory != letsEncrypt || cfg.https.httpAddr != ":80" {
		t.Errorf("-domain alone: %q; the CA %q, -http-addr %q", cfg.https.publicURL(), cfg.https.acmeDirectory, cfg.https.httpAddr)
	}
}

// TestHTTPSWithAnACMECA: the binary gets a certificate from Pebble for
// -domain's name, serves HTTP/2 with HSTS and the __Host- cookie, writes
// links on its HTTPS address, redirects plain GETs and refuses plain
// writes, refuses a name not its own without asking the CA, says the CA
// refuses a name Pebble blocks, and, started again, asks for nothing.
func TestHTTPSWithAnACMECA(t *testing.T) {
	t.Parallel()
	ca := startPebble(t)
	dir := t.TempDir()
	flags := []string{"-domain", "notes.test,blocked.test", "-acme-directory", ca.directory, "-acme-ca-file", ca.ownCert,
		"-acme-email", "admin@notes.test", "-https-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-ip-limit", "0"}
	p := startServer(t, dir, flags...)
	p.waitForLog(`msg="HTTPS certificate ready" name=notes.test`)
	p.waitForLog(`name=blocked.test why="the CA refuses this name`)
	httpsPort, httpAddr := httpsAddrs(t, p)
	client := httpsClient(ca.roots, httpsPort)
	base := "https://notes.test:" + httpsPort

	res, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 || res.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("GET /healthz over HTTPS: %d, HTTP/%d, HSTS %q", res.StatusCode, res.ProtoMajor, res.Header.Get("Strict-Transport-Security"))
	}
	if status, body, err := call(client, "POST", base+"/api/register/", "", "application/json", strings.NewReader(registerBody("alice"))); status != 201 {
		t.Fatalf("register over HTTPS: %d %s %v", status, body, err)
	}
	res, err = client.Post(base+"/api/token/cookie/", "application/json", strings.NewReader(`{"username":"alice","password":"`+testPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if cookie := res.Header.Get("Set-Cookie"); res.StatusCode != 200 || !strings.HasPrefix(cookie, "__Host-jwtnotes_refresh=") || !strings.Contains(cookie, "; Secure") {
		t.Errorf("the cookie login over HTTPS: %d, Set-Cookie %q", res.StatusCode, cookie)
	}
	// A mailed link (the log is the mailbox here) is on the HTTPS address.
	if status, body, err := call(client, "POST", base+"/api/password/reset/", "", "application/json",
		strings.NewReader(`{"email":"alice@example.com"}`)); status != 200 {
		t.Fatalf("reset: %d %s %v", status, body, err)
	}
	p.waitForLog(base + "/")

	// Plain HTTP: a GET is sent to HTTPS, a write is refused.
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/api/notes/?limit=5", nil)
	req.Host = "notes.test"
	if res, err := plain.Do(req); err != nil || res.StatusCode != 301 || res.Header.Get("Location") != base+"/api/notes/?limit=5" {
		t.Errorf("a plain GET: %v %v", res, err)
	}
	req, _ = http.NewRequest("POST", "http://"+httpAddr+"/api/token/", strings.NewReader(`{}`))
	req.Host = "evil.example"
	if status, body := do(t, plain, req); status != 400 || body != `{"detail":"Use HTTPS: `+base+`/api/token/"}` {
		t.Errorf("a plain POST: %d %s", status, body)
	}

	// A name not ours: the handshake fails, and the CA never hears of it.
	if _, err := httpsClient(ca.roots, httpsPort).Get("https://other.test:" + httpsPort + "/healthz"); err == nil {
		t.Error("a handshake for other.test succeeded")
	}
	if strings.Contains(ca.log.String(), "other.test") {
		t.Error("the CA was asked about other.test")
	}

	// Started again: the certificate comes from DATA_DIR/certs, and the CA
	// issues nothing more.
	issued := strings.Count(ca.log.String(), "Issued certificate")
	if issued != 1 {
		t.Errorf("Pebble issued %d certificates, want 1", issued)
	}
	if info, err := os.Stat(filepath.Join(dir, "certs")); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("the certificates' folder: %v %v", info, err)
	}
	p.stop(syscall.SIGTERM)
	p = startServer(t, dir, append(flags[:0:0], "-domain", "notes.test", "-acme-directory", ca.directory, "-acme-ca-file", ca.ownCert,
		"-https-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")...)
	p.waitForLog(`msg="HTTPS certificate ready" name=notes.test`)
	httpsPort, _ = httpsAddrs(t, p)
	if res, err := httpsClient(ca.roots, httpsPort).Get("https://notes.test:" + httpsPort + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Errorf("after the restart: %v %v", res, err)
	}
	if n := strings.Count(ca.log.String(), "Issued certificate"); n != issued {
		t.Errorf("the restart asked the CA for %d more certificates", n-issued)
	}
}

// TestHTTPSWithoutTheCA: a CA out of reach does not stop the start; the
// log says so and that it will try again.
func TestHTTPSWithoutTheCA(t *testing.T) {
	t.Parallel()
	p := startServer(t, t.TempDir(), "-domain", "notes.test", "-acme-directory", "https://127.0.0.1:1/dir",
		"-https-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	p.waitForLog(`why="cannot reach the CA at https://127.0.0.1:1/dir`)
	p.waitForLog(`retry_in=1m0s`)
}

// TestHTTPSWithOwnCertificate: -tls-cert and -tls-key: HTTP/2 and HSTS
// with the user's certificate; plain HTTP sent to the HTTPS port.
func TestHTTPSWithOwnCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, roots := selfSigned(t, dir, "notes.example")
	out, err := exec.Command(serverBinary(t), "-data", filepath.Join(dir, "data"), "-tls-cert", certFile,
		"-tls-key", filepath.Join(dir, "none.pem"), "-https-addr", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "-tls-key") {
		t.Errorf("a missing key file: %v\n%s", err, out)
	}
	p := startServer(t, filepath.Join(dir, "data"), "-tls-cert", certFile, "-tls-key", keyFile, "-hsts-max-age", "1h",
		"-https-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0")
	httpsPort, httpAddr := httpsAddrs(t, p)
	res, err := httpsClient(roots, httpsPort).Get("https://notes.example:" + httpsPort + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.Header.Get("Strict-Transport-Security") != "max-age=3600" {
		t.Errorf("HTTP/%d, HSTS %q", res.ProtoMajor, res.Header.Get("Strict-Transport-Security"))
	}
	req, _ := http.NewRequest("GET", "http://"+httpAddr+"/", nil)
	req.Host = "notes.example"
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if res, err := plain.Do(req); err != nil || res.Header.Get("Location") != "https://notes.example:"+httpsPort+"/" {
		t.Errorf("a plain GET: %v %v", res, err)
	}
}

// do sends req and reads the answer.
func do(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// httpsAddrs is the HTTPS port and the plain-HTTP address a server logged.
func httpsAddrs(t *testing.T, p *serverProcess) (httpsPort, httpAddr string) {
	t.Helper()
	_, httpsPort, _ = net.SplitHostPort(p.addr)
	m := regexp.MustCompile(`http_addr=(\S+)`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no plain-HTTP address in the log:\n%s", p.stderr)
	}
	return httpsPort, m[1]
}

// httpsClient trusts roots and reaches any name at 127.0.0.1:port, as
// curl --resolve does; it speaks HTTP/2 when the server offers it.
func httpsClient(roots *x509.CertPool, port string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}
}

// selfSigned writes a self-signed certificate for names (and 127.0.0.1)
// and its key into dir, and returns their files and a pool that trusts it.
func selfSigned(t *testing.T, dir string, names ...string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if os.WriteFile(certFile, certPEM, 0o600) != nil ||
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600) != nil {
		t.Fatal("cannot write the certificate")
	}
	roots = x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, roots
}

// pebbleCA is Pebble, running: its ACME directory, the certificate of its
// own listener (what -acme-ca-file trusts), the root of the certificates it
// issues, and its log.
type pebbleCA struct {
	directory string
	ownCert   string
	roots     *x509.CertPool
	log       *syncBuffer
}

// startPebble starts Pebble on loopback, with every challenge taken as
// valid (PEBBLE_VA_ALWAYS_VALID: no DNS here for notes.test), and
// blocked.test on its list of names it refuses.
func startPebble(t *testing.T) *pebbleCA {
	t.Helper()
	bin, err := exec.LookPath("pebble")
	if err != nil {
		if gopath, e := exec.Command("go", "env", "GOPATH").Output(); e == nil {
			bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "pebble")
			_, err = os.Stat(bin)
		}
	}
	if err != nil {
		const install = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"
		if os.Getenv("JWTNOTES_ALL_TOOLS") != "" {
			t.Fatalf("pebble is not installed (%s), and JWTNOTES_ALL_TOOLS says every tool is", install)
		}
		t.Skipf("pebble is not installed (%s; .ci/run installs it)", install)
	}
	dir := t.TempDir()
	ownCert, ownKey, ownRoots := selfSigned(t, dir, "localhost")
	acmePort, managementPort := freePort(t), freePort(t)
	config := fmt.Sprintf(`{"pebble": {"listenAddress": "127.0.0.1:%s", "managementListenAddress": "127.0.0.1:%s",
		"certificate": %q, "privateKey": %q, "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "",
		"externalAccountBindingRequired": false, "domainBlocklist": ["blocked.test"]}}`, acmePort, managementPort, ownCert, ownKey)
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", configFile)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	log, directory := startProgram(t, cmd, "ACME directory available at: ")
	ca := &pebbleCA{ownCert: ownCert, log: log, directory: directory}
	// The root of what it issues, from its management API. Pebble logs its
	// addresses before it listens on them, so both are asked until they answer.
	pebbleClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ownRoots}}}
	if status, body, err := getOnceListening(pebbleClient, directory); status != 200 {
		t.Fatalf("pebble's directory: %d %v\n%s", status, err, body)
	}
	status, root, err := getOnceListening(pebbleClient, "https://127.0.0.1:"+managementPort+"/roots/0")
	ca.roots = x509.NewCertPool()
	if err != nil || status != 200 || !ca.roots.AppendCertsFromPEM([]byte(root)) {
		t.Fatalf("pebble's root: %d %v\n%s", status, err, root)
	}
	return ca
}

// getOnceListening GETs url, asking again while nothing listens on its
// port yet (for at most 10 s).
func getOnceListening(client *http.Client, url string) (int, string, error) {
	for start := time.Now(); ; {
		status, body, err := call(client, "GET", url, "", "", nil)
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > 10*time.Second {
			return status, body, err
		}
		time.Sleep(10 * time.Millisecond) // polling a separate process whose listener comes up after its log line
	}
}

// freePort is a loopback port nothing listens on at the moment (for a
// program that takes its ports from a file).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestLowPortNamesTheFix: a port below 1024 without the right to bind it
// stops the start with what to do. Run as nobody when the test is root.
func TestLowPortNamesTheFix(t *testing.T) {
	t.Parallel()
	if first, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err != nil || strings.TrimSpace(string(first)) == "0" {
		t.Skip("this machine lets anyone bind low ports")
	}
	dir, err := os.MkdirTemp("", "jwtnotes-lowport-") // not t.TempDir: its parent is the tester's only
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "jwtnotes")
	program, err := os.ReadFile(serverBinary(t))
	if err != nil || os.Chmod(dir, 0o777) != nil || os.WriteFile(bin, program, 0o755) != nil {
		t.Fatal("cannot copy the binary where nobody can run it")
	}
	cmd := exec.Command(bin, "-data", filepath.Join(dir, "data"), "-addr", "127.0.0.1:81")
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "setcap cap_net_bind_service=+ep") || !strings.Contains(string(out), "-addr") {
		t.Errorf("a low port without the right: %v\n%s", err, out)
	}
}
