package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/xds"
)

func TestXDSDump(t *testing.T) {
	dump := xds.Dump{Version: "v2", Secrets: []string{"stellwerk_credential_alpha"}, Nodes: []xds.NodeStatus{
		{Node: "edge-a", Stream: 1, AckedVersion: "v2", Types: map[string]xds.TypeStatus{"cluster": {Sent: "v2", Acked: "v2"}}},
		{Node: "edge-b", Stream: 2, AckedVersion: "v1", Types: map[string]xds.TypeStatus{"cluster": {Sent: "v2", Acked: "v1"}},
			Rejections: []xds.Rejection{{Node: "edge-b", Type: "cluster", Version: "v2", Error: "bad cluster", At: time.Unix(0, 0).UTC()}}},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/xds" || r.Header.Get("Authorization") != "Bearer tok-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(dump)
	}))
	defer srv.Close()
	t.Setenv("XDS_TEST_TOKEN", "tok-1")
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"xds", "dump", "--admin", srv.URL, "--token-env", "XDS_TEST_TOKEN"}, nil, &out, &errb); err != nil {
		t.Fatalf("%v %s", err, errb.String())
	}
	got := out.String()
	for _, want := range []string{"snapshot v2:", "edge-a  1       cluster  v2    v2     current",
		"edge-b  2       cluster  v2    v1     REJECTED v2 at 1970-01-01T00:00:00Z: bad cluster"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// HOST:PORT as server.admin has it (a URL was required), and the
	// config's server.admin through --config.
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg := filepath.Join(t.TempDir(), "stellwerk.yaml")
	if err := os.WriteFile(cfg, []byte("server: {admin: \""+host+"\"}\nrouting: {default_model: m}\nproviders: [{name: p, base_url: \"http://127.0.0.1:1/v1\", residency: eu}]\nmodels: [{id: m, provider: p, context_window: 1000}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--admin", host}, {"--config", cfg}} {
		out.Reset()
		if err := Run(context.Background(), append([]string{"xds", "dump", "--token-env", "XDS_TEST_TOKEN"}, args...), nil, &out, &errb); err != nil ||
			!strings.Contains(out.String(), "snapshot v2:") {
			t.Errorf("%v: %v %s", args, err, errb.String())
		}
	}
	// A config named that is not there is said, not replaced by the
	// default address.
	if err := Run(context.Background(), []string{"xds", "dump", "--token-env", "XDS_TEST_TOKEN", "--config", cfg + ".missing"}, nil, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing --config: %v", err)
	}
	t.Setenv("XDS_TEST_TOKEN", "wrong")
	if err := Run(context.Background(), []string{"xds", "dump", "--admin", srv.URL, "--token-env", "XDS_TEST_TOKEN"}, nil, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("a refused token: %v", err)
	}
}
