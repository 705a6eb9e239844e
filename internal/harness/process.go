// The stack's processes: started with their logs kept, stopped, killed,
// restarted, and waited for.

package harness

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

func (s *Stack) startProcess(name string, env []string, bin string, args ...string) {
	buf := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = buf
	cmd.Stderr = buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	s.logBufs = append(s.logBufs, namedBuf{name: name, buf: buf, stop: stop, kill: kill, env: env, bin: bin, args: args, pid: cmd.Process.Pid})
	s.t.Cleanup(stop)
}

func (s *Stack) waitHTTP(url string, want int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.DumpLogs()
	s.t.Fatalf("%s did not answer %d within %s (last: %s)", url, want, within, last)
}

type namedBuf struct {
	name string
	buf  *syncBuffer
	stop func()
	kill func()
	// env, bin and args started it.
	env  []string
	bin  string
	args []string
	pid  int
}

// RestartProcess starts a stopped process again with the command that
// started it (stellwerk: prefer Restart, which waits until it is ready).
func (s *Stack) RestartProcess(name string) {
	p := s.process(name)
	s.startProcess(name, p.env, p.bin, p.args...)
}

// PID is the process ID of the process name started last.
func (s *Stack) PID(name string) int { return s.process(name).pid }

// Stop ends one process of the stack (stellwerk or envoy) and waits for it.
func (s *Stack) Stop(name string) { s.process(name).stop() }

// Kill ends a process at once (SIGKILL: no shutdown of its own), as a
// crash or an OOM kill would, and waits for it.
func (s *Stack) Kill(name string) { s.process(name).kill() }

// Restart starts stellwerk again with the same config (after Stop or
// Kill) and waits until it is ready.
func (s *Stack) Restart() {
	s.t.Helper()
	s.startProcess("stellwerk", s.env, s.bin, "serve", "--config", filepath.Join(s.Dir, "stellwerk.yaml"), "--log-level", "debug")
	s.waitHTTP(s.AdminURL+"/readyz", 200, 20*time.Second)
}

// StartEnvoy starts another Envoy (process name) from the stack's
// bootstrap with its own node id, listener and admin ports, as a platform
// runs several Envoys in front of one stellwerk; it returns its listener
// and admin URLs once it serves. RestartProcess(name) starts it again,
// on the same ports.
func (s *Stack) StartEnvoy(name, nodeID string) (url, admin string) {
	s.t.Helper()
	src, err := os.ReadFile(filepath.Join(s.Dir, "envoy.yaml"))
	if err != nil {
		s.t.Fatal(err)
	}
	portOf := func(u string) string { return u[strings.LastIndexByte(u, ':')+1:] }
	listen, adminPort := FreePort(s.t), FreePort(s.t)
	out := string(src)
	for old, repl := range map[string]string{
		"port_value: " + portOf(s.URL):        fmt.Sprintf("port_value: %d", listen),
		"port_value: " + portOf(s.EnvoyAdmin): fmt.Sprintf("port_value: %d", adminPort),
	} {
		if !strings.Contains(out, old) {
			s.t.Fatalf("the stack's bootstrap has no %q", old)
		}
		out = strings.ReplaceAll(out, old, repl)
	}
	out = regexp.MustCompile(`(?m)^(\s+id:) \S+$`).ReplaceAllString(out, "$1 "+nodeID)
	path := filepath.Join(s.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		s.t.Fatal(err)
	}
	bin, err := EnvoyPath()
	if err != nil {
		s.t.Fatal(err)
	}
	s.startProcess(name, os.Environ(), bin, "-c", path, "--disable-hot-restart", "--log-level", "warn", "--concurrency", "1")
	url, admin = fmt.Sprintf("http://127.0.0.1:%d", listen), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.waitHTTP(url+"/v1/models", 200, stackStartTimeout)
	return url, admin
}

// portTaken waits until the process just started as name answers url
// (any status), and reports whether it exited instead because a port it
// binds was taken (Envoy and Go both say "address already in use").
func (s *Stack) portTaken(name, url string) bool {
	p := s.process(name)
	deadline := time.Now().Add(stackStartTimeout)
	for time.Now().Before(deadline) {
		if strings.Contains(strings.ToLower(p.buf.String()), "address already in use") {
			p.stop()
			return true
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// process is the latest started process of that name.
func (s *Stack) process(name string) namedBuf {
	for i := len(s.logBufs) - 1; i >= 0; i-- {
		if s.logBufs[i].name == name {
			return s.logBufs[i]
		}
	}
	s.t.Fatalf("no process %q", name)
	return namedBuf{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
