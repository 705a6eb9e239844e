package testsrv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a headless-capable Chromium for browser
// tests, installing Debian's chromium package first if it is missing (once
// per machine; needs root, as CI and the dev machines run). When it cannot
// be had the test fails under STELLWERK_E2E=require (make test) and is
// skipped otherwise, saying why.
func Chromium(t testing.TB) string {
	t.Helper()
	if p, err := lookChromium(); err == nil {
		return p
	}
	installErr := aptOnce("chromium", lookChromium)
	p, err := lookChromium()
	if err == nil {
		return p
	}
	if installErr != nil {
		err = installErr
	}
	if os.Getenv("STELLWERK_E2E") == "require" {
		t.Fatalf("chromium: %v (STELLWERK_E2E=require)", err)
	}
	t.Skipf("chromium is not installed and cannot be (%v); the browser test needs Debian's chromium package", err)
	return ""
}

func lookChromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	const debian = "/usr/bin/chromium"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", exec.ErrNotFound
}
