package config

import (
	"strings"
	"testing"
)

// TestCORSOrigins: envoy.cors.allow_origins takes origins as a browser
// sends them, which Envoy compares exactly; anything that would never
// match, or would let any page spend an open gateway's budgets, is refused
// at start-up with the entry named.
func TestCORSOrigins(t *testing.T) {
	cases := map[string]struct {
		envoy, auth string
		want        string // "" accepts
	}{
		"https origin":              {envoy: `{cors: {allow_origins: ["https://app.example.com"]}}`},
		"http origin with a port":   {envoy: `{cors: {allow_origins: ["http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"]}}`},
		"any origin in keys mode":   {envoy: `{cors: {allow_origins: ["*"]}}`, auth: "keys"},
		"any origin in open mode":   {envoy: `{cors: {allow_origins: ["*"]}}`, want: `envoy.cors.allow_origins[0]: "*" with auth.mode: open lets any web page`},
		"a trailing slash":          {envoy: `{cors: {allow_origins: ["https://app.example.com/"]}}`, want: "envoy.cors.allow_origins[0]: \"https://app.example.com/\" must be scheme://host[:port] only"},
		"a path":                    {envoy: `{cors: {allow_origins: ["https://ok.example", "https://app.example.com/chat"]}}`, want: "envoy.cors.allow_origins[1]: \"https://app.example.com/chat\" must be scheme://host[:port] only"},
		"a query":                   {envoy: `{cors: {allow_origins: ["https://app.example.com?x=1"]}}`, want: "no path (not even a trailing /), query"},
		"no scheme":                 {envoy: `{cors: {allow_origins: ["app.example.com"]}}`, want: "must be an origin: scheme://host[:port]"},
		"another scheme":            {envoy: `{cors: {allow_origins: ["ftp://app.example.com"]}}`, want: "must start with http:// or https://"},
		"upper case":                {envoy: `{cors: {allow_origins: ["https://App.example.com"]}}`, want: "must be lower case"},
		"the default port":          {envoy: `{cors: {allow_origins: ["https://app.example.com:443"]}}`, want: "remove :443"},
		"a bad port":                {envoy: `{cors: {allow_origins: ["https://app.example.com:99999"]}}`, want: "bad port"},
		"a wildcard host":           {envoy: `{cors: {allow_origins: ["https://*.example.com"]}}`, want: "no wildcards"},
		"null, a sandboxed page":    {envoy: `{cors: {allow_origins: ["null"]}}`, want: "must be an origin"},
		"twice":                     {envoy: `{cors: {allow_origins: ["https://a.example", "https://a.example"]}}`, want: "envoy.cors.allow_origins[1]: duplicate origin"},
		"clusters mode":             {envoy: `{mode: clusters, cors: {allow_origins: ["https://a.example"]}}`, want: "envoy.cors: is for envoy.mode: standalone"},
		"clusters mode without any": {envoy: `{mode: clusters}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			y := minimal + "envoy: " + tc.envoy + "\n"
			if tc.auth != "" {
				y += "auth: {mode: " + tc.auth + "}\n"
			}
			c, err := Decode(strings.NewReader(y))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted %v", c.Envoy.CORS.AllowOrigins)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
		})
	}
}
