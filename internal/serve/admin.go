package serve

import (
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/admin"
	"github.com/stellwerk/stellwerk/internal/config"
)

// adminTokens is the admin token table compiled from one config.
type adminTokens struct {
	cfg    *config.Config
	tokens *admin.Tokens
}

// Tokens returns the admin tokens of the config in force, compiled once per
// config (a reload brings new ones with its config).
func (s *status) Tokens() *admin.Tokens {
	g, _, _ := s.rl.current()
	if c := s.tokens.Load(); c != nil && c.cfg == g.cfg {
		return c.tokens
	}
	t := admin.NewTokens(g.cfg.Admin.Tokens, s.rl.env.Getenv)
	for _, m := range t.Missing() {
		s.log.Warn("admin token not found; it opens nothing until it is set", zap.String("token", m))
	}
	if t.Len() == 0 {
		s.log.Info("no admin token is configured: only /healthz and /readyz answer (docs/security.md)")
	}
	s.tokens.Store(&adminTokens{cfg: g.cfg, tokens: t})
	return t
}
