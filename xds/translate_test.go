package xds

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	aggregatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/clusters/aggregate/v3"
	subsetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/subset/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/header"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testIR(t *testing.T) IR {
	t.Helper()
	c, err := config.Decode(strings.NewReader(`
envoy: {listener: "127.0.0.1:10000", max_request_bytes: 1048576, request_timeout: 2m, extproc_timeout: 500ms, connect_timeout: 3s, access_log: true}
routing: {default_model: local}
providers:
  - {name: openai, base_url: "https://api.openai.com/v1", residency: us, credential: {env: OPENAI_API_KEY}}
  - {name: vllm, base_url: "http://10.1.2.3:8000/v1", residency: on_prem}
models:
  - {id: gpt-4o-mini, provider: openai, context_window: 128000}
  - {id: local, provider: vllm, context_window: 32000}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(k string) string {
		if k == "OPENAI_API_KEY" {
			return "sk-golden-test-key"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	ir, err := FromConfig(c, cat)
	if err != nil {
		t.Fatal(err)
	}
	return ir
}

// stableJSON renders protos as indented JSON that does not change between
// runs (protojson deliberately varies its whitespace).
func stableJSON(t *testing.T, res Resources) []byte {
	t.Helper()
	var all []json.RawMessage
	add := func(m proto.Message) {
		b, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b)
	}
	for _, c := range res.Clusters {
		add(c)
	}
	for _, l := range res.Listeners {
		add(l)
	}
	for _, r := range res.Routes {
		add(r)
	}
	for _, sec := range res.Secrets {
		add(sec)
	}
	var v any
	raw, _ := json.Marshal(all)
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func TestTranslateGolden(t *testing.T) {
	res, err := Translate(testIR(t))
	if err != nil {
		t.Fatal(err)
	}
	got := stableJSON(t, res)
	path := filepath.Join("testdata", "resources.golden.json")
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

func TestTranslateShape(t *testing.T) {
	res, err := Translate(testIR(t))
	if err != nil {
		t.Fatal(err)
	}
	// Two providers, the failover cluster, the failover clusters of the
	// second and third attempts and a first-attempt cluster per provider; the
	// listener and one egress listener per provider.
	if len(res.Clusters) != 7 || len(res.Listeners) != 3 || len(res.Routes) != 1 {
		t.Fatalf("resources: %d clusters, %d listeners, %d routes", len(res.Clusters), len(res.Listeners), len(res.Routes))
	}
	fo := res.Clusters[2]
	if fo.GetName() != "stellwerk_failover" || len(fo.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()) != 2 ||
		fo.GetLoadBalancingPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetName() != "envoy.load_balancing_policies.override_host" {
		t.Errorf("failover cluster: %v", fo)
	}
	if l := res.Listeners[1]; l.GetName() != "stellwerk_egress_openai" || l.GetInternalListener() == nil {
		t.Errorf("egress listener: %v", l)
	}
	rp := res.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRetryPolicy()
	if rp.GetNumRetries().GetValue() != 2 || rp.GetPerTryTimeout().AsDuration() == 0 ||
		rp.GetRetryPriority().GetName() != "envoy.retry_priorities.previous_priorities" {
		t.Errorf("retry policy: %v", rp)
	}
	tlsCluster, plain := res.Clusters[0], res.Clusters[1]
	if tlsCluster.GetName() != "provider_openai" || tlsCluster.GetTransportSocket() == nil || tlsCluster.GetType().String() != "LOGICAL_DNS" {
		t.Errorf("https provider cluster: %v", tlsCluster)
	}
	if plain.GetName() != "provider_vllm" || plain.GetTransportSocket() != nil || plain.GetType().String() != "STATIC" {
		t.Errorf("plain provider cluster: %v", plain)
	}
	if res.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetClusterHeader() != "x-stellwerk-cluster" {
		t.Errorf("route does not use the routing header")
	}
}

// compactJSON is m as JSON without the whitespace protojson varies on
// purpose, for substring checks.
func compactJSON(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestFirstAttemptClusters: a model's first-attempt cluster puts its
// provider's cluster first and a failover cluster per retry after it, with
// upstream filters that inject the provider's credential, give an attempt
// bound for an egress listener the plan from dynamic metadata and name the
// model in the answer; each retry's failover cluster finds the plan's provider
// for that attempt by subset criteria, and no host for any other value;
// every egress listener first removes the providers' credential headers.
func TestFirstAttemptClusters(t *testing.T) {
	res, err := Translate(testIR(t))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*clusterv3.Cluster{}
	for _, c := range res.Clusters {
		byName[c.GetName()] = c
	}
	fc := byName[header.FirstCluster("openai")]
	if fc == nil || byName[header.FirstCluster("vllm")] == nil {
		t.Fatalf("first-attempt clusters missing: %v", slices.Collect(maps.Keys(byName)))
	}
	var agg aggregatev3.ClusterConfig
	if err := fc.GetClusterType().GetTypedConfig().UnmarshalTo(&agg); err != nil {
		t.Fatal(err)
	}
	if want := []string{"provider_openai", header.FailoverAttempt(2), header.FailoverAttempt(3)}; !slices.Equal(agg.GetClusters(), want) {
		t.Errorf("members %v, want %v", agg.GetClusters(), want)
	}
	var opts httpv3.HttpProtocolOptions
	if err := fc.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey].UnmarshalTo(&opts); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range opts.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	if want := []string{"envoy.filters.http.credential_injector", "stellwerk_retry_headers", "stellwerk_answer_model", "envoy.filters.http.upstream_codec"}; !slices.Equal(names, want) {
		t.Errorf("upstream filters %v, want %v", names, want)
	}
	b := compactJSON(t, fc)
	for _, want := range []string{"envoy.matching.matchers.cel_matcher", `"stringValue":"envoy://"`, `"field":"address"`, "%DYNAMIC_METADATA(stellwerk:plan)%",
		`"key":"x-stellwerk-client-path","value":"%DYNAMIC_METADATA(stellwerk:rewritten)%"`,
		"x-stellwerk-first-model", "%DYNAMIC_METADATA(stellwerk:model)%"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("first-attempt cluster lacks %s: %s", want, b)
		}
	}
	a3 := byName[header.FailoverAttempt(3)]
	for _, ep := range a3.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
		v := ep.GetMetadata().GetFilterMetadata()[header.LBNamespace].GetFields()[header.AttemptKey(3)].GetStringValue()
		if !strings.HasSuffix(ep.GetEndpoint().GetAddress().GetEnvoyInternalAddress().GetServerListenerName(), "_"+v) {
			t.Errorf("endpoint %v labelled %q", ep, v)
		}
	}
	var sub subsetv3.Subset
	if err := a3.GetLoadBalancingPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&sub); err != nil {
		t.Fatal(err)
	}
	sel := sub.GetSubsetSelectors()
	if sub.GetFallbackPolicy() != subsetv3.Subset_NO_FALLBACK || len(sel) != 2 ||
		!slices.Equal(sel[0].GetKeys(), []string{header.AttemptKey(2), header.AttemptKey(3)}) ||
		!slices.Equal(sel[0].GetFallbackKeysSubset(), []string{header.AttemptKey(3)}) || !slices.Equal(sel[1].GetKeys(), []string{header.AttemptKey(3)}) {
		t.Errorf("subset balancer %v", &sub)
	}
	// With one retry the criteria hold one key: a selector over it alone
	// (Envoy refuses a fallback subset equal to its keys).
	ir2 := testIR(t)
	ir2.Failover.MaxAttempts = 2
	a2, err := attemptCluster(*ir2.Failover, 2)
	if err != nil {
		t.Fatal(err)
	}
	var sub2 subsetv3.Subset
	if err := a2.GetLoadBalancingPolicy().GetPolicies()[0].GetTypedExtensionConfig().GetTypedConfig().UnmarshalTo(&sub2); err != nil {
		t.Fatal(err)
	}
	if sel := sub2.GetSubsetSelectors(); len(sel) != 1 || !slices.Equal(sel[0].GetKeys(), []string{header.AttemptKey(2)}) || len(sel[0].GetFallbackKeysSubset()) != 0 {
		t.Errorf("one retry: selectors %v", sel)
	}
	for _, l := range res.Listeners[1:] {
		if b := compactJSON(t, l); !strings.Contains(string(b), `"remove":"authorization"`) {
			t.Errorf("egress listener %s keeps the credential headers: %s", l.GetName(), b)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	ir := IR{
		Listener: &Listener{Address: "localhost"},
		Clusters: []Cluster{{Name: "a", Port: 0}, {Name: "a", Port: 1, TLS: true, StaticIP: true}},
	}
	_, err := Translate(ir)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listener address", "ext_proc cluster is empty", `duplicate cluster "a"`, "bad port 0", "needs a host name for SNI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestPublishVersionFollowsContent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := NewPublisher(ctx, zap.NewNop())
	ir := testIR(t)
	v1, err := p.Publish(ctx, ir)
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := p.Publish(ctx, ir)
	ir.RequestTimeout = time.Minute
	v3, _ := p.Publish(ctx, ir)
	if v1 == "" || v1 != v2 || v1 == v3 || p.Version() != v3 {
		t.Errorf("versions %q %q %q (current %q)", v1, v2, v3, p.Version())
	}
	bad := ir
	bad.ExtProc.Cluster = ""
	if _, err := p.Publish(ctx, bad); err == nil || p.Version() != v3 {
		t.Errorf("bad IR published or replaced the good snapshot: %v", err)
	}
}

func TestClustersModePushesOnlyClusters(t *testing.T) {
	ir := testIR(t)
	ir.Listener = nil
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Clusters) != 2 || len(res.Listeners) != 0 || len(res.Routes) != 0 {
		t.Fatalf("clusters mode: %d clusters, %d listeners, %d routes", len(res.Clusters), len(res.Listeners), len(res.Routes))
	}
}

func TestNoFailoverWithOneAttempt(t *testing.T) {
	ir := testIR(t)
	if ir.Failover == nil || len(ir.Failover.Egress) != 2 {
		t.Fatalf("standalone mode without failover: %+v", ir.Failover)
	}
	c, err := config.Decode(strings.NewReader(`
failover: {max_attempts: 1}
routing: {default_model: local}
providers: [{name: vllm, base_url: "http://10.1.2.3:8000/v1", residency: on_prem}]
models: [{id: local, provider: vllm, context_window: 32000}]
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	ir, err = FromConfig(c, cat)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	// One attempt: no failover cluster, no egress listeners, no retries.
	if ir.Failover != nil || len(res.Clusters) != 1 || len(res.Listeners) != 1 ||
		res.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetRetryPolicy() != nil {
		t.Errorf("max_attempts 1: %+v, %d clusters, %d listeners", ir.Failover, len(res.Clusters), len(res.Listeners))
	}
}

// TestProviderCredentialIsEnvoys: the key reaches Envoy as an SDS secret
// that only the provider's own cluster injects; the IR never renders it.
func TestProviderCredentialIsEnvoys(t *testing.T) {
	ir := testIR(t)
	if b, _ := json.Marshal(ir); strings.Contains(string(b), "sk-golden-test-key") {
		t.Errorf("the IR renders the secret: %s", b)
	}
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Secrets) != 1 || res.Secrets[0].GetName() != "stellwerk_credential_openai" ||
		res.Secrets[0].GetGenericSecret().GetSecret().GetInlineString() != "Bearer sk-golden-test-key" {
		t.Fatalf("secrets: %v", res.Secrets)
	}
	for _, c := range res.Clusters {
		b, err := protojson.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		injects := strings.Contains(string(b), "envoy.filters.http.credential_injector")
		// The provider's cluster, and its model's first-attempt cluster
		// (an aggregate's upstream filters are its own).
		if want := c.GetName() == "provider_openai" || c.GetName() == header.FirstCluster("openai"); injects != want {
			t.Errorf("cluster %s: credential filter %v, want %v", c.GetName(), injects, want)
		}
		if strings.Contains(string(b), "sk-golden-test-key") {
			t.Errorf("cluster %s carries the key inline", c.GetName())
		}
	}
}

// TestWaitApplied: a reload routes by a new snapshot only once every
// connected Envoy has accepted it for every type it subscribes to; a NACK
// keeps the last accepted version.
func TestWaitApplied(t *testing.T) {
	p := NewPublisher(context.Background(), zap.NewNop())
	cb := p.callbacks()
	ctx := context.Background()
	if p.WaitApplied(ctx, "v2", time.Minute) {
		t.Fatal("no Envoy connected: nothing applied it")
	}
	_ = cb.StreamOpenFunc(ctx, 1, "")
	req := func(typ, version string, nack bool) {
		r := &discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: version}
		if nack {
			r.ErrorDetail = &statuspb.Status{Message: "rejected"}
		}
		_ = cb.StreamRequestFunc(1, r)
	}
	const cds, lds = "type.googleapis.com/envoy.config.cluster.v3.Cluster", "type.googleapis.com/envoy.config.listener.v3.Listener"
	req(cds, "", false)
	req(lds, "", false)
	req(cds, "v2", false)
	if p.WaitApplied(ctx, "v2", 30*time.Millisecond) {
		t.Error("applied while listeners are still on the old version")
	}
	req(lds, "v2", true) // rejected
	if p.WaitApplied(ctx, "v2", 30*time.Millisecond) {
		t.Error("a NACK counted as applied")
	}
	req(lds, "v2", false)
	if !p.WaitApplied(ctx, "v2", 30*time.Millisecond) {
		t.Error("not applied after both types accepted v2")
	}
	cb.StreamClosedFunc(1, nil)
	if p.WaitApplied(ctx, "v3", time.Minute) {
		t.Error("applied with no Envoy connected")
	}
}

// TestLastRejectionStands: a refused cluster update stays the last
// rejection while the other types accept the same version, until the
// clusters accept a later one.
func TestLastRejectionStands(t *testing.T) {
	p := NewPublisher(context.Background(), zap.NewNop())
	cb := p.callbacks()
	ctx := context.Background()
	_ = cb.StreamOpenFunc(ctx, 1, "")
	const cds, rds = "type.googleapis.com/envoy.config.cluster.v3.Cluster", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	send := func(typ, version, nonce string) {
		cb.StreamResponseFunc(ctx, 1, nil, &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: nonce})
	}
	answer := func(typ, version, nonce, refusal string) {
		r := &discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: version, ResponseNonce: nonce}
		if refusal != "" {
			r.ErrorDetail = &statuspb.Status{Message: refusal}
		}
		_ = cb.StreamRequestFunc(1, r)
	}
	send(cds, "v1", "1")
	answer(cds, "v1", "1", "")
	send(cds, "v2", "2")
	answer(cds, "v1", "2", "bad CA bundle")
	send(rds, "v2", "3")
	answer(rds, "v2", "3", "")
	if got := p.LastRejection(); got != "bad CA bundle" {
		t.Fatalf("after the routes accepted v2: %q, want the clusters' refusal", got)
	}
	send(cds, "v3", "4")
	answer(cds, "v3", "4", "")
	if got := p.LastRejection(); got != "" {
		t.Fatalf("after the clusters accepted v3: %q", got)
	}
}

// TestWorkspaceKeyCluster (bring your own key): a workspace's own key for a
// provider becomes a copy of that provider's cluster injecting it, as its
// own SDS secret; the provider's egress listener routes to the copy when
// stellwerk names it (header.Upstream) and to the shared cluster otherwise.
// The key never appears in the IR or inline in a cluster.
func TestWorkspaceKeyCluster(t *testing.T) {
	c, err := config.Decode(strings.NewReader(`
envoy: {listener: "127.0.0.1:10000"}
routing: {default_model: m}
providers:
  - {name: openai, base_url: "https://api.openai.com/v1", residency: us, credential: {env: OPENAI_API_KEY}}
  - {name: anthropic, base_url: "https://api.anthropic.com/v1", residency: us, wire_format: anthropic, credential: {env: ANTHROPIC_API_KEY, header: x-api-key}}
models:
  - {id: m, provider: openai, context_window: 128000}
  - {id: c, provider: anthropic, context_window: 128000}
`))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "sk-shared" }})
	if err != nil {
		t.Fatal(err)
	}
	ir, err := FromConfig(c, cat, WorkspaceKey{Workspace: "legal", Provider: "openai", Key: "sk-legal-own"},
		WorkspaceKey{Workspace: "legal", Provider: "anthropic", Key: "sk-ant-legal"}, WorkspaceKey{Workspace: "x", Provider: "gone", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(ir); strings.Contains(string(b), "sk-legal-own") {
		t.Errorf("the IR renders a workspace key: %s", b)
	}
	res, err := Translate(ir)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, s := range res.Secrets {
		secrets[s.GetName()] = s.GetGenericSecret().GetSecret().GetInlineString()
	}
	if secrets["stellwerk_credential_openai__ws_legal"] != "Bearer sk-legal-own" || secrets["stellwerk_credential_anthropic__ws_legal"] != "sk-ant-legal" ||
		secrets["stellwerk_credential_openai"] != "Bearer sk-shared" || len(secrets) != 4 {
		t.Errorf("secrets %v", secrets)
	}
	clusters := map[string]string{}
	for _, cl := range res.Clusters {
		b, _ := protojson.Marshal(cl)
		clusters[cl.GetName()] = string(b)
		if strings.Contains(string(b), "sk-legal-own") {
			t.Errorf("cluster %s carries a key inline", cl.GetName())
		}
	}
	if w := clusters["provider_openai__ws_legal"]; !strings.Contains(w, "stellwerk_credential_openai__ws_legal") || !strings.Contains(w, "api.openai.com") {
		t.Errorf("workspace cluster: %s", w)
	}
	for _, l := range res.Listeners {
		b, _ := protojson.Marshal(l)
		if l.GetName() == "stellwerk_egress_openai" && (!strings.Contains(string(b), `"clusterHeader":"x-stellwerk-upstream"`) ||
			!strings.Contains(string(b), `"cluster":"provider_openai"`)) {
			t.Errorf("egress listener routes: %s", b)
		}
	}
}
