package e2e

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// TestLeakedKeyIsTraceable: a responder to a leaked key could not tell
// where its requests came from, which of them the rotated-out secret
// made, nor that it was still being tried after its revocation (the
// incident-response probe). The audit record keeps the address each
// request came from and whether the old secret made it, the routed line
// names the key, and
// a revoked key's requests are logged — once an interval, with their
// count — while the client learns no more than an unknown key does.
func TestLeakedKeyIsTraceable(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{Mutate: func(c *config.Config) { c.Auth.Mode = "keys" }})
	resp, b := adminDo(t, s, "POST", "/admin/keys", `{"id":"leaked","workspace":"default"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created struct{ Secret string }
	mustJSON(t, b, &created)
	auth := map[string]string{"Authorization": "Bearer " + created.Secret}
	chat := func() (int, []byte) {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`, auth)
		return resp.StatusCode, b
	}
	for _, p := range s.Providers {
		p.SetBehavior(mockllm.Behavior{RequestID: "req_provider_abc123"})
	}
	code, b := chat()
	if code != 200 {
		t.Fatalf("before: %d %s", code, b)
	}
	id := gjson.GetBytes(b, "routing.decision_id").Str
	var rec string
	waitFor(t, "the record", func() bool {
		if recs := auditPage(t, s, "kind=decision&decision_id="+id).Records; len(recs) == 1 {
			rec = string(recs[0].Record)
		}
		return rec != ""
	})
	if p := gjson.Get(rec, "principal"); p.Get("key_id").Str != "leaked" || p.Get("address").Str != "127.0.0.1" {
		t.Errorf("the record's principal: %s", p.Raw)
	}
	// What the provider's support, or a deletion request, names it by.
	if id := gjson.Get(rec, "provider_request_id").Str; id != "req_provider_abc123" {
		t.Errorf("the record's provider_request_id is %q", id)
	}
	if !strings.Contains(s.Log("stellwerk"), `"decision_id":"`+id+`","key_id":"leaked"`) {
		t.Errorf("the routed line does not name the key")
	}

	// Rotated with a grace period: the old secret's requests say so.
	resp, b = adminDo(t, s, "POST", "/admin/keys/leaked/rotate", `{"grace":"1h"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("rotate: %d %s", resp.StatusCode, b)
	}
	var rotated struct{ Secret string }
	mustJSON(t, b, &rotated)
	previous := map[string]bool{}
	for secret, want := range map[string]bool{created.Secret: true, rotated.Secret: false} {
		var id string
		waitFor(t, "the rotation", func() bool {
			resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[{"role":"user","content":"hi"}]}`,
				map[string]string{"Authorization": "Bearer " + secret})
			id = gjson.GetBytes(b, "routing.decision_id").Str
			return resp.StatusCode == 200
		})
		waitFor(t, "the record", func() bool {
			recs := auditPage(t, s, "kind=decision&decision_id="+id).Records
			if len(recs) == 1 {
				previous[secret] = gjson.GetBytes(recs[0].Record, "principal.previous_secret").Bool()
			}
			return len(recs) == 1
		})
		if previous[secret] != want {
			t.Errorf("previous_secret %v for the %s secret", previous[secret], map[bool]string{true: "old", false: "new"}[want])
		}
	}

	if resp, b := adminDo(t, s, "POST", "/admin/keys/leaked/revoke", ""); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	auth["Authorization"] = "Bearer " + rotated.Secret // the key's secret now
	var unknown []byte
	waitFor(t, "the revocation", func() bool { code, unknown = chat(); return code == 401 })
	for range 3 {
		chat()
	}
	resp, b = post(t, s.URL+"/v1/chat/completions", `{"model":"auto","messages":[]}`, map[string]string{"Authorization": "Bearer sk-no-such-key"})
	if resp.StatusCode != 401 || string(b) != string(unknown) {
		t.Errorf("the revoked key's answer differs from an unknown key's:\n%s\n%s", unknown, b)
	}
	log := s.Log("stellwerk")
	if !strings.Contains(log, `"msg":"a refused key was used: its requests are answered 401","key_id":"leaked","state":"revoked","client_address":"127.0.0.1"`) {
		t.Errorf("no line for the revoked key's use:\n%s", lastLines(log, 10))
	}
	if n := strings.Count(log, "a refused key was used"); n != 1 {
		t.Errorf("%d lines for 4 requests of one key within the interval", n)
	}
	// The runbook's other way: rotated without grace, the leaked secret
	// is refused as the key's, and said so (it read as an unknown key's,
	// which is not logged: the red team).
	resp, b = adminDo(t, s, "POST", "/admin/keys", `{"id":"rotated","workspace":"default"}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var second struct{ Secret string }
	mustJSON(t, b, &second)
	if resp, b := adminDo(t, s, "POST", "/admin/keys/rotated/rotate", ""); resp.StatusCode != 200 {
		t.Fatalf("rotate: %d %s", resp.StatusCode, b)
	}
	auth["Authorization"] = "Bearer " + second.Secret
	waitFor(t, "the rotation", func() bool { code, _ := chat(); return code == 401 })
	waitFor(t, "the rotated-out secret's line", func() bool {
		return strings.Contains(s.Log("stellwerk"), `"key_id":"rotated","state":"rotated_out"`)
	})
	log = s.Log("stellwerk")

	// Counted for an alert, without the key (RevokedKeyStillUsed).
	r, err := s.AdminGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(r.Body)
	r.Body.Close()
	n := -1
	if m := regexp.MustCompile(`(?m)^stellwerk_refused_keys_total\{state="revoked"\} (\d+)$`).FindSubmatch(metrics); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	if n < 4 {
		t.Errorf("stellwerk_refused_keys_total{state=\"revoked\"} is %d after 4 requests", n)
	}
	if strings.Contains(log, created.Secret) || strings.Contains(log, rotated.Secret) || strings.Contains(log, second.Secret) || strings.Contains(log, "sk-no-such-key") {
		t.Errorf("a log line holds a secret")
	}
}

// lastLines is the end of a log, for a failure message.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
