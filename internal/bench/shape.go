package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"gopkg.in/yaml.v3"
)

// Shapes of the stellwerk configuration a stack runs.
const (
	// ShapeProduction is the headline: the shipped catalog
	// (examples/catalog.yaml, every provider's base_url on the fake
	// provider, each keeping its wire format, residency and credential
	// header), virtual keys required, the shipped Rego library, failover
	// at its default, the workspaces of examples/production.yaml, and
	// learned latencies present before anything is measured.
	ShapeProduction = "production"
	// ShapeOneModel is one provider and one model, open auth: the friendliest
	// case, kept to compare with earlier runs.
	ShapeOneModel = "one-model"
)

// Shapes lists the valid shapes, the default first.
var Shapes = []string{ShapeProduction, ShapeOneModel}

// providerPrefix is where a catalog provider's requests arrive at the fake
// provider: http://127.0.0.1:N/p/<name>/v1/…
const providerPrefix = "/p/"

// catalogProvider is what the bench needs to know of a catalog provider.
type catalogProvider struct {
	name, credEnv, credHeader string // credHeader "" when the provider has no credential
}

// shipped is the shipped catalog, rewritten for the bench.
type shipped struct {
	yaml      []byte
	providers []catalogProvider
	models    []string
}

// rewriteCatalog points every provider of the catalog at src at the fake
// provider (base URL providerURL + "/p/<name>/v1") and changes nothing else.
func rewriteCatalog(src []byte, providerURL string) (shipped, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return shipped{}, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return shipped{}, errors.New("catalog: not one YAML document")
	}
	var out shipped
	root := doc.Content[0]
	for _, p := range seq(root, "providers") {
		cp := catalogProvider{name: scalar(p, "name")}
		if cred := field(p, "credential"); cred != nil {
			cp.credEnv, cp.credHeader = scalar(cred, "env"), cmpOr(scalar(cred, "header"), "authorization")
		}
		u := field(p, "base_url")
		if cp.name == "" || u == nil {
			return shipped{}, fmt.Errorf("catalog: a provider without name or base_url (line %d)", p.Line)
		}
		u.Value = providerURL + providerPrefix + cp.name + "/v1"
		out.providers = append(out.providers, cp)
	}
	for _, m := range seq(root, "models") {
		out.models = append(out.models, scalar(m, "id"))
	}
	if len(out.providers) == 0 || len(out.models) == 0 {
		return shipped{}, errors.New("catalog: no providers or no models")
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return shipped{}, err
	}
	out.yaml = b.Bytes()
	return out, nil
}

func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(m *yaml.Node, key string) string {
	if n := field(m, key); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func seq(m *yaml.Node, key string) []*yaml.Node {
	if n := field(m, key); n != nil && n.Kind == yaml.SequenceNode {
		return n.Content
	}
	return nil
}

// providerKeys stands in for each catalog provider's key check: a request
// under /p/<name>/ must carry providerKey in the header that provider's
// credential names (Bearer for authorization), or none if it has no
// credential; it then reaches the fake provider as the fake expects it
// (Authorization for OpenAI, x-api-key for Anthropic). Other paths (the
// baseline's and the floor's direct route) go to the fake provider as they
// are, which checks Authorization itself.
func providerKeys(next http.Handler, providers []catalogProvider) http.Handler {
	header := make(map[string]string, len(providers))
	for _, p := range providers {
		header[p.name] = p.credHeader
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, providerPrefix)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		name, _, _ := strings.Cut(rest, "/")
		h, known := header[name]
		if !known {
			http.Error(w, "no such provider in the catalog: "+name, http.StatusNotFound)
			return
		}
		got, want := r.Header.Get(h), providerKey
		if h == "authorization" {
			want = "Bearer " + providerKey
		}
		if h != "" && got != want {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"%s: missing or wrong key in %s","type":"invalid_request_error","code":"invalid_api_key","param":null}}`, name, h)
			return
		}
		r.Header.Set("Authorization", "Bearer "+providerKey)
		r.Header.Set("x-api-key", providerKey)
		next.ServeHTTP(w, r)
	})
}

// productionConfig has the shape of examples/production.yaml on the shipped
// catalog (written beside it as catalog.yaml), with the bench's server
// block, the access log as asked (off in `run`: a cost the baselines lack)
// and the bench's virtual key in workspace support.
func productionConfig(grpc string, adminPort, listenPort int, accessLog bool, tenants Tenants) string {
	admins, workspaces := "", ""
	if tenants.Keys() > 0 {
		admins = "    - {id: bench-admin, role: admin, env: STELLWERK_BENCH_ADMIN_TOKEN_ADMIN}\n"
		workspaces = tenantWorkspaces(tenants)
	}
	return fmt.Sprintf(`# Generated by stellwerk-bench: the production shape (examples/production.yaml).
catalog: catalog.yaml
server:
%s
  admin: 127.0.0.1:%d
admin:
  tokens:
    - {id: bench, role: operator, env: STELLWERK_BENCH_ADMIN_TOKEN}
%senvoy:
  listener: 127.0.0.1:%d
  request_timeout: 5m
  extproc_timeout: 2s
  connect_timeout: 5s
  max_request_bytes: 16777216
  access_log: %t
routing:
  default_model: gpt-4o-mini
  baseline_model: gpt-4o
auth:
  mode: keys
keys:
  - {id: bench, env: STELLWERK_BENCH_KEY, workspace: support}
  - {id: bench-prime, env: STELLWERK_BENCH_KEY_PRIME, workspace: default}
  - {id: legal-bot, env: STELLWERK_BENCH_KEY_LEGAL, workspace: legal, team: contracts}
workspaces:
  - name: default
    objective: balanced
  - name: support
    objective: cost
    relative_quality: 0.9
    secrets: deny
  - name: legal
    residency: eu
    secrets: on_prem_only
    injection: restrict
    risk_tiers: {low: 2, medium: 2, high: 3}
    teams:
      - {name: contracts, deny: [provider:deepseek]}
%spolicy:
  library: true
`, grpc, adminPort, admins, listenPort, accessLog, workspaces)
}

// The places the production shape's budgets and rate limits can live.
const (
	LedgerMemory = "memory"
	LedgerRedis  = "redis"
	LedgerNone   = "none"
)

// Ledgers lists the valid ledgers, the default first.
var Ledgers = []string{LedgerMemory, LedgerRedis, LedgerNone}

// ledgerConfig is the production shape's budgets and rate limits: what a
// platform would set (a monthly budget for the workspace, a rate limit per
// key), high enough never to refuse a bench request, so each request
// reserves and settles on three counters without being limited by them.
func ledgerConfig(ledger, redisAddr string, tenants Tenants) string {
	if ledger == LedgerNone {
		return ""
	}
	c := `budgets:
  limits:
    - {name: support-monthly, scope: workspace, subject: support, amount_eur: 1000000, period: month}
`
	if tenants.Keys() > 0 {
		c += tenantBudgets
	}
	c += `rate_limits:
  - {name: per-key, scope: key, requests_per_minute: 10000000, tokens_per_minute: 100000000000}
`
	if ledger == LedgerRedis {
		c += "state:\n  redis: {address: \"" + redisAddr + "\"}\n"
	}
	return c
}

// writeShape writes stellwerk's config (and, for the production shape, the
// rewritten catalog) into dir and returns the config's path, the catalog
// (nil for one-model) and the environment stellwerk needs.
func writeShape(o StackOptions, grpc string, adminPort, listenPort, providerPort int, redisAddr string) (string, *shipped, []string, error) {
	cfgPath := filepath.Join(o.Dir, "stellwerk.yaml")
	env := []string{"STELLWERK_BENCH_PROVIDER_KEY=" + providerKey}
	switch o.Shape {
	case ShapeOneModel:
		return cfgPath, nil, env, os.WriteFile(cfgPath, []byte(stellwerkConfig(grpc, adminPort, listenPort, providerPort, o.AccessLog)), 0o600)
	case ShapeProduction, "":
		src, err := os.ReadFile(filepath.Join(o.Root, "examples", "catalog.yaml"))
		if err != nil {
			return "", nil, nil, err
		}
		cat, err := rewriteCatalog(src, fmt.Sprintf("http://127.0.0.1:%d", providerPort))
		if err != nil {
			return "", nil, nil, fmt.Errorf("examples/catalog.yaml: %w", err)
		}
		if err := os.WriteFile(filepath.Join(o.Dir, "catalog.yaml"), cat.yaml, 0o600); err != nil {
			return "", nil, nil, err
		}
		for _, p := range cat.providers {
			if p.credEnv != "" {
				env = append(env, p.credEnv+"="+providerKey)
			}
		}
		legal, err := randomToken()
		if err != nil {
			return "", nil, nil, err
		}
		env = append(env, "STELLWERK_BENCH_KEY="+virtualKey, "STELLWERK_BENCH_KEY_PRIME="+primeKey, "STELLWERK_BENCH_KEY_LEGAL="+legal)
		return cfgPath, &cat, env, os.WriteFile(cfgPath, []byte(productionConfig(grpc, adminPort, listenPort, o.AccessLog, o.Tenants)+ledgerConfig(o.Ledger, redisAddr, o.Tenants)+failoverConfig(o.MaxAttempts, o.FirstByteTimeout)), 0o600)
	}
	return "", nil, nil, fmt.Errorf("shape %q: want one of %s", o.Shape, strings.Join(Shapes, ", "))
}

// virtualKey is the bench's virtual key in the production shape (workspace
// support); the one-model shape is open and takes any bearer token.
const virtualKey = "sk-bench-virtual-key"

// primeKey is the key that primes stellwerk with pinned requests, in
// workspace default: support's relative quality floor refuses most pinned
// models, which would leave them at their seed latency.
const primeKey = "sk-bench-prime-key"

// prime gives stellwerk learned state before anything is measured, as
// production traffic would: one request pinned to each catalog model with
// primeKey (so every model the policy admits has a learned latency, not its
// seed) and then primeAuto requests with model auto and the bench's key, all
// of which must succeed.
func prime(ctx context.Context, s *Stack, cat *shipped) (failedPinned []string, err error) {
	t := newTarget("prime", s.StellwerkURL, s.StellwerkHeaders, 10*time.Second)
	defer t.close()
	for _, m := range cat.models {
		if why := primeOne(ctx, s, m); why != "" {
			failedPinned = append(failedPinned, m+" ("+why+")")
		}
	}
	const primeAuto = 20
	rq := chatRequest(nil, 2048, false, "auto")
	for range primeAuto {
		if r := t.do(ctx, time.Now(), rq, rq.body(0)); !r.ok() {
			return failedPinned, fmt.Errorf("priming stellwerk with model auto: %s", r.Err)
		}
	}
	return failedPinned, ctx.Err()
}

// primeOne sends one request pinned to model and returns why it failed
// ("" if it did not): the status and the error message.
func primeOne(ctx context.Context, s *Stack, model string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.StellwerkURL+"/v1/chat/completions", bytes.NewReader(chatBody(samePrompt, 1024, false, model)))
	if err != nil {
		return err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+primeKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return shortErr(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK {
		return ""
	}
	if msg := gjson.GetBytes(b, "error.message").String(); msg != "" {
		return fmt.Sprintf("%d: %s", resp.StatusCode, msg)
	}
	return resp.Status
}

// failoverConfig sets failover.max_attempts and
// failover.stream_first_byte_timeout where they are not 0.
func failoverConfig(n int, firstByte time.Duration) string {
	var b strings.Builder
	if n != 0 {
		fmt.Fprintf(&b, "  max_attempts: %d\n", n)
	}
	if firstByte != 0 {
		fmt.Fprintf(&b, "  stream_first_byte_timeout: %s\n", firstByte)
	}
	if b.Len() == 0 {
		return ""
	}
	return "failover:\n" + b.String()
}
