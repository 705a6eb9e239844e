package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

// TestComposeStack (issue 17): the compose file is valid for Debian's
// docker-compose (no Docker engine here: the same topology runs for real in
// the other end-to-end tests, with the real binaries), every service has a
// health check and a restart policy or is a one-shot, stellwerk waits for
// what it needs to be healthy, and stellwerk's compose config is `make
// run`'s with a state section, and loads.
func TestComposeStack(t *testing.T) {
	t.Parallel()
	dc := testsrv.Tool(t, "docker-compose", "docker-compose")
	root := harness.Root()
	cmd := exec.Command(dc, "-f", filepath.Join(root, "compose", "docker-compose.yaml"), "config")
	cmd.Env = append(os.Environ(), "POSTGRES_PASSWORD=check", "STELLWERK_HASH_KEY=check")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var rendered struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       any            `yaml:"build"`
			Healthcheck map[string]any `yaml:"healthcheck"`
			Restart     string         `yaml:"restart"`
			DependsOn   map[string]struct {
				Condition string `yaml:"condition"`
			} `yaml:"depends_on"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &rendered); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"envoy", "stellwerk", "mock-us", "mock-eu", "redis", "postgres", "prometheus", "grafana"} {
		s, ok := rendered.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.Healthcheck == nil || s.Restart != "unless-stopped" {
			t.Errorf("%s: health check %v, restart %q", name, s.Healthcheck, s.Restart)
		}
		if s.Image == "" || (s.Build == nil && !strings.Contains(s.Image, ":")) || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q is not pinned", name, s.Image)
		}
	}
	for _, dep := range []string{"redis", "postgres", "mock-us", "mock-eu"} {
		if c := rendered.Services["stellwerk"].DependsOn[dep].Condition; c != "service_healthy" {
			t.Errorf("stellwerk starts before %s is healthy (%q)", dep, c)
		}
	}

	example, err := os.ReadFile(filepath.Join(root, "examples", "stellwerk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	composed, err := os.ReadFile(filepath.Join(root, "compose", "stellwerk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(composed), string(example)) {
		t.Fatal("compose/stellwerk.yaml is no longer examples/stellwerk.yaml with a state section: copy the example again")
	}
	c, err := config.Load(filepath.Join(root, "compose", "stellwerk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Redis == nil || c.State.Postgres == nil || c.State.Postgres.DSNEnv != "STELLWERK_PG_DSN" {
		t.Errorf("compose state %+v", c.State)
	}
}
