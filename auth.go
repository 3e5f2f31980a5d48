package main

// auth.go: how a request is authenticated, as simplejwt's
// JWTAuthentication does it: the Bearer header, the access token verified
// (tokencache.go, jwt.go), then its user and session looked up (store.go),
// each fault with simplejwt's 401.
//
// It knows the header, the token's verdicts and their answers, not routes:
// the endpoint wrapper (router.go) calls authenticate as a route asks.

import (
	"errors"
	"net/http"
	"strings"
)

// caller is the authenticated user of a request and the claims of their token.
type caller struct {
	user   user
	claims claims
}

// originOf is where r came from, as a security log keeps it: the client's
// address, its user agent, and the session of the caller's token (c may
// be nil).
func (s *server) originOf(r *http.Request, c *caller) origin {
	o := origin{ip: s.clientIP(r), userAgent: truncate(r.UserAgent(), 512)}
	if c != nil {
		o.sessionID = c.claims.SessionID
	}
	return o
}

var (
	errNotAuthenticated = detailError(http.StatusUnauthorized, "Authentication credentials were not provided.")
	errUserNotFound     = &apiError{status: http.StatusUnauthorized, body: detailCode{"User not found", "user_not_found"}}
	errUserInactive     = &apiError{status: http.StatusUnauthorized, body: detailCode{"User is inactive", "user_inactive"}}
)

// authenticate reads "Authorization: Bearer <access token>" as simplejwt
// does, as a route of access who asks: a public route reads no header; an
// optional one takes no header (nil, nil); an authorized one needs it. A
// header that does not hold is the contract's 401. The caller's id goes to
// the request's log line.
func (s *server) authenticate(r *http.Request, who access) (*caller, error) {
	if who == public {
		return nil, nil
	}
	c, err := s.bearer(r)
	if err == nil && c == nil && who == authorized {
		err = errNotAuthenticated
	}
	if info := requestInfoFrom(r.Context()); c != nil && info != nil {
		info.userID = c.user.ID
	}
	return c, err
}

// bearer is the caller of r's Bearer token: nil, nil when there is none.
func (s *server) bearer(r *http.Request) (*caller, error) {
	parts := strings.Fields(r.Header.Get("Authorization"))
	if len(parts) == 0 || parts[0] != "Bearer" {
		return nil, nil // no credentials, or another scheme: not ours to judge
	}
	if len(parts) != 2 {
		return nil, &apiError{status: http.StatusUnauthorized, body: detailCode{
			Detail: "Authorization header must contain two space-delimited values",
			Code:   "bad_authorization_header",
		}}
	}
	now := s.now()
	c, err := s.verified.verifyAccess(parts[1], now)
	if errors.Is(err, errTokenNoUser) {
		return nil, tokenRefused(err)
	}
	if err != nil {
		return nil, &apiError{status: http.StatusUnauthorized, body: invalidAccessToken{
			Detail:   "Given token not valid for any token type",
			Code:     "token_not_valid",
			Messages: []tokenMessage{{TokenClass: "AccessToken", TokenType: "access", Message: verdict(err)}},
		}}
	}
	u, sessionLive, err := s.store.userForAccess(r.Context(), c.UserID, c.SessionID, now)
	switch {
	case errors.Is(err, errNotFound):
		return nil, errUserNotFound
	case err != nil:
		return nil, err
	case !u.IsActive:
		return nil, errUserInactive
	case !sessionLive:
		return nil, errBlacklistedAnswer
	}
	return &caller{user: u, claims: c}, nil
}

type invalidAccessToken struct {
	Detail   string         `json:"detail"`
	Code     string         `json:"code"`
	Messages []tokenMessage `json:"messages"`
}

type tokenMessage struct {
	TokenClass string `json:"token_class"`
	TokenType  string `json:"token_type"`
	Message    string `json:"message"`
}
