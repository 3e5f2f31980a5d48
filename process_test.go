package main

// Tests that run the real binary, as a separate process on loopback: what
// only a process can show (signals, a crash, the server's own timeouts).

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	if code == 0 {
		// Only after every test: the answers they gave, against openapi.json.
		code = checkAnswersSeen(os.Stderr, flag.Lookup("test.run").Value.String() == "")
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serverBinary builds the server once per test run.
func serverBinary(t testing.TB) string {
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
	logged chan struct{} // a token after each line of stderr, if none is waiting
	exited chan struct{}
}

func startServer(t testing.TB, dataDir string, flags ...string) *serverProcess {
	t.Helper()
	return startServerUnder(t, nil, dataDir, flags...)
}

// startServerUnder starts the server as the last argument of wrapper (a
// tracer's command line; nil for none).
func startServerUnder(t testing.TB, wrapper []string, dataDir string, flags ...string) *serverProcess {
	t.Helper()
	argv := append(append(append([]string{}, wrapper...), serverBinary(t), "-addr", "127.0.0.1:0", "-data", dataDir), flags...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "JWT_SECRET=") // the key file in dataDir, always
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{t: t, cmd: cmd, stderr: &syncBuffer{}, logged: make(chan struct{}, 1), exited: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(pipe)
		for lines.Scan() {
			fmt.Fprintln(p.stderr, lines.Text())
			select {
			case p.logged <- struct{}{}:
			default:
			}
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

// waitForLog waits until the server has logged a line holding msg.
func (p *serverProcess) waitForLog(msg string) {
	p.t.Helper()
	timeout := time.After(20 * time.Second)
	for !strings.Contains(p.stderr.String(), msg) {
		select {
		case <-p.logged:
		case <-p.exited:
			p.t.Fatalf("the server exited before logging %q:\n%s", msg, p.stderr)
		case <-timeout:
			p.t.Fatalf("the server did not log %q:\n%s", msg, p.stderr)
		}
	}
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
	decode(p.t, body, &tokens)
	return tokens
}

// TestGracefulShutdown: SIGTERM while a request is in flight. The listener
// closes at once (new connections are refused), the request completes and
// is committed, and the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServer(t, dir)
	tokens := p.registerAndLogin(&http.Client{}, "alice")

	// A request whose body is held back. With "Expect: 100-continue" the
	// server says "100 Continue" when the handler starts reading the body:
	// from then on, the request is in flight.
	body := `{"title":"written during shutdown","body":"slowly"}`
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/notes/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", tokens.Access, len(body))
	answers := bufio.NewReader(conn)
	if line, err := answers.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("waiting for 100 Continue: %q %v", line, err)
	}
	answers.ReadString('\n') // the blank line after the 100

	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitForLog("stopped accepting connections")
	if conn, err := net.Dial("tcp", p.addr); err == nil {
		conn.Close()
		t.Error("a new connection was accepted after SIGTERM")
	}

	fmt.Fprint(conn, body)
	res, err := http.ReadResponse(answers, nil)
	if err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("the request in flight: %d, want 201", res.StatusCode)
	}
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d, want 0\n%s", code, p.stderr)
	}
	st, err := openStore(t.Context(), dir, sqliteSettings{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := queryInt64(t, st, `SELECT count(*) FROM notes WHERE title = 'written during shutdown'`); n != 1 {
		t.Errorf("the note written during shutdown: %d rows, want 1", n)
	}
}

// TestCrashLosesNoAcknowledgedWrite: writers create notes (some with
// images) and rotate refresh tokens; the server is killed with SIGKILL in
// the middle. After a restart on the same folder, every write that got a 2xx
// is there, the database is intact, every stored image is whole, and every
// refresh token rotated before the kill is still refused.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	flags := []string{"-ip-limit", "0", "-write-limit", "0", "-reuse-grace", "0s"}
	p := startServer(t, dir, flags...)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

	w := startWriters(t, p, client, 8)
	w.waitFor(40, 10) // notes and rotations acknowledged, the writers still going
	p.stop(syscall.SIGKILL)
	w.stop()
	leaveHalfAnUpload(t, dir)

	p = startServer(t, dir, flags...)
	checkNotesSurvived(t, p, client, w)
	checkRotatedStayRefused(t, p, client, w.rotated)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after the restart", code)
	}
	checkFilesWhole(t, dir)
}

// ackedNote is a note whose create got 201: its title, and its image if it
// had one.
type ackedNote struct {
	id    int64
	title string
	image string
	data  []byte
}

// writers create notes and rotate refresh tokens until stopped, and keep
// what was acknowledged.
type writers struct {
	t        *testing.T
	users    map[string]tokenPair
	mu       sync.Mutex
	notes    []ackedNote
	rotated  []string      // refresh tokens rotated (200)
	progress chan struct{} // a token after each acknowledged write, if none is waiting
	done     chan struct{}
	running  sync.WaitGroup
}

// startWriters registers n users and starts a writer for each: a note a
// request (an image every third), a refresh every fourth.
func startWriters(t *testing.T, p *serverProcess, client *http.Client, n int) *writers {
	w := &writers{t: t, users: map[string]tokenPair{}, progress: make(chan struct{}, 1), done: make(chan struct{})}
	for i := range n {
		name := fmt.Sprint("writer", i)
		w.users[name] = p.registerAndLogin(client, name)
		w.running.Go(func() { w.write(p, client, name, w.users[name]) })
	}
	return w
}

func (w *writers) write(p *serverProcess, client *http.Client, name string, tokens tokenPair) {
	for i := 0; ; i++ {
		select {
		case <-w.done:
			return
		default:
		}
		title := fmt.Sprintf("%s-%d", name, i)
		contentType, body, img := "application/json", fmt.Sprintf(`{"title":%q}`, title), []byte(nil)
		if i%3 == 0 {
			img = pngImage(20+i%7, 10)
			contentType, body = multipartBody(map[string]string{"title": title}, "cover_image", "x.png", img)
		}
		status, answer, err := call(client, "POST", p.base+"/api/notes/", tokens.Access, contentType, strings.NewReader(body))
		if err != nil {
			return // the server is gone
		}
		var n noteJSON
		if status != 201 || !decodeOK(w.t, answer, &n) {
			w.t.Errorf("create %s: %d %s", title, status, answer)
			return
		}
		w.acked(func() { w.notes = append(w.notes, ackedNote{n.ID, title, deref(n.CoverImage), img}) })
		if i%4 != 0 {
			continue
		}
		status, answer, err = call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"refresh":%q}`, tokens.Refresh)))
		if err != nil {
			return
		}
		if status == 200 {
			w.acked(func() { w.rotated = append(w.rotated, tokens.Refresh) })
			if !decodeOK(w.t, answer, &tokens) {
				return
			}
		}
	}
}

// acked records an acknowledged write.
func (w *writers) acked(record func()) {
	w.mu.Lock()
	record()
	w.mu.Unlock()
	select {
	case w.progress <- struct{}{}:
	default:
	}
}

// waitFor waits until notes and rotations have been acknowledged.
func (w *writers) waitFor(notes, rotations int) {
	timeout := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		got, rotated := len(w.notes), len(w.rotated)
		w.mu.Unlock()
		if got >= notes && rotated >= rotations {
			return
		}
		select {
		case <-w.progress:
		case <-timeout:
			w.t.Fatalf("only %d notes and %d rotations acknowledged in 30 s", got, rotated)
		}
	}
}

// stop ends the writers (their server is gone) and waits for them.
func (w *writers) stop() {
	close(w.done)
	w.running.Wait()
}

// leaveHalfAnUpload writes what a kill in the middle of an upload leaves,
// for certain: a temporary file, and a stored file whose row was never
// committed.
func leaveHalfAnUpload(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{".tmp-" + strings.Repeat("1", 32), strings.Repeat("2", 32) + ".png"} {
		if err := os.WriteFile(filepath.Join(dir, "media", imagesFolder, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkNotesSurvived reads every acknowledged note back through its
// owner, and its image.
func checkNotesSurvived(t *testing.T, p *serverProcess, client *http.Client, w *writers) {
	t.Helper()
	owners := map[string]string{}
	for name := range w.users {
		status, body, err := call(client, "POST", p.base+"/api/token/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, name, testPassword)))
		if err != nil || status != 200 {
			t.Fatalf("login after restart: %d %s %v", status, body, err)
		}
		var tp tokenPair
		decode(t, body, &tp)
		owners[name] = tp.Access
	}
	for _, n := range w.notes {
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
}

// checkRotatedStayRefused: a refresh token rotated before the crash is
// still refused after it.
func checkRotatedStayRefused(t *testing.T, p *serverProcess, client *http.Client, rotated []string) {
	t.Helper()
	for _, token := range rotated {
		status, body, _ := call(client, "POST", p.base+"/api/token/refresh/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"refresh":%q}`, token)))
		if status != 401 || body != bodyBlacklisted {
			t.Errorf("a token rotated before the crash: %d %s", status, body)
		}
	}
}

// checkFilesWhole: the database passes its integrity check, every image it
// names is whole, and the restart deleted what the kill left (temporary
// files, and files written for rows that were never committed).
func checkFilesWhole(t *testing.T, dir string) {
	t.Helper()
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
	named := map[string]bool{}
	for rows.Next() {
		var path string
		if err := rows.Scan(&path); err != nil {
			t.Fatal(err)
		}
		named[path] = true
		data, err := os.ReadFile(filepath.Join(dir, "media", path))
		if err != nil || !bytes.HasSuffix(data, []byte("IEND\xaeB`\x82")) {
			t.Errorf("stored image %s is not whole (%d bytes, %v)", path, len(data), err)
		}
	}
	files, err := os.ReadDir(filepath.Join(dir, "media", imagesFolder))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !named[imagesFolder+"/"+f.Name()] {
			t.Errorf("a file no note names survived the restart: %s", f.Name())
		}
	}
}

// TestServerTimeoutsAndLimits: a client that sends its headers slowly is
// cut off by the server's header timeout; headers over 64 KiB get 431.
func TestServerTimeoutsAndLimits(t *testing.T) {
	t.Parallel()
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

// TestEveryCreateIsSyncedBeforeItsAnswer: with -synchronous full (the
// default), every 201 of a note's create is written to its client only
// after a sync of the write-ahead log (fsync or fdatasync of notes.db-wal),
// as Debian's strace sees the real binary's system calls. With normal, the
// log is synced at checkpoints only: the test logs how many answers went
// out before one.
func TestEveryCreateIsSyncedBeforeItsAnswer(t *testing.T) {
	t.Parallel()
	strace := outsideTool(t, "strace", "strace")
	for _, mode := range []string{"full", "normal"} {
		t.Run(mode, func(t *testing.T) {
			dir, trace := t.TempDir(), filepath.Join(t.TempDir(), "trace")
			p := startServerUnder(t, []string{strace, "-f", "-y", "-e", "trace=write,fsync,fdatasync", "-o", trace}, dir,
				"-synchronous", mode, "-ip-limit", "0", "-write-limit", "0")
			client := &http.Client{}
			tokens := p.registerAndLogin(client, "alice")
			const creates = 20
			for i := range creates {
				status, body, err := call(client, "POST", p.base+"/api/notes/", tokens.Access, "application/json",
					strings.NewReader(fmt.Sprintf(`{"title":"note %d"}`, i)))
				if err != nil || status != 201 {
					t.Fatalf("create %d: %d %s %v", i, status, body, err)
				}
			}
			// SIGTERM to the server itself, strace's child: strace then
			// writes the rest of its trace and exits with it.
			children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
			server, _ := strconv.Atoi(strings.TrimSpace(string(children)))
			if err != nil || server == 0 {
				t.Fatalf("the server under strace: %q %v", children, err)
			}
			syscall.Kill(server, syscall.SIGTERM)
			<-p.exited
			data, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			answered, unsynced, synced := 0, 0, false
			for _, line := range strings.Split(string(data), "\n") {
				switch {
				case (strings.Contains(line, "fsync(") || strings.Contains(line, "fdatasync(")) && strings.Contains(line, "notes.db-wal>"):
					synced = true
				case strings.Contains(line, "write(") && strings.Contains(line, `"HTTP/1.1 201 Created`):
					answered++
					if !synced {
						unsynced++
					}
					synced = false
				}
			}
			if answered < creates {
				t.Fatalf("the trace shows %d answers 201, want %d at least:\n%s", answered, creates, truncate(string(data), 3000))
			}
			if mode == "full" && unsynced > 0 {
				t.Errorf("%d of %d answers 201 went out with no sync of the log since the one before", unsynced, answered)
			}
			t.Logf("-synchronous %s: %d of %d answers 201 with no sync of the log before them", mode, unsynced, answered)
		})
	}
}

// TestOversizeHeaderAnsweredToAKeptAliveClient: a Go client whose
// connection was kept alive from earlier requests, sending headers past the
// limit, reads the server's 431, not a connection reset: the server
// half-closes before it hangs up on a client still sending.
func TestOversizeHeaderAnsweredToAKeptAliveClient(t *testing.T) {
	t.Parallel()
	p := startServer(t, t.TempDir(), "-ip-limit", "0")
	client := &http.Client{Transport: &http.Transport{}}
	tokens := p.registerAndLogin(client, "alice")
	for i := range 5 {
		if status, body, err := call(client, "GET", p.base+"/api/profile/", tokens.Access, "", nil); err != nil || status != 200 {
			t.Fatalf("try %d, a request that keeps the connection: %d %s %v", i, status, body, err)
		}
		status, _, err := call(client, "GET", p.base+"/api/profile/", strings.Repeat("a", 100<<10), "", nil)
		if err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("try %d, 100 KiB of Authorization: %d %v, want 431", i, status, err)
		}
	}
}

// TestShortSecretExitCode: exit code 2 and a message that names
// the problem, not the secret.
func TestShortSecretExitCode(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(serverBinary(t), "-data", t.TempDir())
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
