// Package rego holds stellwerk's shipped policy library, the Rego modules
// that compute data.stellwerk.decision (see docs/policy.md and
// docs/policy-library.md). It is embedded so that the binary needs no policy
// files to enforce residency, risk tiers, secrets, prompt injection and
// allow/deny lists; platform teams add their own modules beside it.
package rego

import (
	"embed"
	"fmt"
	"io/fs"
	"strings"
)

// Library is the library's source: stellwerk/*.rego, its *_test.rego files
// included, so that `opa test` and the Go tests see the same files.
//
//go:embed stellwerk/*.rego
var Library embed.FS

// Modules returns the library's modules, file name (stellwerk/x.rego) →
// source, without the tests: what the policy engine loads.
func Modules() (map[string]string, error) {
	return modules(func(name string) bool { return !isTest(name) })
}

// TestModules returns the library's *_test.rego files, file name → source.
func TestModules() (map[string]string, error) {
	return modules(isTest)
}

func isTest(name string) bool { return strings.HasSuffix(name, "_test.rego") }

func modules(keep func(string) bool) (map[string]string, error) {
	names, err := fs.Glob(Library, "stellwerk/*.rego")
	if err != nil {
		return nil, fmt.Errorf("list policy library: %w", err)
	}
	out := make(map[string]string, len(names))
	for _, name := range names {
		if !keep(name) {
			continue
		}
		src, err := fs.ReadFile(Library, name)
		if err != nil {
			return nil, fmt.Errorf("read policy library: %w", err)
		}
		out[name] = string(src)
	}
	return out, nil
}
