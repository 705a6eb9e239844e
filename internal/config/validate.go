// Validate: every problem of a decoded, defaulted config at once, each
// naming its field.

package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// modelIDRE admits ids such as gpt-4o-mini, claude-3.5-sonnet,
// mistral/mistral-large or Ollama's llama3.1:8b (the on-prem probe: an
// Ollama tag was refused). A model id goes nowhere ':' means something: no
// Envoy name holds one (providers are the clusters), and metric labels,
// headers, Redis keys (a model id last), audit records and /v1/models/{id}
// take it as it is. Two prefixes do mean something: reservedModelID.
var modelIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$`)

// reservedModelID: what a request's model, or an allow or deny list,
// reads as something other than a model id: auto, a named route
// (route:…), a provider (provider:…, in allow and deny lists and a key's
// models).
func reservedModelID(id string) bool {
	return id == "auto" || strings.HasPrefix(id, "route:") || strings.HasPrefix(id, "provider:")
}

// modelIDRule is how a model id or alias is refused.
const modelIDRule = "must be letters, digits, '.', '_', '/', ':' or '-' (at most 128, starting with a letter or digit)"

// Validate checks the whole config and reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for _, field := range nonFinite(reflect.ValueOf(c).Elem(), "", nil) {
		bad(field, "must be a finite number (not .nan or .inf)")
	}
	for i, h := range c.Envoy.Hosts {
		if h != "*" && (h == "" || h != strings.ToLower(h) || strings.ContainsAny(h, " /:@,[]") && net.ParseIP(h) == nil) {
			bad(fmt.Sprintf("envoy.hosts[%d]", i), "%q must be a lower-case host name or IP address without a port, or *", h)
		}
	}
	errs = append(errs, c.validateCORS()...)
	for field, addr := range map[string]string{"server.admin": c.Server.Admin, "envoy.listener": c.Envoy.Listener} {
		if err := checkHostPort(addr); err != nil {
			bad(field, "%v", err)
		}
	}
	errs = append(errs, c.Server.validateGRPC()...)
	if t := c.Server.GRPCStreamToken; t.IsSet() {
		switch {
		case t.Env != "" && t.File != "":
			bad("server.grpc_stream_token", "set env or file, not both")
		case t.Env != "" && !envRE.MatchString(t.Env):
			bad("server.grpc_stream_token.env", "%q is not an environment variable name", t.Env)
		}
		if c.Envoy.Mode != ModeClusters {
			// The ext_proc filter and access log stellwerk pushes in
			// standalone mode do not carry it (yet): every request
			// would fail closed. Nor is it needed there: stellwerk's own
			// routes let no client pick a cluster.
			bad("server.grpc_stream_token", "is for envoy.mode: clusters (an Envoy whose routes are the operator's); "+
				"in standalone mode the listener and routes are stellwerk's and no client picks a cluster")
		}
	}
	if !slices.Contains(EnvoyModes, c.Envoy.Mode) {
		bad("envoy.mode", "%q is not one of %s", c.Envoy.Mode, strings.Join(EnvoyModes, ", "))
	}
	// Bounds Envoy can hold: it reads durations in milliseconds, and a
	// request_timeout of 1ns, sent as 0.000000001s, was no timeout at
	// all; an extproc_timeout of 1ns failed every request as the router
	// being down (the config probe). (0 is the default, set before this.)
	if c.Envoy.RequestTimeout < time.Second {
		bad("envoy.request_timeout", "must be at least 1s, got %s", c.Envoy.RequestTimeout)
	}
	if c.Envoy.ExtProcTimeout < 10*time.Millisecond || c.Envoy.ExtProcTimeout > time.Minute {
		bad("envoy.extproc_timeout", "must be between 10ms and 1m, got %s", c.Envoy.ExtProcTimeout)
	}
	if c.Envoy.ConnectTimeout < time.Millisecond {
		bad("envoy.connect_timeout", "must be at least 1ms, got %s", c.Envoy.ConnectTimeout)
	}
	if c.Envoy.MaxRequestBytes < 1024 || c.Envoy.MaxRequestBytes > 256<<20 {
		bad("envoy.max_request_bytes", "must be between 1024 and %d, got %d", 256<<20, c.Envoy.MaxRequestBytes)
	}
	if f := c.Failover; f.MaxAttempts < 1 || f.MaxAttempts > 10 {
		bad("failover.max_attempts", "must be between 1 and 10, got %d", f.MaxAttempts)
	}
	if c.Failover.AttemptTimeout < 100*time.Millisecond {
		bad("failover.attempt_timeout", "must be at least 100ms, got %s", c.Failover.AttemptTimeout)
	}
	if c.Failover.FailuresBeforeCooldown < 1 {
		bad("failover.failures_before_cooldown", "must be at least 1")
	}
	if c.Failover.Cooldown < 0 || c.Failover.MaxCooldown < c.Failover.Cooldown {
		bad("failover.cooldown", "must be between 0 and failover.max_cooldown (%s)", c.Failover.MaxCooldown)
	}
	if f := c.Failover; f.StreamFirstByteTimeout != 0 && (f.StreamFirstByteTimeout < 100*time.Millisecond || f.StreamFirstByteTimeout > f.AttemptTimeout) {
		bad("failover.stream_first_byte_timeout", "must be between 100ms and failover.attempt_timeout (%s), got %s", f.AttemptTimeout, f.StreamFirstByteTimeout)
	}
	if c.Failover.Reopen < 0 {
		bad("failover.reopen", "must not be negative")
	}
	// A metadata key is 1 to 64 bytes (internal/request, flow's header).
	if t := c.Spend.Tag; len(t) > 64 || strings.ContainsFunc(t, unicode.IsControl) || !utf8.ValidString(t) {
		bad("spend.tag", "must be a metadata key: at most 64 bytes of UTF-8 text without control characters")
	}
	if c.Routing.LatencyHalfLife < time.Second {
		bad("routing.latency_half_life", "must be at least 1s, got %s", c.Routing.LatencyHalfLife)
	}

	providers := map[string]bool{}
	wire := map[string]string{}
	if len(c.Providers) == 0 {
		bad("providers", "at least one provider is required")
	}
	for i, p := range c.Providers {
		f := fmt.Sprintf("providers[%d]", i)
		if !nameRE.MatchString(p.Name) {
			bad(f+".name", "%q must be lower-case letters, digits, - or _ (at most 63)", p.Name)
		} else if providers[p.Name] {
			bad(f+".name", "duplicate provider %q", p.Name)
		}
		providers[p.Name] = true
		wire[p.Name] = p.WireFormat
		if p.RateLimitScope != RateLimitScopeModel && p.RateLimitScope != RateLimitScopeProvider {
			bad(f+".rate_limit_scope", "%q is not one of %s, %s", p.RateLimitScope, RateLimitScopeModel, RateLimitScopeProvider)
		}
		if pf := p.Failover; pf != nil {
			if pf.FailuresBeforeCooldown < 0 {
				bad(f+".failover.failures_before_cooldown", "must be at least 1 (0: failover's)")
			}
			if pf.Cooldown < 0 || pf.Cooldown > c.Failover.MaxCooldown {
				bad(f+".failover.cooldown", "must be between 0 and failover.max_cooldown (%s)", c.Failover.MaxCooldown)
			}
			if pf.Reopen < 0 {
				bad(f+".failover.reopen", "must not be negative")
			}
		}
		if p.MaxTokensParam != "" && !slices.Contains(MaxTokensParams, p.MaxTokensParam) {
			bad(f+".max_tokens_param", "%q is not one of %s", p.MaxTokensParam, strings.Join(MaxTokensParams, ", "))
		}
		if err := checkBaseURL(p.BaseURL); err != nil {
			bad(f+".base_url", "%v", err)
		}
		if !slices.Contains(WireFormats, p.WireFormat) {
			bad(f+".wire_format", "%q is not one of %s", p.WireFormat, strings.Join(WireFormats, ", "))
		}
		if p.Residency != "" && !slices.Contains(Residencies, p.Residency) {
			bad(f+".residency", "%q is not one of %s", p.Residency, strings.Join(Residencies, ", "))
		}
		if p.Residency == "" {
			bad(f+".residency", "required (one of %s)", strings.Join(Residencies, ", "))
		}
		if p.Credential.Env != "" && p.Credential.File != "" {
			bad(f+".credential", "set env or file, not both")
		}
		if e := p.Credential.Env; e != "" && !envRE.MatchString(e) {
			bad(f+".credential.env", "%q is not an environment variable name", e)
		}
		if p.AssuranceTier < 0 || p.AssuranceTier > 3 {
			bad(f+".assurance_tier", "must be 1, 2 or 3")
		}
		for j, h := range p.ForwardHeaders {
			if err := checkForwardHeader(h); err != nil {
				bad(fmt.Sprintf("%s.forward_headers[%d]", f, j), "%v", err)
			}
		}
		for k, v := range p.Query {
			if k == "" || v == "" || strings.ContainsAny(k+v, "\r\n\x00") {
				bad(f+".query", "parameter %q: names and values must be non-empty, one line", k)
			}
		}
		if !slices.Contains(AuthHeaders, p.Credential.Header) {
			bad(f+".credential.header", "%q is not one of %s", p.Credential.Header, strings.Join(AuthHeaders, ", "))
		}
	}

	errs = append(errs, c.clusterErrors()...)

	models, aliases := map[string]bool{}, map[string]string{}
	if len(c.Models) == 0 {
		bad("models", "at least one model is required")
	}
	for i, m := range c.Models {
		f := fmt.Sprintf("models[%d]", i)
		switch {
		case reservedModelID(m.ID):
			bad(f+".id", "%q is reserved (auto, route:…, provider:…)", m.ID)
		case !modelIDRE.MatchString(m.ID):
			bad(f+".id", "%q %s", m.ID, modelIDRule)
		case models[m.ID]:
			bad(f+".id", "duplicate model %q", m.ID)
		}
		models[m.ID] = true
		if !providers[m.Provider] {
			bad(f+".provider", "model %q: unknown provider %q (known: %s)", m.ID, m.Provider, strings.Join(providerNames(c.Providers), ", "))
		}
		if strings.ContainsAny(m.ProviderModel, "\"\\\x00\r\n") || m.ProviderModel == "" {
			bad(f+".provider_model", "%q is not a valid model name", m.ProviderModel)
		}
		if m.Price.InputPerMTok < 0 || m.Price.OutputPerMTok < 0 || m.Price.CachedInputPerMTok < 0 ||
			m.Price.CacheWritePerMTok < 0 || m.Price.CacheWrite1hPerMTok < 0 || m.Price.WebSearchPer1k < 0 {
			bad(f+".price", "model %q: prices must not be negative", m.ID)
		}
		if m.Price.CachedInputPerMTok > m.Price.InputPerMTok {
			bad(f+".price.cached_input_per_mtok", "must not be above input_per_mtok: a cache read is never dearer than the input")
		}
		if !slices.Contains(Currencies, m.Price.Currency) {
			bad(f+".price.currency", "%q is not one of %s", m.Price.Currency, strings.Join(Currencies, ", "))
		}
		if m.ContextWindow <= 0 {
			bad(f+".context_window", "must be a positive number of tokens")
		}
		if m.MaxOutputTokens < 0 {
			bad(f+".max_output_tokens", "must not be negative")
		}
		if m.ImageTokens < 0 {
			bad(f+".image_tokens", "must not be negative")
		}
		if m.AssuranceTier < 0 || m.AssuranceTier > 3 {
			bad(f+".assurance_tier", "must be 1, 2 or 3")
		}
		for j, cp := range m.Capabilities {
			if !slices.Contains(Capabilities, cp) {
				bad(fmt.Sprintf("%s.capabilities[%d]", f, j), "%q is not one of %s", cp, strings.Join(Capabilities, ", "))
			}
			if (cp == "embeddings" || cp == "completions" || cp == "responses") && wire[m.Provider] == "anthropic" {
				bad(fmt.Sprintf("%s.capabilities[%d]", f, j), "provider %s speaks the anthropic wire format, which has no %s endpoint", m.Provider, cp)
			}
		}
		for task, q := range m.Quality {
			if q < 0 || q > 1 {
				bad(f+".quality."+task, "must be between 0 and 1")
			}
		}
		if m.LatencyMS < 0 {
			bad(f+".latency_ms", "must not be negative")
		}
		if t := m.FirstByteTimeout; t != 0 && (t < 100*time.Millisecond || t > c.Failover.AttemptTimeout) {
			bad(f+".first_byte_timeout", "must be between 100ms and failover.attempt_timeout (%s), got %s", c.Failover.AttemptTimeout, t)
		}
	}
	// alias checks a name given to model id at field, and reports whether
	// it may be one.
	alias := func(field, a, id string) bool {
		defer func() { aliases[a] = id }()
		switch {
		case reservedModelID(a):
			bad(field, "%q is reserved (auto, route:…, provider:…)", a)
		case !modelIDRE.MatchString(a):
			bad(field, "%q %s", a, modelIDRule)
		case models[a]:
			bad(field, "%q is the id of a model: an alias names no model of its own", a)
		case aliases[a] != "":
			bad(field, "%q is already an alias of model %q", a, aliases[a])
		default:
			return true
		}
		return false
	}
	for i, m := range c.Models {
		for j, a := range m.Aliases {
			alias(fmt.Sprintf("models[%d].aliases[%d]", i, j), a, m.ID)
		}
	}
	for _, a := range slices.Sorted(maps.Keys(c.Routing.Aliases)) {
		field, id := "routing.aliases."+a, c.Routing.Aliases[a]
		if alias(field, a, id) && !models[id] {
			bad(field, "unknown model %q (an alias names a model by its id)", id)
		}
	}
	errs = append(errs, c.validateLedger(models)...)
	errs = append(errs, c.validateAccess(models)...)
	errs = append(errs, c.validateAdmin()...)
	errs = append(errs, c.validateState()...)
	errs = append(errs, c.validateAudit()...)
	if c.Routing.BaselineModel != "" && !models[c.Routing.BaselineModel] {
		bad("routing.baseline_model", "unknown model %q", c.Routing.BaselineModel)
	}
	if c.Routing.DefaultModel == "" {
		bad("routing.default_model", "required: the model that answers `model: auto`")
	} else if !models[c.Routing.DefaultModel] {
		bad("routing.default_model", "unknown model %q", c.Routing.DefaultModel)
	}
	return errors.Join(errs...)
}

func providerNames(ps []Provider) []string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port", addr)
	}
	return nil
}

func checkBaseURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("is not a URL") // not echoed: it may hold a secret
	}
	// Never echo a password someone put in the URL, nor its query or
	// fragment, which often hold a key (?key=…): the error reaches the
	// log, /status and the audit log (the config probe).
	bare := *u
	bare.RawQuery, bare.Fragment, bare.RawFragment, bare.ForceQuery = "", "", "", false
	shown := bare.Redacted()
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must be an http or https URL", shown)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", shown)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry credentials, a query or a fragment", shown)
	}
	return nil
}

// validateGRPC admits the two transports that only Envoy can use: a Unix
// socket (its directory's permissions decide who connects) or TCP with
// mutual TLS. Plain TCP is refused, loopback included: any local process
// could otherwise ask for routing decisions or read the whole xDS snapshot,
// the providers' credentials among it.
func (s Server) validateGRPC() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if path, ok := s.GRPCSocket(); ok {
		switch {
		case !filepath.IsAbs(path):
			bad("server.grpc", "the socket path %q must be absolute (unix:///dir/grpc.sock)", path)
		case len(path) > 100: // sun_path holds 108 bytes on Linux, 104 on BSDs
			bad("server.grpc", "the socket path is %d bytes long; Unix sockets allow at most 100", len(path))
		}
		if s.GRPCTLS != nil {
			bad("server.grpc_tls", "is for a TCP address; a Unix socket is protected by its directory's permissions")
		}
		return errs
	}
	if err := checkHostPort(s.GRPC); err != nil {
		bad("server.grpc", "%v (or a Unix socket: %s)", err, DefaultGRPC)
		return errs
	}
	t := s.GRPCTLS
	if t == nil {
		bad("server.grpc", "a TCP address needs server.grpc_tls (mutual TLS, so only Envoy connects); on one host use a Unix socket such as %s", DefaultGRPC)
		return errs
	}
	for field, v := range map[string]string{"cert": t.Cert, "key": t.Key, "client_ca": t.ClientCA} {
		if v == "" {
			bad("server.grpc_tls."+field, "required")
		}
	}
	for i, n := range t.ClientNames {
		if strings.TrimSpace(n) == "" {
			bad(fmt.Sprintf("server.grpc_tls.client_names[%d]", i), "must not be empty")
		}
	}
	return errs
}

// headerNameRE is a lower-case HTTP header name (a token).
var headerNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9!#$%&'*+.^_|~-]{0,127}$`)

// neverForwarded are client headers no provider may be configured to get:
// credentials (the provider's own key is Envoy's to add), cookies, and
// stellwerk's or Envoy's control headers.
var neverForwarded = []string{"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "host",
	"accept-encoding"} // stellwerk reads every answer, so it must come uncompressed

func checkForwardHeader(h string) error {
	switch {
	case !headerNameRE.MatchString(h):
		return fmt.Errorf("%q is not a lower-case header name", h)
	case slices.Contains(neverForwarded, h), strings.HasPrefix(h, "x-stellwerk-"), strings.HasPrefix(h, "x-envoy-"):
		return fmt.Errorf("%q must never reach a provider", h)
	}
	return nil
}

// validateCORS checks envoy.cors.allow_origins: each an origin as a
// browser sends it (RFC 6454: lower-case scheme and host, no default
// port, no path), since Envoy compares them exactly; "*" not in open mode.
func (c *Config) validateCORS() []error {
	var errs []error
	origins := c.Envoy.CORS.AllowOrigins
	if len(origins) > 0 && c.Envoy.Mode == ModeClusters {
		errs = append(errs, errors.New("envoy.cors: is for envoy.mode: standalone; in clusters mode the listener is yours: "+
			"configure CORS in your Envoy (its envoy.filters.http.cors filter, before stellwerk's ext_proc filter)"))
	}
	seen := map[string]bool{}
	for i, o := range origins {
		f := fmt.Sprintf("envoy.cors.allow_origins[%d]", i)
		if seen[o] {
			errs = append(errs, fmt.Errorf("%s: duplicate origin %q", f, o))
		}
		seen[o] = true
		if o == "*" {
			if c.Auth.Mode == "open" {
				errs = append(errs, fmt.Errorf("%s: \"*\" with auth.mode: open lets any web page a user opens spend the gateway's budgets; "+
					"list the origins of your apps, or use auth.mode: keys", f))
			}
			continue
		}
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q %v", f, o, err))
		}
	}
	return errs
}

// checkOrigin reports why o is not an origin a browser sends.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	switch {
	case err != nil || u.Opaque != "" || u.Host == "":
		return errors.New("must be an origin: scheme://host[:port], e.g. https://app.example.com")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must start with http:// or https://")
	case u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#"):
		return errors.New("must be scheme://host[:port] only: no path (not even a trailing /), query or user")
	case o != strings.ToLower(o):
		return errors.New("must be lower case, as browsers send it")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return errors.New("has a bad port")
		}
		if (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
			return errors.New("names the scheme's default port, which browsers leave out: remove :" + p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("has an empty port")
	}
	if h := u.Hostname(); strings.ContainsAny(h, "*/ ") {
		return errors.New("must name one host: no wildcards (list each origin, or \"*\" alone for any)")
	}
	return nil
}
