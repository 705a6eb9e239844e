// Package catalog is the compiled, read-only view of the configured providers
// and models that the request path uses: URLs parsed, cluster names derived,
// credentials resolved once at start-up.
package catalog

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/evals"
)

// Provider is a compiled provider.
type Provider struct {
	Name       string
	Cluster    string // the Envoy cluster that reaches it
	Scheme     string // http or https
	Host       string // host name or IP, no port
	Port       int
	Authority  string // the :authority / Host header the provider expects
	BasePath   string // e.g. /v1, no trailing slash
	WireFormat string
	Region     string
	Residency  string
	// AssuranceTier is 1 (public API), 2 (enterprise terms) or 3 (dedicated).
	AssuranceTier int
	// StoredResponses: the provider keeps its Responses API answers, so
	// previous_response_id works against it (config stored_responses).
	StoredResponses bool
	// PerModelLimits: the provider rate-limits each model on its own, so
	// a 429 cools the model, not the provider (rate_limit_scope).
	PerModelLimits bool
	// MaxTokensParam is the name an OpenAI-wire provider reads a request's
	// output limit under (max_tokens_param; "" for other wire formats).
	MaxTokensParam string

	// Query is the query string every request carries ("?api-version=…"
	// from config, or ""); the client's own is never forwarded.
	Query string
	// forward are the client headers this provider gets beyond the shipped
	// allow-list.
	forward []string

	authHeader string
	credential string // never logged; see Credential
	credSource string // where it comes from, for error messages
}

// TLS reports whether Envoy must speak TLS to the provider.
func (p *Provider) TLS() bool { return p.Scheme == "https" }

// IsIP reports whether Host is a literal address (static cluster) rather than
// a DNS name.
func (p *Provider) IsIP() bool { return net.ParseIP(p.Host) != nil }

// Credential returns the header name and value that authenticate stellwerk
// to the provider. ok is false when the provider needs a key and none was
// found; source then names where it was expected (never the value).
func (p *Provider) Credential() (name, value string, ok bool) {
	if p.credSource == "" {
		return "", "", true // provider without authentication (e.g. local vLLM)
	}
	if p.credential == "" {
		return "", "", false
	}
	if p.authHeader == "authorization" {
		return "authorization", "Bearer " + p.credential, true
	}
	return p.authHeader, p.credential, true
}

// Scrub replaces the provider's credential in s (a provider, or a gateway
// before it, that echoes what it was sent); held reports that s had it.
func (p *Provider) Scrub(s string) (out string, held bool) {
	return ScrubSecret(s, p.credential)
}

// ScrubSecret replaces secret in s with [credential]; held reports that s
// had it. A secret shorter than 8 bytes is no credential to look for.
func ScrubSecret(s, secret string) (out string, held bool) {
	if len(secret) < 8 || !strings.Contains(s, secret) {
		return s, false
	}
	return strings.ReplaceAll(s, secret, "[credential]"), true
}

// HasCredential reports whether requests to the provider can be
// authenticated: Credential's ok, without building the header's value.
// The decision asks it for every candidate of every request.
func (p *Provider) HasCredential() bool { return p.credSource == "" || p.credential != "" }

// FormatCredential is the header and value Envoy sends for key, a key of
// this provider (a workspace's own key included): the provider's
// credential header, as a bearer token when that is Authorization.
func (p *Provider) FormatCredential(key string) (name, value string) {
	name = p.authHeader
	if name == "" {
		name = "authorization"
	}
	if name == "authorization" {
		return name, "Bearer " + key
	}
	return name, key
}

// Forwards reports whether a client header outside the shipped allow-list
// (header.Forwarded) may reach this provider.
func (p *Provider) Forwards(name string) bool { return slices.Contains(p.forward, name) }

// ForwardHeaders lists those headers. The slice must not be modified.
func (p *Provider) ForwardHeaders() []string { return p.forward }

// CredentialSource names where the key is expected, e.g. "env OPENAI_API_KEY".
func (p *Provider) CredentialSource() string { return p.credSource }

// UpstreamPath maps a client path under /v1 (e.g. /v1/chat/completions) to
// the provider's path under its base URL.
func (p *Provider) UpstreamPath(clientPath string) string {
	return p.BasePath + strings.TrimPrefix(clientPath, "/v1")
}

// Model is a compiled catalog model.
type Model struct {
	ID            string
	Provider      *Provider
	ProviderModel string
	InputPerMTok  float64
	OutputPerMTok float64
	// CachedInputPerMTok is a cached prompt token's price (the input
	// price when the catalog gives none).
	CachedInputPerMTok float64
	// CacheWritePerMTok and CacheWrite1hPerMTok are the prices of a
	// prompt token written to the provider's cache for five minutes and
	// for an hour (the catalog's, else CacheWritePrices').
	CacheWritePerMTok   float64
	CacheWrite1hPerMTok float64
	// WebSearchPer1k is the price of 1,000 searches of the provider's web
	// search tool (the catalog's, else AnthropicWebSearchUSD on an
	// Anthropic-wire provider).
	WebSearchPer1k  float64
	Currency        string
	ContextWindow   int
	MaxOutputTokens int
	// ImageTokens bounds one image's input tokens (image_tokens, or
	// config.DefaultImageTokens), for the budgets' worst case and the
	// decision's estimated cost (MediaTokens).
	ImageTokens   int
	AssuranceTier int
	Tools         bool
	Vision        bool
	// Audio and Files: it reads input_audio parts, and file parts (PDFs
	// and other documents inline; Anthropic's document blocks).
	Audio, Files bool
	JSONMode     bool
	Streaming    bool
	// Chat, Embeddings and Completions are the endpoints it serves.
	Chat, Embeddings, Completions bool
	// Responses: its provider serves the Responses API natively for it
	// (capability responses); Responses requests pass through. Without it
	// a chat model still serves them, translated.
	Responses bool
	// Quality maps a task (or "default") to a 0–1 score.
	Quality   map[string]float64
	LatencyMS int
	// FirstByteTimeout bounds an attempt of a streaming request until its
	// first byte when there is a fallback (the model's first_byte_timeout,
	// else failover.stream_first_byte_timeout); 0 when that is no shorter
	// than failover.attempt_timeout.
	FirstByteTimeout time.Duration
	// Aliases are the other names the model answers to (models[].aliases
	// and routing.aliases), sorted: Lookup finds it by them, and an access
	// or key list naming one names the model.
	Aliases []string
	// toEUR converts this model's price currency into EUR.
	toEUR float64
}

// QualityFor is the model's score for a task, its default score when it has
// none for the task, and 0.5 when it has no scores at all.
func (m *Model) QualityFor(task string) float64 {
	if q, ok := m.Quality[task]; ok {
		return q
	}
	return m.DefaultQuality()
}

// DefaultQuality is the quality of a task the model's scorecard does not
// name: its default row, else 0.5.
func (m *Model) DefaultQuality() float64 {
	if q, ok := m.Quality["default"]; ok {
		return q
	}
	return 0.5
}

// CostEUR is the list-price cost of a request with these token counts, in EUR.
func (m *Model) CostEUR(inputTokens, outputTokens int) float64 {
	return m.Price().EUR(inputTokens, outputTokens)
}

// PDFPageTokens is a PDF page's text in a token count: the lower end of
// the 1,500 to 3,000 Anthropic's documentation gives a page; the page's
// image is counted beside it at the model's image bound.
const PDFPageTokens = 1500

// PDFTokens is what pages of a PDF cost on a model whose image bound is
// perImage: each page its text and its image. count_tokens answers it for
// a model not yet chosen (auto, a route) at config.DefaultImageTokens.
func PDFTokens(pages, perImage int) int { return pages * (PDFPageTokens + perImage) }

// DefaultOutputLimit is the longest answer of a model whose catalog entry
// names no max_output_tokens: the most it is asked for and held for.
const DefaultOutputLimit = 4096

// OutputLimit is the longest answer m gives: its max_output_tokens, else
// DefaultOutputLimit. A provider is never asked for more (extproc lowers a
// larger bound), and budgets hold no more.
func (m *Model) OutputLimit() int {
	if m.MaxOutputTokens > 0 {
		return m.MaxOutputTokens
	}
	return DefaultOutputLimit
}

// Output is the output a request that asks for n tokens gets of m: n, at
// most m's max_output_tokens, as its provider is sent it. The context
// window, the estimated cost and max_cost read this, not the client's n.
// A model without a limit takes n here (the decision holds a request that
// asks for more than DefaultOutputLimit to what it asked), although it is
// sent at most OutputLimit.
func (m *Model) Output(n int) int {
	if m.MaxOutputTokens > 0 && n > m.MaxOutputTokens {
		return m.MaxOutputTokens
	}
	return n
}

// MediaTokens is the most a request's images and inline PDFs may cost on
// m, beyond its text: each image m's image bound, each PDF page PDFTokens.
// A PDF's share is at most m's context window, which a provider bills no
// prompt beyond, and is that window when a PDF's pages could not be
// counted (pdfUncounted: request.PDFReader.Bound): a file crafted to be read
// as fewer pages than the provider bills must not be held, nor estimated,
// at less (max_cost is the most a request may cost). The budgets' hold,
// the estimated charge of an answer without usage and each candidate's
// estimated cost (decision.Router) read it.
func (m *Model) MediaTokens(images, pdfPages int, pdfUncounted bool) int {
	t := images * m.ImageTokens
	switch {
	case pdfUncounted:
		t += m.ContextWindow
	case pdfPages > 0:
		t += min(PDFTokens(pdfPages, m.ImageTokens), m.ContextWindow)
	}
	return t
}

// Tokens is an answer's token counts as a provider bills them. Input
// counts every prompt token; CacheRead, CacheWrite (written for five
// minutes) and CacheWrite1h (for an hour) are parts of it. WebSearches
// are the searches the provider's own search tool ran, billed apiece.
type Tokens struct {
	Input, CacheRead, CacheWrite, CacheWrite1h, Output int
	WebSearches                                        int
}

// AnthropicWebSearchUSD is what Anthropic bills for 1,000 searches of its
// web_search server tool.
const AnthropicWebSearchUSD = 10

// Amount is what usage costs in the model's price currency: the prompt's
// cache reads and writes at their prices, the rest of it at the input
// price. A part larger than what the parts before it leave of the prompt
// is cut to it.
func (m *Model) Amount(t Tokens) float64 {
	read := min(max(t.CacheRead, 0), t.Input)
	w1h := min(max(t.CacheWrite1h, 0), t.Input-read)
	w5m := min(max(t.CacheWrite, 0), t.Input-read-w1h)
	plain := t.Input - read - w1h - w5m
	return (float64(plain)*m.InputPerMTok+float64(read)*m.CachedInputPerMTok+float64(w5m)*m.CacheWritePerMTok+
		float64(w1h)*m.CacheWrite1hPerMTok+float64(t.Output)*m.OutputPerMTok)/1e6 + float64(max(t.WebSearches, 0))*m.WebSearchPer1k/1e3
}

// UsageEUR is Amount in EUR.
func (m *Model) UsageEUR(t Tokens) float64 {
	return m.Amount(t) * m.toEUR
}

// CacheWritePrices are the prices of a prompt token written to the
// provider's cache for five minutes and for an hour where the catalog
// gives none: Anthropic bills 1.25× and 2× the input price; other wire
// formats' providers (OpenAI's) bill a written token as input.
func CacheWritePrices(wireFormat string, inputPerMTok float64) (fiveMin, oneHour float64) {
	if wireFormat == "anthropic" {
		return inputPerMTok * 1.25, inputPerMTok * 2
	}
	return inputPerMTok, inputPerMTok
}

// Price is a model's list price as CostEUR reads it, for callers that keep
// many side by side.
type Price struct{ inPerMTok, outPerMTok, toEUR float64 }

// Price is the model's price.
func (m *Model) Price() Price { return Price{m.InputPerMTok, m.OutputPerMTok, m.toEUR} }

// EUR is the cost of a request with these token counts, in EUR.
func (p Price) EUR(inputTokens, outputTokens int) float64 {
	return (float64(inputTokens)*p.inPerMTok + float64(outputTokens)*p.outPerMTok) / 1e6 * p.toEUR
}

// Catalog is immutable once built; swap a whole new one to change it.
type Catalog struct {
	models    []*Model // sorted by id
	byID      map[string]*Model
	aliases   map[string]*Model
	providers []*Provider // config order
	byName    map[string]*Provider
	Default   *Model
	// Baseline is what requests are compared with for savings.
	Baseline *Model
	// IgnoredScores are the scorecard rows' models (path: id) the catalog
	// does not have, retired since they were measured: their rows are
	// skipped, and config check and a reload say so.
	IgnoredScores []string
}

func keys(m map[string]map[string]float64) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// Supported reports whether requests can be sent to this model today (its
// provider's wire format can be translated to).
func (m *Model) Supported() bool {
	return slices.Contains(config.SupportedWireFormats, m.Provider.WireFormat)
}

// Serves reports whether the model serves an endpoint (request.APIChat,
// APIResponses, APIEmbeddings, APICompletions, APIMessages; "" is chat). A
// chat model serves the Responses API translated, whatever its wire format.
func (m *Model) Serves(api string) bool {
	switch api {
	case "embeddings":
		return m.Embeddings && m.Provider.WireFormat == "openai"
	case "completions":
		return m.Completions && m.Provider.WireFormat == "openai"
	case "responses":
		return m.NativeResponses() || m.Chat
	case "messages": // Anthropic-wire natively, OpenAI-wire translated to chat
		return m.Chat
	}
	return m.Chat
}

// NativeResponses reports whether Responses API requests go to the model's
// provider as they are (its /responses), not translated.
func (m *Model) NativeResponses() bool {
	return m.Responses && m.Provider.WireFormat == "openai"
}

// StoresResponses reports whether the model can answer a Responses request
// that continues a stored one (previous_response_id, conversation): only
// natively, at a provider that keeps its responses.
func (m *Model) StoresResponses() bool {
	return m.NativeResponses() && m.Provider.StoredResponses
}

// CannotServe says why the model does not serve an endpoint, "" when it
// does: the provider's wire format has no such endpoint, or the model's
// capabilities do not list it.
func (m *Model) CannotServe(api string) string {
	switch {
	case m.Serves(api):
		return ""
	case api == "responses":
		return "does not serve responses or chat (capabilities), which the Responses API is translated to"
	case api == "messages":
		return "does not serve chat (capabilities), which the Messages API needs"
	case api != "chat" && api != "" && m.Provider.WireFormat != "openai":
		return "wire format " + m.Provider.WireFormat + " has no " + api + " endpoint"
	}
	// The reasons a selection writes for every model that cannot serve a
	// request are constants, not built per request.
	switch api {
	case "", "chat":
		return "does not serve chat (capabilities)"
	case "embeddings":
		return "does not serve embeddings (capabilities)"
	case "completions":
		return "does not serve completions (capabilities)"
	}
	return "does not serve " + api + " (capabilities)"
}

// Env abstracts the process environment and file system for credentials.
type Env struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// OSEnv reads credentials from the real environment and files.
var OSEnv = Env{Getenv: os.Getenv, ReadFile: os.ReadFile}

// New compiles a validated config. Credentials that cannot be found are not
// an error here: the provider answers 502 naming itself until they appear, and
// Missing lists them for a start-up warning.
func New(c *config.Config, env Env) (*Catalog, error) {
	cat := &Catalog{byID: map[string]*Model{}, byName: map[string]*Provider{}}
	for _, pc := range c.Providers {
		p, err := newProvider(pc, env)
		if err != nil {
			return nil, err
		}
		cat.providers = append(cat.providers, p)
		cat.byName[p.Name] = p
	}
	quality := map[string]map[string]float64{}
	for _, mc := range c.Models {
		quality[mc.ID] = maps.Clone(mc.Quality)
	}
	for _, path := range c.Evals {
		rows, err := evals.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("evals: %w", err)
		}
		if err := evals.Validate(rows, task.Tasks); err != nil {
			return nil, fmt.Errorf("evals %s: %w", path, err)
		}
		for _, id := range evals.Unknown(rows, keys(quality)) {
			cat.IgnoredScores = append(cat.IgnoredScores, path+": "+id)
		}
		evals.Apply(rows, quality)
	}
	for _, mc := range c.Models {
		p := cat.byName[mc.Provider]
		if p == nil {
			return nil, fmt.Errorf("model %q: unknown provider %q", mc.ID, mc.Provider)
		}
		m := &Model{ID: mc.ID, Provider: p, ProviderModel: mc.ProviderModel, InputPerMTok: mc.Price.InputPerMTok,
			OutputPerMTok: mc.Price.OutputPerMTok, Currency: mc.Price.Currency, ContextWindow: mc.ContextWindow,
			MaxOutputTokens: mc.MaxOutputTokens, AssuranceTier: mc.AssuranceTier, Quality: quality[mc.ID], LatencyMS: mc.LatencyMS, toEUR: 1,
			FirstByteTimeout: mc.FirstByteTimeout, ImageTokens: mc.ImageTokens, CachedInputPerMTok: mc.Price.CachedInputPerMTok}
		if m.CachedInputPerMTok == 0 {
			m.CachedInputPerMTok = m.InputPerMTok
		}
		w5m, w1h := CacheWritePrices(p.WireFormat, m.InputPerMTok)
		m.CacheWritePerMTok, m.CacheWrite1hPerMTok = cmp.Or(mc.Price.CacheWritePerMTok, w5m), cmp.Or(mc.Price.CacheWrite1hPerMTok, w1h)
		if m.ImageTokens == 0 {
			m.ImageTokens = config.DefaultImageTokens
		}
		if m.FirstByteTimeout == 0 {
			m.FirstByteTimeout = c.Failover.StreamFirstByteTimeout
		}
		if m.FirstByteTimeout == 0 {
			m.FirstByteTimeout = config.DefaultStreamFirstByteTimeout
		}
		if m.FirstByteTimeout >= c.Failover.AttemptTimeout {
			m.FirstByteTimeout = 0 // no shorter than attempt_timeout: off
		}
		if m.AssuranceTier == 0 {
			m.AssuranceTier = p.AssuranceTier
		}
		if m.Currency == "USD" {
			m.toEUR = c.Currency.USDToEUR
		}
		m.WebSearchPer1k = mc.Price.WebSearchPer1k
		if m.WebSearchPer1k == 0 && p.WireFormat == "anthropic" {
			m.WebSearchPer1k = AnthropicWebSearchUSD // in USD; a model priced in EUR gets it converted
			if m.Currency != "USD" {
				m.WebSearchPer1k *= c.Currency.USDToEUR
			}
		}
		for _, cp := range mc.Capabilities {
			switch cp {
			case "tools":
				m.Tools = true
			case "vision":
				m.Vision = true
			case "audio":
				m.Audio = true
			case "files":
				m.Files = true
			case "json_mode":
				m.JSONMode = true
			case "streaming":
				m.Streaming = true
			case "chat":
				m.Chat = true
			case "embeddings":
				m.Embeddings = true
			case "completions":
				m.Completions = true
			case "responses":
				m.Responses = true
			}
		}
		if !m.Chat && !m.Embeddings && !m.Completions && !m.Responses {
			m.Chat = true // a list that names no endpoint is a chat model's
		}
		cat.models = append(cat.models, m)
		cat.byID[m.ID] = m
	}
	sort.Slice(cat.models, func(i, j int) bool { return cat.models[i].ID < cat.models[j].ID })
	for a, id := range c.ModelAliases() {
		if m := cat.byID[id]; m != nil {
			if cat.aliases == nil {
				cat.aliases = map[string]*Model{}
			}
			cat.aliases[a] = m
			m.Aliases = append(m.Aliases, a)
		}
	}
	for _, m := range cat.aliases {
		slices.Sort(m.Aliases)
	}
	cat.Default = cat.byID[c.Routing.DefaultModel]
	if cat.Default == nil {
		return nil, fmt.Errorf("default model %q is not in the catalog", c.Routing.DefaultModel)
	}
	cat.Baseline = cat.Default
	if b, ok := cat.byID[c.Routing.BaselineModel]; ok {
		cat.Baseline = b
	}
	return cat, nil
}

// ClusterName is the Envoy cluster for a provider name.
func ClusterName(provider string) string { return "provider_" + provider }

func newProvider(pc config.Provider, env Env) (*Provider, error) {
	u, err := url.Parse(pc.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("provider %s: base_url: %w", pc.Name, err)
	}
	p := &Provider{Name: pc.Name, Cluster: ClusterName(pc.Name), Scheme: u.Scheme, Host: u.Hostname(),
		BasePath: strings.TrimSuffix(u.EscapedPath(), "/"), WireFormat: pc.WireFormat, Region: pc.Region,
		Residency: pc.Residency, AssuranceTier: pc.AssuranceTier, StoredResponses: pc.StoredResponses, authHeader: pc.Credential.Header,
		PerModelLimits: pc.RateLimitScope != config.RateLimitScopeProvider, MaxTokensParam: pc.MaxTokensParam}
	p.Port = 80
	if p.TLS() {
		p.Port = 443
	}
	if ps := u.Port(); ps != "" {
		if p.Port, err = strconv.Atoi(ps); err != nil {
			return nil, fmt.Errorf("provider %s: base_url port: %w", pc.Name, err)
		}
	}
	p.Authority = u.Host
	p.forward = slices.Clone(pc.ForwardHeaders)
	if len(pc.Query) > 0 {
		q := url.Values{}
		for k, v := range pc.Query {
			q.Set(k, v)
		}
		p.Query = "?" + q.Encode() // sorted by key: the same config, the same path
	}
	switch {
	case pc.Credential.Env != "":
		p.credSource = "environment variable " + pc.Credential.Env
		p.credential = strings.TrimSpace(env.Getenv(pc.Credential.Env))
	case pc.Credential.File != "":
		p.credSource = "file " + pc.Credential.File
		if b, err := env.ReadFile(pc.Credential.File); err == nil {
			p.credential = strings.TrimSpace(string(b))
		}
	}
	if strings.ContainsAny(p.credential, "\r\n\x00") {
		p.credential = "" // a key that would break the header is treated as missing
	}
	return p, nil
}

// Lookup finds a model by id or by one of its aliases (the model's ID
// says which it is).
func (c *Catalog) Lookup(id string) (*Model, bool) {
	m, ok := c.byID[id]
	if !ok && c.aliases != nil {
		m, ok = c.aliases[id]
	}
	return m, ok
}

// AliasOf is the model an alias names (nil for a model's id or an unknown
// name).
func (c *Catalog) AliasOf(name string) *Model { return c.aliases[name] }

// Models returns the models sorted by id. The slice must not be modified.
func (c *Catalog) Models() []*Model { return c.models }

// ModelOfCluster is the first model served by the provider whose Envoy
// cluster is named cluster, nil if none is.
func (c *Catalog) ModelOfCluster(cluster string) *Model {
	for _, m := range c.models {
		if m.Provider.Cluster == cluster {
			return m
		}
	}
	return nil
}

// Providers returns the providers in config order. The slice must not be modified.
func (c *Catalog) Providers() []*Provider { return c.providers }

// IDs returns the model ids sorted.
func (c *Catalog) IDs() []string {
	ids := make([]string, len(c.models))
	for i, m := range c.models {
		ids[i] = m.ID
	}
	return ids
}

// MissingCredentials lists providers whose key was not found, for a start-up
// warning; it names sources, never values.
func (c *Catalog) MissingCredentials() []string {
	var out []string
	for _, p := range c.providers {
		if !p.HasCredential() {
			out = append(out, p.Name+" ("+p.credSource+")")
		}
	}
	return out
}
