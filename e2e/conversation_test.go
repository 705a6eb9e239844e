package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestConversationThroughTheMemo: the official Python SDK holds a
// conversation through Envoy. Each turn resends the earlier ones, which the
// classifier finds in its memo of what the key sent before
// (internal/classify/memo.go): the personal data of the first turn still
// counts in the third, and a credential in a resent turn is refused every
// time. Another key sending the same conversation finds nothing of it.
func TestConversationThroughTheMemo(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Mutate: func(c *config.Config) {
			c.Auth.Mode = "keys"
			c.Keys = []config.Key{
				{ID: "app", SHA256: auth.Hash("sk-app-secret"), Workspace: "default"},
				{ID: "other", SHA256: auth.Hash("sk-other-secret"), Workspace: "default"},
			}
			c.Admin.Tokens = append(c.Admin.Tokens, config.AdminToken{ID: "prometheus", Role: config.RoleViewer, SHA256: auth.Hash("prom-viewer-token")})
		},
		ReadyStatus: 401,
	})
	py := harness.RequirePython(t)
	type answer struct {
		Status      int            `json:"status"`
		PII         map[string]int `json:"pii"`
		Secrets     int            `json:"secrets"`
		Sensitivity string         `json:"sensitivity"`
		Class       string         `json:"class"`
		Code        string         `json:"code"`
	}
	run := func(key, mode string) []answer {
		t.Helper()
		out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "conversation.py"), s.URL, key, mode).Output()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		var as []answer
		if err := json.Unmarshal(out, &as); err != nil {
			t.Fatalf("python output %s: %v", out, err)
		}
		return as
	}
	memo := func() (looked, found float64) {
		_, mfs := scrape(t, s)
		return promSample(mfs, "stellwerk_classify_memo_lookups_total", ""), promSample(mfs, "stellwerk_classify_memo_found_total", "")
	}

	as := run("sk-app-secret", "chat")
	if len(as) != 5 {
		t.Fatalf("%d answers: %+v", len(as), as)
	}
	for i, a := range as[:3] {
		if a.Status != 200 || a.PII["email"] != 1 || a.Secrets != 0 || a.Sensitivity != "confidential" {
			t.Errorf("turn %d: %+v", 2*i+1, a)
		}
	}
	for i, a := range as[3:] {
		if a.Status != 403 || a.Class != "PermissionDeniedError" || a.Code != "policy_denied" {
			t.Errorf("the credential, attempt %d: %+v", i+1, a)
		}
	}
	// Looked up, texts of 256 bytes or more but the newest message: turn
	// 3 resends two (the first is found), turn 5 four (the last one, its
	// newest answer, is not found), the credential's conversation two,
	// twice (found the second time).
	looked, found := memo()
	if looked != 2+4+2+2 || found != 1+3+0+2 {
		t.Errorf("memo: %v texts looked up, %v found; want 10 and 6", looked, found)
	}

	// The same conversation from another key: looked up, never found.
	if as := run("sk-other-secret", "last"); len(as) != 1 || as[0].Status != 200 || as[0].PII["email"] != 1 {
		t.Errorf("the other key's turn 5: %+v", as)
	}
	if l, f := memo(); l != looked+4 || f != found {
		t.Errorf("the other key: %v more texts looked up, %v found; want 4 and none", l-looked, f-found)
	}
}
