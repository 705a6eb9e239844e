// Package config is stellwerk's one configuration file: plain data with yaml
// tags, decoded strictly (unknown fields are errors), defaulted, and validated
// as a whole so an operator sees every problem at once, each naming its field.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole stellwerk.yaml.
type Config struct {
	// Catalog names a file with more providers and models (same schema),
	// merged before this file's own; relative to this file.
	Catalog string `yaml:"catalog,omitempty"`
	// Evals are scorecard CSVs (model,task,score,n,source) whose scores
	// override the models' quality; relative to this file.
	Evals      []string    `yaml:"evals,omitempty"`
	Server     Server      `yaml:"server"`
	Admin      Admin       `yaml:"admin,omitempty"`
	Envoy      Envoy       `yaml:"envoy"`
	Routing    Routing     `yaml:"routing"`
	Providers  []Provider  `yaml:"providers"`
	Models     []Model     `yaml:"models"`
	Classify   Classify    `yaml:"classify"`
	Auth       Auth        `yaml:"auth"`
	Keys       []Key       `yaml:"keys"`
	Workspaces []Workspace `yaml:"workspaces"`
	Policy     Policy      `yaml:"policy"`
	Currency   Currency    `yaml:"currency"`
	Failover   Failover    `yaml:"failover"`
	// Budgets and RateLimits: see ledger.go. State (state.go) is where keys,
	// the ledger's counters and later audit and route versions live.
	Budgets    Budgets         `yaml:"budgets,omitempty"`
	RateLimits []RateLimitRule `yaml:"rate_limits,omitempty"`
	State      State           `yaml:"state,omitempty"`
	// Audit is the tamper-evident audit log (audit.go, docs/audit.md).
	Audit Audit `yaml:"audit,omitempty"`
	// Spend is what the spend ledger records beyond the principal
	// (docs/budgets.md, "Spend ledger").
	Spend Spend `yaml:"spend,omitempty"`
}

// Spend tunes the spend ledger's rows.
type Spend struct {
	// Tag names the member of a request's metadata (the body's metadata
	// object, or the x-stellwerk-metadata header) whose value each row
	// keeps as its tag: a project or a feature that reports group by.
	// Empty: no tag.
	Tag string `yaml:"tag,omitempty"`
}

// ProviderFailover is one provider's cooldown settings over failover's.
type ProviderFailover struct {
	FailuresBeforeCooldown int           `yaml:"failures_before_cooldown"`
	Cooldown               time.Duration `yaml:"cooldown"`
	Reopen                 time.Duration `yaml:"reopen"`
}

// Failover is how a request moves on when its provider fails before the
// answer starts (standalone mode; see docs/failover.md).
type Failover struct {
	// MaxAttempts bounds the providers one request is sent to, the first
	// included (1 disables failover).
	MaxAttempts int `yaml:"max_attempts"`
	// AttemptTimeout bounds one attempt until the provider's response
	// headers: the first byte of a stream, the whole answer otherwise.
	AttemptTimeout time.Duration `yaml:"attempt_timeout"`
	// FailuresBeforeCooldown consecutive failures put a provider in a
	// cooldown of Cooldown, during which selection skips it.
	FailuresBeforeCooldown int           `yaml:"failures_before_cooldown"`
	Cooldown               time.Duration `yaml:"cooldown"`
	// MaxCooldown caps a provider's Retry-After.
	MaxCooldown time.Duration `yaml:"max_cooldown"`
	// StreamFirstByteTimeout bounds an attempt of a streaming request
	// until the provider's first byte when another provider could take
	// it over (a model's first_byte_timeout overrides it): a stalled
	// stream fails over after seconds, not after AttemptTimeout. Once the
	// stream has started it is never cut for being slow. 0:
	// DefaultStreamFirstByteTimeout, or AttemptTimeout when that is shorter.
	StreamFirstByteTimeout time.Duration `yaml:"stream_first_byte_timeout,omitempty"`
	// Reopen is how long traffic takes to come back in full after a
	// cooldown: a growing share of requests, from 10%, meanwhile.
	Reopen time.Duration `yaml:"reopen"`
}

// Auth says whether callers must present a virtual key.
type Auth struct {
	// Mode "open" admits requests without a known key as the default
	// workspace (a known key still identifies its principal); "keys" answers
	// 401 to any request without a known key.
	Mode string `yaml:"mode"`
}

// Key is a virtual key: what a caller sends as its bearer token, mapped to a
// principal. The key itself is never in the config: give its SHA-256 (hex)
// or the environment variable holding it.
type Key struct {
	ID        string   `yaml:"id"`
	SHA256    string   `yaml:"sha256,omitempty"`
	Env       string   `yaml:"env,omitempty"`
	Workspace string   `yaml:"workspace"`
	Team      string   `yaml:"team,omitempty"`
	User      string   `yaml:"user,omitempty"`
	Roles     []string `yaml:"roles,omitempty"`
}

// Workspace holds the platform's settings for a group of callers; the
// policy reads them from its input (docs/policy.md).
type Workspace struct {
	Name               string `yaml:"name" json:"name"`
	Residency          string `yaml:"residency" json:"residency"`
	SensitiveResidency string `yaml:"sensitive_residency" json:"sensitive_residency"`
	// UnreadSensitive are the kinds of content no detector reads (an
	// image, audio, video, a file that is not text or is sent by id) whose
	// presence makes a request sensitive data for the shipped policy, as a
	// truncated scan does: file, audio and video unless set ([] for none).
	UnreadSensitive    []string       `yaml:"unread_sensitive" json:"unread_sensitive"`
	Objective          string         `yaml:"objective" json:"objective"`
	QualityFloor       float64        `yaml:"quality_floor" json:"quality_floor"`
	RelativeQuality    float64        `yaml:"relative_quality" json:"relative_quality"`
	MaxCostEUR         float64        `yaml:"max_cost_eur" json:"max_cost_eur"`
	Secrets            string         `yaml:"secrets" json:"secrets"`
	Injection          string         `yaml:"injection" json:"injection"`
	InjectionThreshold float64        `yaml:"injection_threshold" json:"injection_threshold"`
	InjectionMinTier   int            `yaml:"injection_min_tier" json:"injection_min_tier"`
	RiskTiers          map[string]int `yaml:"risk_tiers" json:"risk_tiers"`
	Allow              []string       `yaml:"allow" json:"allow"`
	Deny               []string       `yaml:"deny" json:"deny"`
	AllowLoosening     bool           `yaml:"allow_loosening" json:"allow_loosening"`
	DefaultModel       string         `yaml:"default_model" json:"default_model"`
	// PinnedFallback lets a request that pins a model be answered by
	// another eligible model when the pinned one's provider fails. Off by
	// default: a pinned model is the caller's choice (docs/failover.md).
	// A request's own policy.fallback overrides it.
	PinnedFallback bool `yaml:"pinned_fallback" json:"pinned_fallback"`
	// DowngradeFrom is when a downgrade budget restricts this workspace's
	// requests to cheaper models: once it is exceeded, or from its warn_at.
	DowngradeFrom string `yaml:"downgrade_from" json:"downgrade_from"`
	// DowngradeMaxPrice is the most a model may cost, in EUR per million
	// tokens, while a downgrade budget is in force (0: no ceiling on that
	// side; none at all: the cheapest eligible model is chosen instead).
	DowngradeMaxPrice DowngradePrice `yaml:"downgrade_max_price" json:"downgrade_max_price"`
	Teams             []Team         `yaml:"teams" json:"-"`
}

// DowngradePrice is a price ceiling in EUR per million tokens (0: none).
type DowngradePrice struct {
	InputPerMTok  float64 `yaml:"input_per_mtok" json:"input_per_mtok"`
	OutputPerMTok float64 `yaml:"output_per_mtok" json:"output_per_mtok"`
}

// Team narrows its workspace's lists.
type Team struct {
	Name  string   `yaml:"name" json:"name"`
	Allow []string `yaml:"allow" json:"allow"`
	Deny  []string `yaml:"deny" json:"deny"`
}

// Policy configures the Rego policy.
type Policy struct {
	// Library includes the shipped library (rego/); default true.
	Library *bool `yaml:"library"`
	// Dir holds the platform's own modules (*.rego, *_test.rego), added to
	// or, with library: false, replacing the shipped library.
	Dir string `yaml:"dir"`
	// ReloadInterval is how often Dir is checked for changes (0: 2s).
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// RequireDirModules refuses a policy without any module of Dir, at
	// start-up and at a reload (the last good policy keeps serving): an
	// emptied mount must not drop the platform's rules. Off by default:
	// the library alone is a valid policy.
	RequireDirModules bool `yaml:"require_dir_modules"`
}

// Currency converts list prices into the reporting currency, EUR.
type Currency struct {
	USDToEUR float64 `yaml:"usd_to_eur"`
}

// Classify configures how classification findings become a sensitivity and
// a risk level. Each list is ordered; the first rule whose conditions all
// hold decides, and a request no rule matches gets the lowest level.
type Classify struct {
	Sensitivity []ClassRule `yaml:"sensitivity"`
	Risk        []ClassRule `yaml:"risk"`
	// Terms are content detectors without code: each named list's terms
	// and patterns are counted in the request text, and Rego reads the
	// count as input.classification.terms.<name>.count (docs/classify.md).
	Terms []TermList `yaml:"terms,omitempty"`
}

// TermList is one named content detector. Terms match whole words, case-
// and accent-insensitively, with any white space between words; patterns
// are RE2 regular expressions over the same folded (lower-case, unaccented)
// text.
type TermList struct {
	Name     string   `yaml:"name"`
	Terms    []string `yaml:"terms,omitempty"`
	Patterns []string `yaml:"patterns,omitempty"`
}

// ClassRule names a level and when it applies.
type ClassRule struct {
	Name  string    `yaml:"name"`
	Level string    `yaml:"level"`
	If    Condition `yaml:"if"`
}

// Condition holds when every field that is set holds. An empty condition
// always holds.
type Condition struct {
	Secrets               bool     `yaml:"secrets,omitempty"`                  // any secret found
	PII                   []string `yaml:"pii,omitempty"`                      // any of these types; "any" for any type
	InjectionDetected     bool     `yaml:"injection_detected,omitempty"`       // injection signal over its threshold
	InjectionScoreAtLeast float64  `yaml:"injection_score_at_least,omitempty"` // 0..1
	Tasks                 []string `yaml:"tasks,omitempty"`                    // the task is one of these
	InputTokensAtLeast    int      `yaml:"input_tokens_at_least,omitempty"`
	SensitivityAtLeast    string   `yaml:"sensitivity_at_least,omitempty"` // risk rules only
	// ScanTruncated holds when a classifier cap stopped the scan, so the
	// findings cover only part of the request (fail closed).
	ScanTruncated bool `yaml:"scan_truncated,omitempty"`
}

// DefaultSensitivity and DefaultRisk apply when the config sets no rules.
var (
	DefaultSensitivity = []ClassRule{
		{Name: "secrets_in_prompt", Level: "restricted", If: Condition{Secrets: true}},
		{Name: "scan_truncated", Level: "restricted", If: Condition{ScanTruncated: true}},
		{Name: "financial_or_national_id", Level: "restricted", If: Condition{PII: []string{
			"credit_card", "iban", "us_ssn", "it_codice_fiscale", "es_dni", "fr_nir", "de_tax_id", "uk_nino", "nl_bsn", "pl_pesel"}}},
		{Name: "personal_data", Level: "confidential", If: Condition{PII: []string{"any"}}},
		{Name: "source_code", Level: "internal", If: Condition{Tasks: []string{"code"}}},
		{Name: "large_document", Level: "internal", If: Condition{InputTokensAtLeast: 2000}},
	}
	DefaultRisk = []ClassRule{
		{Name: "prompt_injection", Level: "high", If: Condition{InjectionDetected: true}},
		{Name: "secrets_in_prompt", Level: "high", If: Condition{Secrets: true}},
		{Name: "scan_truncated", Level: "high", If: Condition{ScanTruncated: true}},
		{Name: "restricted_data", Level: "high", If: Condition{SensitivityAtLeast: "restricted"}},
		{Name: "confidential_data", Level: "medium", If: Condition{SensitivityAtLeast: "confidential"}},
		{Name: "injection_suspected", Level: "medium", If: Condition{InjectionScoreAtLeast: 0.3}},
	}
)

// Server holds stellwerk's own listeners.
type Server struct {
	// GRPC serves both the ext_proc and the ADS (xDS) services: only Envoy
	// may reach it. A Unix socket ("unix:///run/stellwerk/grpc.sock", the
	// default) for an Envoy on the same host; a TCP address needs GRPCTLS,
	// mutual TLS with a client certificate Envoy presents.
	GRPC string `yaml:"grpc"`
	// GRPCTLS is the mutual-TLS set-up of a TCP gRPC address.
	GRPCTLS *GRPCTLS `yaml:"grpc_tls,omitempty"`
	// GRPCStreamToken, when set, is a secret every gRPC stream to GRPC
	// must carry as metadata (header.StreamToken), sent by Envoy's own
	// gRPC clients (initial_metadata). The transport admits Envoy; the
	// token tells Envoy's own clients from a client's request Envoy
	// proxied to a stellwerk cluster (a route whose cluster the client
	// picks): without it, such a request read every provider key over
	// ADS. Read once at start.
	GRPCStreamToken SecretSource `yaml:"grpc_stream_token,omitempty"`
	// Admin serves health, readiness, version and the loaded config.
	Admin string `yaml:"admin"`
}

// GRPCTLS is mutual TLS on the gRPC port: stellwerk presents Cert, and only
// a peer whose certificate chains to ClientCA (and, if set, names one of
// ClientNames) gets a connection.
type GRPCTLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"client_ca"`
	// ClientNames, if set, are the DNS or URI SANs (e.g. a SPIFFE id) a
	// client certificate must carry one of.
	ClientNames []string `yaml:"client_names,omitempty"`
}

// UnixSocketPrefix marks a server.grpc that is a Unix socket path.
const UnixSocketPrefix = "unix://"

// GRPCSocket returns the socket path when server.grpc is a Unix socket.
func (s Server) GRPCSocket() (string, bool) {
	if p, ok := strings.CutPrefix(s.GRPC, UnixSocketPrefix); ok {
		return p, true
	}
	return "", false
}

// Envoy describes what stellwerk pushes to Envoy over xDS.
type Envoy struct {
	// Mode is "standalone" (stellwerk pushes Envoy's listener, routes and
	// provider clusters) or "clusters" (only provider clusters: the operator's
	// Envoy keeps its own listener and adds stellwerk's filter and route).
	Mode string `yaml:"mode"`
	// Listener is the address Envoy accepts client traffic on (standalone).
	Listener string `yaml:"listener"`
	// Hosts are the names clients reach the listener by, as their Host
	// header says (the port aside); "*" is any. An IP address is always
	// answered. Empty: localhost alone in open mode or on a loopback
	// listener, else any (Config.AllowedHosts).
	Hosts []string `yaml:"hosts,omitempty"`
	// ExtProcCluster names the static cluster in Envoy's bootstrap that
	// reaches stellwerk's ext_proc service.
	ExtProcCluster string `yaml:"extproc_cluster"`
	// RequestTimeout bounds a whole upstream request, streaming included.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// ExtProcTimeout bounds each ext_proc message round trip.
	ExtProcTimeout time.Duration `yaml:"extproc_timeout"`
	// ConnectTimeout bounds TCP (and TLS) connection setup to a provider.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxRequestBytes is the largest request body accepted; larger is 413.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// CABundle is the trust store Envoy uses to verify https providers.
	CABundle string `yaml:"ca_bundle"`
	// AccessLog enables Envoy's JSON access log on stdout.
	AccessLog bool `yaml:"access_log"`
	// ClusterDefaults are every provider cluster's controls (cluster.go);
	// a provider's own cluster block overrides them field by field.
	ClusterDefaults ClusterSettings `yaml:"cluster_defaults,omitempty"`
	// CORS lets browser apps of the listed origins call the standalone
	// listener; unset, no page of another origin can.
	CORS CORS `yaml:"cors,omitempty"`
}

// CORS is the standalone listener's answer to browsers: Envoy's CORS
// filter answers the preflight of the listed origins, before stellwerk
// authenticates anything, and marks their answers readable.
type CORS struct {
	// AllowOrigins are exact origins (scheme://host[:port]); "*" is any
	// origin, which auth.mode open refuses: any web page would spend the
	// gateway's budgets.
	AllowOrigins []string `yaml:"allow_origins,omitempty"`
}

// AllowedHosts are the host names the standalone listener answers to
// (a request naming it by an IP address is always answered), nil for any:
// envoy.hosts, else localhost alone in open mode or on a loopback listener.
// A web page that re-points its own name at the gateway's address (DNS
// rebinding) sends that name: in open mode it could use and read the
// gateway; a listener on 0.0.0.0 takes 127.0.0.1's connections too (the
// red team). In keys mode a page has no key to send, and a listener on
// another address answers to any name. The drop-in's listener is the
// operator's.
func (c *Config) AllowedHosts() []string {
	e := c.Envoy
	if e.Mode == ModeClusters || slices.Contains(e.Hosts, "*") {
		return nil
	}
	if len(e.Hosts) > 0 {
		return e.Hosts
	}
	host, _, err := net.SplitHostPort(e.Listener)
	if ip := net.ParseIP(host); c.Auth.Mode != "keys" || (err == nil && (host == "localhost" || (ip != nil && ip.IsLoopback()))) {
		return localhostOnly
	}
	return nil
}

// localhostOnly is the default list of names a restricted listener takes.
var localhostOnly = []string{"localhost"}

// Routing holds request-independent routing defaults.
type Routing struct {
	// DefaultModel is the model `balanced` prefers when it is eligible.
	DefaultModel string `yaml:"default_model"`
	// BaselineModel is what a request would have cost without stellwerk:
	// savings are reported against it (default: the default model).
	BaselineModel string `yaml:"baseline_model,omitempty"`
	// QualityPredictor is a quality predictor file (`stellwerk router
	// train`, docs/routerbench.md): per prompt, its models' predicted
	// quality replaces their scorecard quality for the task. Models it has
	// no weights for keep the scorecards and catalog seeds. Relative to the
	// config file; re-read when the config reloads.
	QualityPredictor string `yaml:"quality_predictor,omitempty"`
	// LatencyHalfLife is how fast a model's learned latency fades back
	// toward its seed while no answer refreshes it, so that a model
	// measured slow once is tried again (docs/selection.md).
	LatencyHalfLife time.Duration `yaml:"latency_half_life,omitempty"`
	// Aliases are other names for models, name → model id, as a model's
	// own aliases (Model.Aliases) are: set here to give a model of the
	// shipped catalog another name without copying its entry.
	Aliases map[string]string `yaml:"aliases,omitempty"`
}

// Provider is an upstream that serves models.
type Provider struct {
	Name       string     `yaml:"name"`
	BaseURL    string     `yaml:"base_url"`
	WireFormat string     `yaml:"wire_format"`
	Region     string     `yaml:"region"`
	Residency  string     `yaml:"residency"`
	Credential Credential `yaml:"credential"`
	// AssuranceTier: 1 public API, 2 enterprise terms (DPA, no retention),
	// 3 dedicated or sovereign. Default 1.
	AssuranceTier int `yaml:"assurance_tier"`
	// ForwardHeaders are client request headers this provider also gets,
	// beyond the shipped allow-list (e.g. anthropic-beta, openai-beta).
	// Every other client header is removed before a request leaves.
	ForwardHeaders []string `yaml:"forward_headers,omitempty"`
	// StoredResponses: the provider keeps the responses its Responses API
	// gives (OpenAI's store), so a request naming previous_response_id
	// (or a conversation) can go to its models that list the `responses`
	// capability. Default false: such requests never go to it.
	StoredResponses bool `yaml:"stored_responses,omitempty"`
	// Query parameters sent on every request to this provider (e.g. Azure's
	// api-version). The client's query string is never forwarded.
	Query map[string]string `yaml:"query,omitempty"`
	// Cluster tunes this provider's Envoy cluster over envoy.cluster_defaults.
	Cluster *ClusterSettings `yaml:"cluster,omitempty"`
	// Endpoints are the addresses Envoy connects to, when there are several
	// (default: base_url's host and port).
	Endpoints []Endpoint `yaml:"endpoints,omitempty"`
	// RateLimitScope is what a 429 from this provider cools down: "model"
	// (the default; OpenAI, Anthropic and most providers limit each model
	// on its own) or "provider" (one limit for every model). Either way
	// only for the credential that hit it (docs/failover.md).
	RateLimitScope string `yaml:"rate_limit_scope,omitempty"`
	// Failover overrides failover's cooldown settings for this provider
	// (a self-hosted server that is briefly overloaded is not a cloud
	// provider's outage); a field left 0 keeps failover's.
	Failover *ProviderFailover `yaml:"failover,omitempty"`
	// MaxTokensParam is the name an OpenAI-wire provider reads the output
	// limit under: "max_completion_tokens" (OpenAI's, which its reasoning
	// models require) or "max_tokens" (most others; Mistral refuses the
	// other with a 422). A request's limit is renamed to it on the way
	// out. Default: max_completion_tokens for api.openai.com and Azure
	// OpenAI, max_tokens for every other provider.
	MaxTokensParam string `yaml:"max_tokens_param,omitempty"`
}

// MaxTokensParams are the names providers read a request's output limit
// under (providers[].max_tokens_param).
var MaxTokensParams = []string{"max_tokens", "max_completion_tokens"}

// defaultMaxTokensParam: OpenAI's own API (and Azure's) takes
// max_completion_tokens, which its reasoning models require; most other
// OpenAI-compatible APIs know only max_tokens.
func defaultMaxTokensParam(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil {
		if h := strings.ToLower(u.Hostname()); h == "api.openai.com" || strings.HasSuffix(h, ".openai.azure.com") {
			return "max_completion_tokens"
		}
	}
	return "max_tokens"
}

// Credential says where a provider's key comes from. The key itself is never
// written in the config file.
type Credential struct {
	// Env names an environment variable holding the key.
	Env string `yaml:"env,omitempty"`
	// File names a file holding the key (a mounted secret).
	File string `yaml:"file,omitempty"`
	// Header is how the key is sent: authorization (Bearer), api-key or x-api-key.
	Header string `yaml:"header,omitempty"`
}

// Model is one catalog entry.
type Model struct {
	ID string `yaml:"id"`
	// Aliases are other names clients, keys, routes and the config may
	// use for this model: the ids of models it replaced (a retired
	// gpt-4-turbo served by gpt-4.1), or stable names of the team's own.
	// Each is resolved to ID where it is read: requests, allow and deny
	// lists, rate limits, keys' model lists, routes.
	Aliases       []string `yaml:"aliases,omitempty"`
	Provider      string   `yaml:"provider"`
	ProviderModel string   `yaml:"provider_model"`
	Price         Price    `yaml:"price"`
	ContextWindow int      `yaml:"context_window"`
	// MaxOutputTokens is the longest answer the model gives (0: 4096).
	MaxOutputTokens int `yaml:"max_output_tokens"`
	// AssuranceTier overrides the provider's tier (0: the provider's).
	AssuranceTier int `yaml:"assurance_tier"`
	// ImageTokens is the most input tokens one image can cost on a vision
	// model, for the budgets' worst case (0: DefaultImageTokens).
	ImageTokens int `yaml:"image_tokens,omitempty"`
	// Capabilities the model has: tools, vision, json_mode, streaming, and
	// the endpoints it serves: chat, responses (the provider speaks the
	// Responses API natively; without it Responses requests are translated
	// to chat), embeddings, completions (a list that names no endpoint
	// serves chat). Omitted: the first four and chat.
	Capabilities []string `yaml:"capabilities"`
	// Quality maps a task (or "default") to a 0–1 score.
	Quality map[string]float64 `yaml:"quality"`
	// LatencyMS seeds the expected median latency until traffic is observed.
	LatencyMS int `yaml:"latency_ms"`
	// FirstByteTimeout overrides failover.stream_first_byte_timeout for
	// this model (e.g. longer for a reasoning model that thinks before its
	// first token).
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout,omitempty"`
}

// DefaultImageTokens bounds one image's input tokens where a model does
// not say: Anthropic's models count at most about 1,600, OpenAI's tiled
// ones 1,445 and its patch-based ones 2,642 (o4-mini), Gemini's 258 per
// tile. A model that counts images many times over (gpt-4o-mini, whose
// image tokens are priced down instead) sets image_tokens itself.
const DefaultImageTokens = 2700

// Price is a list price per million tokens.
type Price struct {
	InputPerMTok  float64 `yaml:"input_per_mtok"`
	OutputPerMTok float64 `yaml:"output_per_mtok"`
	// CachedInputPerMTok is what a prompt token the provider served from
	// its cache costs (OpenAI's cached input, Anthropic's cache reads);
	// 0: the input price.
	CachedInputPerMTok float64 `yaml:"cached_input_per_mtok,omitempty"`
	// CacheWritePerMTok is what a prompt token the provider wrote to its
	// cache for five minutes costs (Anthropic's cache_creation tokens);
	// CacheWrite1hPerMTok one written for an hour. 0: 1.25× and 2× the
	// input price on an Anthropic-wire provider, as Anthropic bills them,
	// else the input price (OpenAI does not bill cache writes).
	CacheWritePerMTok   float64 `yaml:"cache_write_per_mtok,omitempty"`
	CacheWrite1hPerMTok float64 `yaml:"cache_write_1h_per_mtok,omitempty"`
	// WebSearchPer1k is what 1,000 searches of the provider's own web
	// search tool cost (Anthropic's web_search server tool, which its
	// usage counts in server_tool_use.web_search_requests); 0: Anthropic's
	// 10 USD on an Anthropic-wire provider, else none.
	WebSearchPer1k float64 `yaml:"web_search_per_1k,omitempty"`
	Currency       string  `yaml:"currency"`
	// Source and AsOf record where a list price comes from and when.
	Source string `yaml:"source,omitempty"`
	AsOf   string `yaml:"as_of,omitempty"`
	// written: the file wrote the price out, so a zero price is meant
	// (FreeByOmission).
	written bool
}

// priceKeys are the keys a price may have: unknown ones are refused, as
// the decoder refuses them everywhere else (a node's own Decode would not).
var priceKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[Price]()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			keys[tag] = true
		}
	}
	return keys
}()

// UnmarshalYAML notes that the price was written out.
func (p *Price) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; !priceKeys[k.Value] {
				return fmt.Errorf("line %d: field %s not found in type config.Price", k.Line, k.Value)
			}
		}
	}
	type plain Price
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.written = n.Kind == yaml.MappingNode
	return nil
}

// FreeByOmission names the models that cost nothing only because the
// config gives them no price: optimize: cost then prefers them to every
// priced one, and spend and budgets count nothing for them. A price
// written out (price: {input_per_mtok: 0, output_per_mtok: 0}) or a model
// of an on_prem provider (the hardware is paid for either way) is meant.
func FreeByOmission(c *Config) []string {
	onPrem := map[string]bool{}
	for _, p := range c.Providers {
		onPrem[p.Name] = p.Residency == "on_prem"
	}
	var out []string
	for _, m := range c.Models {
		if pr := m.Price; !pr.written && pr.InputPerMTok == 0 && pr.OutputPerMTok == 0 && !onPrem[m.Provider] {
			out = append(out, m.ID)
		}
	}
	return out
}

// DefaultStreamFirstByteTimeout is failover.stream_first_byte_timeout when
// unset.
const DefaultStreamFirstByteTimeout = 10 * time.Second

// Rate-limit scopes of a provider.
const (
	RateLimitScopeModel    = "model"
	RateLimitScopeProvider = "provider"
)

// Envoy modes.
const (
	ModeStandalone = "standalone"
	ModeClusters   = "clusters"
)

// Values the contract accepts.
var (
	WireFormats = []string{"openai", "anthropic"}
	// SupportedWireFormats are those requests can be translated to today;
	// models of other formats are listed but never chosen.
	SupportedWireFormats  = []string{"openai", "anthropic"}
	Residencies           = []string{"eu", "us", "on_prem", "global"}
	AuthHeaders           = []string{"authorization", "api-key", "x-api-key"}
	EnvoyModes            = []string{ModeStandalone, ModeClusters}
	AuthModes             = []string{"open", "keys"}
	Capabilities          = []string{"tools", "vision", "audio", "files", "json_mode", "streaming", "chat", "responses", "embeddings", "completions"}
	DefaultCapabilities   = []string{"tools", "vision", "audio", "files", "json_mode", "streaming", "chat"}
	ResidencyRequirements = []string{"any", "eu", "on_prem"}
	Objectives            = []string{"cost", "latency", "accuracy", "balanced"}
	SecretsActions        = []string{"deny", "on_prem_only", "allow"}
	// UnreadKinds are the kinds of classify.Result.Unread.
	UnreadKinds      = []string{"image", "audio", "video", "file"}
	InjectionActions = []string{"deny", "restrict", "flag"}
	DowngradeFroms   = []string{"exceeded", "warn"}
	RiskLevels       = []string{"low", "medium", "high"}
	Currencies       = []string{"USD", "EUR"}
)

// Load reads, decodes, defaults and validates a config file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, err := decode(f, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// catalogFile is the schema of a `catalog:` file.
type catalogFile struct {
	Providers []Provider `yaml:"providers"`
	Models    []Model    `yaml:"models"`
}

// include merges the catalog file: its entries first, the config's own
// entries replace those with the same name or id.
func (c *Config) include(base string) error {
	for i := range c.Evals { // relative to this file, with a catalog or without (they were to the working directory)
		if !filepath.IsAbs(c.Evals[i]) {
			c.Evals[i] = filepath.Join(base, c.Evals[i])
		}
	}
	if c.Catalog == "" {
		return nil
	}
	path := c.Catalog
	if !filepath.IsAbs(path) {
		path = filepath.Join(base, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	c.Catalog = path
	var cf catalogFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cf); err != nil {
		return fmt.Errorf("catalog %s: %w", c.Catalog, cleanYAMLError(err))
	}
	providers := cf.Providers
	for _, p := range c.Providers {
		if i := slices.IndexFunc(providers, func(x Provider) bool { return x.Name == p.Name }); i >= 0 {
			providers[i] = p
		} else {
			providers = append(providers, p)
		}
	}
	models := cf.Models
	for _, m := range c.Models {
		if i := slices.IndexFunc(models, func(x Model) bool { return x.ID == m.ID }); i >= 0 {
			models[i] = m
		} else {
			models = append(models, m)
		}
	}
	c.Providers, c.Models = providers, models
	return nil
}

// resolvePaths makes every other path the file names relative to the
// file's directory, as catalog, evals and state are: policy.dir, provider
// credential files, the budget webhook's secret file. (envoy.ca_bundle is
// Envoy's to read, on its own host: it is passed on as written, as are the
// cluster blocks' TLS files.)
func (c *Config) resolvePaths(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.Policy.Dir)
	abs(&c.Routing.QualityPredictor)
	for i := range c.Providers {
		abs(&c.Providers[i].Credential.File)
	}
	if c.Budgets.Webhook != nil {
		abs(&c.Budgets.Webhook.SecretFile)
	}
	abs(&c.Server.GRPCStreamToken.File)
	if t := c.Server.GRPCTLS; t != nil {
		abs(&t.Cert)
		abs(&t.Key)
		abs(&t.ClientCA)
	}
}

// Decode parses a config document, rejecting unknown fields, applies defaults
// and validates it.
func Decode(r io.Reader) (*Config, error) { return decode(r, ".") }

// DecodeKept rebuilds a config the audit log kept (GET /config's
// rendering, secrets redacted) with the catalog it kept beside it (the
// merged providers and models, scorecards applied): nothing is read from
// files, so a decision can be replayed after they changed or went. What
// is redacted stays redacted: a kept config decides, it does not serve.
func DecodeKept(configYAML, catalogYAML []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(configYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("kept config: %w", cleanYAMLError(err))
	}
	var cat catalogFile
	dec = yaml.NewDecoder(bytes.NewReader(catalogYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&cat); err != nil {
		return nil, fmt.Errorf("kept catalog: %w", cleanYAMLError(err))
	}
	c.Catalog, c.Evals, c.Providers, c.Models = "", nil, cat.Providers, cat.Models
	for i := range c.Keys {
		if c.Keys[i].SHA256 == Redacted {
			c.Keys[i].SHA256 = strings.Repeat("0", 64) // a digest nothing hashes to
		}
	}
	for i := range c.Admin.Tokens {
		if c.Admin.Tokens[i].SHA256 == Redacted {
			c.Admin.Tokens[i].SHA256 = strings.Repeat("0", 64)
		}
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kept config: %w", err)
	}
	return &c, nil
}

func decode(r io.Reader, base string) (*Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config")
		}
		return nil, cleanYAMLError(err)
	}
	if err := c.include(base); err != nil {
		return nil, err
	}
	c.resolveState(base)
	c.resolvePaths(base)
	c.resolveAudit(base)
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.Provider"
// and "cannot unmarshal !!str `x` into time.Duration" into wording an
// operator understands, without Go's type names.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`).ReplaceAllString(msg, "unknown field \"$1\" in $2")
	msg = unmarshalRE.ReplaceAllStringFunc(msg, func(m string) string {
		p := unmarshalRE.FindStringSubmatch(m)
		kind := yamlKinds[p[1]]
		if kind == "" {
			kind = "a value"
		}
		return fmt.Sprintf("%s (%s) where %s belongs", kind, p[2], goTypeWords(p[3]))
	})
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return errors.New(strings.Join(lines, "; "))
}

var unmarshalRE = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*`) into (\\S+)")

var yamlKinds = map[string]string{"str": "a string", "int": "a number", "float": "a number", "bool": "true or false",
	"seq": "a list", "map": "a mapping", "null": "null", "binary": "binary data", "timestamp": "a time"}

// goTypeWords says what a Go type of the config is in an operator's words.
func goTypeWords(t string) string {
	switch t {
	case "time.Duration":
		return "a duration (5s, 250ms)"
	case "int", "int64", "int32", "uint32", "uint64":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	}
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "a mapping of " + t[strings.LastIndexByte(t, '.')+1:] // config.ClusterSettings: a block of the file
}

// DecodeClusterSettings reads a provider's cluster block as the config
// file writes it (YAML or JSON); unknown fields are refused, and errors
// name fields and kinds, not Go types.
func DecodeClusterSettings(b []byte) (ClusterSettings, error) {
	var cs ClusterSettings
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cs); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// yaml.v3 names a line, and a PUT body is one line: name the
			// field (a helper's -1 for max_requests said only "line 1").
			var root yaml.Node
			if yaml.Unmarshal(b, &root) == nil && len(root.Content) == 1 {
				if path := errorPath(root.Content[0], func(n *yaml.Node) error { return n.Decode(&ClusterSettings{}) }); path != "" {
					return ClusterSettings{}, fmt.Errorf("%s: %w", path, cleanYAMLError(err))
				}
			}
		}
		return ClusterSettings{}, cleanYAMLError(err)
	}
	return cs, nil
}

// errorPath is the dotted path of the field a decoding error is about:
// the deepest one whose value, alone in a document of its own, still fails
// to decode ("" when no single field does).
func errorPath(doc *yaml.Node, decode func(*yaml.Node) error) string {
	var walk func(n *yaml.Node, wrap func(*yaml.Node) *yaml.Node, path string) string
	walk = func(n *yaml.Node, wrap func(*yaml.Node) *yaml.Node, path string) string {
		if n.Kind != yaml.MappingNode {
			return ""
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			one := func(x *yaml.Node) *yaml.Node {
				return wrap(&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{k, x}})
			}
			if decode(one(v)) == nil {
				continue
			}
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if deeper := walk(v, one, p); deeper != "" {
				return deeper
			}
			return p
		}
		return ""
	}
	return walk(doc, func(n *yaml.Node) *yaml.Node { return n }, "")
}

// MarshalJSON writes the settings as the config file and a PUT body spell
// them, durations as "5s" (encoding/json wrote nanoseconds, which a PUT of
// the same document then refused). The admin API's answers use it; never
// on the request path.
func (c ClusterSettings) MarshalJSON() ([]byte, error) {
	y, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, err
	}
	if v == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes (and a PUT body): the
// config's spelling, unknown fields refused.
func (c *ClusterSettings) UnmarshalJSON(b []byte) error {
	cs, err := DecodeClusterSettings(b)
	if err != nil {
		return err
	}
	*c = cs
	return nil
}

// DefaultGRPC is where Envoy on the same host reaches stellwerk.
const DefaultGRPC = UnixSocketPrefix + "/run/stellwerk/grpc.sock"

// ApplyDefaults fills unset fields.
func (c *Config) ApplyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Server.GRPC, DefaultGRPC)
	def(&c.Server.Admin, "127.0.0.1:9180")
	def(&c.Envoy.Mode, ModeStandalone)
	def(&c.Envoy.Listener, "127.0.0.1:10000")
	def(&c.Envoy.ExtProcCluster, "stellwerk_extproc")
	def(&c.Envoy.CABundle, "/etc/ssl/certs/ca-certificates.crt")
	if c.Envoy.RequestTimeout == 0 {
		c.Envoy.RequestTimeout = 5 * time.Minute
	}
	if c.Envoy.ExtProcTimeout == 0 {
		c.Envoy.ExtProcTimeout = 2 * time.Second
	}
	if c.Envoy.ConnectTimeout == 0 {
		c.Envoy.ConnectTimeout = 5 * time.Second
	}
	if c.Envoy.MaxRequestBytes == 0 {
		c.Envoy.MaxRequestBytes = 8 << 20
	}
	def(&c.Auth.Mode, "open")
	f := &c.Failover
	if f.MaxAttempts == 0 {
		f.MaxAttempts = 3
	}
	if f.AttemptTimeout == 0 {
		f.AttemptTimeout = 60 * time.Second
	}
	if f.FailuresBeforeCooldown == 0 {
		f.FailuresBeforeCooldown = 3
	}
	if f.Cooldown == 0 {
		f.Cooldown = 30 * time.Second
	}
	if f.MaxCooldown == 0 {
		f.MaxCooldown = 5 * time.Minute
	}
	if f.Reopen == 0 {
		f.Reopen = 30 * time.Second
	}
	if c.Routing.LatencyHalfLife == 0 {
		c.Routing.LatencyHalfLife = 5 * time.Minute
	}
	if c.Currency.USDToEUR == 0 {
		c.Currency.USDToEUR = 0.92
	}
	if c.Policy.Library == nil {
		t := true
		c.Policy.Library = &t
	}
	if c.Policy.ReloadInterval == 0 {
		c.Policy.ReloadInterval = 2 * time.Second
	}
	if c.State.RefreshInterval == 0 {
		c.State.RefreshInterval = DefaultRefreshInterval
	}
	if !slices.ContainsFunc(c.Workspaces, func(w Workspace) bool { return w.Name == "default" }) {
		c.Workspaces = append(c.Workspaces, Workspace{Name: "default"})
	}
	for i := range c.Workspaces {
		w := &c.Workspaces[i]
		def(&w.Residency, "any")
		def(&w.SensitiveResidency, "eu")
		if w.UnreadSensitive == nil {
			w.UnreadSensitive = []string{"file", "audio", "video"}
		}
		def(&w.Objective, "balanced")
		def(&w.Secrets, "deny")
		def(&w.Injection, "deny")
		def(&w.DowngradeFrom, "exceeded")
		if w.InjectionThreshold == 0 {
			w.InjectionThreshold = 0.5
		}
		if w.InjectionMinTier == 0 {
			w.InjectionMinTier = 3
		}
		if w.RiskTiers == nil {
			w.RiskTiers = map[string]int{"low": 1, "medium": 1, "high": 2}
		}
		if w.Allow == nil {
			w.Allow = []string{}
		}
		if w.Deny == nil {
			w.Deny = []string{}
		}
		for j := range w.Teams {
			if w.Teams[j].Allow == nil {
				w.Teams[j].Allow = []string{}
			}
			if w.Teams[j].Deny == nil {
				w.Teams[j].Deny = []string{}
			}
		}
	}
	c.applyLedgerDefaults()
	c.resolveAliases()
	c.applyAuditDefaults()
	if c.Classify.Sensitivity == nil {
		c.Classify.Sensitivity = DefaultSensitivity
	}
	if c.Classify.Risk == nil {
		c.Classify.Risk = DefaultRisk
	}
	for i := range c.Providers {
		p := &c.Providers[i]
		def(&p.WireFormat, "openai")
		if p.WireFormat == "anthropic" {
			def(&p.Credential.Header, "x-api-key") // Anthropic's API reads its key there
		}
		def(&p.Credential.Header, "authorization")
		def(&p.RateLimitScope, RateLimitScopeModel)
		if p.WireFormat == "openai" {
			def(&p.MaxTokensParam, defaultMaxTokensParam(p.BaseURL))
		}
		if p.AssuranceTier == 0 {
			p.AssuranceTier = 1
		}
	}
	for i := range c.Models {
		m := &c.Models[i]
		def(&m.ProviderModel, m.ID)
		def(&m.Price.Currency, "USD")
		if m.MaxOutputTokens == 0 {
			m.MaxOutputTokens = 4096
		}
		if m.Capabilities == nil {
			m.Capabilities = slices.Clone(DefaultCapabilities)
			if i := slices.IndexFunc(c.Providers, func(p Provider) bool { return p.Name == m.Provider }); i >= 0 && c.Providers[i].WireFormat == "anthropic" {
				// JSON mode reaches an Anthropic-wire model as an instruction
				// in its prompt, not a guarantee (wire-formats.md): a
				// catalog opts in by listing json_mode. By default a model
				// without capabilities had it, and strict structured
				// outputs the SDKs parse failed there (the SDK feature
				// probe). Anthropic's models hear no audio either.
				m.Capabilities = slices.DeleteFunc(m.Capabilities, func(c string) bool { return c == "json_mode" || c == "audio" })
			}
		}
		if m.LatencyMS == 0 {
			m.LatencyMS = 1000
		}
	}
}

// ModelAliases is every alias of the config, name → model id: the
// models' own (models[].aliases) and routing.aliases. A name given twice,
// or that is a model's id, is left out: Validate refuses such a config.
func (c *Config) ModelAliases() map[string]string {
	ids := map[string]string{}
	taken := map[string]bool{}
	add := func(a, id string) {
		if _, twice := ids[a]; twice {
			taken[a] = true
		}
		ids[a] = id
	}
	for _, m := range c.Models {
		taken[m.ID] = true
		for _, a := range m.Aliases {
			add(a, m.ID)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(c.Routing.Aliases)) {
		add(a, c.Routing.Aliases[a])
	}
	for a := range taken {
		delete(ids, a)
	}
	return ids
}

// resolveAliases writes the id of the model an alias names wherever the
// config names a model: the routing defaults, the workspaces' and teams'
// default models and allow and deny lists, the rate limits of one model.
// What reads them (the Rego library's lists, the rate limits' counters)
// compares ids.
func (c *Config) resolveAliases() {
	ids := c.ModelAliases()
	if len(ids) == 0 {
		return
	}
	one := func(s *string) {
		if id, ok := ids[*s]; ok {
			*s = id
		}
	}
	list := func(l []string) {
		for i := range l {
			one(&l[i])
		}
	}
	one(&c.Routing.DefaultModel)
	one(&c.Routing.BaselineModel)
	for i := range c.Workspaces {
		w := &c.Workspaces[i]
		one(&w.DefaultModel)
		list(w.Allow)
		list(w.Deny)
		for j := range w.Teams {
			list(w.Teams[j].Allow)
			list(w.Teams[j].Deny)
		}
	}
	for i := range c.RateLimits {
		if l := &c.RateLimits[i]; l.Scope == "model" {
			one(&l.Subject)
		}
	}
}

// YAML returns the config as YAML for the admin API. It holds no secret
// values by construction (credentials are references), but digests and
// credential file paths still tell an attacker what to aim at: they are
// [redacted].
func (c *Config) YAML() ([]byte, error) {
	return yaml.Marshal(c.redacted())
}
