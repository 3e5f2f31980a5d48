package main

// memory.go: the Go runtime's memory settings, set once at start by main.
//
// It knows the collector's knobs and why they are set, nothing of the API.

import (
	"os"
	"runtime"
	"runtime/debug"
)

// tuneMemory sets the collector up for this server. GOMEMLIMIT and GOGC in
// the environment override each setting.
//
// A soft memory limit makes the runtime return freed memory to the system
// promptly, so that password hashes (19 MiB each) do not leave the process
// holding memory it no longer uses; it is what keeps a login flood at about
// slots × 19 MiB (hashMemoryLimit).
//
// Tuning: under that limit the collector may let the heap grow to 5 times
// what is live (GOGC=400, not Go's 100). The live heap is a few MB, and
// collecting every few hundred requests instead of every few dozen is
// cheaper (docs/PERFORMANCE.md, GOGC).
func tuneMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(hashMemoryLimit(hashSlots(runtime.NumCPU())))
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
