package config

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const clusterConfig = `
routing: {default_model: m1}
envoy:
  connect_timeout: 2s
  cluster_defaults:
    idle_timeout: 30s
    circuit_breakers: {max_connections: 100, max_requests: 200}
    outlier_detection: {consecutive_5xx: 5, interval: 10s}
providers:
  - name: p1
    base_url: "http://vllm.internal:8000/v1"
    residency: on_prem
    cluster:
      connect_timeout: 500ms
      circuit_breakers: {max_requests: 50}
      outlier_detection: {base_ejection_time: 1m}
      health_check: {path: /health, interval: 5s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}
    endpoints:
      - {address: "10.0.0.1:8000", weight: 2, zone: a}
      - {address: "10.0.0.2:8000", zone: b, priority: 1}
  - {name: p2, base_url: "https://api.example.com/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
`

func TestClusterDefaultsMergeFieldByField(t *testing.T) {
	c, err := Decode(strings.NewReader(clusterConfig))
	if err != nil {
		t.Fatal(err)
	}
	p1 := c.EffectiveCluster(c.Providers[0])
	if p1.ConnectTimeout != 500*time.Millisecond || p1.IdleTimeout != 30*time.Second {
		t.Errorf("p1 timeouts: %+v", p1)
	}
	if cb := *p1.CircuitBreakers; cb != (CircuitBreakers{MaxConnections: 100, MaxRequests: 50}) {
		t.Errorf("p1 circuit breakers: %+v", cb)
	}
	if od := *p1.OutlierDetection; od != (OutlierDetection{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: time.Minute}) {
		t.Errorf("p1 outlier detection: %+v", od)
	}
	p2 := c.EffectiveCluster(c.Providers[1])
	if p2.ConnectTimeout != 2*time.Second || p2.HealthCheck != nil || p2.CircuitBreakers.MaxRequests != 200 {
		t.Errorf("p2 gets the defaults only: %+v", p2)
	}
	// Merging never writes through to the defaults.
	if c.Envoy.ClusterDefaults.CircuitBreakers.MaxRequests != 200 {
		t.Errorf("defaults changed by a merge: %+v", c.Envoy.ClusterDefaults.CircuitBreakers)
	}
	if len(c.Providers[0].Endpoints) != 2 {
		t.Errorf("endpoints: %+v", c.Providers[0].Endpoints)
	}
}

func TestClusterValidationNamesTheField(t *testing.T) {
	tests := map[string]struct {
		edit string // replaces p1's connect_timeout line, or the line of the same block
		want string
	}{
		"negative interval": {`outlier_detection: {interval: -1s}`, "providers[0].cluster.outlier_detection.interval: must not be negative"},
		"ejection percent":  {`outlier_detection: {max_ejection_percent: 101}`, "providers[0].cluster.outlier_detection.max_ejection_percent: must be between 0 and 100"},
		"health path":       {`health_check: {path: health}`, "providers[0].cluster.health_check.path: must be an absolute path"},
		"health timeout":    {`health_check: {path: /h, interval: 1s, timeout: 2s}`, "providers[0].cluster.health_check.timeout: must not be longer"},
		"protocol":          {`protocol: http3`, `providers[0].cluster.protocol: "http3" is not one of`},
		"auto on http":      {`protocol: auto`, "providers[0].cluster.protocol: auto needs an https base_url"},
		"tls on http":       {`tls: {min_version: "1.3"}`, "providers[0].cluster.tls: set for a plain http base_url"},
		"http2 on http1":    {`http2: {max_concurrent_streams: 10}`, "providers[0].cluster.http2: set for a provider that speaks HTTP/1.1"},
		"unknown field":     {`outlier_detection: {consecutive_500: 3}`, `unknown field "consecutive_500"`},
		"keepalive seconds": {`tcp_keepalive: {time: 1500ms}`, "providers[0].cluster.tcp_keepalive.time: must be whole seconds"},
		"window":            {`http2: {initial_stream_window_size: 10}`, "providers[0].cluster.http2.initial_stream_window_size: must be between 65535"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			from := `connect_timeout: 500ms`
			for _, block := range []string{"outlier_detection: {base_ejection_time: 1m}",
				"health_check: {path: /health, interval: 5s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2}"} {
				if strings.HasPrefix(tc.edit, block[:strings.Index(block, ":")]) {
					from = block
				}
			}
			doc := strings.Replace(clusterConfig, from, tc.edit, 1)
			_, err := Decode(strings.NewReader(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClusterValidationOtherFields(t *testing.T) {
	tests := map[string]struct{ from, to, want string }{
		"endpoint address": {`"10.0.0.2:8000"`, `"10.0.0.2"`, `providers[0].endpoints[1].address: "10.0.0.2" is not host:port`},
		"endpoint weight":  {`weight: 2`, `weight: 200`, "providers[0].endpoints[0].weight: must be between 1 and 128"},
		"duplicate":        {`"10.0.0.2:8000"`, `"10.0.0.1:8000"`, "providers[0].endpoints[1].address: duplicate endpoint"},
		"defaults":         {`idle_timeout: 30s`, `idle_timeout: 30us`, "envoy.cluster_defaults.idle_timeout: must be at least 1ms"},
		"merged path": {`health_check: {path: /health, interval: 5s`, `health_check: {interval: 5s`,
			"providers[0].cluster.health_check.path: required (here or in envoy.cluster_defaults.health_check)"},
		"merged timeout": {"idle_timeout: 30s\n", "idle_timeout: 30s\n    health_check: {path: /h, timeout: 10s}\n",
			"providers[1].cluster.health_check.timeout: must not be longer than health_check.interval (5s)"},
		"tls version": {`{name: p2, base_url: "https://api.example.com/v1", residency: eu}`,
			`{name: p2, base_url: "https://api.example.com/v1", residency: eu, cluster: {tls: {min_version: "1.1", client_key: k.pem}}}`,
			`providers[1].cluster.tls.min_version: "1.1" is not one of 1.2, 1.3`},
		"client pair": {`{name: p2, base_url: "https://api.example.com/v1", residency: eu}`,
			`{name: p2, base_url: "https://api.example.com/v1", residency: eu, cluster: {tls: {client_key: k.pem}}}`,
			"providers[1].cluster.tls.client_certificate: client_certificate and client_key go together"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			doc := strings.Replace(clusterConfig, tc.from, tc.to, 1)
			if doc == clusterConfig {
				t.Fatal("edit did not apply")
			}
			_, err := Decode(strings.NewReader(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClustersExampleLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "clusters.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	vllm := c.EffectiveCluster(c.Providers[0])
	if len(c.Providers[0].Endpoints) != 3 || vllm.HealthCheck == nil || vllm.CircuitBreakers.MaxRequests != 64 ||
		vllm.CircuitBreakers.MaxConnections != 512 || vllm.OutlierDetection.ConsecutiveGatewayErrors != 3 {
		t.Errorf("vllm in the example: %+v", vllm)
	}
}
