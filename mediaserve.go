package main

// mediaserve.go: the uploaded images, served: GET /media/covers/{name}
// and /media/images/{name}.
//
// Only names that saveMedia (media.go) gives are served, from the media
// folder's os.Root, with headers that make a browser treat a file as an
// image and nothing else.
//
// It knows names, types and headers, not where a file came from.

import (
	"errors"
	"net/http"
	"regexp"
)

// mediaFileName matches the names saveMedia gives: nothing else is served.
var mediaFileName = regexp.MustCompile(`^[0-9a-f]{32}\.(png|jpg|gif)$`)

var mediaTypes = map[string]string{"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}

// serveMedia is GET /media/covers/{name} and /media/images/{name}: an
// uploaded image, with the type detected at upload. The headers make a
// browser treat it as an image and nothing else.
func (s *server) serveMedia(folder string) handler {
	return func(w http.ResponseWriter, r *http.Request, _ *caller) error {
		name := r.PathValue("name")
		m := mediaFileName.FindStringSubmatch(name)
		if m == nil {
			return errNotFoundAnswer
		}
		f, err := s.store.openMediaFile(folder + "/" + name)
		if errors.Is(err, errNotFound) {
			return errNotFoundAnswer
		}
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil || !info.Mode().IsRegular() {
			return errNotFoundAnswer
		}
		h := w.Header()
		h.Set("Content-Type", mediaTypes[m[1]])
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		h.Set("Cache-Control", "public, max-age=31536000, immutable") // a name is never reused
		http.ServeContent(w, r, "", info.ModTime(), f)
		return nil
	}
}
