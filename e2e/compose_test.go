package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	cmd.Env = append(os.Environ(), "POSTGRES_PASSWORD=check", "REDIS_PASSWORD=check-redis", "STELLWERK_HASH_KEY=check")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	var rendered struct {
		Services map[string]struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
			Restart     string            `yaml:"restart"`
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

	// Redis has a password (the supply-chain probe: any local process could
	// reset budgets), its health check uses it, and stellwerk is given it.
	redis := rendered.Services["redis"]
	if i := slices.Index(redis.Command, "--requirepass"); i < 0 || i+1 >= len(redis.Command) || redis.Command[i+1] != "check-redis" {
		t.Errorf("redis runs without REDIS_PASSWORD as --requirepass: %q", redis.Command)
	}
	if redis.Environment["REDISCLI_AUTH"] != "check-redis" {
		t.Errorf("redis's health check has no password (REDISCLI_AUTH): %v", redis.Environment)
	}
	if got := rendered.Services["stellwerk"].Environment["STELLWERK_REDIS_PASSWORD"]; got != "check-redis" {
		t.Errorf("stellwerk's STELLWERK_REDIS_PASSWORD is %q, want REDIS_PASSWORD's value", got)
	}
	// Without REDIS_PASSWORD the stack does not start (as without
	// POSTGRES_PASSWORD), rather than run Redis open.
	unset := exec.Command(dc, "-f", filepath.Join(root, "compose", "docker-compose.yaml"), "config", "--quiet")
	unset.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "REDIS_PASSWORD=") }),
		"POSTGRES_PASSWORD=check", "STELLWERK_HASH_KEY=check")
	if out, err := unset.CombinedOutput(); err == nil || !strings.Contains(string(out), "REDIS_PASSWORD") {
		t.Errorf("docker-compose config without REDIS_PASSWORD: %v, %s; want it refused, naming the variable", err, out)
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
	if c.State.Redis == nil || c.State.Redis.PasswordEnv != "STELLWERK_REDIS_PASSWORD" || c.State.Postgres == nil || c.State.Postgres.DSNEnv != "STELLWERK_PG_DSN" {
		t.Errorf("compose state %+v", c.State)
	}
}
