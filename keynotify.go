package main

// keynotify.go: making sure every server running on a data folder uses the
// keys a command has just written.
//
// A revoked key must be refused at once, not within the second a server
// takes to notice the file changed. So each running server registers in
// DATA_DIR/jwt.keys.servers/: a file named for its process, which it holds
// locked for as long as it runs, and in which it writes the digest of the
// keys file it has loaded. After a keys command has written the keys file,
// notifyServers sends SIGHUP to each registered server (a file that nobody
// holds locked is a server that is gone: it is removed, and no signal
// goes to a process that may have taken its number) and waits until each
// has written the new digest. The command returns only then, or says which
// servers did not answer.
//
// The data folder may be shared by servers on several machines (LiteFS
// replicas, docs/SCALING.md): a registration names its machine, and a
// server on another one gets no signal (its number means nothing here); it
// reads the changed file within a second, and the command waits for its
// digest the same way.
//
// It knows registrations, signals and digests, not what the keys are.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serversDirName is the folder of the registrations, in the data folder.
const serversDirName = "jwt.keys.servers"

// keysDigest names a keys file's content.
func keysDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// registration is a running server's entry: PID-RANDOM-HOST, locked while
// it runs, holding the digest of the keys it has loaded.
type registration struct {
	file *os.File
	name string
}

// register enters this process in dataDir's registrations.
func register(dataDir string) (*registration, error) {
	dir := filepath.Join(dataDir, serversDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("the signing keys: %w", err)
	}
	// Made under a hidden name and locked before it is given its own, so a
	// command never finds it unlocked and takes it for a dead server's.
	f, err := os.CreateTemp(dir, ".new-")
	if err != nil {
		return nil, fmt.Errorf("the signing keys: %w", err)
	}
	name := filepath.Join(dir, strconv.Itoa(os.Getpid())+"-"+randomID()[:8]+"-"+thisHost())
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil || os.Rename(f.Name(), name) != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("the signing keys: cannot register in %s", dir)
	}
	return &registration{file: f, name: name}, nil
}

// loaded records the digest of the keys file this server now uses.
func (r *registration) loaded(digest string) {
	if r != nil {
		r.file.WriteAt([]byte(digest), 0) // always 64 bytes: the whole content
	}
}

// close removes the registration: the server stops.
func (r *registration) close() {
	if r != nil {
		os.Remove(r.name)
		r.file.Close()
	}
}

// keysConfirmTimeout is how long notifyServers waits for a server.
const keysConfirmTimeout = 5 * time.Second

// notifyServers tells every server registered on dataDir to load the keys
// file as it is now, and waits until each has. It returns how many did,
// and the registrations of those that did not answer in time.
func notifyServers(dataDir string) (confirmed int, late []string, err error) {
	path := filepath.Join(dataDir, keysFileName)
	_, digest, err := readKeysFile(path)
	if err != nil {
		return 0, nil, err
	}
	dir := filepath.Join(dataDir, serversDirName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	var waiting []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a server registering: it loads the file as it is now
		}
		name := filepath.Join(dir, e.Name())
		pid, alive := registered(name)
		if !alive {
			continue
		}
		if !sameHost(e.Name()) {
			waiting = append(waiting, name) // it polls the file
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			late = append(late, e.Name())
			continue
		}
		waiting = append(waiting, name)
	}
	deadline := time.Now().Add(keysConfirmTimeout)
	for _, name := range waiting {
		for {
			content, err := os.ReadFile(name)
			if string(content) == digest || errors.Is(err, os.ErrNotExist) { // loaded, or stopped meanwhile
				confirmed++
				break
			}
			if time.Now().After(deadline) {
				late = append(late, filepath.Base(name))
				break
			}
			time.Sleep(10 * time.Millisecond) // a command polling a file it waits on; no server waits for it
		}
	}
	return confirmed, late, nil
}

// thisHost names this machine in registrations: its host name, with no
// character that a file name or the PID-RANDOM-HOST split could trip on.
func thisHost() string {
	name, _ := os.Hostname()
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '.' || r < ' ' {
			return '_'
		}
		return r
	}, name)
}

// sameHost reports whether a registration is this machine's (or from an
// older server, whose name has no host).
func sameHost(registration string) bool {
	parts := strings.SplitN(registration, "-", 3)
	return len(parts) < 3 || parts[2] == thisHost()
}

// registered reports the process of the registration at name, and whether
// it runs: a registration nobody holds locked is removed.
func registered(name string) (pid int, alive bool) {
	pid, err := strconv.Atoi(strings.SplitN(filepath.Base(name), "-", 2)[0])
	f, openErr := os.Open(name)
	if err != nil || openErr != nil {
		return 0, false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
		os.Remove(name) // its server is gone
		return 0, false
	}
	return pid, true
}
