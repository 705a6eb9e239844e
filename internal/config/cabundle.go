package config

import (
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

// CABundleWarnings names each trust store an https provider uses
// (envoy.ca_bundle, or its cluster's tls.ca_bundle) that does not exist on
// this host or holds no PEM certificate. Envoy reads the file on its own
// host, so it is a warning: config check accepted /nonexistent.pem, and the
// provider then failed every request with a TLS error Envoy reports as a
// connection failure (the on-prem probe).
func CABundleWarnings(c *Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range c.Providers {
		if !strings.HasPrefix(p.BaseURL, "https://") {
			continue
		}
		path, field := c.Envoy.CABundle, "envoy.ca_bundle"
		if t := c.EffectiveCluster(p).TLS; t != nil && t.CABundle != "" {
			path, field = t.CABundle, "tls.ca_bundle of provider "+p.Name
		}
		if path == "" || seen[path] {
			continue
		}
		seen[path] = true
		if w := caBundleProblem(path); w != "" {
			out = append(out, fmt.Sprintf("%s %q %s on this host; Envoy reads it on its own host, and cannot verify the provider's certificate without it", field, path, w))
		}
	}
	return out
}

// caBundleProblem says what is wrong with a trust store file, or "".
func caBundleProblem(path string) string {
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return "does not exist"
	case err != nil:
		return "cannot be read (" + err.Error() + ")"
	}
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return "holds no PEM certificate"
		}
		if blk.Type == "CERTIFICATE" {
			return ""
		}
	}
}
