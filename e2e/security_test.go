package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/tidwall/gjson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/header"
)

// probeExtProc plays an attacker who speaks ext_proc on stellwerk's gRPC
// port: a request-headers message (with a plan naming the model when
// egress is set, as the egress listeners do), then a body. It returns every
// answer rendered as JSON, for messages, and in wire form: protojson shows
// header values as base64, so a key is looked for in the answers' protobuf
// encoding, where values are verbatim.
func probeExtProc(t *testing.T, conn *grpc.ClientConn, egress, model string) (out string, wire []byte, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if egress != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, header.Egress, egress)
	}
	st, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return "", nil, err
	}
	hs := []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte("POST")}, {Key: ":path", RawValue: []byte("/v1/chat/completions")},
		{Key: ":authority", RawValue: []byte("127.0.0.1")}, {Key: "content-type", RawValue: []byte("application/json")},
	}
	if egress != "" {
		hs = append(hs, &corev3.HeaderValue{Key: header.Plan, RawValue: []byte("0123456789abcdef0123456789abcdef;" + model)})
	}
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: &corev3.HeaderMap{Headers: hs}}}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{EndOfStream: true,
			Body: []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"give me the key"}]}`)}}},
	}
	var sb strings.Builder
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			return sb.String(), wire, err
		}
		r, err := st.Recv()
		if err != nil {
			return sb.String(), wire, err
		}
		b, _ := protojson.Marshal(r)
		sb.Write(b)
		w, _ := proto.Marshal(r)
		wire = append(wire, w...)
		if r.GetImmediateResponse() != nil {
			break
		}
	}
	return sb.String(), wire, nil
}

// TestSecurityGRPCPortGivesNoKey: before, two messages on the ext_proc port
// (egress metadata, a plan naming any model, a body) returned
// "authorization: Bearer <provider key>" in the header mutation, and so did
// the edge stream without the metadata. Now the key is Envoy's (an SDS
// secret the provider's cluster injects): even a peer that reaches the
// socket gets routing answers without a credential, and the socket is only
// open to stellwerk's user and group.
func TestSecurityGRPCPortGivesNoKey(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	path, ok := s.Config.Server.GRPCSocket()
	if !ok {
		t.Fatalf("the default stack serves gRPC on %q, not a Unix socket", s.GRPC)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		t.Errorf("socket mode %v: others may connect", perm)
	}

	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for name, probe := range map[string]struct{ egress, model string }{
		"egress metadata and plan": {"alpha", "alpha-model"},
		"egress for another":       {"beta", "beta-model"},
		"edge stream, pinned":      {"", "alpha-model"},
	} {
		out, wire, err := probeExtProc(t, conn, probe.egress, probe.model)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, p := range s.Providers {
			if bytes.Contains(wire, []byte(p.Key)) {
				t.Errorf("%s: the answer holds %s's key: %s", name, p.Name, out)
			}
		}
		if !strings.Contains(out, "requestBody") {
			t.Errorf("%s: no body answer: %s", name, out)
		}
	}

	// Without failover the edge stream itself rewrites the request for the
	// provider (as in clusters mode): still no key.
	direct := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Failover.MaxAttempts = 1 }})
	dpath, _ := direct.Config.Server.GRPCSocket()
	dconn, err := grpc.NewClient("unix://"+dpath, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer dconn.Close()
	out, wire, err := probeExtProc(t, dconn, "", "beta-model")
	if err != nil || !bytes.Contains(wire, []byte("provider_beta")) || bytes.Contains(wire, []byte(direct.Providers["beta"].Key)) {
		t.Errorf("edge stream without failover: %v, %s", err, out)
	}

	// Envoy holds the keys now; its admin API (loopback in the bootstrap)
	// shows them redacted.
	if r, err := http.Get(s.EnvoyAdmin + "/config_dump?include_eds"); err != nil {
		t.Fatal(err)
	} else {
		dump, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(dump), "stellwerk_credential_alpha") || strings.Contains(string(dump), "sk-alpha") {
			t.Errorf("Envoy's config dump: secrets missing or shown (%d bytes)", len(dump))
		}
	}

	// Through Envoy, the provider still gets its key, and only its own.
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"authorization": "Bearer client-key"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	reqs := s.Providers["alpha"].Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer sk-alpha" {
		t.Fatalf("alpha got %d requests, authorization %q", len(reqs), reqs[0].Header.Get("Authorization"))
	}
}

// TestSecurityMTLSRequiresEnvoyCertificate: across hosts the gRPC port is
// TCP with mutual TLS. Envoy, booted from envoy/bootstrap-mtls.yaml, routes
// requests; a client without a certificate, or with one from another CA,
// gets no connection to ext_proc or ADS.
func TestSecurityMTLSRequiresEnvoyCertificate(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{MTLS: true})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"beta-model","messages":[{"role":"user","content":"over mtls"}]}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-provider") != "beta" {
		t.Fatalf("through Envoy with mTLS: status %d: %s", resp.StatusCode, b)
	}
	if got := s.Providers["beta"].Requests()[0].Header.Get("Authorization"); got != "Bearer sk-beta" {
		t.Errorf("provider credential %q", got)
	}

	caPEM, err := os.ReadFile(s.MTLS.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	dial := func(certFile, keyFile string) *grpc.ClientConn {
		tc := &tls.Config{RootCAs: roots, ServerName: "stellwerk.internal"}
		if certFile != "" {
			c, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{c}
		}
		conn, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	ads := func(conn *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
		if err == nil {
			err = st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
				Node: &corev3.Node{Id: "intruder"}, ResourceNames: []string{header.CredentialSecret("beta")}})
		}
		if err == nil {
			_, err = st.Recv()
		}
		return err
	}
	for name, c := range map[string]struct{ cert, key string }{
		"no client certificate":       {"", ""},
		"certificate from another CA": {s.MTLS.StrangerCert, s.MTLS.StrangerKey},
	} {
		conn := dial(c.cert, c.key)
		if out, _, err := probeExtProc(t, conn, "beta", "beta-model"); err == nil {
			t.Errorf("%s: ext_proc answered: %s", name, out)
		}
		if err := ads(conn); err == nil {
			t.Errorf("%s: ADS answered", name)
		}
	}
	// Envoy's own certificate connects (Envoy above got its clusters and
	// secrets this way), and still no ext_proc answer carries a key.
	out, wire, err := probeExtProc(t, dial(s.MTLS.ClientCert, s.MTLS.ClientKey), "beta", "beta-model")
	if err != nil || !strings.Contains(out, "requestBody") || bytes.Contains(wire, []byte("sk-beta")) {
		t.Errorf("with Envoy's certificate: %v %s", err, out)
	}
}

// TestSecurityProviderGetsOnlyAllowedHeaders: before, everything a client
// sent but its credentials reached the provider (cookies, the
// OpenAI-Organization that picks which org the company key bills,
// anthropic-beta) and the query string went along verbatim. Now providers
// get an allow-list, plus what their forward_headers name, and the query
// from config.
func TestSecurityProviderGetsOnlyAllowedHeaders(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) {
		for i := range c.Providers {
			if c.Providers[i].Name == "beta" {
				c.Providers[i].ForwardHeaders = append(c.Providers[i].ForwardHeaders, "openai-beta")
				c.Providers[i].Query = map[string]string{"api-version": "2024-10-21"}
			}
		}
	}})
	const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	py := harness.RequirePython(t)
	// The official SDK, as an application would configure it.
	cmd := exec.Command(py, "-c", `
import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="client-key", max_retries=0,
    organization="org-attacker", project="proj-attacker",
    default_headers={"cookie": "session=secret", "anthropic-beta": "x", "openai-beta": "assistants=v2",
                     "traceparent": sys.argv[2], "x-client-secret": "do-not-forward", "x-request-id": "client-chosen"},
    default_query={"api-version": "1999-01-01", "debug": "1"})
for model in ("alpha-model", "beta-model"):
    c.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
print("ok")`, s.URL, trace)
	if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python SDK: %v %s", err, out)
	}
	for name, want := range map[string]struct {
		path       string
		openaiBeta string
	}{
		"alpha": {"/v1/chat/completions", ""},
		"beta":  {"/v1/chat/completions?api-version=2024-10-21", "assistants=v2"},
	} {
		reqs := s.Providers[name].Requests()
		if len(reqs) != 1 {
			t.Fatalf("%s got %d requests", name, len(reqs))
		}
		r := reqs[0]
		if r.Path != want.path {
			t.Errorf("%s: path %q, want %q (the client's query is never forwarded)", name, r.Path, want.path)
		}
		for _, h := range []string{"Cookie", "Openai-Organization", "Openai-Project", "Anthropic-Beta", "X-Client-Secret", "X-Stainless-Lang"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s received %s: %q", name, h, v)
			}
		}
		if got := r.Header.Get("Openai-Beta"); got != want.openaiBeta {
			t.Errorf("%s: openai-beta %q, want %q (only in beta's forward_headers)", name, got, want.openaiBeta)
		}
		if r.Header.Get("Traceparent") != trace || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: trace context or content type lost: %v", name, r.Header)
		}
		if r.Header.Get("Authorization") != "Bearer "+s.Providers[name].Key {
			t.Errorf("%s: authorization %q", name, r.Header.Get("Authorization"))
		}
		// Envoy gives every request its own id, whatever the client
		// sent: the edge keys a request's first attempt by it, and two
		// clients sending the same one had their attempts mixed up (a
		// helper's finding; loopback clients counted as internal).
		if id := r.Header.Get("X-Request-Id"); id == "" || id == "client-chosen" {
			t.Errorf("%s: x-request-id %q, want Envoy's own", name, id)
		}
	}
}

// TestClientIsNeverInternal: a client on loopback or a private network
// is not one of Envoy's internal ones, so every request gets Envoy's own
// x-request-id, and the x-envoy-* controls it sends do not apply (a 1 ms
// upstream timeout here). The listener's internal_address_config was
// empty, which Envoy 1.40 still reads as RFC 1918 and loopback being
// internal: a helper saw the client's x-request-id reach the provider, and
// concurrent requests sending the same one had their attempts mixed up.
// The id part fails with the build before.
func TestClientIsNeverInternal(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"alpha-model","messages":[{"role":"user","content":"hi"}]}`,
		map[string]string{"x-envoy-upstream-rq-timeout-ms": "1", "x-envoy-upstream-rq-per-try-timeout-ms": "1",
			"x-mock-first-byte-delay": "100ms", "x-request-id": "client-chosen"})
	if resp.StatusCode != 200 {
		t.Fatalf("a client's x-envoy-* timeout applied: %d %s", resp.StatusCode, b)
	}
	reqs := s.Providers["alpha"].Requests()
	if id := reqs[len(reqs)-1].Header.Get("X-Request-Id"); id == "" || id == "client-chosen" {
		t.Errorf("x-request-id %q at the provider, want Envoy's own", id)
	}
}

// TestProviderEchoesCredential: a provider (or a gateway before it) that
// echoes what it was sent, names the account it bills and sets cookies:
// the client gets none of it — not in a header, not in the error of a
// failed attempt stellwerk quotes — and neither do stellwerk's log and the
// audit record (found by a helper attacking the trust boundaries).
func TestProviderEchoesCredential(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {})
	const secret = "sk-primary" // the harness's key for primary
	hdr := map[string]string{"x-mock-echo-auth": "1"}
	resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"hi"}]}`, hdr)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	// Nor in a successful answer's content, JSON or streamed, OpenAI's
	// wire or Anthropic's (a JSON answer's was passed on: the notes of
	// 2026-12-06).
	if strings.Contains(string(b), secret) || !strings.Contains(string(b), "You sent Bearer [credential]") {
		t.Errorf("the answer: %s", b)
	}
	for _, body := range []string{`{"model":"primary-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"claude-haiku","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"claude-haiku","stream":true,"messages":[{"role":"user","content":"hi"}]}`} {
		resp, b := post(t, s.URL+"/v1/chat/completions", body, hdr)
		if resp.StatusCode != 200 || strings.Contains(string(b), secret) || strings.Contains(string(b), "sk-ant-fake") || !strings.Contains(string(b), "[credential]") {
			t.Errorf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, secret) || slices.ContainsFunc([]string{"Openai-Organization", "Set-Cookie", "Via", "X-Ms-Region", "Apim-Request-Id", "Azureml-Model-Session", "X-Echo-Auth"},
				func(h string) bool { return strings.EqualFold(k, h) }) {
				t.Errorf("the client got %s: %s", k, v)
			}
		}
	}
	if resp.Header.Get("Content-Type") == "" || resp.Header.Get("x-stellwerk-model") == "" {
		t.Errorf("the answer's own headers: %v", resp.Header)
	}
	// Every attempt fails, the last provider's words quoted in the 503.
	hdr["x-mock-status"] = "500"
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"hi"}]}`, hdr)
	if resp.StatusCode != 503 || strings.Contains(string(b), secret) || !strings.Contains(string(b), "[credential]") {
		t.Errorf("503: %d %s", resp.StatusCode, b)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Errorf("the 503 has %s: %s", k, v)
			}
		}
	}
	// A provider's own error passes on, without the credential it echoes.
	hdr["x-mock-status"] = "400"
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","messages":[{"role":"user","content":"hi"}]}`, hdr)
	if resp.StatusCode != 400 || strings.Contains(string(b), secret) || !strings.Contains(string(b), "injected failure 400") {
		t.Errorf("400: %d %s", resp.StatusCode, b)
	}
	// So does its error event in a stream (a code review's finding: it
	// reached the client as sent).
	delete(hdr, "x-mock-status")
	hdr["x-mock-reset"] = "error"
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"primary-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, hdr)
	if resp.StatusCode != 200 || strings.Contains(string(b), secret) || !strings.Contains(string(b), "The server is overloaded; you sent Bearer [credential]") {
		t.Errorf("stream error event: %d %s", resp.StatusCode, b)
	}
	s.Stop("stellwerk")
	if strings.Contains(s.Log("stellwerk"), secret) {
		t.Error("stellwerk's log has the credential")
	}
}

// TestAccessLogHasNoQuery: Envoy's access log names a request's path
// without its query string, where a client may have put its key
// (?api-key=…, as Azure and Gemini clients do): a refused request's line
// used to carry the key whole (the security probe of 2026-12-07).
func TestAccessLogHasNoQuery(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Auth.Mode = "keys" }, ReadyStatus: 401})
	const key = "sk-sw-QueryKeyNeverLogged0123456789abcdefghij"
	resp, b := post(t, s.URL+"/v1/chat/completions?api-key="+key, `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, nil)
	if resp.StatusCode != 401 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	id := resp.Header.Get(header.DecisionID)
	waitFor(t, "the access log line", func() bool { return strings.Contains(s.Log("envoy"), id) })
	for _, line := range strings.Split(s.Log("envoy"), "\n") {
		if strings.Contains(line, id) && !strings.Contains(line, `"path":"/v1/chat/completions"`) {
			t.Errorf("access log line: %s", line)
		}
	}
	if strings.Contains(s.Log("envoy"), "QueryKeyNeverLogged") {
		t.Error("the key is in Envoy's log")
	}
}

// TestEnvoyRepliesAreJSON: what Envoy refuses on its own before any
// filter (a request without Host, a path that does not normalise, an
// upgrade) is answered in the OpenAI error shape; it used to come with an
// empty body (the security probe of 2026-12-07).
func TestEnvoyRepliesAreJSON(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{})
	for name, c := range map[string]struct {
		req    string
		status int
		detail string
	}{
		"no host":     {"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "missing_host_header"},
		"nul in path": {"POST /v1/chat%00/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "path_normalization_failed"},
		"upgrade":     {"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 403, "upgrade_failed"},
	} {
		c := c
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(conn, c.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if e := decodeError(t, b); resp.StatusCode != c.status || resp.Header.Get("content-type") != "application/json" ||
				e.Error.Code != "invalid_http_request" || !strings.Contains(e.Error.Message, c.detail) {
				t.Errorf("%d %q %s", resp.StatusCode, resp.Header.Get("content-type"), b)
			}
		})
	}
}

// TestProviderCannotClaimAnotherModel (the fuzzing probe, 2026-12-07):
// the edge learns which attempt of a plan answered from a header the
// egress filter sets; on the first attempt, which has no egress filter, a
// provider (or a gateway before it) sending that header itself made the
// answer recorded, priced and reported as another model's of the plan.
// Nor does any x-stellwerk-* header a provider sends reach the client
// (the red team: x-stellwerk-fallback-from, -budget-warning, -cost did).
func TestProviderCannotClaimAnotherModel(t *testing.T) {
	t.Parallel()
	s := failoverStackWith(t, func(c *config.Config) {})
	for _, stream := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
			strings.NewReader(fmt.Sprintf(`{"model":"auto","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)))
		req.Header.Set("Content-Type", "application/json")
		for _, h := range []string{"x-stellwerk-served: 2", "x-stellwerk-upstream-flags: UF", "x-stellwerk-first-model: eu-large", "x-envoy-attempt-count: 3",
			"x-stellwerk-fallback-from: eu-large", "x-stellwerk-budget-warning: forged", "x-stellwerk-cost: 0", "x-stellwerk-plan: eu-large"} {
			req.Header.Add("x-mock-header", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "primary-mini" {
			t.Fatalf("stream %v: %d, model %q: %s", stream, resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
		for _, h := range []string{"x-stellwerk-served", "x-stellwerk-upstream-flags", "x-stellwerk-first-model",
			"x-stellwerk-fallback-from", "x-stellwerk-budget-warning", "x-stellwerk-cost", "x-stellwerk-plan"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("stream %v: the client got %s: %s", stream, h, v)
			}
		}
		if stream {
			continue
		}
		r := gjson.GetBytes(b, "routing")
		if r.Get("model").Str != "primary-mini" || r.Get("provider").Str != "primary" || r.Get("attempts.#").Int() != 1 ||
			r.Get("attempts.0.model").Str != "primary-mini" {
			t.Errorf("the routing object: %s", r.Raw)
		}
	}
}
