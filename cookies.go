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
// Referer) of this server or of -cookie-origins when there is one. Only
// those origins get CORS with credentials, never "*".
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
)

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
	cookie, err := r.Cookie(refreshCookieName)
	if err != nil || cookie.Value == "" {
		return claims{}, errNoRefreshCookie
	}
	c, err := s.tokens.verify(cookie.Value, refreshToken, s.now())
	if err != nil {
		return claims{}, tokenRefused(err)
	}
	return c, nil
}

var errNoRefreshCookie = &apiError{status: http.StatusUnauthorized,
	body: detailCode{"No refresh cookie: log in with POST /api/token/cookie/.", "token_not_valid"}}

// isTokenRefusal reports whether err refuses the token itself (so its
// cookie is useless), not the request.
func isTokenRefusal(err error) bool {
	e, ok := err.(*apiError)
	return ok && e.status == http.StatusUnauthorized
}

// answerWithCookie answers {"access": ...} and sets the refresh cookie.
func (s *server) answerWithCookie(w http.ResponseWriter, r *http.Request, tokens signedPair) error {
	exp := time.Unix(tokens.refreshExp, 0)
	http.SetCookie(w, &http.Cookie{
		Name: refreshCookieName, Value: tokens.refresh, Path: refreshCookiePath,
		MaxAge: max(1, int(exp.Sub(s.now()).Seconds())), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookie(r),
	})
	return writeJSON(w, http.StatusOK, struct {
		Access string `json:"access"`
	}{tokens.access})
}

func (s *server) clearRefreshCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: refreshCookieName, Value: "", Path: refreshCookiePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookie(r)})
}

// secureCookie: Secure when the request came over TLS, when the server's
// public URL is https, or when -secure-cookie says so (behind a proxy that
// ends TLS).
func (s *server) secureCookie(r *http.Request) bool {
	return r.TLS != nil || s.cfg.secureCookie || strings.HasPrefix(s.cfg.publicURL, "https://")
}

// ---- CSRF and CORS for the cookie routes ----

var errCSRFNotJSON = detailError(http.StatusForbidden,
	"CSRF Failed: a request with the refresh cookie must be sent as application/json.")

// checkCSRF refuses a cookie request that a page of another site could have
// made: one that is not JSON (a form can post urlencoded, multipart or
// text/plain across sites without asking), or whose Origin, or else
// Referer, is neither this server's nor one of -cookie-origins.
func (s *server) checkCSRF(r *http.Request) error {
	if mediaType(r.Header.Get("Content-Type")) != "application/json" {
		return errCSRFNotJSON
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		if ref, err := url.Parse(r.Header.Get("Referer")); err == nil && ref.Host != "" {
			origin = ref.Scheme + "://" + ref.Host
		}
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
