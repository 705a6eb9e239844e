package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const minimal = `
routing: {default_model: m1}
providers:
  - {name: p1, base_url: "http://127.0.0.1:8081/v1", residency: eu}
models:
  - {id: m1, provider: p1, context_window: 1000}
`

func TestExampleConfigLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "stellwerk.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.DefaultModel != "mock-gpt" || len(c.Providers) != 3 {
		t.Errorf("unexpected example: %+v", c.Routing)
	}
}

func TestProductionExampleLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "examples", "production.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) < 50 || c.Auth.Mode != "keys" {
		t.Errorf("production example: %d models, auth %s", len(c.Models), c.Auth.Mode)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Decode(strings.NewReader(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Envoy.Listener != "127.0.0.1:10000" || c.Server.Admin != "127.0.0.1:9180" || c.Server.GRPC != "unix:///run/stellwerk/grpc.sock" {
		t.Errorf("addresses: %+v %+v", c.Server, c.Envoy)
	}
	if c.Envoy.RequestTimeout != 5*time.Minute || c.Envoy.MaxRequestBytes != 8<<20 {
		t.Errorf("envoy defaults: %+v", c.Envoy)
	}
	if c.Models[0].ProviderModel != "m1" || c.Models[0].Price.Currency != "USD" || c.Providers[0].WireFormat != "openai" {
		t.Errorf("model/provider defaults: %+v %+v", c.Models[0], c.Providers[0])
	}
	if w := c.Workspaces[0]; w.DowngradeFrom != "exceeded" || w.DowngradeMaxPrice != (DowngradePrice{}) {
		t.Errorf("downgrade defaults: %q %+v", w.DowngradeFrom, w.DowngradeMaxPrice)
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want []string // every one must appear
	}{
		"unknown top-level field": {minimal + "extra: 1\n", []string{`unknown field "extra"`}},
		"unknown provider field": {strings.Replace(minimal, "residency: eu}", "residency: eu, region_x: a}", 1),
			[]string{`unknown field "region_x" in Provider`}},
		"duration typo": {minimal + "envoy: {request_timeout: forever}\n", []string{"forever"}},
		"provider's cooldown over max_cooldown": {strings.Replace(minimal, "residency: eu}", "residency: eu, failover: {cooldown: 10m, reopen: -1s}}", 1),
			[]string{"providers[0].failover.cooldown: must be between 0 and failover.max_cooldown", "providers[0].failover.reopen: must not be negative"}},
		"model references unknown provider": {strings.Replace(minimal, "provider: p1,", "provider: p2,", 1),
			[]string{`models[0].provider: model "m1": unknown provider "p2" (known: p1)`}},
		"default model missing": {strings.Replace(minimal, "default_model: m1", "default_model: nope", 1),
			[]string{`routing.default_model: unknown model "nope"`}},
		"every problem at once": {`
routing: {default_model: x}
envoy: {listener: "localhost:10000", max_request_bytes: 10}
providers:
  - {name: "Bad Name", base_url: "ftp://x", residency: mars, wire_format: grpc}
  - {name: ok, base_url: "https://api.example.com/v1", residency: us, credential: {env: A, file: /b, header: cookie}}
models:
  - {id: auto, provider: ok, context_window: 0, price: {input_per_mtok: -1, currency: GBP}}
  - {id: m, provider: ok, context_window: 5}
  - {id: m, provider: ok, context_window: 5}
`, []string{
			"envoy.listener:", "envoy.max_request_bytes:", "providers[0].name:", "providers[0].base_url:",
			"providers[0].wire_format:", "providers[0].residency:", "providers[1].credential: set env or file",
			"providers[1].credential.header:", `models[0].id: "auto" is reserved`, "models[0].context_window:",
			`models[0].price: model "auto": prices must not be negative`, "models[0].price.currency:", `models[2].id: duplicate model "m"`,
			`routing.default_model: unknown model "x"`,
		}},
		"url with credentials": {strings.Replace(minimal, "http://127.0.0.1:8081/v1", "https://user:pw@h/v1", 1),
			[]string{"providers[0].base_url: ", "must not carry credentials"}},
		"url with a key in its query": {strings.Replace(minimal, "http://127.0.0.1:8081/v1", "https://h/v1?key=AIzaSECRET#frag", 1),
			[]string{"providers[0].base_url: ", `"https://h/v1" must not carry credentials, a query or a fragment`}},
		"timeouts Envoy cannot hold": {minimal + "envoy: {request_timeout: 1ns, extproc_timeout: 1ns, connect_timeout: 1ns}\n",
			[]string{"envoy.request_timeout: must be at least 1s", "envoy.extproc_timeout: must be between 10ms and 1m", "envoy.connect_timeout: must be at least 1ms"}},
		"keepalive past Linux's limits": {minimal + "envoy: {cluster_defaults: {tcp_keepalive: {time: 10h, probes: 1000}}}\n",
			[]string{"tcp_keepalive.time", "tcp_keepalive.probes"}},
		"one secret twice": {minimal + `auth: {mode: keys}
workspaces: [{name: default}]
keys:
  - {id: a, workspace: default, sha256: "` + strings.Repeat("ab", 32) + `"}
  - {id: b, workspace: default, sha256: "` + strings.Repeat("AB", 32) + `"}
  - {id: c, workspace: default, env: K}
  - {id: d, workspace: default, env: K}
  - {id: e, workspace: default, env: "P1 KEY"}
admin:
  tokens:
    - {id: v, role: viewer, env: T}
    - {id: x, role: admin, env: T}
`, []string{"keys[1]: names the same key as keys[0]", "keys[3]: names the same key as keys[2]", "keys[4].env: must be an environment variable name",
			"admin.tokens[1]: names the same token as admin.tokens[0]"}},
		"stream token: both, a bad env name": {minimal + "server: {grpc_stream_token: {env: A, file: /b}}\nenvoy: {mode: clusters}\n",
			[]string{"server.grpc_stream_token: set env or file, not both"}},
		"stream token: an env that is no name": {minimal + "server: {grpc_stream_token: {env: \"A B\"}}\nenvoy: {mode: clusters}\n",
			[]string{`server.grpc_stream_token.env: "A B" is not an environment variable name`}},
		"stream token in standalone mode": {minimal + "server: {grpc_stream_token: {env: TOK}}\n",
			[]string{"server.grpc_stream_token: is for envoy.mode: clusters"}},
		"empty": {"", []string{"empty config"}},
		"responses on an anthropic-wire model": {`
routing: {default_model: c}
providers:
  - {name: a, base_url: "https://api.anthropic.example/v1", residency: us, wire_format: anthropic, stored_responses: true}
models:
  - {id: c, provider: a, context_window: 5, capabilities: [chat, responses]}
`, []string{"models[0].capabilities[1]: provider a speaks the anthropic wire format, which has no responses endpoint"}},
		"require_dir_modules without a dir": {minimal + "policy: {require_dir_modules: true}\n",
			[]string{"policy.require_dir_modules: needs a dir"}},
		"downgrade settings": {minimal + "workspaces: [{name: w, downgrade_from: half, downgrade_max_price: {input_per_mtok: -1}}]\n",
			[]string{`workspaces[0].downgrade_from: "half" is not one of exceeded, warn`, "workspaces[0].downgrade_max_price: prices must not be negative"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "pw@") || strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error echoes a credential: %v", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("want not-exist error, got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// An Anthropic-wire provider gets its key in x-api-key unless it says
// otherwise: in authorization every request was a 401 (found probing).
func TestAnthropicCredentialHeaderDefault(t *testing.T) {
	c := &Config{Providers: []Provider{{Name: "a", WireFormat: "anthropic"}, {Name: "b", WireFormat: "anthropic", Credential: Credential{Header: "authorization"}}, {Name: "o"}}}
	c.ApplyDefaults()
	for i, want := range []string{"x-api-key", "authorization", "authorization"} {
		if got := c.Providers[i].Credential.Header; got != want {
			t.Errorf("%s: %q, want %q", c.Providers[i].Name, got, want)
		}
	}
}

// A provider's cluster settings as the admin API writes them go back in a
// PUT unchanged: durations as "5s", not nanoseconds.
func TestClusterSettingsJSONRoundTrip(t *testing.T) {
	cs := ClusterSettings{ConnectTimeout: 5 * time.Second, PerTryTimeout: 1500 * time.Millisecond,
		CircuitBreakers:  &CircuitBreakers{MaxRequests: 77},
		OutlierDetection: &OutlierDetection{Interval: 10 * time.Second, Consecutive5xx: 3}}
	b, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"connect_timeout":"5s"`) || !strings.Contains(string(b), `"per_try_timeout":"1.5s"`) {
		t.Errorf("durations: %s", b)
	}
	back, err := DecodeClusterSettings(b)
	if err != nil || !reflect.DeepEqual(back, cs) {
		t.Fatalf("%s decoded to %+v, %v", b, back, err)
	}
	if b, _ := json.Marshal(ClusterSettings{}); string(b) != "{}" {
		t.Errorf("empty: %s", b)
	}
}

// TestClusterSettingsErrorsNameTheField: a PUT body is one line, so the
// line yaml.v3 names says nothing; the error names the field (a helper's
// max_requests: -1 and connect_timeout: 5).
func TestClusterSettingsErrorsNameTheField(t *testing.T) {
	for body, want := range map[string]string{
		`{"circuit_breakers":{"max_requests":-1}}`:      "circuit_breakers.max_requests: ",
		`{"connect_timeout":5}`:                         "connect_timeout: ",
		`{"connect_timeout":"2s","per_try_timeout":[]}`: "per_try_timeout: ",
	} {
		_, err := DecodeClusterSettings([]byte(body))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v, want it to start %q", body, err, want)
		}
	}
	if _, err := DecodeClusterSettings([]byte(`{"nope":1}`)); err == nil || !strings.Contains(err.Error(), `unknown field "nope"`) {
		t.Errorf("unknown field: %v", err)
	}
}

// TestNonFiniteNumbersRefused: YAML reads .nan and .inf as numbers, and a
// range check written x < 0 || x > 1 lets NaN through: a NaN injection
// threshold made the policy panic on every request, a NaN price made audit
// records unwritable and requests free (the config probe). Every number is
// checked, by its path.
func TestNonFiniteNumbersRefused(t *testing.T) {
	for want, doc := range map[string]string{
		"workspaces[0].injection_threshold": minimal + "workspaces: [{name: default, injection_threshold: .nan}]\n",
		"models[0].price.input_per_mtok":    strings.Replace(minimal, "context_window: 1000}", "context_window: 1000, price: {input_per_mtok: .inf, output_per_mtok: 1}}", 1),
		"currency.usd_to_eur":               minimal + "currency: {usd_to_eur: .NaN}\n",
		"models[0].quality.code":            strings.Replace(minimal, "context_window: 1000}", "context_window: 1000, quality: {code: -.inf}}", 1),
		"budgets.limits[0].warn_at":         minimal + "budgets: {limits: [{name: b, scope: global, amount_eur: 1, period: day, warn_at: .nan}]}\n",
	} {
		_, err := Decode(strings.NewReader(doc))
		if err == nil || !strings.Contains(err.Error(), want+": must be a finite number") {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// TestEvalsRelativeToTheFile: evals paths are relative to the config file
// with a catalog or without one; without, they were relative to the
// working directory (the config probe).
func TestEvalsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stellwerk.yaml")
	if err := os.WriteFile(path, []byte(minimal+"evals: [ev.csv]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "ev.csv"); len(c.Evals) != 1 || c.Evals[0] != want {
		t.Errorf("evals %v, want [%s]", c.Evals, want)
	}
}

// TestAnthropicDefaultsWithoutJSONMode: a model of an Anthropic-wire
// provider that lists no capabilities does not get json_mode, which is an
// instruction in its prompt there, not a guarantee; strict structured
// outputs parsed by the SDKs failed on it (the SDK feature probe).
func TestAnthropicDefaultsWithoutJSONMode(t *testing.T) {
	doc := strings.Replace(minimal, "residency: eu}", "residency: eu}\n  - {name: a, base_url: \"https://api.anthropic.example/v1\", residency: us, wire_format: anthropic}", 1) +
		"  - {id: c, provider: a, context_window: 1000}\n"
	c, err := Decode(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Models[1].Capabilities; slices.Contains(got, "json_mode") || !slices.Contains(got, "tools") {
		t.Errorf("anthropic model's default capabilities %v", got)
	}
	if got := c.Models[0].Capabilities; !slices.Contains(got, "json_mode") {
		t.Errorf("openai model's default capabilities %v", got)
	}
}

// TestSpendTag: spend.tag names a metadata key, or nothing.
func TestSpendTag(t *testing.T) {
	c, err := Decode(strings.NewReader(minimal + "spend: {tag: project}\n"))
	if err != nil || c.Spend.Tag != "project" {
		t.Fatalf("%v %+v", err, c.Spend)
	}
	for name, tag := range map[string]string{"too long": strings.Repeat("k", 65), "a control character": `"a\tb"`} {
		if _, err := Decode(strings.NewReader(minimal + "spend: {tag: " + tag + "}\n")); err == nil || !strings.Contains(err.Error(), "spend.tag: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Decode(strings.NewReader(minimal + "spend: {tags: [project]}\n")); err == nil {
		t.Error("an unknown field of spend was accepted")
	}
}
