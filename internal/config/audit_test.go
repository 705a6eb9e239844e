package config

import (
	"strings"
	"testing"
	"time"
)

func TestAuditConfig(t *testing.T) {
	base := "routing: {default_model: m1}\nproviders: [{name: p1, base_url: \"http://127.0.0.1:1/v1\", residency: eu}]\nmodels: [{id: m1, provider: p1, context_window: 1000}]\nworkspaces: [{name: legal}]\n"
	c, err := Decode(strings.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Audit
	if !a.IsEnabled() || a.BatchInterval != DefaultAuditBatchInterval || a.OnStoreDown != AuditSpool || a.CheckpointInterval != time.Minute ||
		a.RetentionFor("legal") != 0 || a.StoresContent("legal") {
		t.Errorf("defaults %+v", a)
	}
	c, err = Decode(strings.NewReader(base + `audit:
  enabled: false
  on_store_down: refuse
  signing_key: {file: /run/secrets/audit.key}
  retention: {default: 8760h, workspaces: {legal: 720h}}
  content: {workspaces: [legal]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.IsEnabled() || c.Audit.RetentionFor("legal") != 720*time.Hour || c.Audit.RetentionFor("default") != 8760*time.Hour || !c.Audit.StoresContent("legal") {
		t.Errorf("parsed %+v", c.Audit)
	}
	y, _ := c.YAML()
	if strings.Contains(string(y), "/run/secrets/audit.key") || !strings.Contains(string(y), "[redacted]") {
		t.Errorf("/config shows the signing key's path:\n%s", y)
	}
	_, err = Decode(strings.NewReader(base + `audit:
  writer: "Bad Name"
  batch_interval: 5s
  batch_size: 100000
  on_store_down: drop
  signing_key: {env: "1BAD", file: x}
  checkpoint_interval: 10ms
  retention: {default: 1h, workspaces: {nowhere: 720h}}
  content: {workspaces: [nowhere]}
`))
	for _, field := range []string{"audit.writer", "audit.batch_interval", "audit.batch_size", "audit.on_store_down", "audit.signing_key:",
		"audit.checkpoint_interval", "audit.retention.default", "audit.retention.workspaces.nowhere", "audit.content.workspaces[0]"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("no error naming %s: %v", field, err)
		}
	}
}
