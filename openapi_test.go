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
	"cmp"
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

// answerSeen is what checkAnswersSeen needs of an answer of the test
// handler (newTestEnv's). Answers are kept as a set, so memory stays
// bounded however many requests a test (or the scale benchmark) makes.
type answerSeen struct {
	operation string // "get /api/notes/", or "" when no operation matches
	request   string // "GET /api/notes/1/": where it was seen, for the report
	status    int
	summary   string // an error's errorShape; a success's fieldNames
}

var answersSeen struct {
	sync.Mutex
	set  map[answerSeen]string // -> the first test that saw it
	find func(method, path string) string
}

// recordAnswers wraps the handler of a test environment so that
// checkAnswersSeen can hold the document to what it answered.
func recordAnswers(t testing.TB, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &answerRecorder{statusRecorder: statusRecorder{ResponseWriter: w}}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		answersSeen.Lock()
		defer answersSeen.Unlock()
		if answersSeen.set == nil {
			answersSeen.set = map[answerSeen]string{}
			answersSeen.find = operationFinder(openAPIDocument)
		}
		a := answerSeen{operation: answersSeen.find(r.Method, r.URL.Path), status: rec.status}
		if a.operation == "" || !strings.HasPrefix(a.operation, "get ") && !strings.HasPrefix(a.operation, "head ") {
			a.request = r.Method + " " + r.URL.Path // few: a set of them stays small
		}
		if rec.status >= 400 {
			a.summary = errorShape(truncate(rec.body.String(), 1000))
		} else {
			a.summary = fieldNames(rec.body.String())
		}
		if _, ok := answersSeen.set[a]; !ok {
			answersSeen.set[a] = t.Name()
		}
	})
}

var (
	numbers       = regexp.MustCompile(`[0-9]+`)
	mfaTokenValue = regexp.MustCompile(`"mfa_token":"[A-Za-z0-9_-]{43}"`)
)

// errorShape is an error body as the examples are held to it: its numbers
// as N, and a login's random mfa_token as T.
func errorShape(body string) string {
	return numbers.ReplaceAllString(mfaTokenValue.ReplaceAllString(body, `"mfa_token":"T"`), "N")
}

// answerRecorder is the log's statusRecorder (router.go) that keeps the
// body too, its first MiB.
type answerRecorder struct {
	statusRecorder
	body bytes.Buffer
}

func (rec *answerRecorder) Write(b []byte) (int, error) {
	if rec.body.Len() < 1<<20 {
		rec.body.Write(b[:min(len(b), 1<<20)])
	}
	return rec.statusRecorder.Write(b)
}

// operationFinder finds the document's operation for a request as the
// router finds its route: "get /api/notes/{id}/", or "" when none matches
// (a HEAD is its GET).
func operationFinder(document []byte) func(method, path string) string {
	var doc openAPI
	if err := json.Unmarshal(document, &doc); err != nil {
		panic(err) // TestSchemaDescribesEveryRoute reports it
	}
	mux := http.NewServeMux()
	for path, methods := range doc.Paths {
		for method := range methods {
			for _, p := range slashForms(path) {
				op := method + " " + path
				mux.Handle(strings.ToUpper(method)+" "+p, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					io.WriteString(w, op)
				}))
			}
		}
	}
	return func(method, path string) string {
		if !canonicalPath(path) {
			return ""
		}
		if method == "HEAD" {
			method = "GET"
		}
		req := httptest.NewRequest(method, "http://test"+path, nil)
		h, pattern := mux.Handler(req)
		if pattern == "" {
			return ""
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Body.String()
	}
}

// checkAnswersSeen reports, on w, every answer the tests saw that
// openapi.json does not list for its operation, and (when the whole suite
// ran) every example that is not like an answer the tests saw. It returns
// the exit code: 1 if it reported anything.
func checkAnswersSeen(w io.Writer, wholeSuite bool) int {
	var doc openAPI
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		fmt.Fprintln(w, "openapi.json:", err)
		return 1
	}
	answersSeen.Lock()
	seen := answersSeen.set
	answersSeen.Unlock()
	summaries := map[string][]string{} // "get /api/notes/ 200" -> what the tests saw
	errorsByStatus := map[int][]string{}
	problems := map[string]bool{}
	for a, test := range seen {
		if a.operation == "" {
			if a.status != 404 && a.status != 405 {
				problems[fmt.Sprintf("%s answered %d, but no operation of openapi.json matches it (only 404 and 405 may)", a.request, a.status)] = true
			}
			continue
		}
		method, path, _ := strings.Cut(a.operation, " ")
		if _, ok := doc.Paths[path][method].Responses[strconv.Itoa(a.status)]; !ok {
			problems[fmt.Sprintf("%s answered %d (%s, in %s); openapi.json does not list %d for %s",
				cmp.Or(a.request, a.operation), a.status, truncate(a.summary, 120), test, a.status, a.operation)] = true
		}
		key := a.operation + " " + strconv.Itoa(a.status)
		summaries[key] = append(summaries[key], a.summary)
		if a.status >= 400 {
			errorsByStatus[a.status] = append(errorsByStatus[a.status], a.summary)
		}
	}

	if wholeSuite {
		for path, methods := range doc.Paths {
			for method, op := range methods {
				for status, r := range op.Responses {
					code, _ := strconv.Atoi(status)
					for _, example := range jsonExamples(doc.response(r)) {
						if p := checkExample(example, code, summaries[method+" "+path+" "+status], errorsByStatus[code]); p != "" {
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
func checkExample(example string, status int, opSummaries, errorSummaries []string) string {
	if status >= 400 {
		if !slices.Contains(errorSummaries, errorShape(example)) {
			return fmt.Sprintf("no test saw the answer %s with status %d", example, status)
		}
		return ""
	}
	if len(opSummaries) == 0 {
		return "no test saw this answer"
	}
	if shape := fieldNames(example); !slices.Contains(opSummaries, shape) {
		return fmt.Sprintf("the example's fields %s are not those of any answer a test saw (%s)", shape, opSummaries[0])
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

// signedWithTestKey reports whether token verifies under the test key (as
// JWT_SECRET, the examples' server's key) at the time it was issued.
func signedWithTestKey(token string) bool {
	ring, err := loadKeyring(func(string) string { return string(testKey) }, "", time.Now(), algHS256)
	if err != nil {
		return false
	}
	signer := newTokenSigner(ring)
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
