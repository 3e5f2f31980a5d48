package main

// answers.go: the one place errors become the contract's answers, and how
// every JSON answer is written.
//
// Handlers return errors; writeError turns each kind into its status and
// DRF-shaped body (field errors 400, apiErrors their own status, a user
// deleted meanwhile 401, a quota 403, a client gone nothing, anything else
// a logged 500 with no detail). writeJSON marshals before it writes, so a
// failure can still become a clean 500.
//
// It knows status codes and bodies, not what any handler does.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// apiError is an answer the API gives on purpose: a status and a DRF-shaped body.
type apiError struct {
	status int
	body   any
	header http.Header // extra headers, such as Retry-After
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %+v", e.status, e.body) }

type detail struct {
	Detail string `json:"detail"`
}

type detailCode struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

func detailError(status int, msg string) *apiError {
	return &apiError{status: status, body: detail{msg}}
}

var errNotFoundAnswer = detailError(http.StatusNotFound, "Not found.")

// tokenRefused is simplejwt's 401 for a token sent in a body.
func tokenRefused(err error) *apiError {
	return &apiError{status: http.StatusUnauthorized, body: detailCode{Detail: verdict(err), Code: "token_not_valid"}}
}

// verdict is the message of a token's refusal (jwt.go's tokenError).
func verdict(err error) string {
	e, _ := err.(tokenError)
	return cmp.Or(string(e), string(errTokenInvalid))
}

// writeError is the one place errors become answers: field errors are 400,
// apiErrors carry their own status, anything else is a bug, logged in full
// and answered 500 without details.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var fields *fieldErrors
	var answer *apiError
	switch {
	case errors.As(err, &fields):
		answer = &apiError{status: http.StatusBadRequest, body: fields}
	case errors.As(err, &answer):
	case errors.Is(err, errUserGone): // deleted while its request ran
		answer = errUserNotFound
	case errors.Is(err, errPasswordChanged): // reset while its request ran, which ended its session too
		answer = errBlacklistedAnswer
	case errors.Is(err, errTooManyNotes):
		answer = detailError(http.StatusForbidden, fmt.Sprintf("Note quota reached: an account keeps at most %d notes.", s.cfg.maxNotes))
	case errors.Is(err, errTooManyBytes):
		answer = detailError(http.StatusForbidden, fmt.Sprintf("Storage quota reached: an account's notes hold at most %d MiB.", s.cfg.maxNotesMB))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil, errors.Is(err, errClientGone):
		return // the client went away; there is no one to answer
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		answer = detailError(http.StatusInternalServerError, "A server error occurred.")
	}
	for name, values := range answer.header {
		w.Header()[name] = values
	}
	if answer.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	writeJSON(w, answer.status, answer.body)
}

// marshalJSON encodes v as DRF renders JSON: compact, and with <, > and &
// left as they are.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// writeJSON marshals v before writing anything, so that a failure can still
// become a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := marshalJSON(v)
	if err != nil {
		return err
	}
	return writeBody(w, status, body)
}

// writeBody writes a JSON answer already encoded.
func writeBody(w http.ResponseWriter, status int, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
