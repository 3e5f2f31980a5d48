package main

// cookies_test.go: the refresh token as an HttpOnly cookie: its attributes,
// rotation with grace and reuse detection as in the JSON flow, logout, and
// the CSRF and CORS rules of the cookie routes.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// refreshCookie is the refresh cookie an answer sets (jwtnotes_refresh,
// or __Host-jwtnotes_refresh where it is Secure), or nil.
func refreshCookie(res response) *http.Cookie {
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == refreshCookieName || c.Name == secureCookieName {
			return c
		}
	}
	return nil
}

// cookieCall posts JSON {} to a cookie route with the refresh cookie.
func (e *testEnv) cookieCall(path, cookie string, headers ...string) response {
	return e.do("POST", path, "application/json", "{}", append([]string{"Cookie", refreshCookieName + "=" + cookie}, headers...)...)
}

func TestCookieLoginRotateLogout(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	res := e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`)
	var body map[string]string
	decode(t, res.body, &body)
	c := refreshCookie(res)
	if res.status != 200 || len(body) != 1 || body["access"] == "" || c == nil {
		t.Fatalf("cookie login: %d %s %v", res.status, res.body, res.header["Set-Cookie"])
	}
	raw := res.header.Get("Set-Cookie")
	// Max-Age: the refresh lifetime (50 days) less the fraction of a second
	// of the test clock, since exp is whole seconds: never past the token.
	for _, want := range []string{"Path=/api/token/cookie", "HttpOnly", "SameSite=Strict", "Max-Age=4319999"} {
		if !strings.Contains(raw, want) {
			t.Errorf("Set-Cookie %q lacks %s", raw, want)
		}
	}
	if strings.Contains(raw, "Secure") {
		t.Errorf("Secure on plain HTTP without -secure-cookie: %q", raw)
	}
	if claims := decodeClaims(t, c.Value); claims["token_type"] != "refresh" {
		t.Errorf("the cookie holds %v, want a refresh token", claims["token_type"])
	}
	if res := e.get("/api/profile/", body["access"]); res.status != 200 {
		t.Errorf("the access token: %d", res.status)
	}

	// Rotation: a new access token and a new cookie; the old cookie again
	// within the grace period gets the same new cookie.
	first := e.cookieCall("/api/token/cookie/refresh/", c.Value)
	next := refreshCookie(first)
	if first.status != 200 || next == nil || next.Value == c.Value || strings.Contains(first.body, "refresh") {
		t.Fatalf("cookie refresh: %d %s", first.status, first.body)
	}
	again := e.cookieCall("/api/token/cookie/refresh/", c.Value)
	if again.status != 200 || refreshCookie(again).Value != next.Value {
		t.Errorf("the same cookie within the grace period: %d, same new token %v", again.status, refreshCookie(again).Value == next.Value)
	}
	if a, b := first.header.Get("X-Token-Rotation"), again.header.Get("X-Token-Rotation"); a != "rotated" || b != "grace" {
		t.Errorf("X-Token-Rotation: %q then %q, want rotated then grace", a, b)
	}
	// After the grace period the old cookie is reuse: the session ends, and
	// the cookie is cleared.
	e.clock.advance(time.Minute)
	reuse := e.cookieCall("/api/token/cookie/refresh/", c.Value)
	want(t, reuse, 401, bodyBlacklisted)
	if cleared := refreshCookie(reuse); cleared == nil || cleared.MaxAge >= 0 {
		t.Errorf("a refused cookie is not cleared: %v", reuse.header["Set-Cookie"])
	}
	if res := e.cookieCall("/api/token/cookie/refresh/", next.Value); res.status != 401 {
		t.Errorf("the session's newest cookie after reuse was detected: %d", res.status)
	}

	// Logout: the session ends, the cookie is cleared.
	res = e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`)
	c = refreshCookie(res)
	decode(t, res.body, &body)
	out := e.cookieCall("/api/token/cookie/logout/", c.Value)
	want(t, out, 200, `{}`)
	if cleared := refreshCookie(out); cleared == nil || cleared.MaxAge >= 0 || cleared.Value != "" {
		t.Errorf("logout does not clear the cookie: %v", out.header["Set-Cookie"])
	}
	if res := e.get("/api/profile/", body["access"]); res.status != 401 {
		t.Errorf("the access token after a cookie logout: %d", res.status)
	}
	if res := e.cookieCall("/api/token/cookie/refresh/", c.Value); res.status != 401 {
		t.Errorf("the cookie after logout: %d", res.status)
	}
	// No cookie at all.
	res = e.do("POST", "/api/token/cookie/refresh/", "application/json", "{}")
	if res.status != 401 || !strings.Contains(res.body, "No refresh cookie") {
		t.Errorf("refresh without a cookie: %d %s", res.status, res.body)
	}
}

// TestCookieEndsWithItsSession: the cookie expires with the token, whose
// exp is capped at the session's end; Secure when the server says so.
func TestCookieEndsWithItsSession(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.sessionTTL = time.Hour; c.secureCookie = true })
	e.register("alice")
	res := e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`)
	c := refreshCookie(res)
	if c == nil || c.MaxAge != 3599 || !c.Secure { // the hour, less the test clock's fraction of a second
		t.Errorf("with a one-hour session and -secure-cookie: %v", res.header["Set-Cookie"])
	}
}

// TestPlantedRefreshCookieNeverWins: a cookie of our name set by another
// page (a sibling subdomain, with a longer Path so that it comes first)
// never refreshes anyone into its planter's session. Secure, the cookie is
// __Host-jwtnotes_refresh, which nobody else can set, and a plain one
// beside it is not read; on plain HTTP, two of them are refused.
func TestPlantedRefreshCookieNeverWins(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{true, false} {
		t.Run(map[bool]string{true: "Secure", false: "plain HTTP"}[secure], func(t *testing.T) {
			e := newTestEnv(t, func(c *config) { c.secureCookie = secure })
			e.register("victim")
			e.register("planter")
			login := func(name string) *http.Cookie {
				res := e.do("POST", "/api/token/cookie/", "application/json", `{"username":"`+name+`","password":"`+testPassword+`"}`)
				return refreshCookie(res)
			}
			victim, planter := login("victim"), login("planter")
			wantName, wantPath := map[bool]string{true: secureCookieName, false: refreshCookieName}[secure],
				map[bool]string{true: "/", false: refreshCookiePath}[secure]
			if victim.Name != wantName || victim.Path != wantPath || victim.Secure != secure {
				t.Fatalf("the cookie: %s, Path %s, Secure %v", victim.Name, victim.Path, victim.Secure)
			}
			// The planted cookie first, as a browser sends the longer Path.
			planted := refreshCookieName + "=" + planter.Value + "; " + victim.Name + "=" + victim.Value
			res := e.do("POST", "/api/token/cookie/refresh/", "application/json", "{}", "Cookie", planted)
			if secure {
				if res.status != 200 || decodeClaims(t, refreshCookie(res).Value)["username"] != "victim" {
					t.Errorf("a plain cookie beside the __Host- one: %d %s", res.status, res.body)
				}
				return
			}
			want(t, res, 401, `{"detail":"Two refresh cookies: one was set by another page. Log in again with POST /api/token/cookie/.","code":"token_not_valid"}`)
		})
	}
}

func TestCookieRoutesRefuseCrossSiteRequests(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(c *config) { c.cookieOrigins = []string{"http://app.example"} })
	e.register("alice")
	login := e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`)
	cookie := refreshCookie(login).Value
	notJSON := `{"detail":"CSRF Failed: a request with the refresh cookie must be sent as application/json."}`
	for _, ct := range []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain", ""} {
		res := e.do("POST", "/api/token/cookie/refresh/", ct, "", "Cookie", refreshCookieName+"="+cookie, "Origin", "http://evil.example")
		want(t, res, 403, notJSON)
	}
	res := e.cookieCall("/api/token/cookie/refresh/", cookie, "Origin", "http://evil.example")
	want(t, res, 403, `{"detail":"CSRF Failed: Origin checking failed - http://evil.example does not match any trusted origins."}`)
	res = e.cookieCall("/api/token/cookie/logout/", cookie, "Referer", "http://evil.example/page")
	if res.status != 403 {
		t.Errorf("a Referer of another site: %d", res.status)
	}
	// A Referer that cannot be read is a foreign one, on every cookie route.
	for _, referer := range []string{"http://evil.example/%zz", "::", "evil.example/page", "http://%41:8080/"} {
		for _, path := range []string{"/api/token/cookie/", "/api/token/cookie/refresh/", "/api/token/cookie/logout/"} {
			t.Run("POST "+path+" Referer "+referer, func(t *testing.T) {
				res := e.cookieCall(path, cookie, "Referer", referer)
				want(t, res, 403, `{"detail":"CSRF Failed: Referer checking failed - Referer is malformed."}`)
			})
		}
	}
	res = e.do("POST", "/api/token/cookie/", "application/json", `{"username":"alice","password":"`+testPassword+`"}`, "Origin", "http://evil.example")
	if res.status != 403 || refreshCookie(res) != nil {
		t.Errorf("a cross-site login: %d, cookie %v", res.status, refreshCookie(res))
	}

	// The server's own origin, and a -cookie-origins origin with
	// credentials (its own origin, never "*").
	res = e.cookieCall("/api/token/cookie/refresh/", cookie, "Origin", "http://127.0.0.1:8000") // the -addr
	if res.status != 200 {
		t.Fatalf("from the server's own origin: %d %s", res.status, res.body)
	}
	cookie = refreshCookie(res).Value
	res = e.cookieCall("/api/token/cookie/refresh/", cookie, "Origin", "http://app.example")
	if res.status != 200 || res.header.Get("Access-Control-Allow-Origin") != "http://app.example" ||
		res.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("from a cookie origin: %d, %v", res.status, res.header)
	}
	pre := e.do("OPTIONS", "/api/token/cookie/refresh/", "", "", "Origin", "http://app.example", "Access-Control-Request-Method", "POST")
	if pre.header.Get("Access-Control-Allow-Credentials") != "true" || pre.header.Get("Access-Control-Allow-Origin") != "http://app.example" {
		t.Errorf("the preflight of a cookie origin: %v", pre.header)
	}
	for _, path := range []string{"/api/token/cookie/refresh/", "/api/token/refresh/", "/api/notes/"} {
		pre := e.do("OPTIONS", path, "", "", "Origin", "http://other.example", "Access-Control-Request-Method", "POST")
		if pre.header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("OPTIONS %s from an origin not in -cookie-origins allows credentials", path)
		}
	}
	if _, err := parseConfig([]string{"-cookie-origins", "*"}, envOf(nil), io.Discard); err == nil {
		t.Error("-cookie-origins * was accepted")
	}
}
