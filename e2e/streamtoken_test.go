package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stellwerk/stellwerk/internal/header"
)

// TestDropInStreamTokenKeepsProxiedClientsOut: an operator route that lets
// the client choose its cluster (cluster_header) took a client through the
// operator's public listener to stellwerk_xds, where ADS, asked with any
// node id, answered every provider key in plain text (the mesh-integrator
// probe, finding 3). With server.grpc_stream_token set and the drop-in
// pieces carrying it, LLM requests are served as before; the same client,
// through that route or straight at the socket, gets no secret, no
// cluster and no ext_proc stream, only UNAUTHENTICATED, and stellwerk's
// log says so without the token. The route itself works: the client that
// has the token (which only Envoy's config holds) reads the secrets.
func TestDropInStreamTokenKeepsProxiedClientsOut(t *testing.T) {
	t.Parallel()
	s, _ := existingEnvoyAt(t, true, "", func(hcm map[string]any) {
		rc := hcm["route_config"].(map[string]any)
		rc["virtual_hosts"] = append([]any{map[string]any{
			"name": "dyn", "domains": []any{"dyn.example"},
			"routes": []any{map[string]any{"name": "dyn", "match": map[string]any{"prefix": "/"},
				"route": map[string]any{"cluster_header": "x-tenant-cluster"}}},
		}}, rc["virtual_hosts"].([]any)...)
	}, nil)
	tokenBytes, err := os.ReadFile(s.Config.Server.GRPCStreamToken.File)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	beta := s.Providers["beta"]

	// (a) Envoy's own clients have the token: LLM requests work.
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "beta" || len(beta.Requests()) != 1 {
		t.Fatalf("LLM request with the stream token configured: %d %s", resp.StatusCode, b)
	}

	// (b) A client of the operator's listener, on the dyn route.
	viaEnvoy, err := grpc.NewClient(strings.TrimPrefix(s.URL, "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("dyn.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer viaEnvoy.Close()
	direct, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	secrets := []string{header.CredentialSecret("alpha"), header.CredentialSecret("beta")}
	keys := []string{s.Providers["alpha"].Key, beta.Key}

	for name, tc := range map[string]struct {
		conn *grpc.ClientConn
		md   []string
	}{
		"via the operator's route": {viaEnvoy, []string{"x-tenant-cluster", "stellwerk_xds"}},
		"via the route, a guess":   {viaEnvoy, []string{"x-tenant-cluster", "stellwerk_xds", header.StreamToken, "REPLACE_WITH_THE_STREAM_TOKEN"}},
		"at the socket":            {direct, nil},
	} {
		for typ, names := range map[string][]string{resource.SecretType: secrets, resource.ClusterType: nil} {
			n, raw, err := ads(t, tc.conn, tc.md, typ, names)
			if n != 0 || status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s, %s: %d resources, %v; want none, Unauthenticated", name, typ, n, err)
			}
			for _, k := range keys {
				if strings.Contains(raw, k) {
					t.Errorf("%s: a provider key reached the client", name)
				}
			}
		}
	}
	for name, tc := range map[string]struct {
		conn *grpc.ClientConn
		md   []string
	}{
		"via the operator's route": {viaEnvoy, []string{"x-tenant-cluster", "stellwerk_extproc"}},
		"at the socket":            {direct, nil},
	} {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), tc.md...), 10*time.Second)
		st, err := extprocv3.NewExternalProcessorClient(tc.conn).Process(ctx)
		if err == nil {
			st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
				Headers: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: ":path", RawValue: []byte("/v1/chat/completions")}}}}}})
			_, err = st.Recv()
		}
		cancel()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ext_proc %s: %v, want Unauthenticated", name, err)
		}
	}

	// The route does reach stellwerk's ADS: with the token (which the
	// client cannot know) it answers the keys. This is what every client
	// of such a route got before.
	n, raw, err := ads(t, viaEnvoy, []string{"x-tenant-cluster", "stellwerk_xds", header.StreamToken, token}, resource.SecretType, secrets)
	if n != 2 || !strings.Contains(raw, beta.Key) {
		t.Errorf("with the token through the route: %d secrets, %v", n, err)
	}

	waitFor(t, "the refusal in stellwerk's log", func() bool {
		return strings.Contains(s.Log("stellwerk"), "refused a gRPC stream without the right stream token")
	})
	if log := s.Log("stellwerk"); strings.Contains(log, token) {
		t.Error("stellwerk's log shows the stream token")
	}
	if len(beta.Requests()) != 1 {
		t.Errorf("beta got %d requests, want the one LLM request", len(beta.Requests()))
	}
}

// ads opens an ADS stream with metadata md, as a node called "attacker",
// asks for names of type typ, and returns how many resources the first
// answer had and their bytes, or the stream's error.
func ads(t *testing.T, conn *grpc.ClientConn, md []string, typ string, names []string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), md...), 10*time.Second)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return 0, "", err
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "attacker", Cluster: "attacker"}, TypeUrl: typ, ResourceNames: names}); err != nil {
		_, err = st.Recv()
		return 0, "", err
	}
	r, err := st.Recv()
	if err != nil {
		return 0, "", err
	}
	var raw strings.Builder
	for _, a := range r.GetResources() {
		raw.Write(a.GetValue())
	}
	return len(r.GetResources()), raw.String(), nil
}
