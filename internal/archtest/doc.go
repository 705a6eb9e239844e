// Package archtest holds the tests that keep the module's shape
// (ARCHITECTURE.md, STYLE.md): the decision core under internal/ imports no
// Envoy, gRPC or HTTP package, and chooses no HTTP status — it says what went
// wrong with an apierr.Kind and the edges (extproc, xds, the admin API, the
// CLI) answer with apierr.HTTPStatus.
package archtest
