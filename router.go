package main

// router.go: how a request reaches its handler.
//
// Each route of the table in handlers.go is registered on an
// http.ServeMux with net/http patterns, with and without its trailing
// slash; every other method on a known path is 405 with an Allow header
// (before any authentication), OPTIONS is a CORS preflight, anything else
// a JSON 404. Around the mux: CORS headers, panic recovery, and one log line
// per request.
//
// It knows routes and middleware, not what any handler does.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// router registers each route on an http.ServeMux with net/http patterns,
// twice (with and without the trailing slash), and answers every other
// method on a known path with 405 and its Allow header, before any
// authentication.
type router struct {
	s       *server
	mux     *http.ServeMux
	methods map[string][]string // path -> methods, in registration order
	paths   []string
	allow   map[string]string // "OPTIONS " + pattern -> Allow header, for unusual methods
	list    []string          // "METHOD /path/", for GET /api/
}

// listRoutes is GET /api/: every route, as registered.
func (rt *router) listRoutes(w http.ResponseWriter, r *http.Request, _ *caller) error {
	return writeJSON(w, http.StatusOK, rt.list)
}

func newRouter(s *server) *router {
	return &router{s: s, mux: http.NewServeMux(), methods: map[string][]string{}, allow: map[string]string{}}
}

func (rt *router) handle(method, path string, who access, h handler) {
	rt.list = append(rt.list, method+" "+path)
	if _, seen := rt.methods[path]; !seen {
		rt.paths = append(rt.paths, path)
	}
	rt.methods[path] = append(rt.methods[path], method)
	serve := rt.s.endpoint(who, h)
	for _, p := range slashForms(path) {
		rt.mux.HandleFunc(method+" "+p, serve)
	}
}

// slashForms gives "/a/b/{$}" and "/a/b" for "/a/b/": {$} keeps the pattern
// from matching everything below the path.
func slashForms(path string) []string {
	if path == "/" {
		return []string{"/{$}"}
	}
	trimmed := strings.TrimSuffix(path, "/")
	return []string{trimmed + "/{$}", trimmed}
}

// standardMethods are those a 405 is registered for explicitly. (A pattern
// without a method would conflict with more specific paths such as
// /api/notes/create beside /api/notes/{id}.)
var standardMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// finish registers the 405 answers and the JSON 404 and returns the handler.
func (rt *router) finish() http.Handler {
	for _, path := range rt.paths {
		methods := rt.methods[path]
		var allowed []string
		for _, m := range methods {
			allowed = append(allowed, m)
			if m == "GET" {
				allowed = append(allowed, "HEAD") // net/http serves HEAD with the GET handler
			}
		}
		allowed = append(allowed, "OPTIONS")
		allow := strings.Join(allowed, ", ")
		for _, m := range standardMethods {
			if slices.Contains(allowed, m) && m != "OPTIONS" {
				continue
			}
			h := rt.s.methodNotAllowed(allow)
			if m == "OPTIONS" {
				h = rt.s.options(allow)
			}
			for _, p := range slashForms(path) {
				rt.mux.HandleFunc(m+" "+p, h)
				if m == "OPTIONS" {
					rt.allow["OPTIONS "+p] = allow
				}
			}
		}
	}
	rt.mux.HandleFunc("/", rt.notFoundOrUnusualMethod)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r.URL.Path) || r.URL.RawPath != "" && !canonicalPath(r.URL.RawPath) {
			rt.s.writeError(w, r, errNotFoundAnswer) // the mux would redirect, with an HTML body
			return
		}
		rt.mux.ServeHTTP(w, r)
	})
}

// canonicalPath reports whether p is a path the mux serves as it is: no
// empty, "." or ".." segment (a decoded %2e%2e counts too). The contract
// has no redirects; anything else is 404.
func canonicalPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for rest := p[1:]; rest != ""; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || seg == "" && more {
			return false
		}
		rest = after
	}
	return true
}

// notFoundOrUnusualMethod answers what no pattern took: a path that is not
// the API's (404), or an unusual method (TRACE, ...) on one that is (405).
func (rt *router) notFoundOrUnusualMethod(w http.ResponseWriter, r *http.Request) {
	probe := r.Clone(r.Context())
	probe.Method = "OPTIONS"
	if _, pattern := rt.mux.Handler(probe); rt.allow[pattern] != "" {
		rt.s.methodNotAllowed(rt.allow[pattern])(w, r)
		return
	}
	rt.s.writeError(w, r, errNotFoundAnswer)
}

func (s *server) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.writeError(w, r, detailError(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method)))
	}
}

// options answers OPTIONS on a known path: a CORS preflight. The cors
// middleware has already allowed the origin (or not); if it did, the answer
// names the route's methods and the two request headers the API reads.
func (s *server) options(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Allow", allow)
		if h.Get("Access-Control-Allow-Origin") != "" {
			h.Set("Access-Control-Allow-Methods", allow)
			// Named, not "*": a wildcard does not cover Authorization.
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "86400")
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// cors marks every answer to an allowed origin, errors and 401s included, so
// that a frontend on another origin can read it. Tokens travel in the
// Authorization header, so no credentials are allowed, except on the cookie
// routes for the origins of -cookie-origins (cookies.go).
func (s *server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			if allowed := s.allowedOrigin(origin); allowed != "" {
				h.Set("Access-Control-Allow-Origin", allowed)
				h.Set("Access-Control-Expose-Headers", "Link, Retry-After")
			}
			s.cookieCORS(h, r)
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin is the Access-Control-Allow-Origin for origin: "*" when
// every origin is allowed, the origin itself when it is listed, else "".
func (s *server) allowedOrigin(origin string) string {
	for _, o := range s.cfg.corsOrigins {
		if o == "*" {
			return "*"
		}
		if o == origin {
			return origin
		}
	}
	return ""
}

// endpoint wraps a handler: authentication as the route asks (auth.go),
// then the handler, then the error answer if either returned one.
func (s *server) endpoint(who access, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r, who)
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

// ---- middleware: CORS, logging, panics ----

// requestInfo is what the log line of a request needs from deeper down,
// and the room its body took from the body budget (body.go), given back
// once it is answered.
type requestInfo struct {
	userID    int64
	bodyBytes int64
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return info
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (rec *statusRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *statusRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// logRequests writes one line per request: method, path, status, duration
// and user id. Never the query string, a header or a body: those can hold
// tokens and passwords.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() { s.bodies.give(info.bodyBytes) }()
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond), "user", info.userID)
	})
}

// recoverPanics turns a panic in a handler into a logged 500, so that a bug
// costs one request its answer and not the connection.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
