package main

// Tests that run the real binary, as a separate process on loopback: what
// only a process can show (signals, a crash, the server's own timeouts).

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the server once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "jwtnotes-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "jwtnotes")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// serverProcess is the real binary, started on a free loopback port.
type serverProcess struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	base   string
	stderr *syncBuffer
	exited chan struct{}
}

func startServer(t testing.TB, dataDir string, flags ...string) *serverProcess {
	t.Helper()
	args := append([]string{"-addr", "127.0.0.1:0", "-data", dataDir}, flags...)
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), "JWT_SECRET=") // the key file in dataDir, always
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(pipe)
		for lines.Scan() {
			fmt.Fprintln(p.stderr, lines.Text())
			if _, after, ok := strings.Cut(lines.Text(), "msg=listening addr="); ok {
				addr, _, _ := strings.Cut(after, " ")
				addrCh <- addr
			}
		}
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case p.addr = <-addrCh:
	case <-p.exited:
		t.Fatalf("the server exited at start:\n%s", p.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the server did not start:\n%s", p.stderr)
	}
	p.base = "http://" + p.addr
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// stop sends sig and returns the exit code.
func (p *serverProcess) stop(sig os.Signal) int {
	p.t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.t.Fatal("the server did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

// call is one request to a running server; it returns status and body.
func call(client *http.Client, method, url, token, contentType string, body io.Reader) (int, string, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func (p *serverProcess) registerAndLogin(client *http.Client, username string) tokenPair {
	p.t.Helper()
	status, body, err := call(client, "POST", p.base+"/api/register/", "", "application/json", strings.NewReader(registerBody(username)))
	if err != nil || status != 201 {
		p.t.Fatalf("register: %d %s %v", status, body, err)
	}
	status, body, err = call(client, "POST", p.base+"/api/token/", "", "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, username, testPassword)))
	if err != nil || status != 200 {
		p.t.Fatalf("login: %d %s %v", status, body, err)
	}
	var tokens tokenPair
	json.Unmarshal([]byte(body), &tokens)
	return tokens
}

// TestGracefulShutdown: SIGTERM while a slow request is in flight. The
// listener closes at once (new connections are refused), the request
// completes and is committed, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	p := startServer(t, dir)
	client := &http.Client{}
	tokens := p.registerAndLogin(client, "alice")

	// A slow client: the body arrives over 1.5 seconds.
	bodyR, bodyW := io.Pipe()
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, body, err := call(&http.Client{}, "POST", p.base+"/api/notes/", tokens.Access, "application/json", bodyR)
		done <- result{status, body, err}
	}()
	bodyW.Write([]byte(`{"title":"written during shutdown",`))
	time.Sleep(300 * time.Millisecond)

	p.cmd.Process.Signal(syscall.SIGTERM)
	refused := false
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			refused = true
			break
		}
		conn.Close()
	}
	if !refused {
		t.Error("new connections were still accepted after SIGTERM")
	}
	time.Sleep(time.Second)
	bodyW.Write([]byte(`"body":"slowly"}`))
	bodyW.Close()

	res := <-done
	if res.err != nil || res.status != 201 {
		t.Fatalf("the request in flight: %d %s %v", res.status, res.body, res.err)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d, want 0\n%s", code, p.stderr)
	}
	st, err := openStore(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	st.db.read.db.QueryRow(`SELECT count(*) FROM notes WHERE title = 'written during shutdown'`).Scan(&n)
	if n != 1 {
		t.Errorf("the note written during shutdown: %d rows", n)
	}
}

// TestCrashLosesNoAcknowledgedWrite: writers create notes (some with
// images) and rotate refresh tokens; the server is killed with SIGKILL in
// the middle. After a restart on the same folder, every write that got a 2xx
// is there, the database is intact, every stored image is whole, and every
// refresh token rotated before the kill is still refused.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	dir := t.TempDir()
	flags := []string{"-ip-limit", "0", "-reuse-grace", "0s"}
	p := startServer(t, dir, flags...)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	type ackedNote struct {
		id    int64
		title string
		image string
		data  []byte
	}
	var (
		mu      sync.Mutex
		notes   []ackedNote
		rotated []string
		users   = map[string]tokenPair{}
	)
	const writers = 8
	for w := range writers {
		users[fmt.Sprint("writer", w)] = p.registerAndLogin(client, fmt.Sprint("writer", w))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		name := fmt.Sprint("writer", w)
		tokens := users[name]
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				title := fmt.Sprintf("%s-%d", name, i)
				var status int
				var body string
				var err error
				var img []byte
				if i%3 == 0 {
					img = pngImage(20+i%7, 10)
					ct, mp := multipartBody(map[string]string{"title": title}, "cover_image", "x.png", img)
					status, body, err = call(client, "POST", p.base+"/api/notes/", tokens.Access, ct, strings.NewReader(mp))
				} else {
					status, body, err = call(client, "POST", p.base+"/api/notes/", tokens.Access, "application/json",
						strings.NewReader(fmt.Sprintf(`{"title":%q}`, title)))
				}
				if err != nil {
					return // the server is gone
				}
				if status == 201 {
					var n noteOut
					json.Unmarshal([]byte(body), &n)
					mu.Lock()
					notes = append(notes, ackedNote{n.ID, title, deref(n.CoverImage), img})
					mu.Unlock()
				}
				if i%4 == 0 {
					status, body, err = call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
						strings.NewReader(fmt.Sprintf(`{"refresh":%q}`, tokens.Refresh)))
					if err != nil {
						return
					}
					if status == 200 {
						mu.Lock()
						rotated = append(rotated, tokens.Refresh)
						mu.Unlock()
						json.Unmarshal([]byte(body), &tokens)
					}
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	p.stop(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	if len(notes) < 20 || len(rotated) < 5 {
		t.Fatalf("only %d notes and %d rotations acknowledged before the kill", len(notes), len(rotated))
	}

	p = startServer(t, dir, flags...)
	// Every acknowledged note, read back through its owner.
	owners := map[string]string{}
	for name := range users {
		status, body, err := call(client, "POST", p.base+"/api/token/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, name, testPassword)))
		if err != nil || status != 200 {
			t.Fatalf("login after restart: %d %s %v", status, body, err)
		}
		var tp tokenPair
		json.Unmarshal([]byte(body), &tp)
		owners[name] = tp.Access
	}
	for _, n := range notes {
		owner, _, _ := strings.Cut(n.title, "-")
		status, body, err := call(client, "GET", fmt.Sprintf("%s/api/notes/%d/", p.base, n.id), owners[owner], "", nil)
		if err != nil || status != 200 || !strings.Contains(body, fmt.Sprintf(`"title":%q`, n.title)) {
			t.Errorf("acknowledged note %d (%s) after the crash: %d %s", n.id, n.title, status, body)
			continue
		}
		if n.image != "" {
			status, img, err := call(client, "GET", p.base+n.image, "", "", nil)
			if err != nil || status != 200 || img != string(n.data) {
				t.Errorf("image of note %d after the crash: %d, %d bytes, want %d", n.id, status, len(img), len(n.data))
			}
		}
	}
	for _, token := range rotated {
		status, body, _ := call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"refresh":%q}`, token)))
		if status != 401 || body != bodyBlacklisted {
			t.Errorf("a token rotated before the crash: %d %s", status, body)
		}
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after the restart", code)
	}

	// The file itself: intact, and every image it names is whole.
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "notes.db"), "mode=ro"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q %v", check, err)
	}
	rows, err := db.Query(`SELECT cover_image FROM notes WHERE cover_image IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var path string
		rows.Scan(&path)
		data, err := os.ReadFile(filepath.Join(dir, "media", path))
		if err != nil || !bytes.HasSuffix(data, []byte("IEND\xaeB`\x82")) {
			t.Errorf("stored image %s is not whole (%d bytes, %v)", path, len(data), err)
		}
	}
}

// TestServerTimeoutsAndLimits: a client that sends its headers slowly is
// cut off by the server's header timeout; headers over 64 KiB get 431.
func TestServerTimeoutsAndLimits(t *testing.T) {
	p := startServer(t, t.TempDir())

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
	closed := make(chan error, 1)
	go func() {
		_, err := conn.Read(make([]byte, 1))
		closed <- err
	}()
	ticker := time.NewTicker(500 * time.Millisecond)
	defer ticker.Stop()
wait:
	for {
		select {
		case err := <-closed:
			if err == nil {
				t.Error("the server answered an unfinished request")
			}
			break wait
		case <-ticker.C:
			fmt.Fprintf(conn, "X-Slow: %d\r\n", time.Now().Unix()) // one header line at a time
			if time.Since(start) > 20*time.Second {
				t.Fatal("a slowloris client was not cut off")
			}
		}
	}
	if elapsed := time.Since(start); elapsed < 4*time.Second {
		t.Errorf("cut off after %v, before the 5 s header timeout", elapsed)
	}

	req, _ := http.NewRequest("GET", p.base+"/api/profile/", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 70<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("70 KiB of headers: %d, want 431", res.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("a", 50<<10))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("50 KiB of headers: %d, want 401", res.StatusCode)
	}
}

// TestShortSecretExitCode: exit code 2 and a message that names
// the problem, not the secret.
func TestShortSecretExitCode(t *testing.T) {
	cmd := exec.Command(binary(t), "-data", t.TempDir())
	cmd.Env = append(os.Environ(), "JWT_SECRET=short-secret-value")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want code 2", err)
	}
	if !strings.Contains(string(out), "JWT_SECRET") || strings.Contains(string(out), "short-secret-value") {
		t.Errorf("message: %s", out)
	}
}
