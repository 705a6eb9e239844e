package config

import (
	"strings"
	"testing"
	"time"
)

const ledgerBase = minimal + `workspaces: [{name: acme, teams: [{name: ml}]}]
`

func TestLedgerValidation(t *testing.T) {
	cases := map[string]struct {
		yaml string
		want string // "" for valid
	}{
		"no budgets":            {minimal, ""},
		"team budget":           {ledgerBase + "budgets: {timezone: Europe/Berlin, limits: [{name: ml, scope: team, subject: acme/ml, amount_eur: 500, period: month}]}\n", ""},
		"each key, downgrade":   {ledgerBase + "budgets: {limits: [{name: k, scope: key, amount_eur: 5, period: day, action: downgrade}]}\n", ""},
		"bad time zone":         {ledgerBase + "budgets: {timezone: Mars/Olympus}\n", `budgets.timezone: "Mars/Olympus" is not an IANA time zone`},
		"warn_at above 1":       {ledgerBase + "budgets: {warn_at: 1.5}\n", "budgets.warn_at: must be within (0, 1]"},
		"unknown scope":         {ledgerBase + "budgets: {limits: [{name: x, scope: org, amount_eur: 5, period: day}]}\n", `budgets.limits[0].scope: "org" is not one of key, user, team, workspace, global`},
		"unknown period":        {ledgerBase + "budgets: {limits: [{name: x, scope: global, amount_eur: 5, period: year}]}\n", `budgets.limits[0].period: "year" is not one of day, week, month, total`},
		"zero amount":           {ledgerBase + "budgets: {limits: [{name: x, scope: global, period: day}]}\n", "budgets.limits[0].amount_eur: must be at least 1e-06"},
		"below a micro-euro":    {ledgerBase + "budgets: {limits: [{name: x, scope: global, amount_eur: 0.0000004, period: day}]}\n", "budgets.limits[0].amount_eur: must be at least 1e-06"},
		"global with subject":   {ledgerBase + "budgets: {limits: [{name: x, scope: global, subject: acme, amount_eur: 5, period: day}]}\n", "budgets.limits[0].subject: a global budget has no subject"},
		"unknown team":          {ledgerBase + "budgets: {limits: [{name: x, scope: team, subject: acme/ops, amount_eur: 5, period: day}]}\n", `budgets.limits[0].subject: workspace "acme" has no team "ops"`},
		"team without ws":       {ledgerBase + "budgets: {limits: [{name: x, scope: team, subject: ml, amount_eur: 5, period: day}]}\n", `"ml" must be workspace/team`},
		"unknown workspace":     {ledgerBase + "budgets: {limits: [{name: x, scope: workspace, subject: nope, amount_eur: 5, period: day}]}\n", `unknown workspace "nope"`},
		"duplicate name":        {ledgerBase + "budgets: {limits: [{name: x, scope: global, amount_eur: 5, period: day}, {name: x, scope: global, amount_eur: 5, period: week}]}\n", `budgets.limits[1].name: "x" must be a unique`},
		"bad action":            {ledgerBase + "budgets: {limits: [{name: x, scope: global, amount_eur: 5, period: day, action: warn}]}\n", `budgets.limits[0].action: "warn" is not one of block, downgrade`},
		"unknown field":         {ledgerBase + "budgets: {limits: [{name: x, scope: global, amount: 5, period: day}]}\n", `unknown field "amount" in BudgetRule`},
		"model rate limit":      {ledgerBase + "rate_limits: [{name: m, scope: model, subject: m1, tokens_per_minute: 100000}]\n", ""},
		"unknown model":         {ledgerBase + "rate_limits: [{name: m, scope: model, subject: gpt-9, tokens_per_minute: 1}]\n", `rate_limits[0].subject: unknown model "gpt-9"`},
		"no count set":          {ledgerBase + "rate_limits: [{name: m, scope: key}]\n", "rate_limits[0]: set at least one of"},
		"negative count":        {ledgerBase + "rate_limits: [{name: m, scope: key, requests_per_day: -1, requests_per_minute: 5}]\n", "rate_limits[0].requests_per_day: must be between 0 (no limit) and 10^15"},
		"global rate limit":     {ledgerBase + "rate_limits: [{name: m, scope: global, requests_per_minute: 5}]\n", `rate_limits[0].scope: "global" is not one of key, user, team, workspace, model`},
		"redis":                 {ledgerBase + "state: {redis: {address: redis.internal:6379, password_env: REDIS_PASSWORD}}\n", ""},
		"redis inline password": {ledgerBase + "state: {redis: {address: redis:6379, password: hunter2}}\n", `unknown field "password" in Redis`},
		"redis URL":             {ledgerBase + "state: {redis: {address: \"redis://:hunter2@redis:6379\"}}\n", "state.redis.address: must be host:port; the password goes in password_env or password_file"},
		"redis TLS URL":         {ledgerBase + "state: {redis: {address: \"rediss://redis:6379\"}}\n", "state.redis.address: must be host:port, not a URL: TLS is tls: true"},
		"redis database path":   {ledgerBase + "state: {redis: {address: \"redis:6379/0\"}}\n", "the database is db, not a path"},
		"redis no address":      {ledgerBase + "state: {redis: {db: 1}}\n", "state.redis.address: required"},
		"redis both passwords":  {ledgerBase + "state: {redis: {address: r:6379, password_env: A, password_file: /run/p}}\n", "state.redis: set password_env or password_file, not both"},
		"redis bad mode":        {ledgerBase + "state: {redis: {address: r:6379, on_unavailable: {budgets: maybe}}}\n", `state.redis.on_unavailable.budgets: "maybe" is not one of closed, open`},
		"redis and spend file":  {ledgerBase + "state: {spend_file: /var/lib/stellwerk/spend.json, redis: {address: r:6379}}\n", "state.spend_file: is for in-memory budgets"},
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

func TestLedgerDefaults(t *testing.T) {
	c, err := Decode(strings.NewReader(ledgerBase + `envoy: {request_timeout: 2m}
budgets: {limits: [{name: g, scope: global, amount_eur: 100, period: month}]}
state: {redis: {address: 127.0.0.1:6379}}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := c.Budgets
	if b.TimeZone != "UTC" || b.WarnAt != 0.8 || b.Lease != 3*time.Minute || b.Limits[0].WarnAt != 0.8 || b.Limits[0].Action != "block" {
		t.Errorf("budget defaults: %+v", b)
	}
	r := c.State.Redis
	if r.Timeout != 250*time.Millisecond || r.Prefix != "{stellwerk}:" || r.OnUnavailable.Budgets != "closed" || r.OnUnavailable.RateLimits != "open" {
		t.Errorf("redis defaults: %+v", r)
	}
}

func TestLedgerRedacted(t *testing.T) {
	c, err := Decode(strings.NewReader(ledgerBase + "state: {redis: {address: r:6379, password_file: /run/secrets/redis-pass}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "redis-pass") || !strings.Contains(string(out), "password_file: '[redacted]'") {
		t.Errorf("/config shows the Redis password file:\n%s", out)
	}
	if c.State.Redis.PasswordFile != "/run/secrets/redis-pass" {
		t.Error("redacting changed the loaded config")
	}
}
