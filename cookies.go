package main

// cookies.go: the refresh token in an HttpOnly cookie, for browsers.
//
// Three routes of their own, so the simplejwt routes stay byte for byte
// what they are: POST /api/token/cookie/ (log in), .../refresh/ and
// .../logout/. They answer the access token in the JSON body and carry the
// refresh token only as a cookie that page scripts cannot read (HttpOnly),
// that the browser sends to these routes only (Path) and never on a request
// another site starts (SameSite=Strict), and that ends with the token.
// Rotation, grace and reuse detection are the JSON flow's (handlers.go).
//
// A cookie is sent by the browser whoever wrote the page, so every request
// to these routes must show that a page of an allowed origin sent it
// (checkCSRF): JSON, which a cross-site form cannot send, and an Origin (or
// Referer) of this server or of -cookie-origins when there is one; a
// Referer that cannot be read is a foreign one. Only those origins get CORS
// with credentials, never "*".
//
// And a cookie can be planted: a page of a sibling subdomain (or anyone on
// a plain-HTTP path) can set a cookie of our name for our host, with a
// longer Path so that the browser sends it first, and a victim would be
// refreshed into the planter's session. So where the cookie is Secure it is
// named __Host-jwtnotes_refresh, which a browser accepts only from this
// host itself, over HTTPS, with Path=/ and no Domain: nobody else can set
// one. On plain HTTP, where anyone on the path can set any cookie, a
// request that carries two refresh cookies is refused (one was planted);
// a planted one alone cannot be told from ours there: HTTPS is the answer.
//
// It knows cookies and where requests come from, not tokens' insides.

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	refreshCookieName = "jwtnotes_refresh"
	refreshCookiePath = "/api/token/cookie" // the three routes, with or without their slash
	// secureCookieName is the cookie's name where it is Secure: a browser
	// keeps a __Host- cookie only if it is Secure, has Path=/ and no
	// Domain, and was set by this host over HTTPS.
	secureCookieName = "__Host-" + refreshCookieName
)

// refreshCookieOf is the refresh cookie's name and Path for r: the
// __Host- cookie where it is Secure, else the plain one of the three
// routes.
func (s *server) refreshCookieOf(r *http.Request) (name, path string) {
	if s.secureCookie(r) {
		return secureCookieName, "/"
	}
	return refreshCookieName, refreshCookiePath
}

// cookieLogin is POST /api/token/cookie/: a login whose refresh token is a
// cookie.
func (s *server) cookieLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.checkCSRF(r); err != nil {
		return err
	}
	tokens, err := s.startSession(w, r)
	if err != nil {
		return err
	}
	return s.answerWithCookie(w, r, tokens)
}

// cookieRefresh is POST /api/token/cookie/refresh/: the cookie's refresh
// token rotated, as POST /api/token/refresh/ rotates one.
func (s *server) cookieRefresh(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.checkCSRF(r); err != nil {
		return err
	}
	old, err := s.readRefreshCookie(w, r)
	if err != nil {
		return err
	}
	tokens, err := s.refreshPair(r, old)
	if err != nil {
		if isTokenRefusal(err) {
			s.clearRefreshCookie(w, r) // it will never work again
		}
		return err
	}
	// What happened to the cookie, which the page cannot see: for the
	// page's token timeline.
	rotation := "rotated"
	if tokens.grace {
		rotation = "grace"
	}
	w.Header().Set("X-Token-Rotation", rotation)
	return s.answerWithCookie(w, r, tokens)
}

// cookieLogout is POST /api/token/cookie/logout/: the cookie's session
// ends and the cookie is cleared, whatever the token was.
func (s *server) cookieLogout(w http.ResponseWriter, r *http.Request, _ *caller) error {
	if err := s.checkCSRF(r); err != nil {
		return err
	}
	old, err := s.readRefreshCookie(w, r)
	s.clearRefreshCookie(w, r)
	if err != nil {
		return err
	}
	if err := s.endSession(r, old); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, struct{}{})
}

// readRefreshCookie reads the body (which must be a JSON object, {} is
// enough; its fields are ignored) and verifies the refresh cookie.
func (s *server) readRefreshCookie(w http.ResponseWriter, r *http.Request) (claims, error) {
	if _, err := s.readInput(w, r, fieldsOnly); err != nil {
		return claims{}, err
	}
	name, _ := s.refreshCookieOf(r) // a cookie of the other name is not ours to read
	var values []string
	for _, c := range r.Cookies() {
		if c.Name == name {
			values = append(values, c.Value)
		}
	}
	switch {
	case len(values) > 1: // one was planted beside ours: which is which cannot be told
		return claims{}, errTwoRefreshCookies
	case len(values) == 0 || values[0] == "":
		return claims{}, errNoRefreshCookie
	}
	c, err := s.tokens.verify(values[0], refreshToken, s.now())
	if err != nil {
		return claims{}, tokenRefused(err)
	}
	return c, nil
}

var (
	errNoRefreshCookie = &apiError{status: http.StatusUnauthorized,
		body: detailCode{"No refresh cookie: log in with POST /api/token/cookie/.", "token_not_valid"}}
	errTwoRefreshCookies = &apiError{status: http.StatusUnauthorized,
		body: detailCode{"Two refresh cookies: one was set by another page. Log in again with POST /api/token/cookie/.", "token_not_valid"}}
)

// isTokenRefusal reports whether err refuses the token itself (so its
// cookie is useless), not the request.
func isTokenRefusal(err error) bool {
	e, ok := err.(*apiError)
	return ok && e.status == http.StatusUnauthorized
}

// answerWithCookie answers {"access": ...} and sets the refresh cookie.
func (s *server) answerWithCookie(w http.ResponseWriter, r *http.Request, tokens signedPair) error {
	exp := time.Unix(tokens.refreshExp, 0)
	name, path := s.refreshCookieOf(r)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: tokens.refresh, Path: path,
		MaxAge: max(1, int(exp.Sub(s.now()).Seconds())), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookie(r),
	})
	return writeJSON(w, http.StatusOK, struct {
		Access string `json:"access"`
	}{tokens.access})
}

// clearRefreshCookie clears the refresh cookie this server sets. (A
// planted one, of another Path or Domain, only its planter can clear.)
func (s *server) clearRefreshCookie(w http.ResponseWriter, r *http.Request) {
	name, path := s.refreshCookieOf(r)
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookie(r)})
}

// secureCookie: Secure when the request came over TLS, when the server's
// public URL is https, or when -secure-cookie says so (behind a proxy that
// ends TLS).
func (s *server) secureCookie(r *http.Request) bool {
	return r.TLS != nil || s.cfg.secureCookie || strings.HasPrefix(s.cfg.publicURL, "https://")
}

// ---- CSRF and CORS for the cookie routes ----

var (
	errCSRFNotJSON = detailError(http.StatusForbidden,
		"CSRF Failed: a request with the refresh cookie must be sent as application/json.")
	errCSRFBadReferer = detailError(http.StatusForbidden, "CSRF Failed: Referer checking failed - Referer is malformed.")
)

// checkCSRF refuses a cookie request that a page of another site could have
// made: one that is not JSON (a form can post urlencoded, multipart or
// text/plain across sites without asking), or whose Origin, or else
// Referer, is neither this server's nor one of -cookie-origins.
func (s *server) checkCSRF(r *http.Request) error {
	if mediaType(r.Header.Get("Content-Type")) != "application/json" {
		return errCSRFNotJSON
	}
	origin, referer := r.Header.Get("Origin"), r.Header.Get("Referer")
	if origin == "" && referer != "" {
		ref, err := url.Parse(referer)
		if err != nil || ref.Scheme == "" || ref.Host == "" {
			return errCSRFBadReferer // unreadable is foreign
		}
		origin = ref.Scheme + "://" + ref.Host
	}
	if origin == "" || origin == s.baseURL(r) || slices.Contains(s.cfg.cookieOrigins, origin) {
		return nil
	}
	return detailError(http.StatusForbidden, "CSRF Failed: Origin checking failed - "+truncate(origin, 200)+
		" does not match any trusted origins.")
}

// cookieCORS lets the origins of -cookie-origins call the cookie routes
// with credentials: their own origin (never "*") and Allow-Credentials.
func (s *server) cookieCORS(h http.Header, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !strings.HasPrefix(r.URL.Path, refreshCookiePath) || !slices.Contains(s.cfg.cookieOrigins, origin) {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "Link, Retry-After, X-Token-Rotation")
}

// mediaType is the media type of a Content-Type, without its parameters,
// in lower case.
func mediaType(contentType string) string {
	t, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}
