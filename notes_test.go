package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// ---- helpers ----

func listIDs(t *testing.T, res response) []int64 {
	t.Helper()
	if res.status != 200 {
		t.Fatalf("list: %d %s", res.status, res.body)
	}
	var notes []noteJSON
	if err := json.Unmarshal([]byte(res.body), &notes); err != nil {
		t.Fatal(err)
	}
	ids := []int64{}
	for _, n := range notes {
		ids = append(ids, n.ID)
	}
	return ids
}

// multipartBody builds a multipart form of fields and one file.
func multipartBody(fields map[string]string, fileField, fileName string, file []byte) (contentType, body string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if fileField != "" {
		fw, _ := mw.CreateFormFile(fileField, fileName)
		fw.Write(file)
	}
	mw.Close()
	return mw.FormDataContentType(), b.String()
}

func pngImage(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{200, 10, 10, 255})
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func jpegImage() []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 4, 3)), nil)
	return b.Bytes()
}

// gifImage claims a logical screen of w×h pixels in its header, which is
// what image.DecodeConfig reads.
func gifImage(w, h int) []byte {
	var b bytes.Buffer
	gif.Encode(&b, image.NewPaletted(image.Rect(0, 0, 1, 1), []color.Color{color.Black, color.White}), nil)
	data := b.Bytes()
	data[6], data[7], data[8], data[9] = byte(w), byte(w>>8), byte(h), byte(h>>8)
	return data
}

// mediaFiles lists the files stored under DATA_DIR/media/folder.
func (e *testEnv) mediaFiles(folder string) []string {
	e.t.Helper()
	e.srv.store.waitForRemovals() // the sweeper has deleted what the writes so far left unnamed
	entries, err := os.ReadDir(filepath.Join(e.srv.cfg.dataDir, "media", folder))
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names
}

var noteJSONPattern = regexp.MustCompile(`^\{"id":\d+,"title":".*","body":".*","cover_image":(null|"/media/images/[0-9a-f]{32}\.(png|jpg|gif)"),"is_public":(true|false),"user":\d+,"created":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z","updated":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"\}$`)

// ---- notes ----

func TestNotesCreateReadUpdateDelete(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice").Access

	res := e.withToken("POST", "/api/notes/", alice, `{"title":"First","body":"Hello <world> & all","is_public":false,"user":999,"id":77}`)
	want(t, res, 201, fmt.Sprintf(`{"id":1,"title":"First","body":"Hello <world> & all","cover_image":null,"is_public":false,`+
		`"user":%d,"created":"2026-11-29T12:00:00.123456Z","updated":"2026-11-29T12:00:00.123456Z"}`, aliceID))
	// The other URL style, a form, and defaults for what is left out.
	res = e.do("POST", "/api/notes/create/", "application/x-www-form-urlencoded", "is_public=on",
		"Authorization", "Bearer "+alice)
	want(t, res, 201, fmt.Sprintf(`{"id":2,"title":"","body":"","cover_image":null,"is_public":true,`+
		`"user":%d,"created":"2026-11-29T12:00:00.123456Z","updated":"2026-11-29T12:00:00.123456Z"}`, aliceID))

	want(t, e.get("/api/notes/1/", alice), 200, fmt.Sprintf(`{"id":1,"title":"First","body":"Hello <world> & all","cover_image":null,`+
		`"is_public":false,"user":%d,"created":"2026-11-29T12:00:00.123456Z","updated":"2026-11-29T12:00:00.123456Z"}`, aliceID))

	e.clock.advance(time.Second)
	for _, tc := range []struct{ method, path, body, title, text string }{
		{"PATCH", "/api/notes/1/", `{"title":"Renamed"}`, "Renamed", "Hello <world> & all"},
		{"PUT", "/api/notes/1/update/", `{"body":"only the body"}`, "Renamed", "only the body"},
		{"PUT", "/api/notes/1", `{"is_public":"yes","user":2}`, "Renamed", "only the body"},
		{"PATCH", "/api/notes/1/update/", `{"body":"patched"}`, "Renamed", "patched"},
	} {
		res := e.withToken(tc.method, tc.path, alice, tc.body)
		var n noteJSON
		decode(t, res.body, &n)
		if res.status != 200 || n.Title != tc.title || n.Body != tc.text || n.User != aliceID || !noteJSONPattern.MatchString(res.body) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, res.status, res.body)
		}
	}
	if got := e.get("/api/notes/1/", alice).body; !strings.Contains(got, `"updated":"2026-11-29T12:00:01.123456Z"`) ||
		!strings.Contains(got, `"created":"2026-11-29T12:00:00.123456Z"`) || !strings.Contains(got, `"is_public":true`) {
		t.Errorf("after the updates: %s", got)
	}

	res = e.withToken("DELETE", "/api/notes/1/delete/", alice, "")
	if res.status != 204 || res.body != "" {
		t.Errorf("delete: %d %s", res.status, res.body)
	}
	want(t, e.get("/api/notes/1/", alice), 404, `{"detail":"Not found."}`)
	want(t, e.withToken("DELETE", "/api/notes/2/", alice, ""), 204, "")
	want(t, e.get("/api/notes/abc/", alice), 404, `{"detail":"Not found."}`)
	want(t, e.do("GET", "/api/notes/", "", ""), 401, bodyNotAuthenticated)
}

func TestNoteFieldErrors(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	tests := []struct{ body, want string }{
		{`{"title":"` + strings.Repeat("t", 101) + `","body":null,"is_public":"maybe"}`,
			`{"title":["Ensure this field has no more than 100 characters."],"body":["This field may not be null."],"is_public":["Must be a valid boolean."]}`},
		{`{"title":{},"is_public":null}`, `{"title":["Not a valid string."],"is_public":["This field may not be null."]}`},
		{`{"is_public":2}`, `{"is_public":["Must be a valid boolean."]}`},
		{`{"cover_image":"http://example.com/x.png"}`, `{"cover_image":["The submitted data was not a file. Check the encoding type on the form."]}`},
	}
	for _, tt := range tests {
		want(t, e.withToken("POST", "/api/notes/", alice, tt.body), 400, tt.want)
	}
	// Booleans as browsers and clients send them.
	for value, public := range map[string]bool{"true": true, "false": false, "on": true, "1": true, "0": false, "TRUE": true, "No": false} {
		res := e.do("POST", "/api/notes/", "application/x-www-form-urlencoded", "is_public="+value, "Authorization", "Bearer "+alice)
		if res.status != 201 || !strings.Contains(res.body, fmt.Sprintf(`"is_public":%v`, public)) {
			t.Errorf("is_public=%s: %d %s", value, res.status, res.body)
		}
	}
	if n := e.count(`SELECT count(*) FROM notes WHERE title != ''`); n != 0 {
		t.Errorf("an invalid note was saved")
	}
}

// TestNoteVisibility: someone else's private note is 404 for every method,
// their public note is readable and 403 to change, and nothing changes.
func TestNoteVisibility(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	e.register("bob")
	bob := e.login("bob").Access
	private := e.createNote(alice, `{"title":"secret","body":"private"}`)
	public := e.createNote(alice, `{"title":"hello","body":"public","is_public":true}`)
	before := e.get(fmt.Sprintf("/api/notes/%d/", public.ID), alice).body

	for _, tc := range []struct {
		note   noteJSON
		status int
		body   string
	}{
		{private, 404, `{"detail":"Not found."}`},
		{public, 403, `{"detail":"You do not have permission to perform this action."}`},
		{noteJSON{ID: 999}, 404, `{"detail":"Not found."}`},
	} {
		id := tc.note.ID
		for _, req := range []struct{ method, path string }{
			{"PUT", "/api/notes/%d/"}, {"PATCH", "/api/notes/%d/"}, {"DELETE", "/api/notes/%d/"},
			{"PUT", "/api/notes/%d/update/"}, {"PATCH", "/api/notes/%d/update/"}, {"DELETE", "/api/notes/%d/delete/"},
		} {
			t.Run(req.method+" "+fmt.Sprintf(req.path, id), func(t *testing.T) {
				res := e.withToken(req.method, fmt.Sprintf(req.path, id), bob, `{"title":"pwned","is_public":true,"user":2}`)
				want(t, res, tc.status, tc.body)
			})
		}
	}
	want(t, e.get(fmt.Sprintf("/api/notes/%d/", private.ID), bob), 404, `{"detail":"Not found."}`)
	if res := e.get(fmt.Sprintf("/api/notes/%d/", public.ID), bob); res.body != before {
		t.Errorf("bob reading the public note: %d %s", res.status, res.body)
	}
	if res := e.get(fmt.Sprintf("/api/notes/%d/", private.ID), alice); !strings.Contains(res.body, `"title":"secret"`) {
		t.Errorf("the private note changed: %s", res.body)
	}
	if n := e.count(`SELECT count(*) FROM notes WHERE title = 'pwned' OR user_id != 1`); n != 0 {
		t.Error("bob changed alice's notes")
	}
	// Bob's own note cannot be given to alice.
	mine := e.createNote(bob, `{"title":"bob's","user":1}`)
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", mine.ID), bob, `{"user":1}`)
	if n := e.count(`SELECT count(*) FROM notes WHERE user_id = 2`); n != 1 {
		t.Error("a note changed owner")
	}
}

func TestListNotes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	e.register("bob")
	bob := e.login("bob").Access

	a1 := e.createNote(alice, `{"title":"Alice private","body":"groceries"}`)
	e.clock.advance(time.Second)
	b1 := e.createNote(bob, `{"title":"Bob public","body":"100% sure_thing","is_public":true}`)
	e.clock.advance(time.Second)
	e.createNote(bob, `{"title":"Bob private","body":"diary"}`)
	e.clock.advance(time.Second)
	a2 := e.createNote(alice, `{"title":"ÉCOLE public","body":"notes","is_public":true}`)
	e.clock.advance(time.Second)
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", a1.ID), alice, `{"body":"groceries, milk"}`)

	tests := []struct {
		query string
		want  []int64
	}{
		{"", []int64{a1.ID, a2.ID, b1.ID}},
		{"?mine=1", []int64{a1.ID, a2.ID}},
		{"?mine=0", []int64{a1.ID, a2.ID, b1.ID}},
		{"?q=MILK", []int64{a1.ID}},
		{"?q=école", []int64{a2.ID}},
		{"?q=%25", []int64{b1.ID}}, // "%" is a character, not a wildcard
		{"?q=_", []int64{b1.ID}},   // so is "_"
		{"?q=s_re", []int64{}},     // and matches no "sure"
		{"?q=diary", []int64{}},    // bob's private note
		{"?q=public&mine=1", []int64{a2.ID}},
		{"?limit=2", []int64{a1.ID, a2.ID}},
		{"?limit=2&offset=2", []int64{b1.ID}},
		{"?offset=5", []int64{}},
		{"?limit=1000", []int64{a1.ID, a2.ID, b1.ID}},
	}
	for _, tt := range tests {
		got := listIDs(t, e.get("/api/notes/"+tt.query, alice))
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("GET /api/notes/%s = %v, want %v", tt.query, got, tt.want)
		}
	}
	if got := listIDs(t, e.get("/api/notes/", bob)); len(got) != 3 {
		t.Errorf("bob sees %v, want his two and alice's public one", got)
	}

	for query, body := range map[string]string{
		"?limit=0":           `{"limit":["Ensure this value is greater than or equal to 1."]}`,
		"?limit=x":           `{"limit":["A valid integer is required."]}`,
		"?offset=-1":         `{"offset":["Ensure this value is greater than or equal to 0."]}`,
		"?limit=-3&offset=y": `{"limit":["Ensure this value is greater than or equal to 1."],"offset":["A valid integer is required."]}`,
		"?mine=perhaps":      `{"mine":["Must be a valid boolean."]}`,
	} {
		t.Run("GET /api/notes/"+query, func(t *testing.T) {
			want(t, e.get("/api/notes/"+query, alice), 400, body)
		})
	}
}

// TestPaginationWalksEveryNoteOnce follows the Link headers from the first
// page to the last.
func TestPaginationWalksEveryNoteOnce(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	const total = 47
	for i := range total {
		e.createNote(alice, fmt.Sprintf(`{"title":"note %d","is_public":%v}`, i, i%2 == 0))
		if i%5 == 0 {
			e.clock.advance(time.Millisecond) // some notes share an updated time
		}
	}
	seen := map[int64]bool{}
	next := "http://127.0.0.1:8000/api/notes/?limit=10&q=note"
	pages := 0
	for next != "" {
		if !strings.HasPrefix(next, "http://127.0.0.1:8000/") { // the listening address, not the Host header
			t.Fatalf("next page at %s", next)
		}
		path := strings.TrimPrefix(next, "http://127.0.0.1:8000")
		res := e.get(path, alice)
		for _, id := range listIDs(t, res) {
			if seen[id] {
				t.Fatalf("note %d seen twice", id)
			}
			seen[id] = true
		}
		pages++
		next = ""
		if link := res.header.Get("Link"); link != "" {
			m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link = %q", link)
			}
			next = m[1]
			if !strings.Contains(next, "q=note") {
				t.Errorf("the next link dropped q: %s", next)
			}
		}
	}
	if len(seen) != total || pages != 5 {
		t.Errorf("saw %d notes in %d pages, want %d in 5", len(seen), pages, total)
	}
	if res := e.get("/api/notes/?limit=100", alice); res.header.Get("Link") != "" {
		t.Errorf("a last page with a Link header: %s", res.header.Get("Link"))
	}
}

func TestUserNotes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	alice := e.login("alice").Access
	e.register("bob")
	bob := e.login("bob").Access
	private := e.createNote(alice, `{"title":"private"}`)
	public := e.createNote(alice, `{"title":"public","is_public":true}`)

	if got := listIDs(t, e.get(fmt.Sprintf("/api/users/%d/notes/", aliceID), bob)); fmt.Sprint(got) != fmt.Sprint([]int64{public.ID}) {
		t.Errorf("bob sees %v of alice's notes, want only the public one", got)
	}
	if got := listIDs(t, e.get(fmt.Sprintf("/api/users/%d/notes", aliceID), alice)); len(got) != 2 || got[1] != private.ID {
		t.Errorf("alice sees %v of her notes, want both", got)
	}
	want(t, e.get("/api/users/999/notes/", bob), 404, `{"detail":"Not found."}`)
	want(t, e.get("/api/users/x/notes/", bob), 404, `{"detail":"Not found."}`)
	want(t, e.do("GET", fmt.Sprintf("/api/users/%d/notes/", aliceID), "", ""), 401, bodyNotAuthenticated)
}

// TestUserName: a note's owner by name, for anyone logged in; nothing else
// of their profile.
func TestUserName(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	aliceID := e.register("alice")
	e.register("bob")
	bob := e.login("bob").Access
	want(t, e.get(fmt.Sprintf("/api/users/%d/", aliceID), bob), 200, fmt.Sprintf(`{"id":%d,"username":"alice"}`, aliceID))
	want(t, e.get(fmt.Sprintf("/api/users/%d", aliceID), bob), 200, fmt.Sprintf(`{"id":%d,"username":"alice"}`, aliceID))
	want(t, e.get("/api/users/999/", bob), 404, `{"detail":"Not found."}`)
	want(t, e.get("/api/users/x/", bob), 404, `{"detail":"Not found."}`)
	want(t, e.get("/api/users/99999999999999999999/", bob), 404, `{"detail":"Not found."}`)
	want(t, e.do("GET", fmt.Sprintf("/api/users/%d/", aliceID), "", ""), 401, bodyNotAuthenticated)
}

func TestProfileIncludesOwnNotes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	e.register("bob")
	e.createNote(e.login("bob").Access, `{"title":"bob's public","is_public":true}`)
	n := e.createNote(alice, `{"title":"mine"}`)
	res := e.get("/api/profile/", alice)
	if !strings.Contains(res.body, fmt.Sprintf(`"notes":[{"id":%d,"title":"mine","body":"","cover_image":null,"is_public":false`, n.ID)) ||
		strings.Contains(res.body, "bob's") {
		t.Errorf("profile: %s", res.body)
	}
}

// ---- uploads ----

func TestUploadsAreCheckedByContent(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	upload := func(name string, data []byte) response {
		ct, body := multipartBody(map[string]string{"title": "pic"}, "cover_image", name, data)
		return e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+alice)
	}
	html := []byte("<html><script>alert(1)</script></html>")
	tests := []struct {
		name   string
		file   []byte
		status int
		field  string // the error, or the stored extension
	}{
		{"page.png", html, 400, msgNotAnImage},
		{"picture.txt", pngImage(3, 2), 201, ".png"},
		{"photo", jpegImage(), 201, ".jpg"},
		{"anim.gif", gifImage(2, 2), 201, ".gif"},
		{"empty.png", nil, 400, "The submitted file is empty."},
		{"huge.gif", gifImage(20000, 10), 400, "Ensure the image is at most 10000 pixels on each side."},
		{"big.png", append(pngImage(2, 2), make([]byte, 5<<20)...), 400, "Ensure this file is no larger than 5 MiB."},
		{"image.svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 400, msgNotAnImage},
		{"../../../etc/passwd.png", pngImage(1, 1), 201, ".png"},
	}
	for _, tt := range tests {
		t.Run("POST /api/notes/ "+tt.name, func(t *testing.T) {
			res := upload(tt.name, tt.file)
			if tt.status == 400 {
				want(t, res, 400, fmt.Sprintf(`{"cover_image":[%q]}`, tt.field))
				return
			}
			var n noteJSON
			decode(t, res.body, &n)
			if res.status != 201 || n.CoverImage == nil || !strings.HasSuffix(*n.CoverImage, tt.field) || !noteJSONPattern.MatchString(res.body) {
				t.Errorf("%s: %d %s", tt.name, res.status, res.body)
			}
		})
	}
	if got := len(e.mediaFiles(imagesFolder)); got != 4 {
		t.Errorf("%d stored files, want the 4 accepted", got)
	}
}

func TestOversizedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	ct, body := multipartBody(map[string]string{"title": "big"}, "cover_image", "big.png", append(pngImage(2, 2), make([]byte, 6<<20)...))
	want(t, e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+alice), 413, `{"detail":"Request body is too large."}`)
	if files := e.mediaFiles(imagesFolder); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	if n := e.count(`SELECT count(*) FROM notes`); n != 0 {
		t.Errorf("notes: %d", n)
	}
}

// TestMediaServed: what is stored is served with its detected type and the
// headers that keep a browser from treating it as anything else.
func TestMediaServed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	picture := pngImage(5, 5)
	ct, body := multipartBody(map[string]string{"username": "alice", "email": "a@example.com",
		"password": testPassword, "password2": testPassword}, "cover_photo", "me.txt", picture)
	res := e.do("POST", "/api/register/", ct, body)
	var u struct {
		CoverPhoto string `json:"cover_photo"`
	}
	decode(t, res.body, &u)
	if res.status != 201 || !regexp.MustCompile(`^/media/covers/[0-9a-f]{32}\.png$`).MatchString(u.CoverPhoto) {
		t.Fatalf("register with a cover photo: %d %s", res.status, res.body)
	}
	res = e.do("GET", u.CoverPhoto, "", "", "Authorization", "Bearer junk") // media ignore the header
	if res.status != 200 || res.body != string(picture) {
		t.Fatalf("GET %s: %d", u.CoverPhoto, res.status)
	}
	for header, value := range map[string]string{
		"Content-Type":            "image/png",
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": "default-src 'none'; sandbox",
	} {
		if got := res.header.Get(header); got != value {
			t.Errorf("%s = %q, want %q", header, got, value)
		}
	}
	if res := e.do("POST", u.CoverPhoto, "", ""); res.status != 405 {
		t.Errorf("POST to a media file: %d", res.status)
	}
}

func TestMediaCannotEscape(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	covers := filepath.Join(e.srv.cfg.dataDir, "media", "covers")
	outside := filepath.Join(e.srv.cfg.dataDir, "notes.db")
	link := strings.Repeat("a", 32) + ".png"
	if err := os.Symlink(outside, filepath.Join(covers, link)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(covers, ".tmp-"+strings.Repeat("b", 32)), pngImage(1, 1), 0o600)
	for _, path := range []string{
		"/media/covers/" + link,                         // a symlink out of the folder
		"/media/covers/../notes.db",                     // cleaned by net/http: /media/notes.db
		"/media/covers/..%2f..%2fnotes.db",              // an encoded slash
		"/media/covers/%2e%2e%2fnotes.db",               // encoded dots too
		"/media/covers/..%5cnotes.db",                   // a backslash
		"/media/covers/.tmp-" + strings.Repeat("b", 32), // a file being written
		"/media/covers/",
		"/media/jwt.key",
		"/media/images/" + strings.Repeat("c", 32) + ".png", // no such file
	} {
		res := e.do("GET", path, "", "")
		if res.status != 404 && res.status/100 != 3 { // net/http redirects "/../" to the cleaned path
			t.Errorf("GET %s: %d %q", path, res.status, res.body)
		}
		if strings.Contains(res.body, "SQLite") {
			t.Errorf("GET %s served the database", path)
		}
	}
}

func TestImagesReplacedAndRemoved(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	withImage := func(method, path string, fields map[string]string) response {
		ct, body := multipartBody(fields, "cover_image", "x.png", pngImage(2, 2))
		return e.do(method, path, ct, body, "Authorization", "Bearer "+alice)
	}
	res := withImage("POST", "/api/notes/", map[string]string{"title": "one"})
	var n noteJSON
	decode(t, res.body, &n)
	first := e.mediaFiles(imagesFolder)
	if len(first) != 1 || !strings.HasSuffix(*n.CoverImage, first[0]) {
		t.Fatalf("after create: %v, %s", first, res.body)
	}
	// Replace: the old file is gone, the new one is served.
	res = withImage("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), nil)
	decode(t, res.body, &n)
	second := e.mediaFiles(imagesFolder)
	if len(second) != 1 || second[0] == first[0] || !strings.HasSuffix(*n.CoverImage, second[0]) {
		t.Errorf("after replace: %v (was %v)", second, first)
	}
	if res := e.do("GET", *n.CoverImage, "", ""); res.status != 200 {
		t.Errorf("new image: %d", res.status)
	}
	// Set to null: removed.
	res = e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), alice, `{"cover_image":null}`)
	if !strings.Contains(res.body, `"cover_image":null`) || len(e.mediaFiles(imagesFolder)) != 0 {
		t.Errorf("after null: %s, files %v", res.body, e.mediaFiles(imagesFolder))
	}
	// The form spelling "null" does the same; a title-only update keeps the image.
	res = withImage("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), nil)
	e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), alice, `{"title":"kept"}`)
	if len(e.mediaFiles(imagesFolder)) != 1 {
		t.Error("a title update removed the image")
	}
	e.do("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), "application/x-www-form-urlencoded", "cover_image=null", "Authorization", "Bearer "+alice)
	if len(e.mediaFiles(imagesFolder)) != 0 {
		t.Error(`cover_image=null left the file`)
	}
	// Deleting the note deletes its image.
	withImage("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), nil)
	e.withToken("DELETE", fmt.Sprintf("/api/notes/%d/", n.ID), alice, "")
	if len(e.mediaFiles(imagesFolder)) != 0 {
		t.Error("deleting the note left its image")
	}
}

func TestCoverPhotoReplacedAndDeletedWithUser(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	alice := e.login("alice").Access
	setPhoto := func() {
		ct, body := multipartBody(map[string]string{"bio": "hi"}, "cover_photo", "me.gif", gifImage(3, 3))
		if res := e.do("PUT", "/api/profile/update/", ct, body, "Authorization", "Bearer "+alice); res.status != 200 ||
			!strings.Contains(res.body, `"cover_photo":"/media/covers/`) {
			t.Fatalf("set cover photo: %d %s", res.status, res.body)
		}
	}
	setPhoto()
	first := e.mediaFiles(coversFolder)
	setPhoto()
	if second := e.mediaFiles(coversFolder); len(second) != 1 || second[0] == first[0] {
		t.Errorf("after replacing: %v (was %v)", second, first)
	}
	res := e.withToken("PATCH", "/api/profile/", alice, `{"cover_photo":""}`)
	if !strings.Contains(res.body, `"cover_photo":null`) || len(e.mediaFiles(coversFolder)) != 0 {
		t.Errorf("after removing: %s, %v", res.body, e.mediaFiles(coversFolder))
	}
	setPhoto()
	ct, body := multipartBody(map[string]string{"title": "n"}, "cover_image", "n.png", pngImage(1, 1))
	e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+alice)
	want(t, e.withToken("DELETE", "/api/profile/", alice, `{"password":"Correct-Horse-42"}`), 204, "")
	if c, i := e.mediaFiles(coversFolder), e.mediaFiles(imagesFolder); len(c)+len(i) != 0 {
		t.Errorf("files left after deleting the user: %v %v", c, i)
	}
	if n := e.count(`SELECT count(*) FROM notes`); n != 0 {
		t.Errorf("notes left after deleting the user: %d", n)
	}
}

// ---- CORS, the route list, health ----

func TestCORS(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	origin := "http://localhost:3000"
	res := e.do("OPTIONS", "/api/notes/1/", "", "", "Origin", origin, "Access-Control-Request-Method", "DELETE",
		"Access-Control-Request-Headers", "authorization,content-type")
	for header, value := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
		"Access-Control-Allow-Headers": "Authorization, Content-Type",
		"Access-Control-Max-Age":       "86400",
	} {
		if got := res.header.Get(header); got != value {
			t.Errorf("preflight %s = %q, want %q", header, got, value)
		}
	}
	if res.status != 204 {
		t.Errorf("preflight status %d", res.status)
	}
	if res := e.do("OPTIONS", "/api/notes", "", "", "Origin", origin); !strings.Contains(res.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight without the slash: %v", res.header)
	}
	// Errors carry the headers too, so the frontend can read them.
	res = e.do("GET", "/api/profile/", "", "", "Origin", origin)
	if res.status != 401 || res.header.Get("Access-Control-Allow-Origin") != "*" || res.header.Get("Vary") != "Origin" {
		t.Errorf("401 to an allowed origin: %v", res.header)
	}

	listed := newTestEnv(t, func(c *config) { c.corsOrigins = []string{"http://localhost:3000", "https://notes.example"} })
	res = listed.do("GET", "/healthz", "", "", "Origin", "https://notes.example")
	if got := res.header.Get("Access-Control-Allow-Origin"); got != "https://notes.example" {
		t.Errorf("listed origin: ACAO = %q", got)
	}
	res = listed.do("OPTIONS", "/api/token/", "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if got := res.header.Get("Access-Control-Allow-Origin") + res.header.Get("Access-Control-Allow-Methods"); got != "" {
		t.Errorf("unlisted origin got CORS headers: %v", res.header)
	}
}

func TestRouteListAndHealth(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	res := e.do("GET", "/api/", "", "")
	if res.status != 200 || !strings.Contains(res.body, `"POST /api/token/"`) || !strings.Contains(res.body, `"GET /api/users/{id}/notes/"`) {
		t.Errorf("GET /api/: %d %s", res.status, res.body)
	}
	want(t, e.do("GET", "/api", "", "", "Authorization", "Bearer junk"), 401, bodyAccessRefused("Token is invalid or expired"))
	want(t, e.do("GET", "/healthz", "", "", "Authorization", "Bearer junk"), 200, `{"status":"ok"}`)
	e.srv.store.db.read.db.Close()
	want(t, e.do("GET", "/healthz", "", ""), 503, `{"status":"unavailable"}`)
}

// ---- schema upgrades ----

// TestSchemaUpgradeKeepsData opens a database made by schema version 1 (the
// auth core, as it shipped) with the current code: it is upgraded in place,
// its users and sessions are still there, and it ends up with exactly the
// tables and indexes a new database gets.
func TestSchemaUpgradeKeepsData(t *testing.T) {
	t.Parallel()
	v1, err := os.ReadFile("testdata/schema-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "notes.db"), "_pragma=foreign_keys(1)"))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		string(v1),
		`PRAGMA user_version = 1`,
		`INSERT INTO users (username, username_key, email, email_key, password, date_joined) VALUES ('old', 'old', 'o@example.com', 'o@example.com', 'x', 1)`,
		`INSERT INTO sessions (id, user_id, created, last_used, expires) VALUES ('s1', 1, 1, 1, 99999999999999999)`,
		// Rotated a minute ago, and long ago: version 11 drops what older
		// versions kept of the replacements.
		fmt.Sprintf(`INSERT INTO blacklist (jti, session_id, expires, blacklisted_at, replacement)
			VALUES ('recent', 's1', 99999999999999999, %d, 'header.payload'), ('old', 's1', 99999999999999999, 1, 'header.payload')`,
			time.Now().Add(-time.Minute).UnixMicro()),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	upgraded, err := openStore(context.Background(), dir, sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	current, _, err := schemaSteps()
	if err != nil {
		t.Fatal(err)
	}
	if got := queryInt64(t, upgraded, `PRAGMA user_version`); got != int64(current.version) {
		t.Errorf("upgraded to version %d, want %d", got, current.version)
	}
	if users, sessions := queryInt64(t, upgraded, `SELECT count(*) FROM users`),
		queryInt64(t, upgraded, `SELECT count(*) FROM sessions`); users != 1 || sessions != 1 {
		t.Errorf("after the upgrade: %d users, %d sessions; want 1 and 1", users, sessions)
	}
	if kept := queryInt64(t, upgraded, `SELECT count(*) FROM blacklist WHERE next_jti IS NULL AND next_kid IS NULL`); kept != 2 {
		t.Errorf("after the upgrade the blacklist is %d rows of 2 as due", kept)
	}
	if _, _, err := upgraded.createNote(context.Background(), 1, noteFields{}, time.Now(), quota{notes: 1, bytes: 1}); err != nil {
		t.Errorf("a note in the upgraded database: %v", err)
	}

	fresh, err := openStore(context.Background(), t.TempDir(), sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got, want := describeSchema(t, upgraded), describeSchema(t, fresh); got != want {
		t.Errorf("an upgraded database differs from a new one:\nupgraded:\n%s\nnew:\n%s", got, want)
	}
}

// describeSchema is st's schemaShape.
func describeSchema(t *testing.T, st *store) string {
	t.Helper()
	shape, err := schemaShape(context.Background(), st.db.read.db)
	if err != nil {
		t.Fatal(err)
	}
	return shape
}

// queryInt64 reads one number from the database.
func queryInt64(t *testing.T, st *store, query string) int64 {
	t.Helper()
	var n int64
	if err := st.db.read.db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestSchemaSteps: schema.sql has a current schema and upgrades numbered 2,
// 3, ... up to its version, each with some SQL in it.
func TestSchemaSteps(t *testing.T) {
	t.Parallel()
	current, upgrades, err := schemaSteps()
	if err != nil {
		t.Fatal(err)
	}
	if current.version < 2 || !strings.Contains(current.sql, "CREATE TABLE users") {
		t.Errorf("current schema: version %d, %d bytes of SQL", current.version, len(current.sql))
	}
	for _, u := range upgrades {
		if strings.TrimSpace(u.sql) == "" {
			t.Errorf("upgrade to version %d is empty", u.version)
		}
	}
}

// TestCreatedNoteIsAsStored: the 201 answer of a create is built from what
// was inserted, not read back; it must be byte for byte what a read of the
// same note answers.
func TestCreatedNoteIsAsStored(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	e.clock.t = e.clock.t.Add(987654321 * time.Nanosecond) // sub-microsecond digits: stored as microseconds
	ct, withImage := multipartBody(map[string]string{"title": "Ünïcode \u2028 <b>", "body": "line\nline", "is_public": "true"},
		"cover_image", "x.gif", gifImage(3, 3))
	for _, create := range []response{
		e.withToken("POST", "/api/notes/", access, `{"title":"plain"}`),
		e.do("POST", "/api/notes/create/", ct, withImage, "Authorization", "Bearer "+access),
	} {
		var n noteJSON
		if create.status != 201 || json.Unmarshal([]byte(create.body), &n) != nil {
			t.Fatalf("create: %d %s", create.status, create.body)
		}
		if read := e.get(fmt.Sprintf("/api/notes/%d/", n.ID), access); read.body != create.body {
			t.Errorf("created %s\nread    %s", create.body, read.body)
		}
	}
}
