package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

type routeStatus struct {
	fakeStatus
	rs     *flowstore.Store
	models []string // the config's models; nil: gpt-4o, gpt-4o-mini
}

func (r *routeStatus) Routes() *flowstore.Store { return r.rs }
func (r *routeStatus) RouteEnv() *flow.Env {
	models := r.models
	if models == nil {
		models = []string{"gpt-4o", "gpt-4o-mini"}
	}
	return &flow.Env{Models: models, Providers: []string{"openai"}, Budgets: []string{}}
}

func routeDoc(model string) string {
	b, _ := json.Marshal(CreateRouteRequest{Document: "route: support\nnodes:\n  - id: m\n    model: " + model + "\n", Message: "try " + model})
	return string(b)
}

func TestRoutesAPI(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := flowstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st := &routeStatus{fakeStatus: fakeStatus{tokens: testTokens()}, rs: rs}
	h := Handler(st, zap.NewNop())

	// A viewer reads but may not write; an operator writes.
	if rec := do(t, h, "POST", "/admin/routes", config.RoleViewer, routeDoc("gpt-4o")); rec.Code != 403 {
		t.Fatalf("viewer create: %d", rec.Code)
	}
	rec := do(t, h, "POST", "/admin/routes", config.RoleOperator, routeDoc("gpt-4o"))
	var cr CreatedRoute
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &cr) != nil || cr.Version.Version != 1 || !cr.Created || !strings.HasPrefix(cr.Version.Author, "admin:") {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	// The same document again is the same version (200).
	if rec := do(t, h, "POST", "/admin/routes", config.RoleAdmin, routeDoc("gpt-4o")); rec.Code != 200 {
		t.Fatalf("dedupe: %d %s", rec.Code, rec.Body)
	}
	b, _ := json.Marshal(CreateRouteRequest{Document: "route: support\nnodes:\n  - id: m\n    model: gpt-4o-mini\n", Deploy: true})
	rec = do(t, h, "POST", "/admin/routes", config.RoleOperator, string(b))
	if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &cr) != nil || cr.Deployed == nil || cr.Deployed.To != 2 || !cr.Version.Live {
		t.Fatalf("create and deploy: %d %s", rec.Code, rec.Body)
	}
	// A document that does not load: 400 naming the node and position.
	rec = do(t, h, "POST", "/admin/routes", config.RoleOperator, routeDoc("gpt-9"))
	if st, code, param := openAIError(t, rec); st != 400 || code != "invalid_route" || param != "document" ||
		!strings.Contains(rec.Body.String(), `document:4:12: route support, node m: model: unknown model \"gpt-9\"`) {
		t.Fatalf("invalid: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "POST", "/admin/routes", config.RoleOperator, `{"document":"x","colour":1}`); rec.Code != 400 {
		t.Fatalf("unknown field: %d", rec.Code)
	}
	// Nothing was live before v2 (v1 never was): a rollback without a
	// version has nowhere to go. Rollback to v1 by number (operator).
	if rec := do(t, h, "POST", "/admin/routes/support/rollback", config.RoleOperator, ""); rec.Code != 409 ||
		!strings.Contains(rec.Body.String(), "nothing was live before support@2") {
		t.Fatalf("rollback past the first deploy: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/rollback", config.RoleOperator, `{"version":1}`); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"to":1`) {
		t.Fatalf("rollback: %d %s", rec.Code, rec.Body)
	}
	// A rollback without a version goes back to the version live before
	// (v2), not to the newest numbered below the live one (the routes
	// probe: after a deploy of v2 from v4 it went to v1), and says why.
	if rec := do(t, h, "POST", "/admin/routes/support/rollback", config.RoleOperator, ""); rec.Code != 200 ||
		!strings.Contains(rec.Body.String(), `"from":1,"to":2,"reason":"support@2 was live before support@1"`) {
		t.Fatalf("rollback to the version live before: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleViewer, `{"version":2}`); rec.Code != 403 {
		t.Fatalf("viewer deploy: %d", rec.Code)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleOperator, `{"version":2}`); rec.Code != 200 {
		t.Fatalf("deploy: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleOperator, `{}`); rec.Code != 400 {
		t.Fatalf("deploy without a version: %d", rec.Code)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleOperator, `{"version":9}`); rec.Code != 404 {
		t.Fatalf("deploy of a missing version: %d", rec.Code)
	}
	// Readers list and show.
	rec = do(t, h, "GET", "/admin/routes", config.RoleAuditor, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"support","live":2,"latest":2`) {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "GET", "/admin/routes/support", config.RoleViewer, "")
	var view RouteView
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &view) != nil || len(view.VersionList) != 2 || len(view.Deploys) != 3 {
		t.Fatalf("show: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, "GET", "/admin/routes/support/versions/live", config.RoleViewer, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "gpt-4o-mini") || !strings.Contains(rec.Body.String(), `"live":true`) {
		t.Fatalf("live version: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "GET", "/admin/routes/support/versions/x", config.RoleViewer, ""); rec.Code != 400 {
		t.Fatalf("bad version: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/admin/routes/nope", config.RoleViewer, ""); rec.Code != 404 {
		t.Fatalf("unknown route: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/admin/routes", "", ""); rec.Code != 401 {
		t.Fatalf("no token: %d", rec.Code)
	}
	// The config no longer has v1's model: a rollback to it is refused as
	// a deploy of it is, and v2 stays live (it answered 200 and the
	// replicas went on serving v2, a helper's finding).
	st.models = []string{"gpt-4o-mini"}
	for _, body := range []string{"", `{"version":1}`} {
		rec := do(t, h, "POST", "/admin/routes/support/rollback", config.RoleOperator, body)
		if code, _, _ := openAIError(t, rec); code != 400 || !strings.Contains(rec.Body.String(), `unknown model \"gpt-4o\"`) {
			t.Errorf("rollback %q to a version that does not load: %d %s", body, rec.Code, rec.Body)
		}
	}
	if v, err := rs.Get(context.Background(), "support", 0); err != nil || v.Version != 2 {
		t.Errorf("live after refused rollbacks: %+v %v", v, err)
	}
	// The list and the route show the version that no longer loads (a
	// request pinning it gets 503; only the log said why).
	for _, path := range []string{"/admin/routes", "/admin/routes/support"} {
		rec := do(t, h, "GET", path, config.RoleViewer, "")
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"broken":[{"version":1,"error":"support@1:4:12: route support, node m: model: unknown model \"gpt-4o\"`) {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// With PostgreSQL down the route API answers 503 in the OpenAI shape.
func TestRoutesAPIStoreDown(t *testing.T) {
	pg := testsrv.StartPostgres(t)
	db, err := store.OpenPostgres(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := flowstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(&routeStatus{fakeStatus: fakeStatus{tokens: testTokens()}, rs: rs}, zap.NewNop())
	pg.Stop()
	for _, req := range [][3]string{{"GET", "/admin/routes", ""}, {"POST", "/admin/routes", routeDoc("gpt-4o")},
		{"POST", "/admin/routes/support/deploy", `{"version":1}`}} {
		rec := do(t, h, req[0], req[1], config.RoleOperator, req[2])
		if st, code, _ := openAIError(t, rec); st != 503 || code != "route_store_unavailable" || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("%s %s with the store down: %d %s", req[0], req[1], rec.Code, rec.Body)
		}
	}
}

func (r *routeStatus) RoutesChanged(context.Context) error { return nil }

// A new version comparing classification.task with a value it never has
// is refused, 400 naming the place and the values; a version stored
// before that was checked still deploys (it loaded when it was stored).
func TestRouteCreateRefusesNeverValues(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := flowstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st := &routeStatus{fakeStatus: fakeStatus{tokens: testTokens()}, rs: rs}
	h := Handler(st, zap.NewNop())
	src := "route: support\nnodes:\n  - id: c\n    if: classification.task == \"summarize\"\n    then: a\n    else: b\n" +
		"  - {id: a, model: gpt-4o-mini}\n  - {id: b, model: gpt-4o}\n"
	b, _ := json.Marshal(CreateRouteRequest{Document: src})
	rec := do(t, h, "POST", "/admin/routes", config.RoleOperator, string(b))
	if st, code, param := openAIError(t, rec); st != 400 || code != "invalid_route" || param != "document" ||
		!strings.Contains(rec.Body.String(), `document:4:32: route support, node c: if: classification.task is never \"summarize\": the comparison never holds (its values: code, math, reasoning, extraction, summarization,`) {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	old, err := flow.Load("support@1", []byte(src), st.RouteEnv())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rs.Create(context.Background(), old, "admin:old", "", "api"); err != nil {
		t.Fatal(err)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleOperator, `{"version":1}`); rec.Code != 200 {
		t.Fatalf("deploy of the stored version: %d %s", rec.Code, rec.Body)
	}
}

// recordingRoutes is a route service with an audit log: the changes
// recorded.
type recordingRoutes struct {
	*routeStatus
	changes []audit.Change
}

func (r *recordingRoutes) RecordChange(_, _ string, c audit.Change) { r.changes = append(r.changes, c) }

// TestRoutesAPIChangeMessage: a deploy's and a rollback's message is on
// their change records (detail "message"), so the audit trail says why a
// version went live (the experimentation probe: it held only the actor and
// the versions).
func TestRoutesAPIChangeMessage(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := flowstore.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	st := &recordingRoutes{routeStatus: &routeStatus{fakeStatus: fakeStatus{tokens: testTokens()}, rs: rs}}
	h := Handler(st, zap.NewNop())
	for _, m := range []string{"gpt-4o", "gpt-4o-mini"} {
		b, _ := json.Marshal(CreateRouteRequest{Document: "route: support\nnodes:\n  - id: m\n    model: " + m + "\n", Message: "ramp " + m, Deploy: true})
		if rec := do(t, h, "POST", "/admin/routes", config.RoleOperator, string(b)); rec.Code != 201 {
			t.Fatalf("create and deploy %s: %d %s", m, rec.Code, rec.Body)
		}
	}
	if rec := do(t, h, "POST", "/admin/routes/support/rollback", config.RoleOperator, `{"message":"challenger regressed"}`); rec.Code != 200 {
		t.Fatalf("rollback: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "POST", "/admin/routes/support/deploy", config.RoleOperator, `{"version":2,"message":"fixed"}`); rec.Code != 200 {
		t.Fatalf("deploy: %d %s", rec.Code, rec.Body)
	}
	var got []string
	for _, c := range st.changes {
		got = append(got, fmt.Sprintf("%s %s→%s %s", c.Action, c.Before, c.After, c.Detail["message"]))
	}
	want := "create →support@1 ramp gpt-4o|deploy →support@1 ramp gpt-4o|create →support@2 ramp gpt-4o-mini|" +
		"deploy support@1→support@2 ramp gpt-4o-mini|rollback support@2→support@1 challenger regressed|deploy support@1→support@2 fixed"
	if strings.Join(got, "|") != want {
		t.Errorf("changes\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}
