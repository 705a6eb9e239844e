// Package sysmon keeps the Go runtime's monitor thread from sleeping
// deeply between requests, the largest cost a request-at-a-time server
// pays the runtime on a small host (docs/deploy.md, docs/benchmarks.md).
//
// sysmon, the runtime's monitor thread, sleeps on a note once every P is
// idle — between two requests at a few hundred per second. The first
// goroutine that then enters a system call (a request's first read) wakes
// it, and a wake-up from a system call resets its period to 20 µs: it
// polls fifty times a millisecond until the process is idle again, and
// sleeps deeply once more. That is a thread wake-up and six to nine
// nanosleeps per request, each a VM exit on a virtual machine: ≈ 0.1
// CPU-ms per request of stellwerk's ≈ 0.7 at 500 requests/s (perf,
// docs/benchmarks.md). With GODEBUG's schedtrace set, sysmon never sleeps
// deeply; it backs off to one poll every 10 ms, as it does under
// continuous load anyway, and a request costs it nothing.
//
// schedtrace is read once, from the environment, when the runtime starts,
// so a server that wants it re-executes itself (Reexec) before it does
// anything else. Its period is the largest the runtime accepts, so the
// trace it exists for is printed at most once every 24.8 days (a line
// "SCHED …" on standard error; at start only on a host up for longer).
package sysmon

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Setting is the GODEBUG setting: schedtrace at its largest period, in
// milliseconds (an int32 in the runtime).
const Setting = "schedtrace=2147483647"

// Env is environ with Setting added to GODEBUG, and true; or environ
// unchanged, and false, when GODEBUG already names schedtrace — set by
// the operator (schedtrace=0 keeps the runtime's default) or by a
// re-execution before.
func Env(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		v, ok := strings.CutPrefix(kv, "GODEBUG=")
		if !ok {
			out = append(out, kv)
			continue
		}
		for s := range strings.SplitSeq(v, ",") {
			if k, _, _ := strings.Cut(s, "="); strings.TrimSpace(k) == "schedtrace" {
				return environ, false
			}
		}
		if !found {
			if v != "" {
				kv += ","
			}
			kv, found = kv+Setting, true
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+Setting)
	}
	return out, true
}

// Reexec replaces the process with itself, the same arguments and Env's
// environment, when Env adds the setting. It returns only when it does
// not: the setting is there already, or the executable cannot be found or
// executed (the process then runs with the runtime's default).
func Reexec() {
	env, add := Env(os.Environ())
	if !add {
		return
	}
	// The running file's path, so that the process keeps its name
	// (/proc/self/exe made it "exe", which pgrep -x stellwerk and ps -C
	// missed, a helper's finding); the file itself through /proc when the
	// path is gone (removed since it started, which Linux marks
	// " (deleted)").
	// The path it was started by, a symbolic link included (os.Executable
	// resolves links, and a link named stellwerk to a versioned file gave
	// the process the file's name).
	exe, err := exec.LookPath(os.Args[0])
	if err != nil {
		exe, err = os.Executable()
	}
	if _, serr := os.Stat(exe); err != nil || serr != nil || strings.HasSuffix(exe, " (deleted)") {
		exe = "/proc/self/exe"
		if _, err := os.Stat(exe); err != nil {
			return
		}
	}
	_ = syscall.Exec(exe, os.Args, env)
}
