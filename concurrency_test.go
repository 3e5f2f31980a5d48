package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestConcurrentNoteWrites: 64 goroutines write notes at once; every write
// succeeds (no "database is locked") and the counts are exact.
func TestConcurrentNoteWrites(t *testing.T) {
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	const writers, each = 64, 5
	statuses := make(chan string, writers*each*2)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				res := e.withToken("POST", "/api/notes/", access, fmt.Sprintf(`{"title":"w%d-%d","body":"x"}`, w, i))
				if res.status != http.StatusCreated {
					statuses <- fmt.Sprintf("create: %d %s", res.status, res.body)
					continue
				}
				var n noteOut
				json.Unmarshal([]byte(res.body), &n)
				res = e.withToken("PATCH", fmt.Sprintf("/api/notes/%d/", n.ID), access, `{"body":"edited"}`)
				if res.status != http.StatusOK {
					statuses <- fmt.Sprintf("update: %d %s", res.status, res.body)
				}
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		t.Error(s)
	}
	if n := e.count(`SELECT count(*) FROM notes WHERE body = 'edited'`); n != writers*each {
		t.Errorf("%d notes written and edited, want %d", n, writers*each)
	}
	if n := e.count(`SELECT count(DISTINCT title) FROM notes`); n != writers*each {
		t.Errorf("%d distinct notes, want %d", n, writers*each)
	}
}

// TestConcurrentPasswordChangeAndRefresh: while one device changes the
// password, another refreshes. Whichever commits first, the other device
// ends up with no usable token.
func TestConcurrentPasswordChangeAndRefresh(t *testing.T) {
	e := newTestEnv(t, func(c *config) { c.loginLimit = 0; c.ipLimit = 0 })
	e.register("alice")
	passwords := []string{testPassword, "New-Battery-77"}
	for round := range 6 {
		old, next := passwords[round%2], passwords[(round+1)%2]
		login := func() tokenPair {
			res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":"alice","password":%q}`, old))
			var p tokenPair
			json.Unmarshal([]byte(res.body), &p)
			return p
		}
		here, there := login(), login()
		var refreshed response
		var wg sync.WaitGroup
		wg.Go(func() { refreshed = e.refresh(there.Refresh) })
		wg.Go(func() {
			res := e.withToken("POST", "/api/profile/password/", here.Access,
				fmt.Sprintf(`{"old_password":%q,"new_password":%q,"new_password2":%q}`, old, next, next))
			if res.status != 200 {
				t.Errorf("password change: %d %s", res.status, res.body)
			}
		})
		wg.Wait()
		tokens := []string{there.Access}
		if refreshed.status == 200 {
			var p tokenPair
			json.Unmarshal([]byte(refreshed.body), &p)
			tokens = append(tokens, p.Access)
			if res := e.refresh(p.Refresh); res.status != 401 {
				t.Errorf("round %d: the refresh token minted during the change still works: %d", round, res.status)
			}
		}
		for _, access := range tokens {
			if res := e.get("/api/profile/", access); res.status != 401 {
				t.Errorf("round %d: an old session's access token still works: %d", round, res.status)
			}
		}
		if res := e.get("/api/profile/", here.Access); res.status != 200 {
			t.Errorf("round %d: the session that changed the password: %d", round, res.status)
		}
	}
}

// TestConcurrentLoginAndPasswordChange: a login that checked the old
// password just before it changed gets no session.
func TestConcurrentLoginAndPasswordChange(t *testing.T) {
	e := newTestEnv(t, func(c *config) { c.loginLimit = 0; c.ipLimit = 0 })
	e.register("alice")
	here := e.login("alice")
	var logins []response
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			res := e.postJSON("/api/token/", fmt.Sprintf(`{"username":"alice","password":%q}`, testPassword))
			mu.Lock()
			logins = append(logins, res)
			mu.Unlock()
		})
	}
	wg.Go(func() {
		e.withToken("POST", "/api/profile/password/", here.Access,
			`{"old_password":"Correct-Horse-42","new_password":"New-Battery-77","new_password2":"New-Battery-77"}`)
	})
	wg.Wait()
	for _, res := range logins {
		if res.status != 200 {
			continue
		}
		var p tokenPair
		json.Unmarshal([]byte(res.body), &p)
		if got := e.get("/api/profile/", p.Access).status; got != 401 {
			t.Errorf("a session made with the old password works: %d", got)
		}
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE revoked IS NULL`); n != 1 {
		t.Errorf("%d live sessions, want only the one that changed the password", n)
	}
}

// TestConcurrentDeleteAndNoteCreate: notes with images are created while
// the account is deleted. Nothing of the user is left: no rows, no files.
func TestConcurrentDeleteAndNoteCreate(t *testing.T) {
	e := newTestEnv(t)
	e.register("alice")
	access := e.login("alice").Access
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			ct, body := multipartBody(map[string]string{"title": fmt.Sprint(i)}, "cover_image", "x.png", pngImage(2, 2))
			res := e.do("POST", "/api/notes/", ct, body, "Authorization", "Bearer "+access)
			if res.status != 201 && res.status != 401 {
				t.Errorf("create during delete: %d %s", res.status, res.body)
			}
		})
	}
	wg.Go(func() {
		res := e.withToken("DELETE", "/api/profile/", access, `{"password":"Correct-Horse-42"}`)
		if res.status != 204 {
			t.Errorf("delete: %d %s", res.status, res.body)
		}
	})
	wg.Wait()
	for _, table := range []string{"users", "notes", "sessions"} {
		if n := e.count(`SELECT count(*) FROM ` + table); n != 0 {
			t.Errorf("%d %s rows left", n, table)
		}
	}
	if files := e.mediaFiles(imagesFolder); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}
