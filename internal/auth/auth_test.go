package auth

import (
	"errors"
	"testing"

	"github.com/stellwerk/stellwerk/internal/config"
)

func TestAuthenticate(t *testing.T) {
	cfg := func(mode string) *config.Config {
		return &config.Config{Auth: config.Auth{Mode: mode}, Keys: []config.Key{
			{ID: "bot", SHA256: Hash("sk-bot"), Workspace: "legal", Team: "contracts", User: "svc", Roles: []string{"service"}},
			{ID: "fromenv", Env: "KEY_FROM_ENV", Workspace: "default"},
			{ID: "unset", Env: "KEY_UNSET", Workspace: "default"},
		}}
	}
	env := func(k string) string {
		if k == "KEY_FROM_ENV" {
			return " sk-env\n"
		}
		return ""
	}
	cases := map[string]struct {
		mode, credential string
		wantKey, wantWS  string
		wantErr          bool
	}{
		"bearer":             {"keys", "Bearer sk-bot", "bot", "legal", false},
		"bearer lower case":  {"keys", "bearer   sk-bot ", "bot", "legal", false},
		"raw (api-key)":      {"keys", "sk-bot", "bot", "legal", false},
		"from env":           {"keys", "Bearer sk-env", "fromenv", "default", false},
		"unknown, keys mode": {"keys", "Bearer sk-nope", "", "", true},
		"none, keys mode":    {"keys", "", "", "", true},
		"unknown, open mode": {"open", "Bearer sk-nope", "", "default", false},
		"none, open mode":    {"open", "", "", "default", false},
		"known, open mode":   {"open", "Bearer sk-bot", "bot", "legal", false},
		"empty env key":      {"keys", "Bearer ", "", "", true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			k := New(cfg(tc.mode), env)
			p, err := k.Authenticate(tc.credential)
			if tc.wantErr {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("want ErrUnauthorized, got %v", err)
				}
				return
			}
			if err != nil || p.KeyID != tc.wantKey || p.Workspace != tc.wantWS || p.Authenticated != (tc.wantKey != "") {
				t.Fatalf("got %+v, %v", p, err)
			}
		})
	}
	k := New(cfg("keys"), env)
	if m := k.Missing(); len(m) != 1 || m[0] != "unset (environment variable KEY_UNSET)" {
		t.Errorf("missing %v", m)
	}
	p, _ := k.Authenticate("Bearer sk-bot")
	if p.Team != "contracts" || p.User != "svc" || p.Roles[0] != "service" {
		t.Errorf("principal %+v", p)
	}
}
