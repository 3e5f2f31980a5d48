package main

// web.go: the browser client of GET / and the API reference of
// GET /api/docs/, compiled into the binary.
//
// web/ is plain HTML, CSS and JavaScript with no framework; this file only
// serves it, with headers that keep each page to its own files.

import (
	"bytes"
	"cmp"
	"embed"
	"net/http"
	"path"
	"strings"
	"time"
)

// webFiles are the two pages (index.html, docs.html) and their scripts and
// style: plain HTML, CSS and JavaScript, compiled into the binary.
//
//go:embed web
var webFiles embed.FS

var webTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// serveWeb answers the file of web/ named page: GET / is index.html (the
// page), GET /api/docs/ docs.html (the API's reference, read from
// openapi.json in the browser), and GET /assets/{name} (page "") their
// scripts and style. The Content-Security-Policy lets a page load only its
// own files and talk only to this server: even a note that held a script
// could not run it or send a token anywhere.
func (s *server) serveWeb(page string) handler {
	return func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		name := cmp.Or(page, r.PathValue("name"))
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
}
