package admin

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/docstest"
	"github.com/stellwerk/stellwerk/internal/live"
)

// everyService is a Status that also offers every optional service, so the
// handler registers every endpoint it has. The services are nil: the test
// only asks the mux which pattern a path matches, it never calls one.
type everyService struct {
	*fakeStatus
	KeyService
	AuditService
	SpendService
	RouteService
	FeedbackService
	XDSService
	ProviderService
	ProviderLister
}

// Live and EnvoyListener are asked for at registration (LiveService).
func (everyService) Live() *live.Hub       { return &live.Hub{} }
func (everyService) EnvoyListener() string { return "127.0.0.1:10000" }

// Metrics is asked for at registration: a handler that is never called.
func (everyService) Metrics() http.Handler { return http.NotFoundHandler() }

func (everyService) Config() *config.Config { return nil } // KeyService and SpendService both have it

var (
	methodPath = regexp.MustCompile(`\b(GET|POST|PUT|DELETE|PATCH) (/[^\s` + "`" + `"'),]*)`)
	adminPath  = regexp.MustCompile(`(?:^|[\s(/:0-9])(/admin/[^\s` + "`" + `"'),]*)`)
	barePath   = regexp.MustCompile(`^(/[a-z][a-z0-9/_{}.-]*)$`)
	param      = regexp.MustCompile(`\{[^}/]*\}|<[^>/]*>|:[a-z_]+`)
)

// TestDocumentedEndpointsExist (issue 18): every admin endpoint the README
// and docs name — `GET /status`, `/admin/keys/{id}`, a bare `/policy` in a
// line about the admin API — is one the admin handler serves. The handler
// itself is asked (its mux), not a list kept by hand.
func TestDocumentedEndpointsExist(t *testing.T) {
	mux, ok := Handler(everyService{fakeStatus: &fakeStatus{tokens: testTokens()}}, zap.NewNop()).(*http.ServeMux)
	if !ok {
		t.Fatal("the admin handler is no longer a *http.ServeMux; adapt this test")
	}
	serves := func(path string) bool {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if _, pattern := mux.Handler(httptest.NewRequest(m, path, nil)); pattern != "" && pattern != "/" {
				return true
			}
		}
		return false
	}
	if serves("/no/such/endpoint") || !serves("/status") {
		t.Fatal("the mux does not tell served paths from others")
	}
	checked := 0
	for _, s := range docstest.Snippets(t, "../..") {
		var paths []string
		for _, m := range methodPath.FindAllStringSubmatch(s.Code, -1) {
			paths = append(paths, m[2])
		}
		for _, m := range adminPath.FindAllStringSubmatch(s.Code, -1) {
			paths = append(paths, m[1])
		}
		if m := barePath.FindStringSubmatch(s.Code); m != nil && aboutOurAdmin(s.Line) {
			paths = append(paths, m[1])
		}
		for _, p := range paths {
			p, _, _ = strings.Cut(p, "?")
			p = strings.TrimRight(p, ".;:")
			if strings.HasPrefix(p, "/v1/") || p == "/v1" || strings.ContainsAny(p, "*…") || strings.Contains(p, ".") {
				continue // the OpenAI API on Envoy's listener, wildcards, files
			}
			checked++
			if !serves(param.ReplaceAllString(p, "x")) {
				t.Errorf("%s: the docs name admin endpoint %s, which the admin API does not serve", s.Where, p)
			}
		}
	}
	t.Logf("%d endpoint mentions checked", checked)
	if checked < 20 {
		t.Errorf("only %d endpoint mentions found in the docs: is the parser still reading them?", checked)
	}
}

// aboutOurAdmin says whether a prose line is about stellwerk's admin API
// (and not Envoy's, whose /config_dump the docs also mention).
func aboutOurAdmin(line string) bool {
	l := strings.ToLower(line)
	return strings.Contains(l, "admin") && !strings.Contains(l, "envoy's admin") && !strings.Contains(l, "envoy admin")
}
