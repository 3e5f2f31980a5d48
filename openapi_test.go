package main

// openapi_test.go: openapi.json (served at /api/schema/) held to the code.
//
// Three ways it could drift, three checks: a route of the table missing
// from the document or one the table lacks (TestSchemaDescribesEveryRoute);
// an answer a handler test saw that the document does not list for that
// operation, or an example no test ever saw (checkAnswersSeen, run by
// TestMain after every test, over every answer the test handler gave); and
// docs/API.md naming other paths or statuses than the document
// (TestAPIReferenceAgreesWithSchema). Linting (redocly) and checking real
// traffic against it (prism) are CI's, in .ci/run.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// openAPI is the part of the document the checks read.
type openAPI struct {
	Paths      map[string]map[string]openAPIOperation `json:"paths"`
	Components struct {
		Responses map[string]openAPIResponse `json:"responses"`
	} `json:"components"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Security    []map[string][]string      `json:"security"`
	Responses   map[string]openAPIResponse `json:"responses"`
}

type openAPIResponse struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Example  json.RawMessage `json:"example"`
		Examples map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"examples"`
	} `json:"content"`
}

func loadOpenAPI(t testing.TB) openAPI {
	t.Helper()
	var doc openAPI
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// response follows a $ref to components.responses.
func (doc openAPI) response(r openAPIResponse) openAPIResponse {
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		return doc.Components.Responses[name]
	}
	return r
}

// operations lists "METHOD /path/" for every operation but the OPTIONS
// preflights, sorted.
func (doc openAPI) operations() []string {
	var ops []string
	for path, methods := range doc.Paths {
		for method := range methods {
			if method != "options" {
				ops = append(ops, strings.ToUpper(method)+" "+path)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

func TestSchemaDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	res := e.do("GET", "/api/", "", "")
	var table []string
	decode(t, res.body, &table)
	sort.Strings(table)
	doc := loadOpenAPI(t)
	ops := doc.operations()
	for _, route := range table {
		if !slices.Contains(ops, route) {
			t.Errorf("the route table has %s; openapi.json does not describe it", route)
		}
	}
	for _, op := range ops {
		if !slices.Contains(table, op) {
			t.Errorf("openapi.json describes %s; the route table has no such route", op)
		}
	}
	for path, methods := range doc.Paths {
		if _, ok := methods["options"]; !ok {
			t.Errorf("openapi.json: %s has no OPTIONS (every path answers a preflight)", path)
		}
		for method, op := range methods {
			if op.OperationID == "" {
				t.Errorf("openapi.json: %s %s has no operationId", method, path)
			}
		}
	}
}

func TestSchemaIsServed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	for _, path := range []string{"/api/schema/", "/api/schema"} {
		res := e.do("GET", path, "", "")
		if res.status != 200 || res.header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q", path, res.status, res.header.Get("Content-Type"))
		}
		var compact bytes.Buffer
		json.Compact(&compact, openAPIDocument)
		if res.body != compact.String() {
			t.Errorf("GET %s is not openapi.json, compacted", path)
		}
	}
	// As drf-spectacular's view under DRF: no token is fine, a bad one is not.
	if res := e.get("/api/schema/", "not-a-token"); res.status != 401 {
		t.Errorf("with an invalid token: %d, want 401", res.status)
	}
}

// ---- every answer the handler tests give, against the document ----

// answerSeen is one answer of the test handler (newTestEnv's).
type answerSeen struct {
	method, path string
	status       int
	body         string
	test         string
}

var answersSeen struct {
	sync.Mutex
	list []answerSeen
}

// recordAnswers wraps the handler of a test environment so that
// checkAnswersSeen can hold the document to what it answered.
func recordAnswers(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &answerRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		answersSeen.Lock()
		answersSeen.list = append(answersSeen.list, answerSeen{r.Method, r.URL.Path, rec.status, rec.body.String(), t.Name()})
		answersSeen.Unlock()
	})
}

type answerRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (rec *answerRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *answerRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.body.Len() < 1<<16 {
		rec.body.Write(b[:min(len(b), 1<<16)])
	}
	return rec.ResponseWriter.Write(b)
}

func (rec *answerRecorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// checkAnswersSeen reports, on w, every answer the tests saw that
// openapi.json does not list for its operation, and (when the whole suite
// ran) every error example that no test saw as an answer, or success
// example whose fields differ from what the tests saw. It returns the exit
// code: 1 if it reported anything.
func checkAnswersSeen(w io.Writer, wholeSuite bool) int {
	var doc openAPI
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		fmt.Fprintln(w, "openapi.json:", err)
		return 1
	}
	// The operations, found as the router finds its routes.
	mux := http.NewServeMux()
	for path, methods := range doc.Paths {
		for method := range methods {
			for _, p := range slashForms(path) {
				mux.Handle(strings.ToUpper(method)+" "+p, http.NotFoundHandler())
			}
		}
	}
	operation := func(a answerSeen) (string, bool) {
		req := httptest.NewRequest(a.method, "http://test"+a.path, nil)
		_, pattern := mux.Handler(req)
		if pattern == "" || !canonicalPath(a.path) {
			return "", false
		}
		method, p, _ := strings.Cut(pattern, " ")
		if method == "GET" && a.method == "HEAD" {
			method = "HEAD"
		}
		p = strings.TrimSuffix(p, "{$}")
		if _, ok := doc.Paths[p]; !ok {
			p += "/"
		}
		return strings.ToLower(method) + " " + p, true
	}

	answersSeen.Lock()
	seen := answersSeen.list
	answersSeen.Unlock()
	bodies := map[string][]string{} // "get /api/notes/ 200" -> bodies
	bodiesByStatus := map[int][]string{}
	problems := map[string]bool{}
	for _, a := range seen {
		op, ok := operation(a)
		if !ok {
			if a.status != 404 && a.status != 405 {
				problems[fmt.Sprintf("%s %s answered %d, but no operation of openapi.json matches it (only 404 and 405 may)", a.method, a.path, a.status)] = true
			}
			continue
		}
		method, path, _ := strings.Cut(op, " ")
		if method == "head" {
			method = "get"
		}
		responses := doc.Paths[path][method].Responses
		if _, ok := responses[strconv.Itoa(a.status)]; !ok {
			problems[fmt.Sprintf("%s answered %d (%s, in %s); openapi.json does not list %d for %s", a.method+" "+a.path, a.status, truncate(a.body, 120), a.test, a.status, op)] = true
		}
		key := method + " " + path + " " + strconv.Itoa(a.status)
		bodies[key] = append(bodies[key], a.body)
		bodiesByStatus[a.status] = append(bodiesByStatus[a.status], a.body)
	}

	if wholeSuite {
		for path, methods := range doc.Paths {
			for method, op := range methods {
				for status, r := range op.Responses {
					code, _ := strconv.Atoi(status)
					for _, example := range jsonExamples(doc.response(r)) {
						if p := checkExample(example, code, bodies[method+" "+path+" "+status], bodiesByStatus[code]); p != "" {
							where := fmt.Sprintf("%s %s %s", method, path, status)
							if code >= 400 {
								where = status // error examples are shared by many operations
							}
							problems[fmt.Sprintf("openapi.json, %s: %s", where, p)] = true
						}
					}
				}
			}
		}
	}
	if len(problems) == 0 {
		return 0
	}
	list := make([]string, 0, len(problems))
	for p := range problems {
		list = append(list, p)
	}
	sort.Strings(list)
	fmt.Fprintln(w, "--- FAIL: the answers of the tests against openapi.json")
	for _, p := range list {
		fmt.Fprintln(w, "    "+p)
	}
	return 1
}

// jsonExamples are the JSON examples of a response, compacted.
func jsonExamples(r openAPIResponse) []string {
	var out []string
	add := func(raw json.RawMessage) {
		var b bytes.Buffer
		if len(raw) > 0 && json.Compact(&b, raw) == nil {
			out = append(out, b.String())
		}
	}
	for _, c := range r.Content {
		add(c.Example)
		for _, e := range c.Examples {
			add(e.Value)
		}
	}
	return out
}

// checkExample says what is wrong with an example ("" if nothing): an error
// example must be, byte for byte but for its numbers, an answer some test
// saw with its status (a quota or a wait is configured differently there);
// a success example must have the fields, in order, of an answer the
// operation gave, and its tokens must be signed with the test key.
func checkExample(example string, status int, opBodies, statusBodies []string) string {
	if status >= 400 {
		digits := regexp.MustCompile(`[0-9]+`)
		if !slices.ContainsFunc(statusBodies, func(b string) bool {
			return digits.ReplaceAllString(b, "N") == digits.ReplaceAllString(example, "N")
		}) {
			return fmt.Sprintf("no test saw the answer %s with status %d", example, status)
		}
		return ""
	}
	if len(opBodies) == 0 {
		return "no test saw this answer"
	}
	shape := fieldNames(example)
	matched := false
	for _, b := range opBodies {
		if fieldNames(b) == shape {
			matched = true
			break
		}
	}
	if !matched {
		return fmt.Sprintf("the example's fields %s are not those of any answer a test saw (%s)", shape, fieldNames(opBodies[0]))
	}
	for _, token := range regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`).FindAllString(example, -1) {
		if !signedWithTestKey(token) {
			return "a token of the example is not signed with the test key: not a real answer"
		}
	}
	return ""
}

// fieldNames is the names of an object's fields in order, nested objects
// included; of a list, its first element's (a list inside an object is
// only marked: the tests' may be empty).
func fieldNames(body string) string {
	dec := json.NewDecoder(strings.NewReader(body))
	var b strings.Builder
	var walk func(record bool, depth int) error
	walk = func(record bool, depth int) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		write := func(s string) {
			if record {
				b.WriteString(s)
			}
		}
		switch tok {
		case json.Delim('{'):
			write("{")
			for dec.More() {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				write(fmt.Sprint(key, " "))
				if err := walk(record, depth+1); err != nil {
					return err
				}
			}
			write("}")
		case json.Delim('['):
			write("[")
			for first := true; dec.More(); first = false {
				if err := walk(record && first && depth == 0, depth+1); err != nil {
					return err
				}
			}
			write("]")
		default:
			return nil
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	walk(true, 0)
	return b.String()
}

// signedWithTestKey reports whether token verifies under the test key at
// the time it was issued.
func signedWithTestKey(token string) bool {
	signer := &tokenSigner{key: testKey}
	for _, kind := range []string{accessToken, refreshToken} {
		var iat struct {
			Iat int64 `json:"iat"`
		}
		parts := strings.Split(token, ".")
		payload, err := decodeSegment(parts[1])
		if err != nil || json.Unmarshal(payload, &iat) != nil {
			return false
		}
		if _, err := signer.verify(token, kind, time.Unix(iat.Iat, 0)); err == nil {
			return true
		}
	}
	return false
}

// ---- docs/API.md, the reference in prose ----

// TestAPIReferenceAgreesWithSchema: docs/API.md names every path of the
// document and no other, and every status the document lists.
func TestAPIReferenceAgreesWithSchema(t *testing.T) {
	t.Parallel()
	ref, err := os.ReadFile("docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(ref)
	doc := loadOpenAPI(t)
	for path := range doc.Paths {
		if !strings.Contains(text, path+"`") && !strings.Contains(text, path+" ") && !strings.Contains(text, path+"?") {
			t.Errorf("docs/API.md never names %s", path)
		}
	}
	// Paths in backquotes, as the reference writes routes.
	for _, m := range regexp.MustCompile("`(?:[A-Z]+ )?(/(?:api|media|assets|healthz)[A-Za-z0-9_/{}-]*)[`?]").FindAllStringSubmatch(text, -1) {
		path := m[1]
		if _, ok := doc.Paths[path]; ok {
			continue
		}
		if _, ok := doc.Paths[path+"/"]; ok {
			continue // the slashless form, named as such
		}
		t.Errorf("docs/API.md names %s; openapi.json has no such path", path)
	}
	statuses := map[string]bool{}
	for _, methods := range doc.Paths {
		for _, op := range methods {
			for status := range op.Responses {
				statuses[status] = true
			}
		}
	}
	for status := range statuses {
		if !regexp.MustCompile(`\b` + status + `\b`).MatchString(text) {
			t.Errorf("openapi.json lists the status %s; docs/API.md never mentions it", status)
		}
	}
}
