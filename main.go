// Command jwtnotes is a small notes API with JWT authentication: a Go
// re-implementation of the backend of the "React and Django Notes app"
// tutorial series (Django REST framework + simplejwt), written to be read.
//
// The contract it serves is docs/API.md. Start reading here, then
// jwt.go (tokens), store.go (SQLite) and handlers.go (HTTP).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	tuneMemory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "jwtnotes:", err)
		var usage *usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in the command line or environment: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// config is everything the command line and environment set.
type config struct {
	addr        string
	dataDir     string
	accessTTL   time.Duration
	refreshTTL  time.Duration
	sessionTTL  time.Duration
	reuseGrace  time.Duration
	loginLimit  int
	loginWindow time.Duration
	ipLimit     int
	trustProxy  bool
	corsOrigins []string
	cpuProfile  string
	bodyMemory  int64    // bytes that request bodies may hold at once
	maxConns    int      // open connections in all
	maxConnsIP  int      // open connections from one client address
	publicURL   string   // where absolute URLs start, e.g. https://notes.example; "" for the listening address
	writeLimit  int      // writes per account per minute
	searchLimit int      // broad searches per account per minute
	maxNotes    int      // notes per account
	maxNotesMB  int      // MiB of notes (text and images) per account
	litestream  bool     // Litestream replicates the database: it checkpoints, not the server
	dbPath      string   // the database file: DATA_DIR/notes.db unless -db puts it elsewhere (a LiteFS mount)
	primaryURL  string   // a LiteFS replica's primary, where it forwards writes (replica.go)
	forwarders  []string // the replicas' addresses: their client address and wait for the position are trusted (replica.go)
	synchronous string   // "full": every commit synced before it is answered; "normal": only the log written
	// cookieOrigins may call the cookie routes from another origin, with
	// credentials; secureCookie forces the refresh cookie's Secure.
	cookieOrigins []string
	secureCookie  bool
	// Account recovery by email (recovery.go, mail.go).
	mail                 mailConfig
	mailLimit            int           // mails per recipient address per hour
	resetTTL             time.Duration // how long a password reset link works
	verifyTTL            time.Duration // how long a verification link works
	requireVerifiedEmail bool          // login refuses an account whose email is not verified
	signingAlg           string        // the algorithm tokens are signed with: HS256, EdDSA, or "" for the current key's (keys.go)
	https                httpsConfig   // HTTPS without a proxy: -domain or -tls-cert (https.go)
	securityMails        bool          // mail users of logins from new devices, reuse, and changes to their account (notify.go)
}

// sqliteSettings are the flags' choices for the database file (sqlite.go).
// database is the database file's path: -db, or DATA_DIR/notes.db.
func (cfg config) database() string {
	return cmp.Or(cfg.dbPath, filepath.Join(cfg.dataDir, "notes.db"))
}

func (cfg config) sqliteSettings() sqliteSettings {
	return sqliteSettings{path: cfg.dbPath, externalCheckpoints: cfg.litestream, normalSync: cfg.synchronous == "normal"}
}

// run is the whole program: main only adds the process around it, so tests
// can run the real thing with their own arguments, environment and context.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	args = args[1:] // the program name
	command := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, args = args[0], args[1:]
	}
	var keysCommand, kid, folder, usersCommandName, userName string
	var withKeys bool
	var rotateAlg string // keys rotate -alg: the new key's algorithm; else -signing-alg's
	switch command {
	case "serve", "flushexpiredtokens":
	case "backup", "restore":
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return &usageError{fmt.Sprintf("want jwtnotes %s FOLDER", command)}
		}
		folder, args = args[0], args[1:]
		if command == "backup" {
			withKeys = slices.Contains(args, "-with-keys")
			args = slices.DeleteFunc(args, func(a string) bool { return a == "-with-keys" })
		}
	case "keys":
		if len(args) > 0 {
			keysCommand, args = args[0], args[1:]
		}
		if keysCommand == "revoke" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			kid, args = args[0], args[1:]
		}
		if i := slices.Index(args, "-alg"); keysCommand == "rotate" && i >= 0 && i+1 < len(args) {
			rotateAlg = args[i+1]
			args = slices.Delete(args, i, i+2)
			if rotateAlg != algHS256 && rotateAlg != algEdDSA {
				return &usageError{"keys rotate -alg: HS256 or EdDSA"}
			}
		}
		if keysCommand != "rotate" && keysCommand != "list" && (keysCommand != "revoke" || kid == "") {
			return &usageError{"want jwtnotes keys rotate [-alg HS256|EdDSA], keys list or keys revoke KID"}
		}
	case "users":
		if len(args) > 0 {
			usersCommandName, args = args[0], args[1:]
		}
		if usersCommandName != "list" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			userName, args = args[0], args[1:]
		}
		if usersCommandName != "list" && (userName == "" || !slices.Contains([]string{"show", "deactivate", "activate", "set-password", "mfa-off"}, usersCommandName)) {
			return &usageError{"want jwtnotes users list, or users show, deactivate, activate, set-password or mfa-off NAME"}
		}
	default:
		return &usageError{fmt.Sprintf("unknown command %q (want serve, flushexpiredtokens, keys, users, backup or restore)", command)}
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	switch command {
	case "flushexpiredtokens":
		return flushExpiredTokens(ctx, cfg, stdout)
	case "keys":
		return manageKeys(cfg, getenv, keysCommand, kid, cmp.Or(rotateAlg, cfg.signingAlg), stdout)
	case "users":
		return usersCommand(ctx, cfg, usersCommandName, userName, stdin, stdout, stderr)
	case "backup":
		return backupCommand(ctx, cfg, folder, withKeys, getenv, stdout)
	case "restore":
		return restoreCommand(ctx, cfg, folder, getenv, stdout)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return serve(ctx, cfg, getenv, log)
}

// usageText opens the answer to -h; the flags follow it.
const usageText = `Usage:
  jwtnotes [serve] [flags]                 run the server (the default command)
  jwtnotes flushexpiredtokens [-data DIR]  delete expired blacklist rows and ended sessions, once
  jwtnotes keys rotate [-alg HS256|EdDSA]  make a new signing key current (of the current key's algorithm unless -alg says);
                                           the old one verifies its tokens until they expire
  jwtnotes keys list [-data DIR]           each key's id, age, state and until when it verifies (never the key)
  jwtnotes keys revoke KID [-data DIR]     refuse every token key KID signed, at once
  jwtnotes users list [-data DIR]          every user: id, name, email, verified, active, last login (never a hash)
  jwtnotes users show NAME                 one user, with their live sessions and notes counted
  jwtnotes users deactivate NAME           refuse their login and every session (a running server: within a second)
  jwtnotes users activate NAME             let them log in again
  jwtnotes users mfa-off NAME              turn their second factor off (a lost phone, lost recovery codes)
  jwtnotes users set-password NAME         a new password (asked twice at a terminal, else the first line of
                                           standard input), the registration validators applied; every session ends
  jwtnotes backup DEST [-with-keys]        copy the database and its media into DEST while the server runs
                                           (-with-keys: the signing keys too; they are a secret)
  jwtnotes restore SRC [-data DIR]         fill an empty data folder from a backup, after checking it

Every flag can also be set by the environment variable named beside it; a
flag wins over its variable. The signing keys are JWT_SECRET (one key, at
least 32 bytes), or else DATA_DIR/jwt.keys, made at the first start; a
running server follows changes to it. Never a flag: flags show up in ps.

Flags:
`

// parseConfig reads the flags of API.md; each falls back to its environment
// variable, then to its default.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("jwtnotes", flag.ContinueOnError)
	// The flag package would print a mistake and the whole usage text, and
	// main the mistake again: it stays quiet, and -h prints the usage.
	fs.SetOutput(io.Discard)
	var envErrs []error
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	duration := func(flagName, envName, def, usage string) *time.Duration {
		d, err := time.ParseDuration(env(envName, def))
		if err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s: %w", envName, err))
		}
		return fs.Duration(flagName, d, usage+" (env "+envName+")")
	}
	number := func(flagName, envName, def, usage string) *int {
		var n int
		if _, err := fmt.Sscan(env(envName, def), &n); err != nil {
			envErrs = append(envErrs, fmt.Errorf("%s: not a number", envName))
		}
		return fs.Int(flagName, n, usage+" (env "+envName+")")
	}

	addr := fs.String("addr", env("ADDR", "127.0.0.1:8000"), "listen address (env ADDR)")
	dataDir := fs.String("data", env("DATA_DIR", "./data"), "folder of notes.db, media/ and jwt.keys (env DATA_DIR)")
	accessTTL := duration("access-ttl", "ACCESS_TOKEN_LIFETIME", "180m", "access token lifetime")
	refreshTTL := duration("refresh-ttl", "REFRESH_TOKEN_LIFETIME", "1200h", "refresh token lifetime")
	sessionTTL := duration("session-ttl", "SESSION_LIFETIME", "2160h", "absolute session lifetime")
	reuseGrace := duration("reuse-grace", "REFRESH_REUSE_GRACE", "10s", "grace period for a rotated refresh token")
	loginLimit := number("login-limit", "LOGIN_LIMIT", "10", "failed logins per account per window, 0 for no limit")
	loginWindow := duration("login-window", "LOGIN_WINDOW", "15m", "window of -login-limit")
	ipLimit := number("ip-limit", "IP_LIMIT", "60", "login, register and account recovery requests per client address per minute, 0 for no limit")
	trustProxy := fs.Bool("trust-proxy", env("TRUST_PROXY", "") == "1" || env("TRUST_PROXY", "") == "true",
		"take the client address from X-Forwarded-For, for a server behind a reverse proxy (env TRUST_PROXY=1)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server to this file until it stops (for go tool pprof)")
	corsOrigins := fs.String("cors-origins", env("CORS_ORIGINS", "*"), "comma-separated allowed origins (env CORS_ORIGINS)")
	bodyMemory := number("body-memory", "BODY_MEMORY_MB", "32", "MiB that request bodies being read may hold at once; beyond it, 503")
	maxConns := number("max-conns", "MAX_CONNS", "10000", "open connections in all; beyond it the quietest is closed")
	maxConnsIP := number("max-conns-per-ip", "MAX_CONNS_PER_IP", "256", "open connections from one client address")
	publicURL := fs.String("public-url", env("PUBLIC_URL", ""), "scheme and host that absolute URLs (the Link of a list) start with, e.g. https://notes.example; default: the address the request came in on (env PUBLIC_URL)")
	writeLimit := number("write-limit", "WRITE_LIMIT", "120", "note and profile writes per account per minute, 0 for no limit")
	searchLimit := number("search-limit", "SEARCH_LIMIT", "30", "broad searches (?q= of under 3 characters, or of trigrams every one common) per account per minute, 0 for no limit")
	maxNotes := number("max-notes", "MAX_NOTES", "10000", "notes one account may keep, 0 for no limit")
	maxNotesMB := number("max-notes-mb", "MAX_NOTES_MB", "100", "MiB of notes (titles, bodies, images) one account may keep, 0 for no limit")
	cookieOrigins := fs.String("cookie-origins", env("COOKIE_ORIGINS", ""), "comma-separated origins that may use the refresh cookie routes from another origin, with credentials (env COOKIE_ORIGINS); the server's own origin always may")
	secureCookie := fs.Bool("secure-cookie", env("SECURE_COOKIE", "") == "1" || env("SECURE_COOKIE", "") == "true",
		"mark the refresh cookie Secure even on plain HTTP, for a server behind a proxy that ends TLS (env SECURE_COOKIE=1)")
	dbPath := fs.String("db", env("DB_PATH", ""), "the database file, if not DATA_DIR/notes.db: e.g. on a LiteFS mount, "+
		"which holds databases only (env DB_PATH)")
	primaryURL := fs.String("primary-url", env("PRIMARY_URL", ""), "on a LiteFS replica (the -db folder has .primary): "+
		"the primary jwtnotes' URL, where writes are forwarded (env PRIMARY_URL)")
	forwarders := fs.String("forwarders", env("FORWARDERS", ""), "on a LiteFS primary: comma-separated IP addresses of the "+
		"replicas that forward writes to it (env FORWARDERS)")
	litestream := fs.Bool("litestream", env("LITESTREAM", "") == "1" || env("LITESTREAM", "") == "true",
		"a litestream replicate sidecar replicates notes.db: leave WAL checkpoints to it (env LITESTREAM=1)")
	synchronous := fs.String("synchronous", env("SYNCHRONOUS", "full"), "full: every write is on the disk before it is answered; "+
		"normal: written to the log only, which a crash of the process keeps but a power cut may not (env SYNCHRONOUS)")
	domains := fs.String("domain", env("DOMAIN", ""), "comma-separated names to serve HTTPS for, with certificates from an ACME CA "+
		"(Let's Encrypt unless -acme-directory), kept in DATA_DIR/certs; listens on -https-addr and -http-addr instead of -addr (env DOMAIN)")
	acmeDirectory := fs.String("acme-directory", env("ACME_DIRECTORY", letsEncrypt), "the ACME CA's directory URL (env ACME_DIRECTORY)")
	acmeEmail := fs.String("acme-email", env("ACME_EMAIL", ""), "an address the CA may write to about the certificates (env ACME_EMAIL)")
	acmeCAFile := fs.String("acme-ca-file", env("ACME_CA_FILE", ""), "PEM file of a root to trust for the CA's own API, e.g. a test CA's (env ACME_CA_FILE)")
	tlsCert := fs.String("tls-cert", env("TLS_CERT", ""), "serve HTTPS with this PEM certificate chain instead of -domain's (env TLS_CERT)")
	tlsKey := fs.String("tls-key", env("TLS_KEY", ""), "the private key of -tls-cert, PEM (env TLS_KEY)")
	httpsAddr := fs.String("https-addr", env("HTTPS_ADDR", ":443"), "where HTTPS listens, with -domain or -tls-cert (env HTTPS_ADDR)")
	httpAddr := fs.String("http-addr", env("HTTP_ADDR", ":80"), "where plain HTTP listens with HTTPS on: the CA's challenges, "+
		"and redirects to HTTPS; empty for nowhere (env HTTP_ADDR)")
	hstsMaxAge := duration("hsts-max-age", "HSTS_MAX_AGE", "8760h", "Strict-Transport-Security's max-age over HTTPS; 0 for no header")
	smtpHost := fs.String("smtp-host", env("SMTP_HOST", ""), "mail server for password resets and email verification; none: each mail is written to the log instead (env SMTP_HOST)")
	smtpPort := number("smtp-port", "SMTP_PORT", "587", "mail server port (STARTTLS is required unless the server is localhost)")
	smtpUser := fs.String("smtp-user", env("SMTP_USER", ""), "user to log in to the mail server as, with the password in SMTP_PASSWORD (env SMTP_USER)")
	mailFrom := fs.String("mail-from", env("MAIL_FROM", "jwtnotes <jwtnotes@localhost>"), "the From of the mails (env MAIL_FROM)")
	mailLimit := number("mail-limit", "MAIL_LIMIT", "5", "mails to one mailbox (an address without its +tag), and reset requests for it, per hour, 0 for no limit")
	resetTTL := duration("reset-ttl", "PASSWORD_RESET_TIMEOUT", "30m", "how long a password reset link works")
	verifyTTL := duration("verify-ttl", "EMAIL_VERIFY_TIMEOUT", "72h", "how long an email verification link works")
	requireVerified := fs.Bool("require-verified-email", env("REQUIRE_VERIFIED_EMAIL", "") == "1" || env("REQUIRE_VERIFIED_EMAIL", "") == "true",
		"login refuses accounts whose email is not verified yet (env REQUIRE_VERIFIED_EMAIL=1)")
	signingAlg := fs.String("signing-alg", env("SIGNING_ALG", ""), "the algorithm tokens are signed with: HS256 (one secret) or EdDSA "+
		"(Ed25519: other services verify tokens with the public keys of /.well-known/jwks.json); when the current key is of another, "+
		"the server rotates to a new key at start, the old one verifying its tokens until they expire. "+
		"Unset: the current key's (HS256 for the first) (env SIGNING_ALG)")
	securityMails := fs.Bool("security-mails", env("SECURITY_MAILS", "1") != "0" && env("SECURITY_MAILS", "1") != "false",
		"mail users when their account logs in from a new device, a refresh token is reused, or their password, email or "+
			"second factor changes; -security-mails=false turns them off (env SECURITY_MAILS=0)")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageText)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return config{}, err
		}
		return config{}, &usageError{err.Error() + " (jwtnotes -h lists the commands, flags and environment variables)"}
	}
	if fs.NArg() > 0 {
		return config{}, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if len(envErrs) > 0 {
		return config{}, &usageError{errors.Join(envErrs...).Error()}
	}
	cfg := config{
		addr: *addr, dataDir: *dataDir,
		accessTTL: *accessTTL, refreshTTL: *refreshTTL, sessionTTL: *sessionTTL, reuseGrace: *reuseGrace,
		loginLimit: *loginLimit, loginWindow: *loginWindow, ipLimit: *ipLimit, trustProxy: *trustProxy,
		cpuProfile: *cpuProfile, bodyMemory: int64(*bodyMemory) << 20, maxConns: *maxConns, maxConnsIP: *maxConnsIP,
		publicURL: strings.TrimSuffix(*publicURL, "/"), writeLimit: *writeLimit, searchLimit: *searchLimit, maxNotes: *maxNotes, maxNotesMB: *maxNotesMB,
		dbPath: *dbPath, primaryURL: strings.TrimSuffix(*primaryURL, "/"),
		litestream: *litestream, synchronous: strings.ToLower(*synchronous), secureCookie: *secureCookie,
		mail:      mailConfig{host: *smtpHost, port: *smtpPort, user: *smtpUser, password: getenv("SMTP_PASSWORD"), from: *mailFrom},
		mailLimit: *mailLimit, resetTTL: *resetTTL, verifyTTL: *verifyTTL, requireVerifiedEmail: *requireVerified,
		securityMails: *securityMails, signingAlg: *signingAlg,
		https: httpsConfig{acmeDirectory: *acmeDirectory, acmeEmail: *acmeEmail, acmeCAFile: *acmeCAFile,
			certFile: *tlsCert, keyFile: *tlsKey, httpsAddr: *httpsAddr, httpAddr: *httpAddr, hstsMaxAge: *hstsMaxAge},
	}
	for _, a := range strings.Split(*forwarders, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if net.ParseIP(a) == nil {
				return config{}, &usageError{fmt.Sprintf("-forwarders: %q is not an IP address", a)}
			}
			cfg.forwarders = append(cfg.forwarders, a)
		}
	}
	for _, d := range strings.Split(*domains, ",") {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			cfg.https.domains = append(cfg.https.domains, d)
		}
	}
	if err := cfg.https.check(); err != nil {
		return config{}, err
	}
	for _, o := range strings.Split(*corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.corsOrigins = append(cfg.corsOrigins, o)
		}
	}
	for _, o := range strings.Split(*cookieOrigins, ",") {
		if o = strings.TrimSpace(o); o == "*" {
			return config{}, &usageError{"-cookie-origins cannot be *: name each origin that may use the refresh cookie"}
		} else if o != "" {
			cfg.cookieOrigins = append(cfg.cookieOrigins, strings.TrimSuffix(o, "/"))
		}
	}
	switch {
	case cfg.accessTTL <= 0 || cfg.refreshTTL <= 0 || cfg.sessionTTL <= 0:
		return config{}, &usageError{"token and session lifetimes must be positive"}
	case cfg.reuseGrace < 0 || cfg.loginLimit < 0 || cfg.ipLimit < 0 || cfg.loginWindow <= 0:
		return config{}, &usageError{"-reuse-grace, -login-limit and -ip-limit cannot be negative, -login-window must be positive"}
	case cfg.writeLimit < 0 || cfg.searchLimit < 0 || cfg.maxNotes < 0 || cfg.maxNotesMB < 0:
		return config{}, &usageError{"-write-limit, -search-limit, -max-notes and -max-notes-mb cannot be negative"}
	case cfg.maxConns < 1 || cfg.maxConnsIP < 1:
		return config{}, &usageError{"-max-conns and -max-conns-per-ip must be at least 1"}
	case cfg.bodyMemory < maxMultipartBody:
		return config{}, &usageError{"-body-memory must be at least 6 (MiB): one upload"}
	case cfg.resetTTL <= 0 || cfg.verifyTTL <= 0 || cfg.mailLimit < 0:
		return config{}, &usageError{"-reset-ttl and -verify-ttl must be positive, -mail-limit cannot be negative"}
	case cfg.mail.port < 1 || cfg.mail.port > 65535:
		return config{}, &usageError{"-smtp-port must be a port number"}
	case cfg.mail.password != "" && cfg.mail.user == "":
		return config{}, &usageError{"SMTP_PASSWORD is set but -smtp-user is not"}
	case cfg.synchronous != "full" && cfg.synchronous != "normal":
		return config{}, &usageError{"-synchronous must be full or normal"}
	case cfg.signingAlg != "" && cfg.signingAlg != algHS256 && cfg.signingAlg != algEdDSA:
		return config{}, &usageError{"-signing-alg must be HS256 or EdDSA"}
	case cfg.signingAlg == algEdDSA && getenv("JWT_SECRET") != "":
		return config{}, &usageError{"-signing-alg EdDSA needs the keys file: JWT_SECRET is one HMAC secret (unset it)"}
	}
	return cfg, nil
}

// serve runs the HTTP server until ctx ends (SIGINT or SIGTERM), then stops
// it gracefully.
func serve(ctx context.Context, cfg config, getenv func(string) string, log *slog.Logger) error {
	if err := checkDataDir(cfg.dataDir); err != nil {
		return err
	}
	ring, err := startingKeyring(cfg, getenv, time.Now(), log)
	if err != nil {
		return err
	}
	signer := newTokenSigner(ring)
	// SIGHUP reloads the keys file (and never stops the server).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stopWatching := make(chan struct{})
	defer close(stopWatching)
	if getenv("JWT_SECRET") == "" {
		w, err := watchKeys(cfg.dataDir, signer, log, hup, stopWatching)
		if err != nil {
			return err
		}
		defer w.registered.close()
	}
	// On a LiteFS replica the primary writes the database, cleans up and
	// sends the mail; this node reads and forwards writes (replica.go).
	replica := isLiteFSReplica(cfg.database())
	var st *store
	if replica {
		log.Info("a LiteFS replica: writes go to the primary", "primary", cfg.primaryURL)
		st, err = openReplicaStore(ctx, cfg, log)
	} else {
		awaitLiteFSDatabase(ctx, cfg.database(), log)
		st, err = openStore(ctx, cfg.dataDir, cfg.sqliteSettings())
	}
	if err != nil {
		return err
	}
	defer st.Close()
	// The media folder is the primary's to clean: a replica's copy may not
	// name yet a file the primary has just written.
	if !replica {
		swept, err := st.sweepMedia(ctx)
		if err != nil {
			return fmt.Errorf("clean the media folder: %w", err)
		}
		if swept > 0 {
			log.Info("deleted files a crash had left in the media folder", "files", swept)
		}
	}
	// With -domain or -tls-cert the server listens on -https-addr, and on
	// -http-addr for plain HTTP beside it (https.go); else on -addr.
	addr, addrFlag := cfg.addr, "-addr"
	if cfg.https.on() {
		addr, addrFlag = cfg.https.httpsAddr, "-https-addr"
	}
	ln, err := listen(addr, addrFlag)
	if err != nil {
		return err
	}
	if cfg.https.on() {
		cfg.https.httpsAddr = ln.Addr().String() // its port, if -https-addr said :0
		cfg.publicURL = cmp.Or(cfg.publicURL, cfg.https.publicURL())
	}
	srv, err := newServer(cfg, st, signer, log, time.Now)
	if err != nil {
		return err
	}
	if cfg.mail.host == "" {
		log.Info("no -smtp-host: password reset and verification mails are written to this log, links included")
	}

	handler := srv.routes()
	switch {
	case replica:
		if handler, err = forwardWrites(ctx, cfg, st, srv.clientIP, handler, log); err != nil {
			return err
		}
	case len(cfg.forwarders) > 0:
		handler = withPosition(cfg.database(), cfg.forwarders, handler)
	}
	var secure *httpsServer
	if cfg.https.on() {
		if secure, err = newHTTPS(cfg.https, certsDir(cfg.dataDir), cfg.publicURL, log); err != nil {
			return err
		}
		handler = secure.withHSTS(handler)
	}
	conns := newConnLimits(cfg.maxConns, cfg.maxConnsIP)
	httpServer := &http.Server{
		Handler:           conns.markBusy(handler),
		ConnContext:       connContext,
		ReadHeaderTimeout: 5 * time.Second,   // headers must arrive within 5 s (slow clients are cut off)
		ReadTimeout:       30 * time.Second,  // the whole request, body included
		WriteTimeout:      60 * time.Second,  // the handler and the answer
		IdleTimeout:       120 * time.Second, // keep-alive connections
		// net/http allows 4 KiB above MaxHeaderBytes; the contract's limit is 64 KiB.
		MaxHeaderBytes: 64<<10 - 4<<10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Shutdown runs this once the listener is closed: a line a supervisor
	// (or a test) can wait for before it expects connections to be refused.
	httpServer.RegisterOnShutdown(func() { log.Info("stopped accepting connections") })
	var plain *http.Server // the plain-HTTP listener beside HTTPS
	if secure != nil {
		httpServer.TLSConfig = secure.tls // ServeTLS adds HTTP/2
		if cfg.https.httpAddr != "" {
			plainLn, err := listen(cfg.https.httpAddr, "-http-addr")
			if err != nil {
				return err
			}
			plain = &http.Server{Handler: secure.plainHTTP(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
				WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: httpServer.MaxHeaderBytes, ErrorLog: httpServer.ErrorLog}
			go plain.Serve(&limitedListener{Listener: plainLn, limits: conns})
			log.Info("listening for plain HTTP: the CA's challenges, and redirects to HTTPS", "http_addr", plainLn.Addr().String())
		}
		secure.fetchCertificates(ctx)
	}
	log.Info("listening", "addr", ln.Addr().String(), "data", cfg.dataDir, "https", secure != nil, "public_url", cfg.publicURL)

	// The clean-up goroutine ends with the server: serve waits for it before
	// the deferred st.Close runs.
	flushCtx, stopFlushing := context.WithCancel(ctx)
	var flusher sync.WaitGroup
	keysDir := cfg.dataDir
	if getenv("JWT_SECRET") != "" {
		keysDir = ""
	}
	if !replica { // the primary's clean-up reaches the replicas through LiteFS
		flusher.Go(func() { flushHourly(flushCtx, st, keysDir, log) })
	}
	defer flusher.Wait()
	defer stopFlushing()

	served := make(chan error, 1)
	go func() {
		if secure != nil {
			served <- httpServer.ServeTLS(&limitedListener{Listener: ln, limits: conns}, "", "")
		} else {
			served <- httpServer.Serve(&limitedListener{Listener: ln, limits: conns})
		}
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	// Shutdown closes the listener at once, so new connections are refused,
	// and waits for the requests in flight, here for at most 10 s.
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if plain != nil {
		plain.Shutdown(shutdownCtx) // redirects and challenges: nothing to finish
	}
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		log.Warn("requests still running after 10 s were cut off")
		httpServer.Close()
	}
	// The mail the requests queued, within the same 10 s: what is not sent
	// by then gets an ERROR line each.
	srv.close(shutdownCtx)
	return nil
}

// listen opens a TCP listener on addr; an error names the fix, and the
// flag (flagName) that sets the address.
func listen(addr, flagName string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s is in use (is another server running?); choose another address with %s", addr, flagName)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot listen on %s: a port below 1024 needs root or the right to bind it "+
			"(sudo setcap cap_net_bind_service=+ep ./jwtnotes), or choose a port above 1023 with %s", addr, flagName)
	}
	return ln, err
}

// checkDataDir makes the data folder if needed and checks that the server
// can write in it, so that a folder it cannot use is named with the fix
// rather than surfacing later as a database error.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data folder %s: %w (choose another with -data)", dir, err)
	}
	probe, err := os.CreateTemp(dir, ".write-test-")
	if err != nil {
		return fmt.Errorf("the data folder %s is not writable (fix its permissions, or choose another with -data): %w", dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}
