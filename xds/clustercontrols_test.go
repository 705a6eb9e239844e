package xds

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
)

// controlsConfig exercises every cluster control: defaults, a self-hosted
// provider with three replicas in two zones and a health check, an https
// provider with its own TLS, pool and HTTP/2 settings.
const controlsConfig = `
envoy:
  listener: "127.0.0.1:10000"
  connect_timeout: 3s
  cluster_defaults:
    idle_timeout: 90s
    per_try_timeout: 2m
    circuit_breakers: {max_connections: 512, max_pending_requests: 256, max_requests: 1024, max_retries: 8}
    outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 50}
    tcp_keepalive: {probes: 3, time: 60s, interval: 10s}
failover: {max_attempts: 1}
routing: {default_model: local}
providers:
  - name: vllm
    base_url: "http://vllm.internal:8000/v1"
    residency: on_prem
    endpoints:
      - {address: "10.0.0.1:8000", weight: 2, zone: a}
      - {address: "10.0.0.2:8000", zone: a}
      - {address: "10.0.1.1:8000", zone: b, priority: 1}
    cluster:
      connect_timeout: 250ms
      outlier_detection: {consecutive_gateway_errors: 3}
      health_check: {path: /health, interval: 2s, timeout: 500ms, unhealthy_threshold: 3}
  - name: onprem
    base_url: "https://llm.corp.example:8443/v1"
    residency: on_prem
    endpoints:
      - {address: "gpu-1.corp.example:8443"}
      - {address: "gpu-2.corp.example:8443"}
    cluster:
      dns_refresh_rate: 15s
      protocol: http2
      http2: {max_concurrent_streams: 100, initial_stream_window_size: 1048576}
      connection_pool: {max_requests_per_connection: 1000, max_connection_duration: 1h, per_connection_buffer_bytes: 1048576}
      tls: {sni: llm.corp.example, ca_bundle: /etc/stellwerk/corp-ca.pem, min_version: "1.3", client_certificate: /etc/stellwerk/client.pem, client_key: /etc/stellwerk/client-key.pem}
models:
  - {id: local, provider: vllm, context_window: 32000}
  - {id: big, provider: onprem, context_window: 128000}
`

func controlsIR(t *testing.T) IR {
	t.Helper()
	c, err := config.Decode(strings.NewReader(controlsConfig))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	ir, err := FromConfig(c, cat)
	if err != nil {
		t.Fatal(err)
	}
	return ir
}

func TestClusterControlsGolden(t *testing.T) {
	res, err := Translate(controlsIR(t))
	if err != nil {
		t.Fatal(err)
	}
	got := stableJSON(t, Resources{Clusters: res.Clusters})
	path := filepath.Join("testdata", "cluster_controls.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make testdata`)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("xDS output differs from %s; run `make testdata` and review the diff.\ngot:\n%s", path, got)
	}
}

func TestClusterControlsShape(t *testing.T) {
	res, err := Translate(controlsIR(t))
	if err != nil {
		t.Fatal(err)
	}
	vllm, onprem := res.Clusters[0], res.Clusters[1]
	if vllm.GetType().String() != "STATIC" || len(vllm.GetLoadAssignment().GetEndpoints()) != 2 {
		t.Errorf("vllm: three IP endpoints in two localities want a static cluster: %v", vllm.GetLoadAssignment())
	}
	if a := vllm.GetLoadAssignment().GetEndpoints()[0]; a.GetLocality().GetZone() != "a" ||
		a.GetLbEndpoints()[0].GetLoadBalancingWeight().GetValue() != 2 || a.GetLbEndpoints()[1].GetLoadBalancingWeight().GetValue() != 1 {
		t.Errorf("zone a: %v", a)
	}
	if b := vllm.GetLoadAssignment().GetEndpoints()[1]; b.GetPriority() != 1 || b.GetLocality().GetZone() != "b" {
		t.Errorf("zone b: %v", b)
	}
	if vllm.GetConnectTimeout().AsDuration().String() != "250ms" || onprem.GetConnectTimeout().AsDuration().String() != "3s" {
		t.Errorf("connect timeouts: %v %v", vllm.GetConnectTimeout(), onprem.GetConnectTimeout())
	}
	od := vllm.GetOutlierDetection()
	if od.GetConsecutive_5Xx().GetValue() != 5 || od.GetConsecutiveGatewayFailure().GetValue() != 3 ||
		od.GetEnforcingConsecutiveGatewayFailure().GetValue() != 100 || od.GetMaxEjectionPercent().GetValue() != 50 {
		t.Errorf("outlier detection (defaults and the provider's merged): %v", od)
	}
	hc := vllm.GetHealthChecks()
	if len(hc) != 1 || hc[0].GetHttpHealthCheck().GetPath() != "/health" || hc[0].GetUnhealthyThreshold().GetValue() != 3 ||
		hc[0].GetHealthyThreshold().GetValue() != 1 || hc[0].GetHttpHealthCheck().GetHost() != "vllm.internal" {
		t.Errorf("health check: %v", hc)
	}
	//lint:ignore SA1019 the field applyControls sets
	if onprem.GetType().String() != "STRICT_DNS" || onprem.GetDnsRefreshRate().AsDuration().String() != "15s" || onprem.GetHealthChecks() != nil {
		t.Errorf("onprem: two named endpoints want strict DNS: %v", onprem.GetType())
	}
	if cb := onprem.GetCircuitBreakers().GetThresholds()[0]; cb.GetMaxRequests().GetValue() != 1024 || cb.GetMaxRetries().GetValue() != 8 {
		t.Errorf("circuit breakers from the defaults: %v", cb)
	}
	if onprem.GetTransportSocket() == nil || onprem.GetUpstreamConnectionOptions().GetTcpKeepalive().GetKeepaliveTime().GetValue() != 60 {
		t.Errorf("onprem TLS and keepalive: %v", onprem)
	}
}

// TestClustersExampleTranslates: examples/clusters.yaml gives clusters
// that pass Envoy's proto validation.
func TestClustersExampleTranslates(t *testing.T) {
	c, err := config.Load(filepath.Join("..", "examples", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "k" }, ReadFile: func(string) ([]byte, error) { return []byte("k"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	ir, err := FromConfig(c, cat)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	// Three providers and the failover cluster. Every provider here has
	// endpoint priorities, active health checks or outlier detection, so
	// none can be a first-attempt cluster's first priority (steadyFirst).
	if len(res.Clusters) != 4 || len(ir.Failover.First) != 0 {
		t.Errorf("%d clusters", len(res.Clusters))
	}
}
