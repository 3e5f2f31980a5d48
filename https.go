package main

// https.go: serving HTTPS by itself, with no proxy in front: certificates
// from an ACME CA (Let's Encrypt unless -acme-directory names another,
// through golang.org/x/crypto/acme/autocert) for the names of -domain, or
// a certificate of the user's own (-tls-cert, -tls-key); HTTP/2; HSTS; and
// the plain-HTTP listener, which answers the CA's HTTP-01 challenges and
// sends everything else to HTTPS.
//
// Why it matters: a bearer token or a refresh cookie sent over plain HTTP
// is anyone's on the path (GUIDE.md §3).
//
// It knows TLS, certificates and the plain-HTTP listener; not the routes
// (it wraps the handler main.go gives it) nor the data, but for the folder
// where the certificates are kept: DATA_DIR/certs, owner-only, so that a
// restart asks the CA for nothing. autocert renews a certificate 30 days
// before it expires.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// letsEncrypt is the ACME directory of -domain unless -acme-directory says.
const letsEncrypt = acme.LetsEncryptURL

// httpsConfig is what the HTTPS flags say.
type httpsConfig struct {
	domains           []string      // -domain: the names certificates are asked for; no other
	acmeDirectory     string        // the CA's ACME directory URL
	acmeEmail         string        // the CA's contact for expiry notices; may be empty
	acmeCAFile        string        // PEM roots to trust for the CA's own API (a test CA's)
	certFile, keyFile string        // -tls-cert, -tls-key: the user's own certificate instead
	httpsAddr         string        // where HTTPS listens
	httpAddr          string        // where plain HTTP listens (challenges, redirects); "" for nowhere
	hstsMaxAge        time.Duration // Strict-Transport-Security's max-age; 0: no header
}

// on reports whether the server serves HTTPS.
func (c httpsConfig) on() bool { return len(c.domains) > 0 || c.certFile != "" }

// check validates the flags together; the error names the fix.
func (c httpsConfig) check() error {
	for _, d := range c.domains {
		if !validDomain(d) {
			return &usageError{fmt.Sprintf("-domain %q: a host name such as notes.example.com (no scheme, port or wildcard)", d)}
		}
	}
	switch {
	case len(c.domains) > 0 && c.certFile != "":
		return &usageError{"-domain asks a CA for certificates, -tls-cert brings one: choose one"}
	case (c.certFile == "") != (c.keyFile == ""):
		return &usageError{"-tls-cert and -tls-key go together"}
	case c.on() && c.httpsAddr == "":
		return &usageError{"-https-addr: where HTTPS listens, e.g. :443"}
	}
	return nil
}

// validDomain reports whether d is a lower-case DNS name of at least two
// labels: letters, digits and hyphens, no label empty or over 63 bytes.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(d) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

// publicURL is where the server's absolute URLs start when HTTPS is on and
// -public-url is not set (links in mails among them): https://the first
// name of -domain, with the port of -https-addr unless it is 443; "" with
// -tls-cert alone, whose names the server does not know.
func (c httpsConfig) publicURL() string {
	if len(c.domains) == 0 {
		return ""
	}
	return "https://" + c.domains[0] + portSuffix(c.httpsAddr)
}

// portSuffix is ":PORT" of addr, or "" for HTTPS's own 443.
func portSuffix(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "443" && port != "" {
		return ":" + port
	}
	return ""
}

// httpsServer is what HTTPS adds to a running server: the TLS settings
// and the plain-HTTP server beside it.
type httpsServer struct {
	cfg       httpsConfig
	publicURL string
	certs     *autocert.Manager // nil with -tls-cert
	tls       *tls.Config
	log       *slog.Logger
}

// newHTTPS prepares HTTPS: the ACME manager (certificates in certsDir),
// or the user's certificate, read now so that a bad one stops the start.
func newHTTPS(cfg httpsConfig, certsDir, publicURL string, log *slog.Logger) (*httpsServer, error) {
	h := &httpsServer{cfg: cfg, publicURL: publicURL, log: log}
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert %s, -tls-key %s: %w (PEM files: the certificate chain, then its key)", cfg.certFile, cfg.keyFile, err)
		}
		h.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		return h, nil
	}
	client := &acme.Client{DirectoryURL: cfg.acmeDirectory}
	if cfg.acmeCAFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.acmeCAFile)
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-acme-ca-file %s: no PEM certificate in it (%v)", cfg.acmeCAFile, err)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: roots}
		client.HTTPClient = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	}
	h.certs = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(certsDir), // made 0700, files 0600
		HostPolicy: autocert.HostWhitelist(cfg.domains...),
		Email:      cfg.acmeEmail,
		Client:     client,
	}
	h.tls = h.certs.TLSConfig() // h2, http/1.1, and acme-tls/1 for TLS-ALPN-01 challenges
	h.tls.MinVersion = tls.VersionTLS12
	return h, nil
}

// withHSTS adds Strict-Transport-Security to every answer over HTTPS: a
// browser that saw it goes to https:// by itself for max-age, so that a
// token never leaves it over plain HTTP, even when a link says http://.
func (h *httpsServer) withHSTS(next http.Handler) http.Handler {
	if h.cfg.hstsMaxAge <= 0 {
		return next
	}
	value := "max-age=" + strconv.FormatInt(int64(h.cfg.hstsMaxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", value)
		next.ServeHTTP(w, r)
	})
}

// plainHTTP is the handler of the plain-HTTP listener: the CA's HTTP-01
// challenges, and a redirect to HTTPS for a GET or HEAD. Any other method
// is refused, not redirected: its body (a password, a token) has crossed
// the network in clear already, and a client that follows a redirect
// would hide that from whoever wrote it.
func (h *httpsServer) plainHTTP() http.Handler {
	toHTTPS := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := h.httpsBase(r) + r.URL.RequestURI()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeJSON(w, http.StatusBadRequest, map[string]string{"detail": "Use HTTPS: " + target})
			return
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
	if h.certs == nil {
		return toHTTPS
	}
	challenges := h.certs.HTTPHandler(toHTTPS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// autocert matches the Host against -domain as it comes, port and
		// all; a CA that checks on a port other than 80 names it.
		if name, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = name
		}
		challenges.ServeHTTP(w, r)
	})
}

// httpsBase is the https:// origin a plain request is sent to: the name it
// asked for when it is one of -domain's, else -public-url's (never a Host
// of the client's choosing, but with -tls-cert and no -public-url, where
// the server knows no name of its own).
func (h *httpsServer) httpsBase(r *http.Request) string {
	host := r.Host
	if name, _, err := net.SplitHostPort(r.Host); err == nil {
		host = name
	}
	switch {
	case slices.Contains(h.cfg.domains, strings.ToLower(host)):
		return "https://" + strings.ToLower(host) + portSuffix(h.cfg.httpsAddr)
	case h.publicURL != "":
		return h.publicURL
	}
	return "https://" + host + portSuffix(h.cfg.httpsAddr)
}

// fetchCertificates asks for each name's certificate at start, so that a
// CA out of reach or a name it refuses is in the log at once rather than
// at the first visitor's handshake; a failure is tried again, 1 minute
// later, then 2, 4, ... up to an hour, until ctx ends. A certificate in
// the folder is loaded without asking the CA.
func (h *httpsServer) fetchCertificates(ctx context.Context) {
	if h.certs == nil {
		return
	}
	for _, name := range h.cfg.domains {
		go func() {
			for wait := time.Minute; ; wait = min(2*wait, time.Hour) {
				cert, err := h.certs.GetCertificate(ecdsaHello(name))
				if err == nil {
					h.log.Info("HTTPS certificate ready", "name", name, "expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
					return
				}
				h.log.Error("no HTTPS certificate yet: clients of this name get a TLS error until there is one",
					"name", name, "why", acmeTrouble(err, h.cfg.acmeDirectory), "retry_in", wait.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}()
	}
}

// ecdsaHello is a TLS hello for name from a client that takes ECDSA
// certificates, as every current one does: with an empty hello autocert
// would ask for an RSA certificate, and then for an ECDSA one at the first
// real client.
func ecdsaHello(name string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		ServerName:        name,
		SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:   []tls.CurveID{tls.CurveP256},
		CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
	}
}

// acmeTrouble says what went wrong asking the CA, and what to do.
func acmeTrouble(err error, directory string) string {
	var problem *acme.Error
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.As(err, &problem) && strings.Contains(problem.ProblemType, "rejectedIdentifier"):
		return "the CA refuses this name (" + problem.Detail + "): use a name it issues for"
	case errors.As(err, &problem) && strings.Contains(problem.ProblemType, "rateLimited"):
		return "the CA's rate limit (" + problem.Detail + "): keep DATA_DIR/certs between starts; it will be tried again"
	case errors.As(err, &problem):
		return "the CA answered " + problem.ProblemType + ": " + problem.Detail +
			" (is the name's DNS pointing at this machine, with port 80 or 443 reachable for the challenge?)"
	case errors.As(err, &opErr), errors.As(err, &netErr):
		return "cannot reach the CA at " + directory + ": " + err.Error() + "; it will be tried again"
	}
	return err.Error()
}

// certsDir is where the certificates of -domain are kept.
func certsDir(dataDir string) string { return filepath.Join(dataDir, "certs") }
