package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestFeedbackWithVirtualKey: an application votes on its own answer through Envoy with
// its virtual key (POST /v1/feedback, by the official openai SDK's generic post): 201, the
// comment's secret redacted, the model filled from the decision. A decision of another
// workspace is a 404 like an unknown one, a model other than the one that served a 409
// (the experimentation probe: any id and any model were kept, and only with an admin
// token). stellwerk feedback export and GET /admin/feedback read the vote back with its
// decision's served model.
func TestFeedbackWithVirtualKey(t *testing.T) {
	t.Parallel()
	s := legalStack(t, nil)
	py := harness.RequirePython(t)
	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "feedback.py"), s.URL,
		"sk-legal-client", "sk-dev-client").Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	type voted struct {
		Status int            `json:"status"`
		Body   map[string]any `json:"body"`
		Error  struct{ Code, Message string }
	}
	var r struct {
		Decision       string `json:"decision"`
		Model          string `json:"model"`
		OtherDecision  string `json:"other_decision"`
		Own            voted  `json:"own"`
		OtherWorkspace voted  `json:"other_workspace"`
		Unknown        voted  `json:"unknown"`
		WrongModel     voted  `json:"wrong_model"`
	}
	mustJSON(t, out, &r)
	if r.Decision == "" || r.Model == "" || r.OtherDecision == "" {
		t.Fatalf("chat answers without decision or model: %s", out)
	}
	if r.Own.Status != 201 || r.Own.Body["model"] != r.Model || r.Own.Body["by"] != "key:legal-bot" ||
		strings.Contains(r.Own.Body["comment"].(string), "sk-proj") || r.Own.Body["workspace"] != "legal" {
		t.Errorf("a vote on its own decision: %+v", r.Own)
	}
	if r.OtherWorkspace.Status != 404 || r.OtherWorkspace.Error.Code != "decision_not_found" {
		t.Errorf("a vote on another workspace's decision: %+v", r.OtherWorkspace)
	}
	if r.Unknown.Status != 404 || r.Unknown.Error.Code != "decision_not_found" || r.Unknown.Error.Message != r.OtherWorkspace.Error.Message {
		t.Errorf("an unknown decision, answered as another workspace's: %+v", r.Unknown)
	}
	if r.WrongModel.Status != 409 || r.WrongModel.Error.Code != "feedback_model_mismatch" ||
		!strings.Contains(r.WrongModel.Error.Message, r.Model) {
		t.Errorf("a vote naming another model: %+v", r.WrongModel)
	}

	// Read back, joined to the decision's served model: the CLI on the store, and the admin API.
	text, err := exec.Command(harness.Binary(t), "feedback", "export", "--config", filepath.Join(s.Dir, "stellwerk.yaml"),
		"--since", "1h", "--format", "jsonl").Output()
	if err != nil {
		t.Fatalf("feedback export: %v\n%s", err, text)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	var row map[string]any
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &row) != nil || row["decision_id"] != r.Decision || row["model"] != r.Model ||
		row["good"] != true || row["metric"] != "resolved" || row["value"] != float64(1) || !strings.Contains(row["comment"].(string), "[SECRET") {
		t.Errorf("feedback export: %s", text)
	}
	got := adminJSON(t, s, "/admin/feedback?since=1h")
	if data, _ := got["data"].([]any); len(data) != 1 || data[0].(map[string]any)["model"] != r.Model {
		t.Errorf("GET /admin/feedback: %v", got)
	}
}
