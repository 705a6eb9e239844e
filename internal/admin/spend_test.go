package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/spend"
	"github.com/stellwerk/stellwerk/internal/store"
	"github.com/stellwerk/stellwerk/internal/testsrv"
)

type spendStatus struct {
	fakeStatus
	sp  *spend.Store
	cfg *config.Config
}

func (s *spendStatus) Spend() *spend.Store    { return s.sp }
func (s *spendStatus) Config() *config.Config { return s.cfg }

// spendRows: three requests on 2025-03-29 (UTC); the last is 00:30 on the
// 30th in Europe/Berlin, the config's time zone.
func spendRows() []spend.Row {
	day := time.Date(2025, 3, 29, 0, 0, 0, 0, time.UTC)
	r := func(id string, at time.Duration, key, model string, cost int64, est bool) spend.Row {
		return spend.Row{Time: day.Add(at), DecisionID: id, KeyID: key, Workspace: "legal", Team: "contracts", Model: model,
			Provider: "openai", TokensIn: 100, TokensOut: 10, Cost: ledger.MicroEUR(cost), Estimated: est, Status: spend.Served,
			EndUser: "u-" + key, Tag: "t-" + model}
	}
	return []spend.Row{r("a", time.Hour, "k1", "gpt-4o-mini", 1_500, false), r("b", 2*time.Hour, "k2", "gpt-4o-mini", 2_500, false),
		r("c", 23*time.Hour+30*time.Minute, "k1", "gpt-4o", 1_000_000, true)}
}

func spendHandler(t *testing.T, db *store.DB) *spendStatus {
	t.Helper()
	sp, err := spend.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Insert(context.Background(), spendRows()); err != nil {
		t.Fatal(err)
	}
	cfg := keyTestConfig()
	cfg.Budgets.TimeZone = "Europe/Berlin"
	return &spendStatus{fakeStatus: fakeStatus{tokens: testTokens()}, sp: sp, cfg: cfg}
}

const spendRange = "since=2025-03-29T00:00:00Z&until=2025-03-31T00:00:00Z"

func TestSpendAPI(t *testing.T) {
	db, err := store.OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := Handler(spendHandler(t, db), zap.NewNop())

	// Every reader role; nobody without a token.
	for _, role := range []string{config.RoleViewer, config.RoleAuditor, config.RoleOperator, config.RoleAdmin} {
		if rec := do(t, h, "GET", "/admin/spend?"+spendRange, role, ""); rec.Code != 200 {
			t.Errorf("%s: %d %s", role, rec.Code, rec.Body)
		}
	}
	if status, code, _ := openAIError(t, do(t, h, "GET", "/admin/spend", "", "")); status != 401 || code != "invalid_admin_token" {
		t.Errorf("without a token: %d %s", status, code)
	}

	// JSON, grouped by model and by day in the config's time zone.
	rec := do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=model,day", config.RoleViewer, "")
	if ct := rec.Header().Get("Content-Type"); rec.Code != 200 || ct != "application/json" {
		t.Fatalf("%d %s: %s", rec.Code, ct, rec.Body)
	}
	var rep struct {
		Object   string           `json:"object"`
		TimeZone string           `json:"timezone"`
		GroupBy  []string         `json:"group_by"`
		Data     []map[string]any `json:"data"`
		Total    spend.Sums       `json:"total"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Object != "spend.report" || rep.TimeZone != "Europe/Berlin" || strings.Join(rep.GroupBy, ",") != "model,day" || len(rep.Data) != 2 {
		t.Fatalf("report %s", rec.Body)
	}
	if d := rep.Data[0]; d["model"] != "gpt-4o" || d["day"] != "2025-03-30" || d["cost_eur"] != 1.0 || d["estimated"] != 1.0 {
		t.Errorf("first group %v", d)
	}
	if d := rep.Data[1]; d["model"] != "gpt-4o-mini" || d["day"] != "2025-03-29" || d["requests"] != 2.0 || d["cost_micro_eur"] != 4000.0 {
		t.Errorf("second group %v", d)
	}
	if rep.Total.Requests != 3 || rep.Total.Cost != 1_004_000 || rep.Total.TokensIn != 300 {
		t.Errorf("total %+v", rep.Total)
	}
	// tz overrides the config's zone; filters narrow.
	rec = do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=day&tz=UTC&key=k1", config.RoleViewer, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || len(rep.Data) != 1 || rep.Data[0]["day"] != "2025-03-29" ||
		rep.Data[0]["requests"] != 2.0 {
		t.Errorf("UTC, key k1: %s", rec.Body)
	}

	// End users (beside their workspace) and tags group and filter.
	rec = do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=end_user,tag&tag=t-gpt-4o-mini", config.RoleViewer, "")
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || strings.Join(rep.GroupBy, ",") != "workspace,end_user,tag" || len(rep.Data) != 2 ||
		rep.Data[0]["end_user"] != "u-k1" || rep.Data[0]["tag"] != "t-gpt-4o-mini" || rep.Data[0]["workspace"] != "legal" || rep.Data[1]["end_user"] != "u-k2" {
		t.Errorf("by end user and tag: %s", rec.Body)
	}
	rec = do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=tag&end_user=u-k1&format=csv", config.RoleViewer, "")
	if want := "tag,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\nt-gpt-4o,1,100,10,0,1.000000,1\nt-gpt-4o-mini,1,100,10,0,0.001500,0\n"; rec.Body.String() != want {
		t.Errorf("csv by tag for u-k1: %s", rec.Body)
	}

	// CSV by parameter and by Accept; an Accept preferring JSON gets JSON.
	const wantCSV = "key,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\n" +
		"k1,2,200,20,0,1.001500,1\nk2,1,100,10,0,0.002500,0\n"
	for name, accept := range map[string]string{"format=csv": "", "Accept": "text/csv", "Accept with params": "text/csv; charset=utf-8, application/json;q=0.5"} {
		path := "/admin/spend?" + spendRange + "&group_by=key"
		if accept == "" {
			path += "&format=csv"
		}
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+roleTokens[config.RoleAuditor])
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") || rec.Body.String() != wantCSV {
			t.Errorf("%s: %d %s\n%s", name, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
	}
	req := httptest.NewRequest("GET", "/admin/spend?"+spendRange, nil)
	req.Header.Set("Authorization", "Bearer "+roleTokens[config.RoleAdmin])
	req.Header.Set("Accept", "application/json, text/csv")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("Accept preferring JSON got %s", rec.Header().Get("Content-Type"))
	}

	// Mistakes: 400 in the OpenAI shape, naming the parameter.
	for query, param := range map[string]string{
		"since=yesterday":                   "since",
		"group_by=model,cost":               "group_by",
		"groupby=model":                     "groupby",
		"format=xml":                        "format",
		"key=a&key=b":                       "key",
		"since=2025-03-02&until=2025-03-01": "until",
		"tz=Mars/Olympus":                   "tz",
		"day=2025-03-01":                    "day",
	} {
		status, code, p := openAIError(t, do(t, h, "GET", "/admin/spend?"+query, config.RoleViewer, ""))
		if status != 400 || code != "invalid_spend_query" || p != param {
			t.Errorf("%s: %d %s param %q, want 400 invalid_spend_query %q", query, status, code, p, param)
		}
	}
	// Every problem at once, an unknown parameter beside bad values.
	rec = do(t, h, "GET", "/admin/spend?since=yesterday&bogus=1&tz=Mars/Olympus", config.RoleViewer, "")
	for _, want := range []string{"bogus: unknown parameter", "since:", "tz:"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%d %s lacks %q", rec.Code, rec.Body, want)
		}
	}
}

// TestSpendAPIStoreDown: with PostgreSQL stopped, a report is 503 with
// Retry-After, and the answer shows nothing of the database.
func TestSpendAPIStoreDown(t *testing.T) {
	pg := testsrv.StartPostgres(t)
	ctx := context.Background()
	db, err := store.OpenPostgres(ctx, pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := Handler(spendHandler(t, db), zap.NewNop())
	if rec := do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=model", config.RoleViewer, ""); rec.Code != 200 ||
		!strings.Contains(rec.Body.String(), `"requests":3`) {
		t.Fatalf("before: %d %s", rec.Code, rec.Body)
	}
	pg.Stop()
	rec := do(t, h, "GET", "/admin/spend?"+spendRange+"&group_by=model", config.RoleViewer, "")
	status, code, _ := openAIError(t, rec)
	if status != 503 || code != "spend_store_unavailable" || rec.Header().Get("Retry-After") == "" {
		t.Errorf("%d %s %s", status, code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "127.0.0.1") || strings.Contains(rec.Body.String(), "dial") {
		t.Errorf("the answer shows internals: %s", rec.Body)
	}
}
