package xds

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
)

// TestNodesReportNACKs: each Envoy's status names its node, the version it
// serves per type, and a rejected version with Envoy's error detail; the
// log says each rejection once, however often Envoy repeats it; a later
// accepted version clears it.
func TestNodesReportNACKs(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	p := NewPublisher(context.Background(), zap.New(core))
	cb := p.callbacks()
	ctx := context.Background()
	const cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	const rds = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	for id, node := range map[int64]string{1: "edge-a", 2: "edge-b"} {
		_ = cb.StreamOpenFunc(ctx, id, "")
		for _, typ := range []string{cds, rds} {
			_ = cb.StreamRequestFunc(id, &discoveryv3.DiscoveryRequest{TypeUrl: typ, Node: &corev3.Node{Id: node}})
			cb.StreamResponseFunc(ctx, id, nil, &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: "v1", Nonce: "1"})
			_ = cb.StreamRequestFunc(id, &discoveryv3.DiscoveryRequest{TypeUrl: typ, VersionInfo: "v1", ResponseNonce: "1"})
		}
	}
	// edge-b refuses v2's clusters, and says so again on its next request.
	cb.StreamResponseFunc(ctx, 2, nil, &discoveryv3.DiscoveryResponse{TypeUrl: cds, VersionInfo: "v2", Nonce: "2"})
	nack := &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: "v1", ResponseNonce: "2",
		ErrorDetail: &statuspb.Status{Message: "Proto constraint validation failed: max_ejection_percent"}}
	_ = cb.StreamRequestFunc(2, nack)
	_ = cb.StreamRequestFunc(2, nack)

	nodes := p.Nodes()
	if len(nodes) != 2 || nodes[0].Node != "edge-a" || nodes[1].Node != "edge-b" {
		t.Fatalf("nodes %+v", nodes)
	}
	if a := nodes[0]; a.AckedVersion != "v1" || len(a.Rejections) != 0 || a.Types["cluster"] != (TypeStatus{Sent: "v1", Acked: "v1"}) {
		t.Errorf("edge-a %+v", a)
	}
	b := nodes[1]
	if b.AckedVersion != "v1" || b.Types["cluster"] != (TypeStatus{Sent: "v2", Acked: "v1"}) || b.Types["route"].Acked != "v1" {
		t.Errorf("edge-b serves v1 everywhere, was sent v2 clusters: %+v", b)
	}
	if len(b.Rejections) != 1 || b.Rejections[0].Version != "v2" || b.Rejections[0].Type != "cluster" ||
		b.Rejections[0].Error != "Proto constraint validation failed: max_ejection_percent" || b.Rejections[0].Node != "edge-b" {
		t.Errorf("edge-b rejections %+v", b.Rejections)
	}
	if n := logs.FilterMessage("envoy rejected configuration").Len(); n != 1 {
		t.Errorf("the rejection was logged %d times, want once", n)
	}
	if e := logs.FilterMessage("envoy rejected configuration").All(); len(e) == 1 && (e[0].ContextMap()["node"] != "edge-b" || e[0].ContextMap()["rejected_version"] != "v2") {
		t.Errorf("log fields %v", e[0].ContextMap())
	}

	// v3 is accepted: the rejection is over.
	cb.StreamResponseFunc(ctx, 2, nil, &discoveryv3.DiscoveryResponse{TypeUrl: cds, VersionInfo: "v3", Nonce: "3"})
	_ = cb.StreamRequestFunc(2, &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: "v3", ResponseNonce: "3"})
	if b := p.Nodes()[1]; len(b.Rejections) != 0 || b.Types["cluster"].Acked != "v3" || b.AckedVersion != "" {
		t.Errorf("after v3 was accepted: %+v", b)
	}
	cb.StreamClosedFunc(1, nil)
	if n := p.Nodes(); len(n) != 1 || n[0].Node != "edge-b" {
		t.Errorf("after edge-a left: %+v", n)
	}
}

// TestDumpNeverShowsSecrets: the dump lists the snapshot's resources and
// names its secrets without their values.
func TestDumpNeverShowsSecrets(t *testing.T) {
	ctx := context.Background()
	p := NewPublisher(ctx, zap.NewNop())
	if _, err := p.Publish(ctx, testIR(t)); err != nil {
		t.Fatal(err)
	}
	d, err := p.Dump()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	if strings.Contains(string(b), "sk-golden-test-key") {
		t.Errorf("the dump shows a provider key")
	}
	if len(d.Clusters) != 7 || len(d.Listeners) != 3 || len(d.Routes) != 1 || len(d.Secrets) != 1 || d.Version != p.Version() {
		t.Errorf("dump: %d clusters, %d listeners, %d routes, secrets %v, version %q", len(d.Clusters), len(d.Listeners), len(d.Routes), d.Secrets, d.Version)
	}
}

// TestNACKOfCurrentVersionWaits: a NACK of the snapshot in force is handed
// to the cache as if Envoy had it, so the cache waits for the next
// snapshot instead of resending the refused one at once (a resend loop);
// a NACK of an older version still gets the current one.
func TestNACKOfCurrentVersionWaits(t *testing.T) {
	ctx := context.Background()
	p := NewPublisher(ctx, zap.NewNop())
	v, err := p.Publish(ctx, testIR(t))
	if err != nil {
		t.Fatal(err)
	}
	cb := p.callbacks()
	const cds = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	_ = cb.StreamOpenFunc(ctx, 1, "")
	cb.StreamResponseFunc(ctx, 1, nil, &discoveryv3.DiscoveryResponse{TypeUrl: cds, VersionInfo: "old", Nonce: "1"})
	cb.StreamResponseFunc(ctx, 1, nil, &discoveryv3.DiscoveryResponse{TypeUrl: cds, VersionInfo: v, Nonce: "2"})
	old := &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: "", ResponseNonce: "1", ErrorDetail: &statuspb.Status{Message: "no"}}
	_ = cb.StreamRequestFunc(1, old)
	if old.VersionInfo != "" {
		t.Errorf("a NACK of an older version was parked: %q", old.VersionInfo)
	}
	cur := &discoveryv3.DiscoveryRequest{TypeUrl: cds, VersionInfo: "", ResponseNonce: "2", ErrorDetail: &statuspb.Status{Message: "no"}}
	_ = cb.StreamRequestFunc(1, cur)
	if cur.VersionInfo != v {
		t.Errorf("a NACK of the current version goes to the cache as %q, want %q", cur.VersionInfo, v)
	}
	if a := p.Nodes()[0].Types["cluster"].Acked; a != "" {
		t.Errorf("the NACK counted as accepted: %q", a)
	}
}
