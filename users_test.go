package main

// users_test.go: jwtnotes users, on the real binary beside a running
// server: list and show (never a hash), deactivate and activate, and
// set-password from standard input and from a terminal.

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// jwtnotesWith runs the binary with args and stdin, and returns its
// output and exit code.
func jwtnotesWith(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(serverBinary(t), args...)
	cmd.Env = append(os.Environ(), "JWT_SECRET=")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// refusedWithin polls the server with access until it answers 401, and
// returns how long that took (or fails the test after 5 s).
func refusedWithin(t *testing.T, p *serverProcess, client *http.Client, access string) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if status, _, _ := call(client, "GET", p.base+"/api/profile/", access, "", nil); status == 401 {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond) // polling a separate process for a change it makes on its own clock
	}
	t.Fatal("the token still works 5 s after the command")
	return 0
}

func TestUsersCommandsBesideARunningServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := startServer(t, dir, "-ip-limit", "0")
	client := &http.Client{}
	alice := p.registerAndLogin(client, "alice")
	p.registerAndLogin(client, "bob")
	login := func(password string) int {
		status, _, _ := call(client, "POST", p.base+"/api/token/", "", "application/json",
			strings.NewReader(fmt.Sprintf(`{"username":"alice","password":%q}`, password)))
		return status
	}

	out, code := jwtnotesWith(t, "", "users", "list", "-data", dir)
	if code != 0 || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "bob") || strings.Contains(out, "argon2") {
		t.Errorf("users list: %d %s", code, out)
	}
	out, code = jwtnotesWith(t, "", "users", "show", "ALICE", "-data", dir)
	if code != 0 || !strings.Contains(out, "username    alice") || !strings.Contains(out, "sessions    1 live") || strings.Contains(out, "argon2") {
		t.Errorf("users show ALICE: %d %s", code, out)
	}
	if out, code := jwtnotesWith(t, "", "users", "show", "nobody", "-data", dir); code != 2 || !strings.Contains(out, `no user "nobody"`) {
		t.Errorf("users show nobody: %d %s", code, out)
	}

	// Deactivated: her tokens refused within a second, her login too.
	if out, code := jwtnotesWith(t, "", "users", "deactivate", "alice", "-data", dir); code != 0 || !strings.Contains(out, "1 sessions revoked") {
		t.Fatalf("users deactivate: %d %s", code, out)
	}
	if took := refusedWithin(t, p, client, alice.Access); took > 1500*time.Millisecond {
		t.Errorf("a deactivated user's token worked for %v after the command", took)
	}
	if status := login(testPassword); status != 401 {
		t.Errorf("a deactivated user logs in: %d", status)
	}
	if out, code := jwtnotesWith(t, "", "users", "activate", "alice", "-data", dir); code != 0 || login(testPassword) != 200 {
		t.Fatalf("users activate: %d %s", code, out)
	}

	// set-password from standard input: the validators, then every session ends.
	again := p.registerAndLoginAs(client, "alice", testPassword)
	if out, code := jwtnotesWith(t, "alice123\n", "users", "set-password", "alice", "-data", dir); code != 2 ||
		!strings.Contains(out, "The password is too similar to the username.") {
		t.Errorf("set-password with a weak password: %d %s", code, out)
	}
	const newPassword = "New-Battery-77"
	if out, code := jwtnotesWith(t, newPassword+"\n", "users", "set-password", "alice", "-data", dir); code != 0 || !strings.Contains(out, "sessions revoked") {
		t.Fatalf("set-password: %d %s", code, out)
	}
	if took := refusedWithin(t, p, client, again.Access); took > 1500*time.Millisecond {
		t.Errorf("a session from before set-password worked for %v after it", took)
	}
	if login(testPassword) != 401 || login(newPassword) != 200 {
		t.Errorf("after set-password: the old password %d, the new one %d", login(testPassword), login(newPassword))
	}

	// From a terminal: asked twice, not echoed.
	terminal, answers := openTerminal(t)
	cmd := exec.Command(serverBinary(t), "users", "set-password", "alice", "-data", dir)
	cmd.Env = append(os.Environ(), "JWT_SECRET=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = terminal, terminal, terminal
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	readUntil := func(want string) {
		t.Helper()
		buf := make([]byte, 1024)
		for !strings.Contains(screen.String(), want) {
			n, err := answers.Read(buf)
			if err != nil {
				t.Fatalf("the terminal, waiting for %q: %v\n%s", want, err, screen.String())
			}
			screen.Write(buf[:n])
		}
	}
	readUntil("New password: ")
	fmt.Fprint(answers, "Another-Horse-43\n")
	readUntil("Again: ")
	fmt.Fprint(answers, "Another-Horse-43\n")
	readUntil("sessions revoked")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("set-password at a terminal: %v\n%s", err, screen.String())
	}
	if strings.Contains(screen.String(), "Another-Horse-43") {
		t.Errorf("the terminal echoed the password:\n%s", screen.String())
	}
	if login("Another-Horse-43") != 200 {
		t.Error("the password set at a terminal does not log in")
	}
}

// registerAndLoginAs logs username in with password.
func (p *serverProcess) registerAndLoginAs(client *http.Client, username, password string) tokenPair {
	p.t.Helper()
	status, body, err := call(client, "POST", p.base+"/api/token/", "", "application/json",
		strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, username, password)))
	if err != nil || status != 200 {
		p.t.Fatalf("login: %d %s %v", status, body, err)
	}
	var tokens tokenPair
	decode(p.t, body, &tokens)
	return tokens
}

// openTerminal opens a pseudo-terminal: the side a program is given, and
// the side that types into it and reads what it shows.
func openTerminal(t *testing.T) (terminal, answers *os.File) {
	t.Helper()
	answers, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { answers.Close() })
	var unlock int32
	var number uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, answers.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, answers.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&number))); e != 0 {
		t.Fatal(e)
	}
	terminal, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", number), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { terminal.Close() })
	return terminal, answers
}

// TestTOTPWithOathtoolAgainstTheBinary: Debian's oathtool, a real
// authenticator, given the secret the running server answers, makes the
// codes that turn TOTP on and log in; then `jwtnotes users mfa-off` turns
// it off for a user who lost their phone.
func TestTOTPWithOathtoolAgainstTheBinary(t *testing.T) {
	t.Parallel()
	oathtool := outsideTool(t, "oathtool", "oathtool")
	dir := t.TempDir()
	p := startServer(t, dir, "-ip-limit", "0")
	client := &http.Client{}
	alice := p.registerAndLogin(client, "alice")
	codeAt := func(secret, when string) string {
		out, err := exec.Command(oathtool, "--totp", "-b", "--now", when, secret).Output()
		if err != nil {
			t.Fatalf("oathtool: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	post := func(path, token, body string) (int, string) {
		status, answer, err := call(client, "POST", p.base+path, token, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return status, answer
	}
	status, body := post("/api/mfa/totp/", alice.Access, `{"password":"`+testPassword+`"}`)
	var start struct{ Secret string }
	if status != 200 || !decodeOK(t, body, &start) {
		t.Fatalf("start: %d %s", status, body)
	}
	now := time.Now().UTC()
	if status, body := post("/api/mfa/totp/confirm/", alice.Access, `{"code":"`+codeAt(start.Secret, now.Format(time.DateTime)+" UTC")+`"}`); status != 200 {
		t.Fatalf("confirm with oathtool's code: %d %s", status, body)
	}
	status, body = post("/api/token/", "", `{"username":"alice","password":"`+testPassword+`"}`)
	var challenge mfaRequired
	if status != 401 || !decodeOK(t, body, &challenge) || challenge.Code != "mfa_required" {
		t.Fatalf("login: %d %s", status, body)
	}
	// The next step's code: the one of now was spent on the confirmation.
	next := codeAt(start.Secret, now.Add(totpStep).Format(time.DateTime)+" UTC")
	status, body = post("/api/token/mfa/", "", fmt.Sprintf(`{"mfa_token":%q,"code":%q}`, challenge.MFAToken, next))
	var pair tokenPair
	if status != 200 || !decodeOK(t, body, &pair) || fmt.Sprint(decodeClaims(t, pair.Access)["amr"]) != "[pwd otp]" {
		t.Fatalf("login with oathtool's code: %d %s", status, body)
	}
	if out, code := jwtnotesWith(t, "", "users", "mfa-off", "alice", "-data", dir); code != 0 || !strings.Contains(out, "two-factor authentication is off") {
		t.Fatalf("users mfa-off: %d %s", code, out)
	}
	if status, body := post("/api/token/", "", `{"username":"alice","password":"`+testPassword+`"}`); status != 200 {
		t.Errorf("a login after mfa-off: %d %s", status, body)
	}
}
