package main

// body.go: reading a request's body, whatever its encoding, within the
// memory that bodies may hold at once.
//
// readInput accepts JSON, urlencoded forms and multipart alike, as Django
// REST framework's parsers do, and gives the handlers one *input, whose
// fields input.go reads. Every body is bounded before it is read: by its
// route's size limit, and by the body budget, which every body being read
// draws from.
//
// It knows encodings, limits and DRF's parse errors, not fields or what a
// handler does with them.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
)

// Body limits of the contract: 1 MiB for JSON and forms, and for multipart
// on a route that takes no file; 6 MiB for multipart with files.
const (
	maxFormBody      = 1 << 20
	maxMultipartBody = 6 << 20
)

// bodyKind is what a route's body may hold.
type bodyKind int

const (
	fieldsOnly bodyKind = iota // at most maxFormBody in every encoding
	withFiles                  // multipart up to maxMultipartBody
)

// bodyBudget bounds the memory that request bodies may hold at once: a
// body reserves its size (its Content-Length, or the route's limit when it
// does not say) before a byte of it is read, and gives it back when its
// request is answered. A body that does not fit is refused with 503 at once,
// unread: a hundred slow uploads cannot hold a hundred times 6 MiB.
type bodyBudget struct {
	mu   sync.Mutex
	free int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
}

var errBusy = &apiError{status: http.StatusServiceUnavailable, body: detail{"The server is busy. Try again shortly."},
	header: http.Header{"Retry-After": {"1"}}}

// reserveBody takes room for r's body from the budget; logRequests
// (router.go) gives it back once the request is answered. (A handler
// called without routes()'s middleware, as some tests do, reserves
// nothing.)
func (s *server) reserveBody(r *http.Request, limit int64) error {
	n := limit
	if r.ContentLength >= 0 {
		n = min(r.ContentLength, limit)
	}
	info := requestInfoFrom(r.Context())
	if n == 0 || info == nil {
		return nil
	}
	if !s.bodies.take(n) {
		return errBusy
	}
	info.bodyBytes += n
	return nil
}

// input is a request body, whatever its encoding: values holds what JSON
// gives (string, json.Number, bool, nil, []any, map[string]any) or, for
// forms, strings; files holds multipart file parts.
type input struct {
	values map[string]any
	files  map[string]*multipartFile
}

// has reports whether the body has a field name, as text or as a file.
func (in *input) has(name string) bool {
	_, isValue := in.values[name]
	_, isFile := in.files[name]
	return isValue || isFile
}

type multipartFile struct {
	name string
	data []byte
}

// readInput reads the body as DRF's parsers do: JSON, urlencoded forms and
// multipart alike; an empty body is {}; any other type is 415. kind says
// whether the route takes files, and so how large the body may be.
func (s *server) readInput(w http.ResponseWriter, r *http.Request, kind bodyKind) (*input, error) {
	in := &input{values: map[string]any{}, files: map[string]*multipartFile{}}
	contentType := r.Header.Get("Content-Type")
	mediaType, params, err := mime.ParseMediaType(contentType)
	known := err == nil && (mediaType == "application/json" || mediaType == "application/x-www-form-urlencoded" ||
		mediaType == "multipart/form-data")
	switch {
	case contentType == "" || !known && r.ContentLength == 0:
		return in, nil // DRF reads no body without a Content-Type
	case !known:
		// Quoted as DRF quotes it, not with Go's escapes; JSON escapes the rest.
		return nil, detailError(http.StatusUnsupportedMediaType, `Unsupported media type "`+validText(truncate(contentType, 200))+`" in request.`)
	}
	limit := int64(maxFormBody)
	if kind == withFiles && mediaType == "multipart/form-data" {
		limit = maxMultipartBody
	}
	if err := s.reserveBody(r, limit); err != nil {
		return nil, err
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit) // past it, 413
	switch mediaType {
	case "application/json":
		return in, readJSONBody(r, in)
	case "application/x-www-form-urlencoded":
		return in, readFormBody(r, in)
	}
	return in, readMultipartBody(r, in, params["boundary"])
}

var errTooLarge = detailError(http.StatusRequestEntityTooLarge, "Request body is too large.")

// readAll reads the whole body, or says what a failure to read it means.
func readAll(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, cmp.Or(bodyReadError(err), err)
	}
	return body, nil
}

// Answers to a body that could not be read.
var (
	errBodyCut     = detailError(http.StatusBadRequest, "The request body ended before its Content-Length.")
	errBodyTimeout = detailError(http.StatusRequestTimeout, "The request body did not arrive in time.")
	// errClientGone is a body whose connection broke: nobody is there to
	// answer, and nothing is wrong with the server.
	errClientGone = errors.New("the client went away while sending its body")
)

// bodyReadError says what a failure to read a body means for the client:
// 413, 400 for a body cut short, 408 for one that did not arrive within the
// server's read timeout, errClientGone for a broken connection; nil for
// anything else (a malformed body, which the caller describes).
func bodyReadError(err error) error {
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errBodyCut
	case errors.As(err, &netErr) && netErr.Timeout(), errors.Is(err, os.ErrDeadlineExceeded):
		return errBodyTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.EPIPE):
		return errClientGone
	}
	return nil
}

func readJSONBody(r *http.Request, in *input) error {
	body, err := readAll(r)
	if err != nil || len(body) == 0 {
		return err
	}
	// encoding/json would let invalid UTF-8 through as U+FFFD: refuse it.
	if !utf8.Valid(body) {
		return jsonParseError("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return jsonParseError(describeJSONError(err, body))
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return jsonParseError("Extra data" + jsonPosition(body, len(body)-len(rest)))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		errs := &fieldErrors{}
		errs.add("non_field_errors", notADictionary(v))
		return errs
	}
	in.values = obj
	return nil
}

func jsonParseError(what string) error {
	return detailError(http.StatusBadRequest, "JSON parse error - "+what)
}

// describeJSONError says what is wrong with a JSON body and where, the
// position written as Python's json module writes it.
func describeJSONError(err error, body []byte) string {
	var syntax *json.SyntaxError
	switch {
	case errors.As(err, &syntax):
		return syntax.Error() + jsonPosition(body, int(syntax.Offset)-1)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "Expecting value" + jsonPosition(body, len(body))
	}
	return "invalid JSON"
}

// jsonPosition is ": line L column C (char N)" for byte offset off of body.
func jsonPosition(body []byte, off int) string {
	off = min(max(off, 0), len(body))
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	column := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf(": line %d column %d (char %d)", line, column, utf8.RuneCount(before))
}

// notADictionary is DRF's message for a JSON body that is not an object,
// naming the Python type as DRF does.
func notADictionary(v any) string {
	if v == nil {
		return "No data provided"
	}
	kind := "bool"
	switch v := v.(type) {
	case []any:
		kind = "list"
	case string:
		kind = "str"
	case json.Number:
		kind = "int"
		if strings.ContainsAny(string(v), ".eE") {
			kind = "float"
		}
	}
	return "Invalid data. Expected a dictionary, but got " + kind + "."
}

// validText is s with each invalid UTF-8 sequence replaced by U+FFFD, as
// Django decodes form and multipart text (errors="replace"): no invalid
// UTF-8 is ever stored. (A JSON body with invalid UTF-8 is refused whole.)
func validText(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func readFormBody(r *http.Request, in *input) error {
	body, err := readAll(r)
	if err != nil {
		return err
	}
	form, _ := url.ParseQuery(string(body)) // like Django, keep what parses
	for k, vs := range form {
		in.values[validText(k)] = validText(vs[len(vs)-1]) // the last value wins, as in Django's QueryDict
	}
	return nil
}

func readMultipartBody(r *http.Request, in *input, boundary string) error {
	if boundary == "" {
		return detailError(http.StatusBadRequest, "Multipart form parse error - Invalid boundary in multipart: None")
	}
	// The whole body is at most 6 MiB, so it is kept in memory: nothing
	// reaches a temporary file.
	err := r.ParseMultipartForm(maxMultipartBody + 1<<20)
	if err := bodyReadError(err); err != nil {
		return err
	}
	if err != nil {
		return detailError(http.StatusBadRequest, "Multipart form parse error - Invalid multipart body.")
	}
	for k, vs := range r.MultipartForm.Value {
		in.values[validText(k)] = validText(vs[len(vs)-1]) // the last value wins, as in Django's QueryDict
	}
	for k, fs := range r.MultipartForm.File {
		f, err := fs[len(fs)-1].Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		in.files[k] = &multipartFile{name: fs[len(fs)-1].Filename, data: data}
	}
	return nil
}
