package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// sdkResult is what the SDK scripts in e2e/clients print.
type sdkResult struct {
	Plain struct {
		Content              string `json:"content"`
		Model                string `json:"model"`
		TotalTokens          int    `json:"total_tokens"`
		XStellwerkModel      string `json:"x_stellwerk_model"`
		XStellwerkProvider   string `json:"x_stellwerk_provider"`
		XStellwerkDecisionID string `json:"x_stellwerk_decision_id"`
		RoutingDecisionID    string `json:"routing_decision_id"`
	} `json:"plain"`
	Stream struct {
		Content         string `json:"content"`
		Chunks          int    `json:"chunks"`
		TotalTokens     int    `json:"total_tokens"`
		XStellwerkModel string `json:"x_stellwerk_model"`
	} `json:"stream"`
	Models       []string `json:"models"`
	UnknownModel struct {
		Raised  string `json:"raised"`
		Status  int    `json:"status"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"unknown_model"`
}

func checkSDK(t *testing.T, s *harness.Stack, cmd *exec.Cmd, lang string) {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s client failed: %v\n%s\n%s", lang, err, out, stderr)
	}
	var r sdkResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%s client printed %q: %v", lang, out, err)
	}
	p := s.Providers["beta"]

	if !strings.Contains(r.Plain.Content, "Hello from beta. You said: hello from "+lang) {
		t.Errorf("plain reply %q", r.Plain.Content)
	}
	if r.Plain.Model != "beta-upstream" || r.Plain.TotalTokens == 0 {
		t.Errorf("plain model %q tokens %d", r.Plain.Model, r.Plain.TotalTokens)
	}
	if r.Plain.XStellwerkModel != "beta-model" || r.Plain.XStellwerkProvider != "beta" || len(r.Plain.XStellwerkDecisionID) != 32 ||
		r.Plain.RoutingDecisionID != r.Plain.XStellwerkDecisionID {
		t.Errorf("plain headers %+v", r.Plain)
	}
	if !strings.Contains(r.Stream.Content, "Hello from beta. You said: stream from "+lang) || r.Stream.Chunks < 5 {
		t.Errorf("stream %+v", r.Stream)
	}
	if r.Stream.TotalTokens == 0 || r.Stream.XStellwerkModel != "beta-model" {
		t.Errorf("stream usage/headers %+v", r.Stream)
	}
	if strings.Join(r.Models, ",") != "auto,alpha-model,beta-model" {
		t.Errorf("models %v", r.Models)
	}
	if r.UnknownModel.Raised != "NotFoundError" || r.UnknownModel.Status != 404 || r.UnknownModel.Code != "model_not_found" {
		t.Errorf("unknown model: %+v", r.UnknownModel)
	}
	// Both SDK requests reached beta with the provider key and model name.
	var routed int
	for _, rq := range p.Requests() {
		var body struct{ Model string }
		_ = json.Unmarshal(rq.Body, &body)
		if body.Model != "beta-upstream" || rq.Header.Get("Authorization") != "Bearer "+p.Key {
			t.Errorf("beta got model %q auth %q", body.Model, rq.Header.Get("Authorization"))
		}
		routed++
	}
	if routed != 2 {
		t.Errorf("beta got %d requests, want 2", routed)
	}
}

func TestPythonSDK(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, harness.Options{DefaultModel: "beta-model"})
	cmd := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "smoke.py"), s.URL, "auto")
	checkSDK(t, s, cmd, "python")
}

func TestNodeSDK(t *testing.T) {
	t.Parallel()
	node := harness.RequireNodeClient(t)
	s := harness.Start(t, harness.Options{DefaultModel: "beta-model"})
	cmd := exec.Command(node, filepath.Join(harness.Root(), "e2e", "clients", "node", "smoke.mjs"), s.URL, "auto")
	checkSDK(t, s, cmd, "node")
}
