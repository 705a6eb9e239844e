package config

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Admin says who may use the admin API (docs/security.md). Only
// /healthz and /readyz answer without a token.
type Admin struct {
	Tokens []AdminToken `yaml:"tokens,omitempty"`
}

// AdminToken is one bearer token of the admin API and the role it grants.
// Like a virtual key, the token itself is never in the config: give its
// SHA-256 (hex) or the environment variable holding it.
type AdminToken struct {
	ID     string `yaml:"id"`
	Role   string `yaml:"role"`
	SHA256 string `yaml:"sha256,omitempty"`
	Env    string `yaml:"env,omitempty"`
}

// Admin roles, from the most to the least powerful; auditor reads what a
// compliance review needs and nothing of the process.
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleViewer   = "viewer"
	RoleAuditor  = "auditor"
)

// AdminRoles are the roles an admin token may have.
var AdminRoles = []string{RoleAdmin, RoleOperator, RoleViewer, RoleAuditor}

// Redacted replaces a secret-shaped value the admin API must not show.
const Redacted = "[redacted]"

// validateAdmin checks the admin tokens, and refuses an admin API reachable
// from other machines that no token could ever open: that is a listener
// someone forgot to lock, not a choice.
func (c *Config) validateAdmin() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	ids, secrets := map[string]bool{}, map[string]string{}
	for i, t := range c.Admin.Tokens {
		f := fmt.Sprintf("admin.tokens[%d]", i)
		if !nameRE.MatchString(t.ID) || ids[t.ID] {
			bad(f+".id", "%q must be a unique lower-case name", t.ID)
		}
		ids[t.ID] = true
		if !slices.Contains(AdminRoles, t.Role) {
			bad(f+".role", "%q is not one of %s", t.Role, strings.Join(AdminRoles, ", "))
		}
		if field, msg := secretRefProblem("token", t.SHA256, t.Env); msg != "" {
			bad(f+field, "%s", msg)
		} else if prev := sameSecret(secrets, f, t.SHA256, t.Env); prev != "" {
			bad(f, "names the same token as %s: one token has one role", prev)
		}
	}
	if host, _, err := net.SplitHostPort(c.Server.Admin); err == nil && len(c.Admin.Tokens) == 0 {
		if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
			bad("server.admin", "%s is reachable from other machines but admin.tokens is empty; listen on 127.0.0.1 "+
				"or configure admin.tokens (docs/security.md)", c.Server.Admin)
		}
	}
	return errs
}

// redacted returns a copy of the config for display: digests of keys and
// admin tokens and credential file paths become [redacted]. Environment
// variable names stay: they say where a secret is, not what it is.
func (c *Config) redacted() *Config {
	r := *c
	r.Keys = slices.Clone(c.Keys)
	for i := range r.Keys {
		if r.Keys[i].SHA256 != "" {
			r.Keys[i].SHA256 = Redacted
		}
	}
	r.Admin.Tokens = slices.Clone(c.Admin.Tokens)
	for i := range r.Admin.Tokens {
		if r.Admin.Tokens[i].SHA256 != "" {
			r.Admin.Tokens[i].SHA256 = Redacted
		}
	}
	if r.Server.GRPCStreamToken.File != "" {
		r.Server.GRPCStreamToken.File = Redacted
	}
	if r.State.HashKey.File != "" {
		r.State.HashKey.File = Redacted
	}
	if c.State.Postgres != nil && c.State.Postgres.DSNFile != "" {
		pg := *c.State.Postgres
		pg.DSNFile = Redacted
		r.State.Postgres = &pg
	}
	r.State.MasterKeys = slices.Clone(c.State.MasterKeys)
	for i := range r.State.MasterKeys {
		if r.State.MasterKeys[i].File != "" {
			r.State.MasterKeys[i].File = Redacted
		}
	}
	r.Providers = slices.Clone(c.Providers)
	for i := range r.Providers {
		if r.Providers[i].Credential.File != "" {
			r.Providers[i].Credential.File = Redacted
		}
	}
	r.redactLedger()
	if r.Audit.SigningKey.File != "" {
		r.Audit.SigningKey.File = Redacted
	}
	return &r
}
