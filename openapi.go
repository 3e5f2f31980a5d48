package main

// openapi.go: GET /api/schema/, the API described in OpenAPI 3.1.
//
// openapi.json is the document, compiled into the binary. It lists every
// route of the table in handlers.go, and every answer the tests see
// (openapi_test.go fails when they differ).
//
// It knows the document, not the routes it describes.

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"
)

// openAPIDocument is openapi.json. It is served compacted, as every answer.
//
//go:embed openapi.json
var openAPIDocument []byte

// serveSchema is GET /api/schema/ (as drf-spectacular's view: an invalid
// token is refused, none is fine).
func (s *server) serveSchema(w http.ResponseWriter, r *http.Request, _ *caller) error {
	return writeBody(w, http.StatusOK, openAPICompact())
}

var openAPICompact = sync.OnceValue(func() []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, openAPIDocument); err != nil {
		panic("openapi.json: " + err.Error()) // a test parses it: unreachable in a build that passed
	}
	return b.Bytes()
})
