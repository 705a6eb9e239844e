package config

import (
	"strings"
	"testing"
)

const digest = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

func TestAdminValidation(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want string // "" for valid
	}{
		"default loopback, no tokens":  {minimal, ""},
		"ipv6 loopback, no tokens":     {minimal + "server: {admin: \"[::1]:9180\"}\n", ""},
		"all interfaces, no tokens":    {minimal + "server: {admin: 0.0.0.0:9180}\n", "server.admin: 0.0.0.0:9180 is reachable from other machines but admin.tokens is empty"},
		"ipv6 any, no tokens":          {minimal + "server: {admin: \"[::]:9180\"}\n", "server.admin: [::]:9180 is reachable"},
		"pod address, no tokens":       {minimal + "server: {admin: 10.0.0.7:9180}\n", "configure admin.tokens"},
		"all interfaces with a token":  {minimal + "server: {admin: 0.0.0.0:9180}\nadmin: {tokens: [{id: ops, role: operator, env: OPS_TOKEN}]}\n", ""},
		"token by digest":              {minimal + "admin: {tokens: [{id: ops, role: admin, sha256: " + digest + "}]}\n", ""},
		"unknown role":                 {minimal + "admin: {tokens: [{id: ops, role: root, env: T}]}\n", `admin.tokens[0].role: "root" is not one of admin, operator, viewer, auditor`},
		"both digest and env":          {minimal + "admin: {tokens: [{id: ops, role: admin, env: T, sha256: " + digest + "}]}\n", "admin.tokens[0]: set exactly one of sha256"},
		"neither digest nor env":       {minimal + "admin: {tokens: [{id: ops, role: admin}]}\n", "admin.tokens[0]: set exactly one of sha256"},
		"short digest":                 {minimal + "admin: {tokens: [{id: ops, role: admin, sha256: abc}]}\n", "admin.tokens[0].sha256: must be 64 hex digits"},
		"duplicate id":                 {minimal + "admin: {tokens: [{id: ops, role: admin, env: A}, {id: ops, role: viewer, env: B}]}\n", `admin.tokens[1].id: "ops" must be a unique`},
		"a token value is not a field": {minimal + "admin: {tokens: [{id: ops, role: admin, token: hunter2}]}\n", `unknown field "token" in AdminToken`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %v\ndoes not mention %q", err, tc.want)
			}
		})
	}
}

// TestYAMLRedacted fails if /config's rendering shows a digest or a
// credential file path.
func TestYAMLRedacted(t *testing.T) {
	keyDigest := strings.Repeat("ab", 32)
	c, err := Decode(strings.NewReader(`
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu, credential: {file: /run/secrets/p1-api-key}}
  - {name: p2, base_url: "http://127.0.0.1:8082/v1", residency: us, credential: {env: P2_API_KEY}}
models:
  - {id: m1, provider: p1, context_window: 1000}
auth: {mode: keys}
keys:
  - {id: bot, sha256: ` + keyDigest + `, workspace: default}
  - {id: env-bot, env: BOT_KEY, workspace: default}
admin:
  tokens:
    - {id: ops, role: operator, sha256: ` + digest + `}
    - {id: audit, role: auditor, env: AUDIT_TOKEN}
server: {grpc_stream_token: {file: /run/secrets/stream-token}}
envoy: {mode: clusters}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, secret := range []string{keyDigest, digest, "/run/secrets", "p1-api-key", "stream-token"} {
		if strings.Contains(out, secret) {
			t.Errorf("/config shows %q:\n%s", secret, out)
		}
	}
	// What an operator needs to debug stays: ids, roles, variable names.
	for _, kept := range []string{"id: bot", "env: BOT_KEY", "env: P2_API_KEY", "role: auditor", "env: AUDIT_TOKEN", "file: '[redacted]'", "sha256: '[redacted]'"} {
		if !strings.Contains(out, kept) {
			t.Errorf("/config lacks %q:\n%s", kept, out)
		}
	}
	// Rendering does not change the config in force.
	if c.Keys[0].SHA256 != keyDigest || c.Providers[0].Credential.File != "/run/secrets/p1-api-key" || c.Admin.Tokens[0].SHA256 != digest {
		t.Errorf("YAML redacted the live config: %+v %+v", c.Keys[0], c.Providers[0].Credential)
	}
}
