package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRunReportsEveryFlagProblem(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"run", "--rates", "100,-5", "--sizes", "2KB,tiny", "--modes", "json,ws",
		"--delays", "50ms,soon", "--slice", "5s", "--duration", "1s", "--target", "ftp://x", "--floor", "twice"}, &stdout, &stderr)
	if !errors.Is(err, errUsage) {
		t.Fatalf("got %v, want a usage error", err)
	}
	for _, want := range []string{"-rates", "-sizes", "-modes", "-delays", "-slice", "-target", "-floor"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not mention %s:\n%s", want, stderr.String())
		}
	}
}

// TestProfileRefusesAnotherStellwerk: profile serves stellwerk from its
// own binary, so a -stellwerk it would ignore is refused.
func TestProfileRefusesAnotherStellwerk(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"profile", "--stellwerk", "/tmp/other-stellwerk"}, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "-stellwerk: profile serves stellwerk from this binary") {
		t.Fatalf("got %v:\n%s", err, stderr.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"sprint"}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Fatalf("got %v, want a usage error", err)
	}
	if !strings.Contains(stderr.String(), "soak") {
		t.Errorf("usage not printed:\n%s", stderr.String())
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"2048": 2048, "2KB": 2048, "32kb": 32768, "4K": 4096, "100": 0, "x": 0} {
		got, err := parseSize(in)
		if want == 0 {
			if err == nil {
				t.Errorf("%q: got %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: got %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestCommandLineQuotes(t *testing.T) {
	got := commandLine("soak", []string{"--duration", "30m", "--header", "Authorization: Bearer x"})
	want := `stellwerk-bench soak --duration 30m --header "Authorization: Bearer x"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
