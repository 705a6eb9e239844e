package testsrv

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

var toolInstalls sync.Map // Debian package → *toolInstall

type toolInstall struct {
	once sync.Once
	err  error
}

// Tool finds a command a test needs (docker-compose, chromium, …),
// installing its Debian package with apt-get when it is missing, as Redis
// and PostgreSQL are. Without it the test fails, or is skipped when
// STELLWERK_E2E is not "require" and STELLWERK_STORE_TESTS is "skip".
func Tool(t testing.TB, binary, pkg string) string {
	t.Helper()
	look := func() (string, error) {
		p, err := exec.LookPath(binary)
		if err != nil {
			if _, err := os.Stat("/usr/bin/" + binary); err == nil {
				return "/usr/bin/" + binary, nil
			}
		}
		return p, err
	}
	if p, err := look(); err == nil {
		return p
	}
	if err := aptOnce(pkg, look); err != nil {
		skipOrFail(t, "%s: %v", binary, err)
	}
	p, err := look()
	if err != nil {
		skipOrFail(t, "%s: not found after installing %s", binary, pkg)
	}
	return p
}

// aptOnce installs a Debian package at most once per test binary
// (aptInstall also keeps test binaries from running apt-get together).
func aptOnce(pkg string, look func() (string, error)) error {
	v, _ := toolInstalls.LoadOrStore(pkg, &toolInstall{})
	in := v.(*toolInstall)
	in.once.Do(func() { in.err = aptInstall(pkg, look) })
	return in.err
}
