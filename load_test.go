package main

// The load tool: go test -run TestLoad -v -load [flags]. It builds and
// starts the real binary on loopback, drives it with many concurrent
// clients for a bounded time, and reports throughput, latency per operation,
// every non-2xx answer by status, and the server's memory and open files.
//
//	go test -run TestLoad -v -load                                   # mixed, 64 clients, 20 s
//	go test -run TestLoad -v -load -load.mix login -load.clients 200 # a login flood
//
// Without -load, TestLoad is skipped: it is a measurement, not a test.

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	loadEnabled  = flag.Bool("load", false, "run TestLoad against the real binary")
	loadClients  = flag.Int("load.clients", 64, "concurrent clients")
	loadDuration = flag.Duration("load.duration", 20*time.Second, "how long to drive the server")
	loadMix      = flag.String("load.mix", "mixed", "mixed (register, login, refresh, note create/update/delete/list) or login")
	loadMaxReqs  = flag.Int("load.max", 2_000_000, "stop after this many requests in all")
)

// loadStats collects latencies and statuses per operation.
type loadStats struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	statuses  map[string]map[int]int // op -> status -> count (0: no answer)
	total     int
}

func (s *loadStats) record(op string, status int, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latencies[op] = append(s.latencies[op], d)
	if s.statuses[op] == nil {
		s.statuses[op] = map[int]int{}
	}
	s.statuses[op][status]++
	s.total++
	return s.total < *loadMaxReqs
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// procStatus reads a field (in kB) of /proc/PID/status.
func procStatus(pid int, field string) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

func openFiles(pid int) int {
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries)
}

func TestLoad(t *testing.T) {
	if !*loadEnabled {
		t.Skip("a measurement: run with -load")
	}
	// Throttling is off: every client comes from 127.0.0.1, and this
	// measures the server, not its limiter.
	p := startServer(t, t.TempDir(), "-ip-limit", "0", "-login-limit", "0", "-write-limit", "0")
	pid := p.cmd.Process.Pid
	time.Sleep(500 * time.Millisecond)
	idleRSS, idleFiles := procStatus(pid, "VmRSS"), openFiles(pid)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *loadClients, MaxConnsPerHost: *loadClients}}
	stats := &loadStats{latencies: map[string][]time.Duration{}, statuses: map[string]map[int]int{}}
	timed := func(op, method, path, token, contentType, body string) (int, string) {
		start := time.Now()
		status, answer, err := call(client, method, p.base+path, token, contentType, strings.NewReader(body))
		if err != nil {
			status = 0
		}
		if !stats.record(op, status, time.Since(start)) {
			return -1, ""
		}
		return status, answer
	}

	// Peak memory while the load runs (VmHWM is the process's high-water mark).
	deadline := time.Now().Add(*loadDuration)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range *loadClients {
		wg.Go(func() { loadClient(c, deadline, *loadMix, timed) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	peakRSS := procStatus(pid, "VmHWM")
	client.CloseIdleConnections()
	time.Sleep(time.Second)
	afterFiles, afterRSS := openFiles(pid), procStatus(pid, "VmRSS")
	code := p.stop(syscall.SIGTERM)

	var b strings.Builder
	fmt.Fprintf(&b, "\nload: mix %s, %d clients, %v, %d requests, %.0f req/s\n",
		*loadMix, *loadClients, elapsed.Round(time.Millisecond), stats.total, float64(stats.total)/elapsed.Seconds())
	fmt.Fprintf(&b, "%-10s %8s %9s %9s  %s\n", "operation", "count", "p50", "p99", "non-2xx by status")
	ops := make([]string, 0, len(stats.latencies))
	for op := range stats.latencies {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	failures := 0
	for _, op := range ops {
		lat := stats.latencies[op]
		slices.Sort(lat)
		var bad []string
		for status, n := range stats.statuses[op] {
			if status < 200 || status > 299 {
				bad = append(bad, fmt.Sprintf("%d×%d", status, n))
				if status == 0 || status >= 500 {
					failures += n
				}
			}
		}
		slices.Sort(bad)
		fmt.Fprintf(&b, "%-10s %8d %9v %9v  %s\n", op, len(lat), percentile(lat, 0.5).Round(10*time.Microsecond),
			percentile(lat, 0.99).Round(10*time.Microsecond), strings.Join(bad, " "))
	}
	fmt.Fprintf(&b, "server memory: idle %d MB, peak %d MB, after %d MB; open files: idle %d, after the load %d; exit code %d\n",
		idleRSS/1024, peakRSS/1024, afterRSS/1024, idleFiles, afterFiles, code)
	t.Log(b.String())
	if failures > 0 {
		t.Errorf("%d answers were 5xx or missing", failures)
	}
	if strings.Contains(p.stderr.String(), "database is locked") {
		t.Error(`"database is locked" in the server log`)
	}
}

// loadClient is one client's loop until the deadline.
func loadClient(c int, deadline time.Time, mix string, do func(op, method, path, token, contentType, body string) (int, string)) {
	rng := rand.New(rand.NewPCG(uint64(c), 42))
	name := fmt.Sprintf("load%d", c)
	if status, _ := do("register", "POST", "/api/register/", "", "application/json", registerBody(name)); status != 201 {
		return
	}
	login := func() (tokenPair, bool) {
		status, body := do("login", "POST", "/api/token/", "", "application/json",
			fmt.Sprintf(`{"username":%q,"password":%q}`, name, testPassword))
		var tp tokenPair
		jsonUnmarshal(body, &tp)
		return tp, status == 200
	}
	tokens, ok := login()
	if !ok {
		return
	}
	var mine []string // ids of this client's notes
	for i := 0; time.Now().Before(deadline); i++ {
		if mix == "login" {
			login()
			continue
		}
		var status int
		var body string
		switch r := rng.IntN(100); {
		case r < 40:
			status, _ = do("list", "GET", "/api/notes/", tokens.Access, "", "")
		case r < 60:
			status, body = do("create", "POST", "/api/notes/", tokens.Access, "application/json",
				fmt.Sprintf(`{"title":"note %d","body":"load test","is_public":%v}`, i, i%2 == 0))
			var n noteJSON
			if status == 201 && jsonUnmarshal(body, &n) {
				mine = append(mine, strconv.FormatInt(n.ID, 10))
			}
		case r < 75 && len(mine) > 0:
			status, _ = do("update", "PATCH", "/api/notes/"+mine[rng.IntN(len(mine))]+"/", tokens.Access,
				"application/json", `{"body":"edited"}`)
		case r < 82 && len(mine) > 0:
			k := rng.IntN(len(mine))
			status, _ = do("delete", "DELETE", "/api/notes/"+mine[k]+"/", tokens.Access, "", "")
			mine = slices.Delete(mine, k, k+1)
		case r < 94:
			status, body = do("refresh", "POST", "/api/token/refresh/", "", "application/json",
				fmt.Sprintf(`{"refresh":%q}`, tokens.Refresh))
			if status == 200 {
				jsonUnmarshal(body, &tokens)
			}
		case r < 97:
			tokens, _ = login()
		default:
			status, _ = do("register", "POST", "/api/register/", "", "application/json", registerBody(fmt.Sprintf("%s-%d", name, i)))
		}
		if status == -1 {
			return // the request budget is spent
		}
	}
}

func jsonUnmarshal(body string, v any) bool {
	return json.Unmarshal([]byte(body), v) == nil
}
