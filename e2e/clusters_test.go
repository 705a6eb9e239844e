package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
	"github.com/tidwall/gjson"
)

// envoyGet returns the body of an Envoy admin URL.
func envoyGet(t *testing.T, s *harness.Stack, path string) string {
	t.Helper()
	resp, err := http.Get(s.EnvoyAdmin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// envoyUptime is Envoy's uptime in seconds across hot restarts: it only
// falls if Envoy was restarted.
func envoyUptime(t *testing.T, s *harness.Stack) int {
	t.Helper()
	var info struct {
		UptimeAllEpochs string `json:"uptime_all_epochs"`
	}
	if err := json.Unmarshal([]byte(envoyGet(t, s, "/server_info")), &info); err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(info.UptimeAllEpochs, "s"))
	if err != nil {
		t.Fatalf("uptime %q: %v", info.UptimeAllEpochs, err)
	}
	return n
}

// dumpedCluster is the part of a cluster in Envoy's /config_dump the
// tests read (Envoy writes proto field names).
type dumpedCluster struct {
	Name            string `json:"name"`
	CircuitBreakers struct {
		Thresholds []struct {
			MaxConnections     int `json:"max_connections"`
			MaxPendingRequests int `json:"max_pending_requests"`
			MaxRequests        int `json:"max_requests"`
			MaxRetries         int `json:"max_retries"`
		} `json:"thresholds"`
	} `json:"circuit_breakers"`
	OutlierDetection struct {
		Consecutive5xx     int    `json:"consecutive_5xx"`
		Interval           string `json:"interval"`
		BaseEjectionTime   string `json:"base_ejection_time"`
		MaxEjectionPercent int    `json:"max_ejection_percent"`
	} `json:"outlier_detection"`
}

// envoyCluster is the named cluster as Envoy runs it (nil if absent).
func envoyCluster(t *testing.T, s *harness.Stack, name string) *dumpedCluster {
	t.Helper()
	// resource= answers one config per active dynamic cluster.
	var dump struct {
		Configs []struct {
			Cluster dumpedCluster `json:"cluster"`
		} `json:"configs"`
	}
	if err := json.Unmarshal([]byte(envoyGet(t, s, "/config_dump?resource=dynamic_active_clusters")), &dump); err != nil {
		t.Fatal(err)
	}
	for _, c := range dump.Configs {
		if c.Cluster.Name == name {
			return &c.Cluster
		}
	}
	return nil
}

// adminPut sends PUT path with body to stellwerk's admin API as token.
func adminPut(t *testing.T, s *harness.Stack, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, s.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// load sends requests for model from workers until the returned stop is
// called; stop returns how many were sent and the failures.
func load(t *testing.T, s *harness.Stack, model string, workers int) (stop func() (int, []string)) {
	var mu sync.Mutex
	var sent int
	var failed []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`, nil)
				mu.Lock()
				sent++
				if resp.StatusCode != 200 {
					failed = append(failed, fmt.Sprintf("%d %s", resp.StatusCode, b))
				}
				mu.Unlock()
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	var once sync.Once
	stop = func() (int, []string) {
		once.Do(func() { close(done); wg.Wait() })
		mu.Lock()
		defer mu.Unlock()
		return sent, failed
	}
	t.Cleanup(func() { stop() })
	return stop
}

// TestClusterControlsLive (issue 17): an operator changes a provider's
// circuit breakers and outlier detection with PUT /admin/providers/{name}
// while traffic flows; Envoy runs the new values without a restart and no
// request fails. A config reload afterwards keeps the override and applies
// the file's own cluster changes the same way; a viewer may not change it.
func TestClusterControlsLive(t *testing.T) {
	t.Parallel()
	viewer, operator := "view-"+strconv.FormatInt(time.Now().UnixNano(), 36), "ops-"+strconv.FormatInt(time.Now().UnixNano(), 36)
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) {
		c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "dash", Role: config.RoleViewer, SHA256: auth.Hash(viewer)},
			config.AdminToken{ID: "sre", Role: config.RoleOperator, SHA256: auth.Hash(operator)})
	}})
	before := envoyUptime(t, s)
	started := time.Now()
	stop := load(t, s, "alpha-model", 6) // about 200 requests a second here
	time.Sleep(300 * time.Millisecond)

	change := `circuit_breakers: {max_connections: 77, max_pending_requests: 55, max_requests: 66, max_retries: 4}
outlier_detection: {consecutive_5xx: 9, interval: 3s, base_ejection_time: 7s, max_ejection_percent: 40}
`
	if code, body := adminPut(t, s, "/admin/providers/alpha", viewer, change); code != http.StatusForbidden {
		t.Errorf("viewer PUT: %d %s", code, body)
	}
	if code, body := adminPut(t, s, "/admin/providers/alpha", operator, `outlier_detection: {interval: -1s}`); code != http.StatusBadRequest ||
		!strings.Contains(body, "providers[0].cluster.outlier_detection.interval: must not be negative") {
		t.Errorf("invalid PUT: %d %s", code, body)
	}
	code, body := adminPut(t, s, "/admin/providers/alpha", operator, change)
	if code != http.StatusOK || !strings.Contains(body, `"max_requests":66`) {
		t.Fatalf("operator PUT: %d %s", code, body)
	}
	if strings.Contains(body, "sk-alpha") || strings.Contains(body, "STELLWERK_TEST_KEY") {
		t.Errorf("the answer shows the provider's credential: %s", body)
	}
	var alpha *dumpedCluster
	waitFor(t, "Envoy to run alpha's new circuit breakers", func() bool {
		alpha = envoyCluster(t, s, "provider_alpha")
		return alpha != nil && len(alpha.CircuitBreakers.Thresholds) == 1 && alpha.CircuitBreakers.Thresholds[0].MaxRequests == 66
	})
	if th := alpha.CircuitBreakers.Thresholds[0]; th.MaxConnections != 77 || th.MaxPendingRequests != 55 || th.MaxRetries != 4 {
		t.Errorf("circuit breakers in Envoy: %+v", th)
	}
	if od := alpha.OutlierDetection; od.Consecutive5xx != 9 || od.Interval != "3s" || od.BaseEjectionTime != "7s" || od.MaxEjectionPercent != 40 {
		t.Errorf("outlier detection in Envoy: %+v", od)
	}
	// beta sets no breakers: stellwerk's 100,000, not Envoy's 1,024,
	// which refused a provider's 1,025th answer in flight (the capacity
	// probe of 2026-12-07).
	if beta := envoyCluster(t, s, "provider_beta"); beta == nil || len(beta.CircuitBreakers.Thresholds) != 1 ||
		beta.CircuitBreakers.Thresholds[0].MaxRequests != 100_000 || beta.CircuitBreakers.Thresholds[0].MaxConnections != 100_000 ||
		beta.CircuitBreakers.Thresholds[0].MaxPendingRequests != 100_000 {
		t.Errorf("beta changed with alpha, or runs Envoy's breakers: %+v", beta)
	}

	// A reload (here: defaults for every provider in the file) keeps the
	// operator's override for alpha and reaches Envoy the same way.
	cfg := *s.Config
	cfg.Envoy.ClusterDefaults.CircuitBreakers = &config.CircuitBreakers{MaxRequests: 500, MaxConnections: 300}
	s.WriteConfig(&cfg)
	waitFor(t, "Envoy to run the file's new defaults", func() bool {
		b := envoyCluster(t, s, "provider_beta")
		return b != nil && len(b.CircuitBreakers.Thresholds) == 1 && b.CircuitBreakers.Thresholds[0].MaxRequests == 500
	})
	if th := envoyCluster(t, s, "provider_alpha").CircuitBreakers.Thresholds[0]; th.MaxRequests != 66 || th.MaxConnections != 77 {
		t.Errorf("the reload lost alpha's override: %+v", th)
	}
	time.Sleep(300 * time.Millisecond)
	sent, failed := stop()
	t.Logf("%d requests in %s while the clusters changed", sent, time.Since(started).Round(time.Millisecond))
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed while the clusters changed, e.g. %s", len(failed), sent, failed[0])
	}
	if sent < 20 {
		t.Errorf("only %d requests flowed", sent)
	}
	if after := envoyUptime(t, s); after < before {
		t.Errorf("Envoy restarted: uptime %ds, then %ds", before, after)
	}

	// What GET shows goes back in a PUT: durations as the config writes
	// them (they were nanoseconds, which a PUT refused).
	_, got := adminGet(t, s, "/admin/providers/alpha", operator)
	override := gjson.GetBytes(got, "override").Raw
	if !strings.Contains(override, `"interval":"3s"`) {
		t.Errorf("GET: %s", got)
	}
	if code, body := adminPut(t, s, "/admin/providers/alpha", operator, override); code != http.StatusOK {
		t.Errorf("PUT of what GET showed: %d %s", code, body)
	}

	// A provider removed from the file takes its override with it: added
	// again under the same name, it does not inherit an old tuning.
	without := cfg
	without.Providers = slices.DeleteFunc(slices.Clone(cfg.Providers), func(p config.Provider) bool { return p.Name == "alpha" })
	without.Models = slices.DeleteFunc(slices.Clone(cfg.Models), func(m config.Model) bool { return m.Provider == "alpha" })
	without.Routing.DefaultModel = without.Models[0].ID
	s.WriteConfig(&without)
	waitFor(t, "alpha to be gone", func() bool {
		resp, _ := adminGet(t, s, "/admin/providers/alpha", operator)
		return resp.StatusCode == http.StatusNotFound
	})
	s.WriteConfig(&cfg)
	waitFor(t, "alpha to be back", func() bool {
		resp, _ := adminGet(t, s, "/admin/providers/alpha", operator)
		return resp.StatusCode == http.StatusOK
	})
	if _, got := adminGet(t, s, "/admin/providers/alpha", operator); gjson.GetBytes(got, "override").Exists() {
		t.Errorf("alpha came back with its old override: %s", got)
	}
}

// twoEndpointStack runs provider alpha on two endpoints: the harness's
// fake provider and second (the same key), with cluster as alpha's cluster
// block. Only alpha serves, and stellwerk neither fails over nor cools it
// down: what the test sees is Envoy's doing.
func twoEndpointStack(t *testing.T, second http.Handler, cluster config.ClusterSettings) (*harness.Stack, string) {
	t.Helper()
	srv := httptest.NewServer(second)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha"}},
		Mutate: func(c *config.Config) {
			u, err := url.Parse(c.Providers[0].BaseURL)
			if err != nil {
				t.Fatal(err)
			}
			c.Providers[0].Endpoints = []config.Endpoint{{Address: u.Host}, {Address: addr}}
			c.Providers[0].Cluster = &cluster
			c.Failover.MaxAttempts = 1
			c.Failover.FailuresBeforeCooldown = 1000
		}})
	return s, addr
}

// TestOutlierDetectionEjects (issue 17): one of a provider's two endpoints
// answers 503; Envoy ejects it after two in a row and sends every later
// request to the other.
func TestOutlierDetectionEjects(t *testing.T) {
	t.Parallel()
	bad := mockllm.New("alpha", "sk-alpha")
	bad.SetBehavior(mockllm.Behavior{Status: 503})
	s, badAddr := twoEndpointStack(t, bad, config.ClusterSettings{OutlierDetection: &config.OutlierDetection{
		Consecutive5xx: 2, Interval: time.Second, BaseEjectionTime: time.Minute, MaxEjectionPercent: 50}})
	good := s.Providers["alpha"]

	for i := 0; i < 10; i++ {
		post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
	}
	// Two in a row eject it; Envoy's workers may send one more before
	// the ejection reaches them.
	ejectedAfter := len(bad.Requests())
	if ejectedAfter < 2 || ejectedAfter > 3 {
		t.Errorf("the failing endpoint got %d requests before its ejection, want 2 (consecutive_5xx)", ejectedAfter)
	}
	if flags := envoyGet(t, s, "/clusters"); !strings.Contains(flags, "provider_alpha::"+badAddr+"::health_flags::/failed_outlier_check") {
		t.Errorf("Envoy does not show the endpoint ejected:\n%s", flags)
	}
	goodBefore := len(good.Requests())
	for i := 0; i < 10; i++ {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("after the ejection: %d %s", resp.StatusCode, b)
		}
	}
	if n := len(bad.Requests()); n != ejectedAfter || len(good.Requests()) != goodBefore+10 {
		t.Errorf("after the ejection the failing endpoint got %d more requests, the healthy one %d of 10", n-ejectedAfter, len(good.Requests())-goodBefore)
	}
}

// TestActiveHealthCheck (issue 17): a self-hosted provider's endpoint that
// fails its health check leaves load balancing and comes back once it
// passes again; Envoy's /clusters shows it.
func TestActiveHealthCheck(t *testing.T) {
	t.Parallel()
	second := mockllm.New("alpha", "sk-alpha")
	var sick atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		second.ServeHTTP(w, r)
	})
	s, addr := twoEndpointStack(t, handler, config.ClusterSettings{HealthCheck: &config.HealthCheck{
		Path: "/healthz", Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, HealthyThreshold: 1, UnhealthyThreshold: 1}})
	flag := "provider_alpha::" + addr + "::health_flags::"
	clusters := func() string { return envoyGet(t, s, "/clusters") }
	waitFor(t, "both endpoints healthy", func() bool { return strings.Contains(clusters(), flag+"healthy") })

	sick.Store(true)
	waitFor(t, "the endpoint marked down", func() bool { return strings.Contains(clusters(), flag+"/failed_active_hc") })
	before := len(second.Requests())
	for i := 0; i < 6; i++ {
		if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil); resp.StatusCode != 200 {
			t.Fatalf("while one endpoint is down: %d %s", resp.StatusCode, b)
		}
	}
	if n := len(second.Requests()) - before; n != 0 {
		t.Errorf("the endpoint marked down got %d requests", n)
	}

	sick.Store(false)
	waitFor(t, "the endpoint back up", func() bool { return strings.Contains(clusters(), flag+"healthy") })
	// Envoy's workers take the change a moment after /clusters shows it.
	waitFor(t, "requests to the endpoint back up", func() bool {
		post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil)
		return len(second.Requests()) > before
	})
}

// TestEnvoyRejectionPerNode (issue 17): a cluster change Envoy refuses (a
// CA bundle it cannot read) shows in /status under the Envoy's node id with
// Envoy's error, is logged once, and Envoy keeps serving its last good
// version. A file reload's refused change stands (the file says so); a
// PUT's is taken back and answered 400: kept, an Envoy that restarted got
// the refused cluster and had none for the provider (the SRE probe).
func TestEnvoyRejectionPerNode(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha", TLS: true}}})
	good := s.Config.Envoy.CABundle
	before := adminJSON(t, s, "/status")["snapshot_version"]
	code, body := adminPut(t, s, "/admin/providers/alpha", s.AdminToken, `tls: {ca_bundle: /nonexistent/stellwerk-ca.pem}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "invalid_cluster") || !strings.Contains(body, "Envoy refused them") ||
		!strings.Contains(body, "/nonexistent/stellwerk-ca.pem") {
		t.Fatalf("PUT of a cluster Envoy refuses: %d %s", code, body)
	}
	now := adminJSON(t, s, "/status")
	if nodes, _ := now["envoy_nodes"].([]any); now["snapshot_version"] != before || len(nodes) != 1 || nodes[0].(map[string]any)["rejections"] != nil {
		t.Errorf("after the refused PUT, taken back: %v (before: %v)", now, before)
	}
	if got := adminJSON(t, s, "/admin/providers/alpha"); got["override"] != nil {
		t.Errorf("the refused override is kept: %v", got)
	}
	// An Envoy that restarts now gets the provider's good cluster.
	s.Stop("envoy")
	s.RestartProcess("envoy")
	waitFor(t, "the restarted Envoy serving", func() bool {
		resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// A file reload with it: refused by Envoy, and it stands.
	cfg := *s.Config
	cfg.Providers = slices.Clone(cfg.Providers)
	cfg.Providers[0].Cluster = &config.ClusterSettings{TLS: &config.ClusterTLS{CABundle: "/nonexistent/stellwerk-ca.pem"}}
	s.WriteConfig(&cfg)
	type rejection struct {
		Node, Type, Version, Error string
	}
	var st struct {
		SnapshotVersion string `json:"snapshot_version"`
		EnvoyNodes      []struct {
			Node         string      `json:"node"`
			AckedVersion string      `json:"acked_version"`
			Rejections   []rejection `json:"rejections"`
		} `json:"envoy_nodes"`
	}
	waitFor(t, "the rejection in /status", func() bool {
		resp, err := s.AdminGet("/status")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		st.EnvoyNodes = nil
		return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.EnvoyNodes) == 1 && len(st.EnvoyNodes[0].Rejections) > 0
	})
	n := st.EnvoyNodes[0]
	if n.Node == "" || n.Rejections[0].Type != "cluster" || n.Rejections[0].Version != st.SnapshotVersion ||
		!strings.Contains(n.Rejections[0].Error, "/nonexistent/stellwerk-ca.pem") || n.AckedVersion == st.SnapshotVersion {
		t.Errorf("node status %+v (snapshot %s)", n, st.SnapshotVersion)
	}
	if got := strings.Count(s.Log("stellwerk"), "envoy rejected configuration"); got != 2 {
		t.Errorf("the two refusals were logged %d times, want once each", got)
	}
	// An on-call alerting from Prometheus sees it too (a helper's finding:
	// only /status and the log did).
	if resp, err := s.AdminGet("/metrics"); err != nil {
		t.Error(err)
	} else {
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(text), "\nstellwerk_envoy_config_rejected 1\n") {
			t.Errorf("/metrics lacks stellwerk_envoy_config_rejected 1")
		}
	}
	// stellwerk xds dump says the same.
	dump := exec.Command(harness.Binary(t), "xds", "dump", "--admin", s.AdminURL)
	dump.Env = append(os.Environ(), "STELLWERK_ADMIN_TOKEN="+s.AdminToken)
	out, err := dump.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "REJECTED "+st.SnapshotVersion) || !strings.Contains(string(out), n.Node) {
		t.Errorf("stellwerk xds dump: %v\n%s", err, out)
	}
	// Envoy serves its last good clusters.
	if resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("after the rejection: %d %s", resp.StatusCode, b)
	}
	// Fixed: accepted, and the rejection is gone.
	cfg.Providers[0].Cluster = nil
	s.WriteConfig(&cfg)
	waitFor(t, "the fixed config in force", func() bool {
		nodes, _ := adminJSON(t, s, "/status")["envoy_nodes"].([]any)
		return len(nodes) == 1 && nodes[0].(map[string]any)["rejections"] == nil
	})
	code, body = adminPut(t, s, "/admin/providers/alpha", s.AdminToken, `tls: {ca_bundle: `+good+`, min_version: "1.2"}`)
	if code != http.StatusOK || !strings.Contains(body, `"applied":true`) {
		t.Fatalf("PUT of a good change: %d %s", code, body)
	}
	if nodes := adminJSON(t, s, "/status")["envoy_nodes"].([]any); nodes[0].(map[string]any)["rejections"] != nil {
		t.Errorf("the rejection outlived the fix: %v", nodes)
	}
}

// TestRefusedClusterKeepsCredentialsFlowing (a helper's finding): a new
// provider whose cluster Envoy refuses never has its credential asked for.
// That must not hold back every other credential: a provider added after
// it gets its key, and a rotated key reaches Envoy. (The ADS cache
// answered a secret request only when it named every secret, so nothing
// was delivered until stellwerk restarted.)
// Both modes: the helper met it in drop-in mode (clusters).
func TestRefusedClusterKeepsCredentialsFlowing(t *testing.T) {
	t.Parallel()
	t.Run("standalone", func(t *testing.T) {
		t.Parallel()
		credentialsFlow(t, harness.Start(t, harness.Options{}))
	})
	t.Run("clusters", func(t *testing.T) {
		t.Parallel()
		s, _ := existingEnvoy(t, true, nil)
		credentialsFlow(t, s)
	})
}

func credentialsFlow(t *testing.T, s *harness.Stack) {
	cfg := *s.Config
	refused := s.AddProvider("onprem", "sk-onprem", "on_prem")
	refused.BaseURL = "https://llm.onprem.invalid:9443/v1"
	refused.Cluster = &config.ClusterSettings{TLS: &config.ClusterTLS{CABundle: "/nonexistent/corp-ca.pem"}}
	cfg.Providers = append(cfg.Providers, refused)
	cfg.Models = append(cfg.Models, config.Model{ID: "onprem-model", Provider: "onprem", ProviderModel: "o", ContextWindow: 8000})
	s.WriteConfig(&cfg)
	waitFor(t, "Envoy's refusal in /status", func() bool {
		nodes, _ := adminJSON(t, s, "/status")["envoy_nodes"].([]any)
		return len(nodes) == 1 && nodes[0].(map[string]any)["rejections"] != nil
	})

	gamma := s.AddProvider("gamma", "sk-gamma", "eu")
	cfg.Providers = append(cfg.Providers, gamma)
	cfg.Models = append(cfg.Models, config.Model{ID: "gamma-model", Provider: "gamma", ProviderModel: "g", ContextWindow: 8000})
	s.WriteConfig(&cfg)
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer: %s", last)
		}
	})
	ok := func(want int) bool {
		resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"gamma-model","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil { // Envoy restarting
			last = err.Error()
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return resp.StatusCode == want
	}
	waitFor(t, "the provider added after the refused one to answer", func() bool { return ok(200) })
	if got := s.Providers["gamma"].Requests()[0].Header.Get("Authorization"); got != "Bearer sk-gamma" {
		t.Errorf("gamma got credential %q", got)
	}
	// A rotated key reaches Envoy: the mock refuses the old one (401).
	if err := os.WriteFile(gamma.Credential.File, []byte("sk-gamma-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rotated key to be sent", func() bool {
		ok(0)
		rs := s.Providers["gamma"].Requests()
		return rs[len(rs)-1].Header.Get("Authorization") == "Bearer sk-gamma-2"
	})
	if err := os.WriteFile(gamma.Credential.File, []byte("sk-gamma"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the key rotated back to be sent", func() bool { return ok(200) })
	// An Envoy that restarts meanwhile gets every credential it asks for at
	// once: no wait for its initial fetch timeout (15 s), with the provider
	// answering 401 after it.
	s.Stop("envoy")
	s.RestartProcess("envoy")
	start := time.Now()
	waitFor(t, "the restarted Envoy to serve gamma", func() bool { return ok(200) })
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the restarted Envoy served gamma after %s", took.Round(time.Second))
	}
}

// TestPerTryTimeout (issue 17): a provider's per_try_timeout ends an
// upstream stream that runs longer, streaming or not; a quicker answer is
// untouched.
func TestPerTryTimeout(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Providers: []harness.ProviderSpec{{Name: "alpha", Key: "sk-alpha"}},
		Mutate: func(c *config.Config) {
			c.Providers[0].Cluster = &config.ClusterSettings{PerTryTimeout: 700 * time.Millisecond}
			c.Failover.MaxAttempts = 1
		}})
	body := `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`
	if resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"x-mock-first-byte-delay": "200ms"}); resp.StatusCode != 200 {
		t.Fatalf("an answer within the timeout: %d %s", resp.StatusCode, b)
	}
	start := time.Now()
	resp, b := post(t, s.URL+"/v1/chat/completions", body, map[string]string{"x-mock-first-byte-delay": "3s"})
	if took := time.Since(start); resp.StatusCode < 500 || took > 2500*time.Millisecond {
		t.Errorf("an answer beyond per_try_timeout: %d after %s: %s", resp.StatusCode, took, b)
	}
	if !strings.Contains(envoyGet(t, s, "/stats?filter=cluster.provider_alpha.upstream_rq_max_duration_reached"), "upstream_rq_max_duration_reached: 1") {
		t.Errorf("Envoy did not count the stream as ended by max_stream_duration")
	}
}
