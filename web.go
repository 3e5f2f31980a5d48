package main

// web.go: the browser client of GET /, compiled into the binary.
//
// web/ is plain HTML, CSS and JavaScript with no framework; this file only
// serves it, with headers that keep the page to its own files.

import (
	"bytes"
	"cmp"
	"embed"
	"net/http"
	"path"
	"strings"
	"time"
)

// webFiles is the browser client of GET /: plain HTML, CSS and JavaScript,
// compiled into the binary.
//
//go:embed web
var webFiles embed.FS

var webTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// serveWeb is GET / (the page) and GET /assets/{name} (its script and
// style). The Content-Security-Policy lets the page load only its own files
// and talk only to this server: even a note that held a script could not
// run it or send a token anywhere.
func (s *server) serveWeb(w http.ResponseWriter, r *http.Request, _ *caller) error {
	name := cmp.Or(r.PathValue("name"), "index.html")
	data, err := webFiles.ReadFile("web/" + name)
	if err != nil || strings.Contains(name, "/") {
		return errNotFoundAnswer
	}
	h := w.Header()
	h.Set("Content-Type", webTypes[path.Ext(name)])
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; object-src 'none'; "+
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(data))
	return nil
}
