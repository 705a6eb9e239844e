package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestConfigCheck(t *testing.T) {
	out, _, err := run("config", "check", filepath.Join("..", "..", "examples", "stellwerk.yaml"))
	if err != nil || !strings.Contains(out, "ok (3 providers, 3 models, default mock-gpt)") {
		t.Fatalf("example: %v %s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("providers: []\nmodels: []\nbogus: 1\n"), 0o600)
	_, _, err = run("config", "check", bad)
	if err == nil || !strings.Contains(err.Error(), `unknown field "bogus"`) {
		t.Fatalf("bad config: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := map[string]struct {
		args []string
		want []string
	}{
		"no command":      {nil, []string{"Usage:"}},
		"unknown command": {[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		"config no verb":  {[]string{"config"}, []string{"config check"}},
		"serve bad flags": {[]string{"serve", "--log-level", "loud", "--log-format", "xml", "extra"},
			[]string{"-log-level", "-log-format", "unexpected arguments: extra"}},
		"mock tls half": {[]string{"mock-provider", "--tls-cert", "c.pem"}, []string{"go together"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, stderr, err := run(tc.args...)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("want usage error, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestServeReportsConfigErrors(t *testing.T) {
	_, _, err := run("serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("got %v", err)
	}
	_, _, err = run("serve", "--config", filepath.Join("..", "..", "examples", "stellwerk.yaml"), "--listen", "nonsense")
	if err == nil || !strings.Contains(err.Error(), "envoy.listener") {
		t.Fatalf("got %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := run("version")
	if err != nil || !strings.HasPrefix(out, "stellwerk ") {
		t.Fatalf("%v %q", err, out)
	}
}
