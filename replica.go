package main

// replica.go: jwtnotes past one machine, on LiteFS (docs/SCALING.md). One
// node, the primary, writes the database; LiteFS ships each transaction
// to the replicas, each running its own jwtnotes on its copy. A node is a
// replica when the folder of its database (-db, on the LiteFS mount) holds
// LiteFS's .primary file, which names the primary.
//
// On a replica, a request that writes is forwarded to the primary
// (-primary-url) with httputil.ReverseProxy, and its answer waits until
// this node's copy has the primary's transaction, so the client's next
// read here sees its write; every other request is answered here. A
// watcher reads the copy's position (DB-pos, which LiteFS keeps) every
// positionPoll and, when it moves, tells the store, so that no kept answer
// outlives a write made on the primary: a revoked session is refused here
// within positionPoll of LiteFS delivering it.
//
// On the primary, a request from a replica (-forwarders) is taken as coming
// from the client the replica names, and its answer carries the database's
// position after the write.
//
// It knows LiteFS's files and HTTP forwarding; not what the requests do.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// clientHeader is the client's address as a replica saw it, which the
	// primary takes only from a -forwarders address.
	clientHeader = "X-Jwtnotes-Client"
	// positionHeader is the primary's database position after a forwarded
	// write; the replica waits for it and removes it.
	positionHeader = "X-Jwtnotes-Position"
	// positionPoll is how often a replica reads its copy's position.
	positionPoll = 100 * time.Millisecond
	// catchUpLimit bounds how long a forwarded write's answer waits for
	// this node's copy; past it the answer goes (and the log says so).
	catchUpLimit = 2 * time.Second
)

// isLiteFSReplica reports whether dbPath is on a LiteFS replica's mount.
func isLiteFSReplica(dbPath string) bool {
	_, err := os.Stat(filepath.Join(filepath.Dir(dbPath), ".primary"))
	return err == nil
}

// position is the transaction id LiteFS has applied to dbPath's copy
// (DB-pos: "TXID/CHECKSUM", both hexadecimal); 0 when there is none yet.
func position(dbPath string) uint64 {
	data, err := os.ReadFile(dbPath + "-pos")
	if err != nil {
		return 0
	}
	txid, _, _ := strings.Cut(strings.TrimSpace(string(data)), "/")
	n, _ := strconv.ParseUint(txid, 16, 64)
	return n
}

// awaitLiteFSDatabase waits, at most 5 s, for a primary's database that
// its LiteFS mount (a folder with .lag) does not show yet: LiteFS may
// still be loading it, and the store would make a new, empty one in its
// place, for every replica to copy. Past 5 s it is a new cluster's first
// start, and the log says a new database is made.
func awaitLiteFSDatabase(ctx context.Context, dbPath string, log *slog.Logger) {
	if _, err := os.Stat(filepath.Join(filepath.Dir(dbPath), ".lag")); err != nil {
		return // not LiteFS
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(dbPath); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	log.Warn("no database on the LiteFS mount after 5 s: making a new one (a new cluster)", "db", dbPath)
}

// errReplicaNotReady: the copy is not there yet, or not at this program's
// schema: the primary has not migrated it, or LiteFS has not delivered it.
var errReplicaNotReady = errors.New("the replica's database is not ready")

// openReplicaStore opens a replica's store once the primary has brought the
// database to this program's schema, saying in the log while it waits.
func openReplicaStore(ctx context.Context, cfg config, log *slog.Logger) (*store, error) {
	if _, err := primaryOf(cfg); err != nil {
		return nil, err
	}
	settings := cfg.sqliteSettings()
	settings.replica = true
	for said := ""; ; {
		st, err := openStore(ctx, cfg.dataDir, settings)
		if !errors.Is(err, errReplicaNotReady) {
			return st, err
		}
		if err.Error() != said {
			log.Info("waiting for the primary's database (LiteFS)", "why", err.Error())
			said = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// forwardWrites is a replica's handler: local answers the reads; writes go
// to the primary. It starts the watcher of the copy's position, until ctx
// ends.
func forwardWrites(ctx context.Context, cfg config, st *store, clientIP func(*http.Request) string, local http.Handler, log *slog.Logger) (http.Handler, error) {
	primary, err := primaryOf(cfg)
	if err != nil {
		return nil, err
	}
	go watchPosition(ctx, cfg.database(), st)
	proxy := httputil.NewSingleHostReverseProxy(primary)
	proxy.ModifyResponse = func(res *http.Response) error {
		want, _ := strconv.ParseUint(res.Header.Get(positionHeader), 10, 64)
		res.Header.Del(positionHeader)
		started := time.Now()
		if want > 0 && !catchUp(cfg.database(), want) {
			log.Warn("the answer of a forwarded write went before this replica had the write", "position", want,
				"have", position(cfg.database()), "waited", catchUpLimit.String())
		}
		st.replicated() // kept answers predate the write: forget them now, not at the next poll
		log.Info("forwarded", "method", res.Request.Method, "path", res.Request.URL.Path, "status", res.StatusCode,
			"position", want, "caught_up_in", time.Since(started).String())
		return nil
	}
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		log.Error("the primary did not answer a forwarded write", "primary", cfg.primaryURL, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"detail": "The server cannot take writes right now; try again."})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !writes(r) {
			local.ServeHTTP(w, r)
			return
		}
		r.Header.Set(clientHeader, clientIP(r))
		proxy.ServeHTTP(w, r)
	}), nil
}

// primaryOf is -primary-url, which a replica needs.
func primaryOf(cfg config) (*url.URL, error) {
	primary, err := url.Parse(cfg.primaryURL)
	if err != nil || primary.Host == "" || (primary.Scheme != "http" && primary.Scheme != "https") {
		return nil, &usageError{fmt.Sprintf("this node is a LiteFS replica (%s has .primary): -primary-url must be "+
			"the primary jwtnotes' URL, e.g. http://10.0.0.1:8000", filepath.Dir(cfg.database()))}
	}
	return primary, nil
}

// writes reports whether r may write: any method but GET, HEAD and OPTIONS,
// except a token check (POST /api/token/verify/), which only reads.
func writes(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return strings.TrimSuffix(r.URL.Path, "/") != "/api/token/verify"
}

// catchUp waits until dbPath's copy is at want or later, at most
// catchUpLimit, and reports whether it is.
func catchUp(dbPath string, want uint64) bool {
	deadline := time.Now().Add(catchUpLimit)
	for position(dbPath) < want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// watchPosition tells st whenever the copy's position moves, until ctx ends.
func watchPosition(ctx context.Context, dbPath string, st *store) {
	ticker := time.NewTicker(positionPoll)
	defer ticker.Stop()
	last := position(dbPath)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if now := position(dbPath); now != last {
			last = now
			st.replicated()
		}
	}
}

// withPosition is a primary's handler for its replicas: the answer to a
// request from a -forwarders address that writes carries the database's
// position once the write is committed (the handler answers only then).
func withPosition(dbPath string, forwarders []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if writes(r) && fromForwarder(r, forwarders) {
			w = &positionWriter{ResponseWriter: w, dbPath: dbPath}
		}
		next.ServeHTTP(w, r)
	})
}

// fromForwarder reports whether r came from one of the replicas' addresses.
func fromForwarder(r *http.Request, forwarders []string) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	return err == nil && slices.Contains(forwarders, host)
}

// positionWriter adds positionHeader as the answer's header is written.
type positionWriter struct {
	http.ResponseWriter
	dbPath  string
	written bool
}

func (p *positionWriter) WriteHeader(status int) {
	if !p.written {
		p.written = true
		p.Header().Set(positionHeader, strconv.FormatUint(position(p.dbPath), 10))
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *positionWriter) Write(b []byte) (int, error) {
	if !p.written {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (p *positionWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }
