package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // budgets' time zones resolve on hosts and images without /usr/share/zoneinfo
)

// Budgets caps what callers spend, in EUR, per period (docs/budgets.md).
type Budgets struct {
	// TimeZone is the IANA zone in which days, weeks (from Monday) and
	// months start, for budgets and for per-day rate limits. Default UTC.
	TimeZone string `yaml:"timezone,omitempty"`
	// WarnAt is the share of a budget at which requests carry a warning
	// (default 0.8); a budget may set its own.
	WarnAt float64 `yaml:"warn_at,omitempty"`
	// Lease is how long a reservation holds money before it turns into a
	// charge at the reserved amount (its replica is presumed dead). Default:
	// envoy.request_timeout plus one minute, so a request that runs its full
	// time settles before its lease ends.
	Lease time.Duration `yaml:"lease,omitempty"`
	// Limits are the budgets; every one that matches a request applies.
	Limits []BudgetRule `yaml:"limits,omitempty"`
	// Webhook, when set, is told when a budget reaches its warn threshold
	// and when it is exhausted (docs/budgets.md).
	Webhook *BudgetWebhook `yaml:"webhook,omitempty"`
}

// BudgetWebhook is where budget warnings are POSTed as JSON.
type BudgetWebhook struct {
	// URL is an http or https URL.
	URL string `yaml:"url"`
	// SecretEnv or SecretFile holds a key the body is signed with
	// (x-stellwerk-signature: sha256=<hex HMAC-SHA256>); optional.
	SecretEnv  string `yaml:"secret_env,omitempty"`
	SecretFile string `yaml:"secret_file,omitempty"`
}

// BudgetRule is one spending cap of this file. (A key's own budgets, kept
// in the key store, have no scope or subject: they cap that key.)
type BudgetRule struct {
	// Name identifies the budget in answers, logs and counters; renaming it
	// starts its counter from zero.
	Name string `yaml:"name"`
	// Scope is key, user, team, workspace or global.
	Scope string `yaml:"scope"`
	// Subject picks whose spend is capped: a key id, a workspace, or
	// "workspace/team", "workspace/user". Empty: every subject of the scope
	// has its own budget of this amount (each key 5 EUR a day). Global
	// budgets have none.
	Subject string `yaml:"subject,omitempty"`
	// AmountEUR is the cap per period.
	AmountEUR float64 `yaml:"amount_eur"`
	// Period is day, week, month or total (never resets).
	Period string `yaml:"period"`
	// WarnAt overrides budgets.warn_at for this budget.
	WarnAt float64 `yaml:"warn_at,omitempty"`
	// Action at 100% is block (default: 429 budget_exceeded once a
	// request's worst case no longer fits) or downgrade (never refused by
	// the ledger; the policy input shows the budget exceeded and Rego
	// restricts to cheaper models).
	Action string `yaml:"action,omitempty"`
}

// RateLimitRule caps requests and tokens per minute and per day. Zero
// means no limit on that count; at least one must be set.
type RateLimitRule struct {
	Name string `yaml:"name"`
	// Scope is key, user, team, workspace or model.
	Scope string `yaml:"scope"`
	// Subject as for budgets; for scope model, a model id. Empty: each
	// subject of the scope has its own limit.
	Subject           string `yaml:"subject,omitempty"`
	RequestsPerMinute int64  `yaml:"requests_per_minute,omitempty"`
	TokensPerMinute   int64  `yaml:"tokens_per_minute,omitempty"`
	RequestsPerDay    int64  `yaml:"requests_per_day,omitempty"`
	TokensPerDay      int64  `yaml:"tokens_per_day,omitempty"`
}

// LedgerState is the ledger's part of `state:`: where budgets and rate
// limits are counted, in this process (the default; one replica) or in
// Redis (a fleet of replicas). State inlines it.
type LedgerState struct {
	// SpendFile persists the in-memory budgets' spend (JSON, rewritten
	// atomically) so a restart does not reset a month's budget. Unused with
	// Redis. Empty: spend is not persisted.
	SpendFile string `yaml:"spend_file,omitempty"`
	// SpendFlushInterval bounds the spend a crashed process loses (a clean
	// shutdown loses none). Default 1s.
	SpendFlushInterval time.Duration `yaml:"spend_flush_interval,omitempty"`
	// Redis, when set, holds every replica's counters.
	Redis *Redis `yaml:"redis,omitempty"`
}

// Redis is the shared counter store. Its password is never in this file:
// name the environment variable or the file that holds it.
type Redis struct {
	Address      string `yaml:"address"`
	Username     string `yaml:"username,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty"`
	DB           int    `yaml:"db,omitempty"`
	// TLS connects with TLS, verifying the server against the system roots.
	TLS bool `yaml:"tls,omitempty"`
	// Timeout bounds one round trip (dial, read, write). Default 250ms.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Prefix starts every key; its {hash tag} keeps all keys in one slot so
	// the scripts also run on Redis Cluster. Default "{stellwerk}:".
	Prefix string `yaml:"prefix,omitempty"`
	// OnUnavailable says what a request gets when Redis cannot be reached.
	OnUnavailable FailureModes `yaml:"on_unavailable,omitempty"`
}

// FailureModes choose, per kind of limit, between refusing a request the
// ledger cannot check (closed: 503) and letting it through unchecked (open).
type FailureModes struct {
	// Budgets: closed by default: spend is never let run unchecked.
	Budgets string `yaml:"budgets,omitempty"`
	// RateLimits: open by default: providers still enforce their own.
	RateLimits string `yaml:"rate_limits,omitempty"`
}

// Values of the ledger's fields.
var (
	BudgetScopes    = []string{"key", "user", "team", "workspace", "global"}
	RateLimitScopes = []string{"key", "user", "team", "workspace", "model"}
	budgetPeriods   = []string{"day", "week", "month", "total"}
	budgetActions   = []string{"block", "downgrade"}
	FailModes       = []string{"closed", "open"}
)

// MaxBudgetEUR bounds one budget so that counters in micro-EUR stay exact
// in Redis's Lua numbers (doubles: integers up to 2^53).
const MaxBudgetEUR = 1e9

// MinBudgetEUR is the smallest budget: the ledger counts whole micro-EUR,
// and a smaller amount would round to no budget at all.
const MinBudgetEUR = 1e-6

// envRE is an environment variable name.
var envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) applyLedgerDefaults() {
	b := &c.Budgets
	if b.TimeZone == "" {
		b.TimeZone = "UTC"
	}
	if b.WarnAt == 0 {
		b.WarnAt = 0.8
	}
	if b.Lease == 0 {
		b.Lease = c.Envoy.RequestTimeout + time.Minute
	}
	for i := range b.Limits {
		l := &b.Limits[i]
		if l.WarnAt == 0 {
			l.WarnAt = b.WarnAt
		}
		if l.Action == "" {
			l.Action = "block"
		}
	}
	if c.State.SpendFlushInterval == 0 {
		c.State.SpendFlushInterval = time.Second
	}
	if r := c.State.Redis; r != nil {
		if r.Timeout == 0 {
			r.Timeout = 250 * time.Millisecond
		}
		if r.Prefix == "" {
			r.Prefix = "{stellwerk}:"
		}
		if r.OnUnavailable.Budgets == "" {
			r.OnUnavailable.Budgets = "closed"
		}
		if r.OnUnavailable.RateLimits == "" {
			r.OnUnavailable.RateLimits = "open"
		}
	}
}

// validateLedger checks budgets, rate_limits and state.
func (c *Config) validateLedger(models map[string]bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	oneOf := func(field, v string, allowed []string) bool {
		if !slices.Contains(allowed, v) {
			bad(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
			return false
		}
		return true
	}
	b := c.Budgets
	if _, err := time.LoadLocation(b.TimeZone); err != nil {
		bad("budgets.timezone", "%q is not an IANA time zone (e.g. Europe/Berlin)", b.TimeZone)
	}
	if b.WarnAt <= 0 || b.WarnAt > 1 {
		bad("budgets.warn_at", "must be within (0, 1], got %v", b.WarnAt)
	}
	if b.Lease < time.Second {
		bad("budgets.lease", "must be at least 1s, got %s", b.Lease)
	}
	if wh := b.Webhook; wh != nil {
		if u, err := url.Parse(wh.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			bad("budgets.webhook.url", "must be an http(s) URL without credentials")
		}
		if wh.SecretEnv != "" && wh.SecretFile != "" {
			bad("budgets.webhook", "secret_env and secret_file are exclusive")
		}
	}
	workspaces := map[string]map[string]bool{}
	for _, w := range c.Workspaces {
		teams := map[string]bool{}
		for _, t := range w.Teams {
			teams[t.Name] = true
		}
		workspaces[w.Name] = teams
	}
	names := map[string]bool{}
	for i, l := range b.Limits {
		f := fmt.Sprintf("budgets.limits[%d]", i)
		if !nameRE.MatchString(l.Name) || names[l.Name] {
			bad(f+".name", "%q must be a unique lower-case name", l.Name)
		}
		names[l.Name] = true
		if oneOf(f+".scope", l.Scope, BudgetScopes) {
			if msg := c.subjectProblem(l.Scope, l.Subject, workspaces, models); msg != "" {
				bad(f+".subject", "%s", msg)
			}
		}
		if !(l.AmountEUR >= MinBudgetEUR) || l.AmountEUR > MaxBudgetEUR {
			bad(f+".amount_eur", "must be at least %g and at most %.0f, got %v", MinBudgetEUR, float64(MaxBudgetEUR), l.AmountEUR)
		}
		oneOf(f+".period", l.Period, budgetPeriods)
		oneOf(f+".action", l.Action, budgetActions)
		if l.WarnAt <= 0 || l.WarnAt > 1 {
			bad(f+".warn_at", "must be within (0, 1], got %v", l.WarnAt)
		}
	}
	names = map[string]bool{}
	for i, l := range c.RateLimits {
		f := fmt.Sprintf("rate_limits[%d]", i)
		if !nameRE.MatchString(l.Name) || names[l.Name] {
			bad(f+".name", "%q must be a unique lower-case name", l.Name)
		}
		names[l.Name] = true
		if oneOf(f+".scope", l.Scope, RateLimitScopes) {
			if msg := c.subjectProblem(l.Scope, l.Subject, workspaces, models); msg != "" {
				bad(f+".subject", "%s", msg)
			}
		}
		counts := map[string]int64{"requests_per_minute": l.RequestsPerMinute, "tokens_per_minute": l.TokensPerMinute,
			"requests_per_day": l.RequestsPerDay, "tokens_per_day": l.TokensPerDay}
		set := false
		for field, v := range counts {
			if v < 0 || v > MaxRateLimit {
				bad(f+"."+field, "must be between 0 (no limit) and 10^15")
			}
			set = set || v > 0
		}
		if !set {
			bad(f, "set at least one of requests_per_minute, tokens_per_minute, requests_per_day, tokens_per_day")
		}
	}
	if c.State.SpendFlushInterval < 10*time.Millisecond {
		bad("state.spend_flush_interval", "must be at least 10ms, got %s", c.State.SpendFlushInterval)
	}
	if r := c.State.Redis; r != nil {
		if err := checkRedisAddress(r.Address); err != nil {
			bad("state.redis.address", "%v", err)
		}
		if r.PasswordEnv != "" && r.PasswordFile != "" {
			bad("state.redis", "set password_env or password_file, not both")
		}
		if r.PasswordEnv != "" && !envRE.MatchString(r.PasswordEnv) {
			bad("state.redis.password_env", "%q is not an environment variable name", r.PasswordEnv)
		}
		if r.DB < 0 || r.DB > 15 {
			bad("state.redis.db", "must be between 0 and 15, got %d", r.DB)
		}
		if r.Timeout < time.Millisecond || r.Timeout > 10*time.Second {
			bad("state.redis.timeout", "must be between 1ms and 10s, got %s", r.Timeout)
		}
		if strings.ContainsAny(r.Prefix, " \r\n\x00") {
			bad("state.redis.prefix", "must not contain spaces or control characters")
		}
		oneOf("state.redis.on_unavailable.budgets", r.OnUnavailable.Budgets, FailModes)
		oneOf("state.redis.on_unavailable.rate_limits", r.OnUnavailable.RateLimits, FailModes)
		if c.State.SpendFile != "" {
			bad("state.spend_file", "is for in-memory budgets; with state.redis, Redis holds the spend")
		}
	}
	return errs
}

// subjectProblem checks a budget's or rate limit's subject against its
// scope; "" when it is fine. Key ids are checked for form only: keys also
// live in the key store, which config validation cannot see.
func (c *Config) subjectProblem(scope, subject string, workspaces map[string]map[string]bool, models map[string]bool) string {
	if subject == "" {
		return ""
	}
	switch scope {
	case "global":
		return "a global budget has no subject"
	case "key":
		if !nameRE.MatchString(subject) {
			return fmt.Sprintf("%q is not a key id", subject)
		}
	case "workspace":
		if workspaces[subject] == nil {
			return fmt.Sprintf("unknown workspace %q", subject)
		}
	case "team", "user":
		ws, name, ok := strings.Cut(subject, "/")
		teams := workspaces[ws]
		switch {
		case !ok || name == "":
			return fmt.Sprintf("%q must be workspace/%s", subject, scope)
		case teams == nil:
			return fmt.Sprintf("unknown workspace %q", ws)
		case scope == "team" && !teams[name]:
			return fmt.Sprintf("workspace %q has no team %q", ws, name)
		}
	case "model":
		if !models[subject] {
			return fmt.Sprintf("unknown model %q", subject)
		}
	}
	return ""
}

// checkRedisAddress admits host:port (a name or an IP) without credentials.
func checkRedisAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("required (host:port)")
	}
	if strings.Contains(addr, "@") {
		return fmt.Errorf("must be host:port; the password goes in password_env or password_file, never here")
	}
	if strings.Contains(addr, "://") {
		return fmt.Errorf("must be host:port, not a URL: TLS is tls: true, the database is db, the password password_env or password_file")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535 (the database is db, not a path)", addr)
	}
	return nil
}

// redactLedger hides what /config must not show of the ledger's settings:
// the path of the Redis password file.
func (c *Config) redactLedger() {
	if c.State.Redis != nil && c.State.Redis.PasswordFile != "" {
		r := *c.State.Redis
		r.PasswordFile = Redacted
		c.State.Redis = &r
	}
	if wh := c.Budgets.Webhook; wh != nil {
		// Webhook URLs often carry their token (path or query): show where
		// they go, not how to post there.
		w := *wh
		if u, err := url.Parse(w.URL); err == nil {
			w.URL = u.Scheme + "://" + u.Host + "/" + Redacted
		} else {
			w.URL = Redacted
		}
		if w.SecretFile != "" {
			w.SecretFile = Redacted
		}
		c.Budgets.Webhook = &w
	}
}

// PlainWebhook is a warning for a budget webhook sent over plain HTTP to
// another host: its body names the budget's subject, a key's user among
// them (the data-protection probe). "" otherwise.
func PlainWebhook(c *Config) string {
	wh := c.Budgets.Webhook
	if wh == nil {
		return ""
	}
	u, err := url.Parse(wh.URL)
	if err != nil || u.Scheme != "http" {
		return ""
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
		return ""
	}
	return "budgets.webhook.url is plain http to another host: its body names each budget's subject (a workspace, team or user) in clear; use https"
}
