package testsrv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(SkipEnv) == "skip" {
		t.Skipf("%s=skip: "+format, append([]any{SkipEnv}, args...)...)
	}
	t.Fatalf(format+" (set %s=skip to skip the tests that need it)", append(args, SkipEnv)...)
}

// Postgres is a running PostgreSQL server of the test's own.
type Postgres struct {
	Port    int
	root    string // temporary directory holding dir
	dir     string // data directory
	sock    string // Unix socket directory
	bin     string
	cred    *syscall.Credential
	cmd     *exec.Cmd
	done    chan struct{}
	logFile string
	mu      sync.Mutex
}

// pgSuper is the superuser initdb creates; authentication is trust, on
// loopback and the socket in the temporary directory only.
const pgSuper = "stellwerk"

// StartPostgres starts a PostgreSQL server for this test alone (use it to
// stop and restart the server); t.Cleanup stops it and removes its files.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	if os.Getenv(SkipEnv) == "skip" {
		t.Skipf("%s=skip", SkipEnv)
	}
	p, err := startPostgres()
	if err != nil {
		skipOrFail(t, "postgres: %v", err)
	}
	t.Cleanup(p.Destroy)
	return p
}

var shared struct {
	once sync.Once
	pg   *Postgres
	err  error
}

// PostgresDSN returns the DSN of a new, empty database on a PostgreSQL
// server shared by the test binary (started on first use; stopped by
// Main, or with the process). The database is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	if os.Getenv(SkipEnv) == "skip" {
		t.Skipf("%s=skip", SkipEnv)
	}
	shared.once.Do(func() { shared.pg, shared.err = startPostgres() })
	if shared.err != nil {
		skipOrFail(t, "postgres: %v", shared.err)
	}
	return shared.pg.NewDatabase(t)
}

// Main runs a package's tests and then stops the shared servers. Call it
// from TestMain: os.Exit(testsrv.Main(m)).
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if shared.pg != nil {
		shared.pg.Destroy()
	}
	return code
}

// NewDatabase creates an empty database and returns its DSN; it is dropped
// when the test ends.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return p.DSN(name)
}

// DSN is the URL of database name on this server.
func (p *Postgres) DSN(name string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", pgSuper, p.Port, name)
}

func (p *Postgres) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server (fast shutdown); its data stays for Start.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.resume()                               // a paused server takes no signal but SIGCONT
	_ = p.cmd.Process.Signal(syscall.SIGINT) // fast shutdown: ends sessions now
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// Pause stops the server's processes (the postmaster and its children)
// with SIGSTOP, as a machine that hangs: connections stay open, new ones
// are accepted by the kernel, and nothing answers. Resume, or Stop, ends
// it.
func (p *Postgres) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGSTOP) // no new children from here on
	// The signal is delivered when a process is next scheduled: a query
	// sent at once was still answered.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		running := false
		for q, state := range serverProcs(pid) {
			if state != "T" && state != "t" {
				running = true
				_ = syscall.Kill(q, syscall.SIGSTOP)
			}
		}
		if !running {
			return
		}
	}
}

// Resume continues a paused server.
func (p *Postgres) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.resume()
	}
}

func (p *Postgres) resume() {
	for q := range serverProcs(p.cmd.Process.Pid) {
		_ = syscall.Kill(q, syscall.SIGCONT)
	}
}

// serverProcs maps the postmaster pid and its children (each backend
// is its own process group: PostgreSQL calls setsid) to their state
// (Linux's /proc: R, S, T …); elsewhere the postmaster alone, "".
func serverProcs(pid int) map[int]string {
	out := map[int]string{pid: ""}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, d := range dirs {
		q, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		i := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // pid (comm) state ppid …; comm may hold spaces
		if len(f) >= 2 && (q == pid || f[1] == strconv.Itoa(pid)) {
			out[q] = f[0]
		}
	}
	return out
}

// Start starts a stopped server again on the same port.
func (p *Postgres) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.start()
}

// Destroy stops the server and removes its files.
func (p *Postgres) Destroy() {
	p.Stop()
	_ = os.RemoveAll(p.root)
	_ = os.RemoveAll(p.sock)
}

func (p *Postgres) start() error {
	if p.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dir, "-p", strconv.Itoa(p.Port), "-k", p.sock,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and killed with the test process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			break
		}
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start:\n%s", logTail(p.logFile))
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres did not accept connections within 30s: %v\n%s", err, logTail(p.logFile))
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd, p.done = cmd, done
	return nil
}

func startPostgres() (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: bin}
	// PostgreSQL refuses to run as root: run it as the postgres user the
	// Debian package creates (or nobody), owning its own directories.
	var uid, gid int = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres or nobody user to run the server as")
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if p.root, err = os.MkdirTemp("", "stellwerk-pg-"); err != nil {
		return nil, err
	}
	p.dir = p.root
	// A short socket directory: sun_path holds about 100 bytes.
	if p.sock, err = os.MkdirTemp("", "swpg-"); err != nil {
		return nil, err
	}
	p.logFile = filepath.Join(p.sock, "postgres.log")
	for _, d := range []string{p.dir, p.sock} {
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, err
		}
		if uid >= 0 {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	data := filepath.Join(p.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", pgSuper, "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	initdb.Dir = p.root // the postgres user may not read the test's working directory
	if out, err := initdb.CombinedOutput(); err != nil {
		p.Destroy()
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	p.dir = data
	if p.Port, err = freePort(); err != nil {
		return nil, err
	}
	if err := p.Start(); err != nil {
		p.Destroy()
		return nil, err
	}
	return p, nil
}

var pgInstallOnce sync.Once

// postgresBin finds the directory holding initdb and postgres, installing
// Debian's postgresql package when none is found.
func postgresBin() (string, error) {
	if dir, ok := findPostgres(); ok {
		return dir, nil
	}
	var installErr error
	pgInstallOnce.Do(func() { installErr = installPostgres() })
	if installErr != nil {
		return "", installErr
	}
	if dir, ok := findPostgres(); ok {
		return dir, nil
	}
	return "", errors.New("postgresql installed, but initdb and postgres are still not found")
}

func findPostgres() (string, bool) {
	// Debian keeps the server binaries out of PATH, one directory per
	// major version: prefer the newest.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append([]string{filepath.Dir(real)}, dirs...)
		}
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, true
		}
	}
	return "", false
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// installPostgres installs Debian's postgresql package; it needs root. It
// takes the same lock as the Redis helper (redis.go), so test binaries run in
// parallel never run apt-get at the same time, and looks again once it has
// the lock: another binary may have installed it meanwhile.
func installPostgres() error {
	if os.Geteuid() != 0 {
		return errors.New("postgresql is not installed and installing it needs root (apt-get install postgresql)")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("postgresql is not installed and there is no apt-get to install it")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "stellwerk-apt.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if _, ok := findPostgres(); ok {
		return nil
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, {"install", "-y", "--no-install-recommends", "postgresql"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, lastLines(out, 20))
		}
	}
	return nil
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	return string(lastLines(b, 30))
}

func lastLines(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}
