package testsrv

import (
	"bufio"
	"fmt"
	"net"
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

// SkipEnv names the variable that, set to "skip", skips every test needing
// a real server (Redis, PostgreSQL) for a quick local run. The default, and
// CI, runs them.
const SkipEnv = "STELLWERK_STORE_TESTS"

// RedisServer is a redis-server started for one test: loopback only, no
// persistence, its working directory a temp dir. It stops on cleanup.
type RedisServer struct {
	// Addr is host:port on 127.0.0.1.
	Addr string

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
	log  *os.File
}

// Redis starts a redis-server for t, installing Debian's redis-server
// package first if the binary is missing (once per machine; needs root, as
// CI and the dev machines run). The test is skipped only when
// STELLWERK_STORE_TESTS=skip.
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	if os.Getenv(SkipEnv) == "skip" {
		t.Skipf("%s=skip: not starting redis-server", SkipEnv)
	}
	bin, err := redisBinary()
	if err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		s, err := startRedis(t, bin)
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("redis-server: %v", lastErr)
	return nil
}

func startRedis(t testing.TB, bin string) (*RedisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, err
	}
	s := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{}), log: logf}
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) == nil {
			return s, nil
		}
		select {
		case <-s.done:
			logf.Close()
			b, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("exited at start: %s", strings.TrimSpace(string(b)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("not answering PING on %s after 10s", s.Addr)
		}
	}
}

// Stop ends the server (SIGTERM, then SIGKILL after 5s) and waits for it.
// Tests call it to take Redis away mid-test; calling it again is a no-op.
func (s *RedisServer) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		s.log.Close()
	})
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	installOnce sync.Once
	installErr  error
)

// redisBinary finds redis-server, installing Debian's package when it is
// missing. A file lock keeps test binaries of several packages, run in
// parallel by go test, from running apt-get at the same time.
func redisBinary() (string, error) {
	if p, err := lookRedis(); err == nil {
		return p, nil
	}
	installOnce.Do(func() { installErr = aptInstall("redis-server", lookRedis) })
	if installErr != nil {
		return "", installErr
	}
	return lookRedis()
}

func lookRedis() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const debian = "/usr/bin/redis-server" // PATH may lack /usr/bin under some runners
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", exec.ErrNotFound
}

// aptInstall installs Debian's package pkg unless look finds its binary,
// one test binary at a time (a lock file in the temp dir).
func aptInstall(pkg string, look func() (string, error)) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "stellwerk-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := look(); err == nil {
		return nil // another test binary installed it while this one waited
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s is not installed and apt-get %s failed: %v\n%s", pkg, args[0], err, tail(out))
		}
	}
	return nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
