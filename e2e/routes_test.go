package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
	"github.com/stellwerk/stellwerk/internal/mockllm"
)

// routeOptions: a US and an EU provider, one model each (us-model,
// eu-model), open auth.
func routeOptions() harness.Options {
	return harness.Options{Providers: []harness.ProviderSpec{{Name: "us", Key: "sk-us"}, {Name: "eu", Key: "sk-eu", Residency: "eu"}}}
}

// The routes of these tests, as a platform team writes them.
const (
	supportRoute = `route: support
nodes:
  - id: plan
    if: metadata.?plan.orValue("") == "paid"
    then: strong
    else: cheap
  - id: strong
    chain: [us, eu]
  - {id: us, model: us-model}
  - {id: eu, model: eu-model}
  - {id: cheap, model: eu-model}
`
	rolloutRoute = `route: rollout
nodes:
  - id: split
    split:
      sticky: %s
      arms:
        - {name: canary, weight: 10, next: us}
        - {name: main, weight: 90, next: eu}
  - {id: us, model: us-model}
  - {id: eu, model: eu-model}
`
	limitedRoute = `route: limited
nodes:
  - id: gate
    rate_limit: {requests_per_minute: 100, per: route}
    next: eu
    fallback: us
  - {id: eu, model: eu-model}
  - {id: us, model: us-model}
`
)

// deployRoute stores a route document through the admin API and makes it
// live; it returns the version.
func deployRoute(t *testing.T, s *harness.Stack, doc string) int64 {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"document": doc, "deploy": true, "message": "e2e"})
	resp, b := adminDo(t, s, http.MethodPost, "/admin/routes", string(body))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /admin/routes: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Version struct {
			Route   string `json:"route"`
			Version int64  `json:"version"`
		} `json:"version"`
	}
	mustJSON(t, b, &out)
	return out.Version.Version
}

// routeAnswer is what a chat request through a route got.
type routeAnswer struct {
	status int
	model  string // x-stellwerk-model
	route  string // x-stellwerk-route
	reason string
	body   []byte
}

func chatRoute(t *testing.T, s *harness.Stack, model, extra string, hdr map[string]string) routeAnswer {
	t.Helper()
	resp, b := post(t, s.URL+"/v1/chat/completions",
		`{"model":"`+model+`",`+extra+`"messages":[{"role":"user","content":"where is my parcel"}]}`, hdr)
	return routeAnswer{resp.StatusCode, resp.Header.Get("x-stellwerk-model"), resp.Header.Get("x-stellwerk-route"),
		resp.Header.Get("x-stellwerk-reason"), b}
}

// waitRoute waits until model answers with the route label want: a deploy
// reaches the request path within the table's refresh interval.
func waitRoute(t *testing.T, s *harness.Stack, model, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := chatRoute(t, s, model, "", nil)
		if a.status == 200 && a.route == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d %q (%s) 5 s after the deploy, want %s", model, a.status, a.route, a.body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRoutesPythonSDK (issue 15): with the official SDK, a route sends paid
// customers to one model and free ones to another by the app's metadata
// (body or header); a model the policy excludes is never sent, the route's
// fallback serves and the reason says so; the route and its path are on
// the answer, and the route on its spend rows.
func TestRoutesPythonSDK(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, routeOptions())
	if v := deployRoute(t, s, supportRoute); v != 1 {
		t.Fatalf("first version is %d", v)
	}
	// Read your writes: the replica that answered the deploy routes by it
	// at once (the next request was 404 route_not_found for ~0.3 s: the
	// operator probe).
	if a := chatRoute(t, s, "route:support", "", nil); a.status != 200 || a.route != "support@1" {
		t.Fatalf("the request right after the deploy: %d %q %s", a.status, a.route, a.body)
	}

	out, err := exec.Command(py, filepath.Join(harness.Root(), "e2e", "clients", "python", "routes.py"), s.URL).Output()
	if err != nil {
		s.DumpLogs()
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("routes.py: %v\n%s", err, stderr)
	}
	type seen struct {
		Model  string `json:"x_stellwerk_model"`
		Route  string `json:"x_stellwerk_route"`
		Reason string `json:"reason"`
		R      *struct {
			Name    string   `json:"name"`
			Version int64    `json:"version"`
			Label   string   `json:"label"`
			Path    []string `json:"path"`
		} `json:"route"`
	}
	var got struct {
		Paid, Free, PaidHeader, PaidEUOnly seen
		Unknown                            struct {
			Status int    `json:"status"`
			Code   string `json:"code"`
		}
	}
	var raw map[string]json.RawMessage
	mustJSON(t, out, &raw)
	for k, dst := range map[string]any{"paid": &got.Paid, "free": &got.Free, "paid_header": &got.PaidHeader,
		"paid_eu_only": &got.PaidEUOnly, "unknown": &got.Unknown} {
		mustJSON(t, raw[k], dst)
	}
	for name, c := range map[string]struct {
		s     seen
		model string
		path  string
	}{
		"paid": {got.Paid, "us-model", "plan strong"}, "free": {got.Free, "eu-model", "plan cheap"},
		"paid (header)": {got.PaidHeader, "us-model", "plan strong"}, "paid, EU only": {got.PaidEUOnly, "eu-model", "plan strong"},
	} {
		if c.s.Model != c.model || c.s.Route != "support@1" || c.s.R == nil || c.s.R.Label != "support@1" || strings.Join(c.s.R.Path, " ") != c.path {
			t.Errorf("%s: served by %s, route header %q, routing.route %+v; want %s via %s", name, c.s.Model, c.s.Route, c.s.R, c.model, c.path)
		}
	}
	if r := got.PaidEUOnly.Reason; !strings.Contains(r, "us-model excluded by policy") || !strings.Contains(r, "fallback eu-model") {
		t.Errorf("the reason does not say the excluded model was replaced: %q", r)
	}
	if got.Unknown.Status != 404 || got.Unknown.Code != "route_not_found" {
		t.Errorf("unknown route: %+v", got.Unknown)
	}
	// The excluded model was never sent anything.
	for _, rq := range s.Providers["us"].Requests() {
		if strings.Contains(string(rq.Body), `"residency"`) {
			t.Errorf("the US provider got the EU-only request")
		}
	}
	// FinOps sees the route's spend: every served request that named it
	// (the four above and waitRoute's) is on a spend row with its name.
	var spent struct {
		Data []struct {
			Route    string `json:"route"`
			Requests int64  `json:"requests"`
		} `json:"data"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustJSON(t, adminBody(t, s, "/admin/spend?since=1h&group_by=route"), &spent)
		if len(spent.Data) == 1 && spent.Data[0].Route == "support" && spent.Data[0].Requests >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spend by route: %+v, want every request on route support", spent.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("paid → %s, free → %s, EU-only paid → %s (%s); spend by route %+v", got.Paid.Model, got.Free.Model,
		got.PaidEUOnly.Model, got.PaidEUOnly.Reason, spent.Data)
}

// TestRoutesSplitAndLimit (issue 15): a 10/90 split over 1,000 requests
// lands within ±3 points; with sticky users each user stays on one arm; a
// rate-limit node of 100 per minute sends the 101st request of the minute
// to its fallback.
func TestRoutesSplitAndLimit(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, routeOptions())
	deployRoute(t, s, fmt.Sprintf(rolloutRoute, "none"))
	waitRoute(t, s, "route:rollout", "rollout@1")

	const n = 1000
	models := fireRoute(t, s, "route:rollout", n, 32, func(i int) string { return "" })
	canary := 0
	for _, m := range models {
		switch m {
		case "us-model":
			canary++
		case "eu-model":
		default:
			t.Fatalf("a request was answered by %q", m)
		}
	}
	if share := float64(canary) / n; math.Abs(share-0.10) > 0.03 {
		t.Errorf("canary got %.1f%% of %d requests, want 10%% ± 3", 100*share, n)
	}
	// The route's traffic per version and arm, as the admin API shows it.
	// A request is counted when its ext_proc stream ends, just after the
	// client has its answer: wait for the last ones.
	type row struct {
		Version  int64  `json:"version"`
		Arm      string `json:"arm"`
		Requests int64  `json:"requests"`
		Errors   int64  `json:"errors"`
	}
	arms := map[string]int64{}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var view struct{ Traffic []row }
		resp, b := adminDo(t, s, http.MethodGet, "/admin/routes/rollout", "")
		if resp.StatusCode != 200 {
			t.Fatalf("GET /admin/routes/rollout: %d %s", resp.StatusCode, b)
		}
		mustJSON(t, b, &view)
		clear(arms)
		for _, r := range view.Traffic {
			if r.Version == 1 && r.Errors == 0 {
				arms[r.Arm] += r.Requests
			}
		}
		if arms["split/canary"]+arms["split/main"] > n || time.Now().After(deadline) {
			break
		}
	}
	// waitRoute's probes count too (on either arm): the rows hold the
	// 1,000 and a few more.
	extra := arms["split/canary"] + arms["split/main"] - n
	if extra < 1 || extra > 100 || arms["split/canary"] < int64(canary) || arms["split/canary"]-int64(canary) > extra {
		t.Errorf("traffic per arm %v; the answers showed %d on the canary of %d", arms, canary, n)
	}
	// The same rows as Prometheus metrics.
	resp, b := adminDo(t, s, http.MethodGet, "/metrics", "")
	for _, arm := range []string{"split/canary", "split/main"} {
		line := fmt.Sprintf("stellwerk_route_requests_total{arm=%q,route=\"rollout\",served=\"target\",version=\"1\"} %d", arm, arms[arm])
		if resp.StatusCode != 200 || !strings.Contains(string(b), line) {
			t.Errorf("/metrics lacks %s:\n%s", line, grepLines(string(b), "stellwerk_route_"))
		}
	}
	if !strings.Contains(string(b), `stellwerk_route_live_version{route="rollout"} 1`) {
		t.Errorf("/metrics lacks the live version of rollout")
	}

	deployRoute(t, s, fmt.Sprintf(rolloutRoute, "user"))
	waitRoute(t, s, "route:rollout", "rollout@2")
	const users, each = 40, 5
	models = fireRoute(t, s, "route:rollout", users*each, 16, func(i int) string { return fmt.Sprintf(`"user":"user-%d",`, i%users) })
	arm := map[int]string{}
	for i, m := range models {
		u := i % users
		if arm[u] == "" {
			arm[u] = m
		} else if arm[u] != m {
			t.Errorf("user-%d was served by %s and %s", u, arm[u], m)
		}
	}
	sticky := 0
	for _, m := range arm {
		if m == "us-model" {
			sticky++
		}
	}
	t.Logf("split: %d of %d requests on the canary (%.1f%%); sticky: %d of %d users on the canary, each on one arm for all %d requests",
		canary, n, 100*float64(canary)/n, sticky, users, each)

	deployRoute(t, s, limitedRoute)
	freshMinute(20 * time.Second)
	// The deploy reaches the request path in well under the refresh
	// interval; wait without spending the limit.
	time.Sleep(1500 * time.Millisecond)
	models = fireRoute(t, s, "route:limited", 100, 10, func(int) string { return "" })
	for i, m := range models {
		if m != "eu-model" {
			t.Fatalf("request %d of the first 100 went to %s, want eu-model", i+1, m)
		}
	}
	a := chatRoute(t, s, "route:limited", "", nil)
	if a.status != 200 || a.model != "us-model" || !strings.Contains(a.reason, "gate (limit reached)") {
		t.Fatalf("the 101st request: %d by %s (%s), want the fallback us-model", a.status, a.model, a.reason)
	}
}

// fireRoute sends n requests to a route with conc in flight and returns
// the model that served each, in order of i.
func fireRoute(t *testing.T, s *harness.Stack, route string, n, conc int, extra func(i int) string) []string {
	t.Helper()
	out := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, conc)
	var mu sync.Mutex
	var failed []string
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"`+route+`",`+extra(i)+`"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				mu.Lock()
				failed = append(failed, resp.Status)
				mu.Unlock()
			}
			out[i] = resp.Header.Get("x-stellwerk-model")
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d requests failed: %v", len(failed), n, failed[:min(5, len(failed))])
	}
	return out
}

// TestRoutesDeployUnderLoad (issue 15): deploying v2 while 200 requests a
// second flow fails none, every answer names v1 or v2, and v2 serves every
// request once the deploy has reached the request path; a route file
// dropped into routes/ is deployed by the server itself.
func TestRoutesDeployUnderLoad(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, routeOptions())
	v1 := strings.Replace(supportRoute, "route: support", "route: live", 1)
	deployRoute(t, s, v1)
	waitRoute(t, s, "route:live", "live@1")

	type result struct {
		at          time.Time
		status      int
		route, body string
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	const rps, seconds = 200, 4
	tick := time.NewTicker(time.Second / rps)
	var deployedAt time.Time
	start := time.Now()
	for i := 0; i < rps*seconds; i++ {
		<-tick.C
		if i == rps { // after one second of traffic
			wg.Add(1)
			go func() {
				defer wg.Done()
				deployRoute(t, s, strings.Replace(v1, "{id: cheap, model: eu-model}", "{id: cheap, model: us-model}", 1))
				mu.Lock()
				deployedAt = time.Now()
				mu.Unlock()
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"route:live","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Content-Type", "application/json")
			r := result{}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				r.body = err.Error()
			} else {
				r.status, r.route = resp.StatusCode, resp.Header.Get("x-stellwerk-route")
				resp.Body.Close()
			}
			r.at = time.Now()
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	counts := map[string]int{}
	var lastV1 time.Time
	for _, r := range results {
		if r.status != 200 {
			t.Errorf("a request failed during the deploy: %d %s", r.status, r.body)
			continue
		}
		counts[r.route]++
		if r.route == "live@1" && r.at.After(lastV1) {
			lastV1 = r.at
		}
	}
	if len(counts) != 2 || counts["live@1"] == 0 || counts["live@2"] == 0 {
		t.Fatalf("answers by route version: %v; want only live@1 and live@2", counts)
	}
	if lag := lastV1.Sub(deployedAt); lag > time.Second {
		t.Errorf("v1 still answered %v after the deploy returned", lag)
	}
	t.Logf("%d requests in %v (%.0f rps), none failed: %v; the last v1 answer came %v after the deploy returned",
		len(results), elapsed.Round(time.Millisecond), float64(len(results))/elapsed.Seconds(), counts, lastV1.Sub(deployedAt).Round(time.Millisecond))

	// GitOps: a file in routes/ beside the config is synced and deployed.
	dir := filepath.Join(s.Dir, "routes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(v1, "route: live", "route: from-file", 1)
	if err := os.WriteFile(filepath.Join(dir, "from-file.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, s, "route:from-file", "from-file@1")
}

// TestRoutesRollbackReplicas (issue 15): two replicas share the route
// store; a deploy made through one and a rollback made through the other
// each reach both within a second.
func TestRoutesRollbackReplicas(t *testing.T) {
	t.Parallel()
	f := harness.StartFleet(t, 2, routeOptions())
	a, b := f.Replicas[0], f.Replicas[1]
	deployRoute(t, a, supportRoute)
	v2 := deployRoute(t, a, strings.Replace(supportRoute, "{id: cheap, model: eu-model}", "{id: cheap, model: us-model}", 1))
	if v2 != 2 {
		t.Fatalf("second version is %d", v2)
	}
	for _, s := range f.Replicas {
		waitRoute(t, s, "route:support", "support@2")
	}
	resp, body := adminDo(t, b, http.MethodPost, "/admin/routes/support/rollback", `{}`)
	if resp.StatusCode != 200 {
		t.Fatalf("rollback: %d %s", resp.StatusCode, body)
	}
	rolled := time.Now()
	for _, s := range f.Replicas {
		waitRoute(t, s, "route:support", "support@1")
		if a := chatRoute(t, s, "route:support", "", nil); a.model != "eu-model" {
			t.Errorf("%s: after the rollback the free branch is served by %s, want v1's eu-model", s.URL, a.model)
		}
	}
	if d := time.Since(rolled); d > 2*time.Second {
		t.Errorf("the rollback took %v to reach both replicas", d)
	}
	t.Logf("rollback made through replica b served by both within %v", time.Since(rolled).Round(time.Millisecond))

	// Each change is on the audit record (the shared store), with who made
	// it: once replica b's writer has committed the rollback's (a batch
	// later; read at once it was not there yet).
	want := []string{"admin:harness create  support@1", "admin:harness deploy  support@1", "admin:harness create  support@2",
		"admin:harness deploy support@1 support@2", "admin:harness rollback support@2 support@1"}
	var got []string
	waitFor(t, "the rollback's record", func() bool {
		got = got[:0]
		for _, v := range auditPage(t, a, "kind=route&limit=100").Records {
			var rec audit.Record
			mustJSON(t, v.Record, &rec)
			got = append(got, rec.Change.Actor+" "+rec.Change.Action+" "+rec.Change.Before+" "+rec.Change.After)
		}
		return len(got) >= len(want)
	})
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("route change records %q, want %q", got, want)
	}
}

// grepLines is the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// twoWorkspaces is routeOptions with keys required: sk-alpha of the
// default workspace, sk-beta of beta.
func twoWorkspaces() harness.Options {
	o := routeOptions()
	o.Mutate = func(c *config.Config) {
		c.Auth.Mode = "keys"
		c.Workspaces = []config.Workspace{{Name: "default"}, {Name: "beta"}}
		c.Keys = []config.Key{
			{ID: "alpha", SHA256: auth.Hash("sk-alpha"), Workspace: "default"},
			{ID: "beta", SHA256: auth.Hash("sk-beta"), Workspace: "beta"},
		}
	}
	return o
}

// TestRouteOfOtherWorkspaces: a route that lists its workspaces does not
// exist for a key of another one (a multi-tenant probe used another
// workspace's route, and used up its rate limit); one listing a workspace
// the config lacks is refused when deployed.
func TestRouteOfOtherWorkspaces(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, twoWorkspaces())
	// Version 1 open to all, version 2 (live) beta's: beta's for every
	// version (the red-team probe used @1 from another workspace).
	deployRoute(t, s, "route: premium\nnodes:\n  - {id: eu, model: eu-model}\n")
	deployRoute(t, s, "route: premium\nworkspaces: [beta]\nnodes:\n  - {id: eu, model: eu-model}\n")
	ask := func(model, key string) routeAnswer {
		return chatRoute(t, s, model, "", map[string]string{"Authorization": "Bearer " + key})
	}
	waitFor(t, "the route for beta", func() bool { return ask("route:premium", "sk-beta").status == 200 })
	waitFor(t, "the route gone for default", func() bool { return ask("route:premium", "sk-alpha").status == 404 })
	for _, model := range []string{"route:premium", "route:premium@1", "route:premium@2", "route:premium@99"} {
		if a := ask(model, "sk-alpha"); a.status != 404 || decodeError(t, a.body).Error.Code != "route_not_found" || a.route != "" ||
			strings.Contains(string(a.body), "version") {
			t.Errorf("another workspace's key, %s: %d route %q %s", model, a.status, a.route, a.body)
		}
	}
	if a := ask("route:premium@1", "sk-beta"); a.status != 200 {
		t.Errorf("beta's key, an older version: %d %s", a.status, a.body)
	}
	body, _ := json.Marshal(map[string]any{"document": "route: ghost\nworkspaces: [gamma]\nnodes:\n  - {id: eu, model: eu-model}\n", "deploy": true})
	if resp, b := adminDo(t, s, http.MethodPost, "/admin/routes", string(body)); resp.StatusCode != 400 || !strings.Contains(string(b), `no workspace \"gamma\"`) {
		t.Errorf("a route for a workspace the config lacks: %d %s", resp.StatusCode, b)
	}
}

// TestRouteOnAudioAndFiles: a route sends a recording to one model and a
// PDF or a file by id to another by request.audio and request.files, and
// a new version comparing classification.task with a value it never has
// (summarize, as routes.md listed it until 2026-12-07) is refused 400 with
// the place and the task names.
func TestRouteOnAudioAndFiles(t *testing.T) {
	t.Parallel()
	both := []string{"vision", "audio", "files", "streaming", "chat", "responses"}
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "hear", Key: "sk-h", Residency: "eu"}, {Name: "read", Key: "sk-r", Residency: "eu"},
			{Name: "text", Key: "sk-t", Residency: "eu"}},
		Models: []config.Model{
			{ID: "hearer", Provider: "hear", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 0.5}, Capabilities: both},
			{ID: "reader", Provider: "read", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.5, OutputPerMTok: 0.5}, Capabilities: both},
			{ID: "text-cheap", Provider: "text", ContextWindow: 128000, Price: config.Price{InputPerMTok: 0.01, OutputPerMTok: 0.01},
				Capabilities: []string{"streaming"}},
		},
		Mutate: func(c *config.Config) { c.Routing.DefaultModel = "text-cheap" },
	})
	deployRoute(t, s, `route: media
nodes:
  - {id: audio, if: request.audio, then: hear, else: files}
  - {id: files, if: request.files, then: read, else: text}
  - {id: hear, model: hearer}
  - {id: read, model: reader}
  - {id: text, model: text-cheap}
`)
	const (
		wav  = `{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=","format":"wav"}}`
		pdf  = `{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQKJSVFT0YK"}}`
		byID = `{"type":"file","file":{"file_id":"file-abc123"}}`
	)
	for name, tc := range map[string]struct{ content, model string }{
		"audio":      {`[{"type":"text","text":"Transcribe this"},` + wav + `]`, "hearer"},
		"pdf":        {`[{"type":"text","text":"Summarise this"},` + pdf + `]`, "reader"},
		"file by id": {`[{"type":"text","text":"Summarise this"},` + byID + `]`, "reader"},
		"text":       {`"Say hello."`, "text-cheap"},
	} {
		resp, b := post(t, s.URL+"/v1/chat/completions", `{"model":"route:media","messages":[{"role":"user","content":`+tc.content+`}]}`, nil)
		if m := resp.Header.Get("x-stellwerk-model"); resp.StatusCode != 200 || m != tc.model || resp.Header.Get("x-stellwerk-route") != "media@1" {
			t.Errorf("%s: %d %s via %q, want %s: %s", name, resp.StatusCode, m, resp.Header.Get("x-stellwerk-route"), tc.model, b)
		}
	}

	body, _ := json.Marshal(map[string]any{"document": "route: media\nnodes:\n  - id: sum\n    if: classification.task == \"summarize\"\n" +
		"    then: read\n    else: text\n  - {id: read, model: reader}\n  - {id: text, model: text-cheap}\n"})
	resp, b := adminDo(t, s, http.MethodPost, "/admin/routes", string(body))
	e := decodeError(t, b).Error
	if resp.StatusCode != 400 || e.Code != "invalid_route" || !strings.Contains(e.Message, `document:4:32: route media, node sum: if: classification.task is never "summarize"`) ||
		!strings.Contains(e.Message, "summarization") {
		t.Errorf("a new version comparing the task with summarize: %d %s", resp.StatusCode, b)
	}
}

// TestRoutesListedAsModels: GET /v1/models lists the routes a key may use
// as route:<name> (a client that builds its model picker from the list
// found none: the peer-switcher probe), GET /v1/models/route:<name>
// answers for them and not for another workspace's route, and a listed
// route serves the endpoints its entry names.
func TestRoutesListedAsModels(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, twoWorkspaces())
	deployRoute(t, s, supportRoute)
	deployRoute(t, s, "route: premium\nworkspaces: [beta]\nnodes:\n  - {id: eu, model: eu-model}\n")
	list := func(key string) []string {
		out, err := exec.Command(py, "-c", `import sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
print(" ".join(m.id for m in c.models.list()))`, s.URL, key).Output()
		if err != nil {
			t.Fatalf("models.list: %v", err)
		}
		return strings.Fields(string(out))
	}
	waitFor(t, "the routes listed", func() bool { return slices.Contains(list("sk-beta"), "route:premium") })
	for key, want := range map[string][]string{"sk-alpha": {"route:support"}, "sk-beta": {"route:premium", "route:support"}} {
		var routes []string
		for _, id := range list(key) {
			if strings.HasPrefix(id, "route:") {
				routes = append(routes, id)
			}
		}
		if !slices.Equal(routes, want) {
			t.Errorf("%s lists routes %v, want %v", key, routes, want)
		}
	}
	if code, b := get(t, s, "/v1/models/route:support", "sk-alpha"); code != 200 || gjson.GetBytes(b, "id").Str != "route:support" || gjson.GetBytes(b, "owned_by").Str != "stellwerk" {
		t.Errorf("route:support: %d %s", code, b)
	}
	if code, b := get(t, s, "/v1/models/route:premium", "sk-alpha"); code != 404 || !strings.Contains(string(b), "model_not_found") {
		t.Errorf("another workspace's route: %d %s", code, b)
	}
	if code, _ := get(t, s, "/v1/models/route:nope", "sk-beta"); code != 404 {
		t.Errorf("no such route: %d", code)
	}
	// The endpoints the entry names.
	for path, body := range map[string]string{
		"/v1/chat/completions": `{"model":"route:support","messages":[{"role":"user","content":"hi"}]}`,
		"/v1/responses":        `{"model":"route:support","input":"hi"}`,
		"/v1/messages":         `{"model":"route:support","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		resp, b := post(t, s.URL+path, body, map[string]string{"Authorization": "Bearer sk-alpha"})
		if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-route") != "support@1" {
			t.Errorf("%s through route:support: %d %q %s", path, resp.StatusCode, resp.Header.Get("x-stellwerk-route"), b)
		}
	}
}

// TestRouteToARetiredModel: a reload that takes a model a deployed route
// serves out of the catalog is refused, naming the route and the way out,
// and the route keeps serving (the policy rollout probe: the reload was
// taken and the route's arms to the model answered 503). A replica started
// under that config has no version to serve: the route answers 503
// route_unavailable (it said nothing was deployed), and
// stellwerk_route_broken says so.
// (The catalog probe: the version that loaded before had served as auto,
// and a route pinned to an EU model went to the US provider with a 200.)
func TestRouteToARetiredModel(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p", Residency: "eu"}, {Name: "q", Key: "sk-q", Residency: "us"}},
		Models: []config.Model{
			{ID: "old", Provider: "p", ProviderModel: "old-up", ContextWindow: 8000},
			{ID: "new", Provider: "p", ProviderModel: "new-up", ContextWindow: 8000},
			{ID: "cheap-us", Provider: "q", ProviderModel: "us-up", ContextWindow: 8000},
		},
		DefaultModel: "new",
	})
	if err := os.MkdirAll(filepath.Join(s.Dir, "routes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "routes", "eu.yaml"), []byte("route: eu\nnodes:\n  - id: strong\n    model: old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"route:eu","messages":[{"role":"user","content":"hi"}]}`
	waitFor(t, "the route deployed", func() bool {
		resp, _ := post(t, s.URL+"/v1/chat/completions", body, nil)
		return resp.StatusCode == 200 && resp.Header.Get("x-stellwerk-model") == "old"
	})
	cfg := *s.Config
	cfg.Models = []config.Model{cfg.Models[1], cfg.Models[2]}
	s.WriteConfig(&cfg)
	refusal := configRefusal(t, s)
	for _, want := range []string{"eu@1", `unknown model "old"`, "routes deploy", "routing.aliases"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("config_error %q does not say %q", refusal, want)
		}
	}
	for range 5 {
		if resp, b := post(t, s.URL+"/v1/chat/completions", body, nil); resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "old" {
			t.Fatalf("route:eu after the refused reload: %d (served by %q) %.300s", resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
		}
	}

	s.Stop("stellwerk")
	s.Restart()
	resp, b := post(t, s.URL+"/v1/chat/completions", body, nil)
	if resp.StatusCode != 503 || !strings.Contains(string(b), "route_unavailable") || !strings.Contains(string(b), "does not load against the configuration") {
		t.Errorf("route:eu started without old in the catalog: %d (served by %q) %.300s; want 503 route_unavailable: does not load",
			resp.StatusCode, resp.Header.Get("x-stellwerk-model"), b)
	}
	if n := len(s.Providers["q"].Requests()); n != 0 {
		t.Errorf("the US provider got %d requests", n)
	}
	mresp, err := s.AdminGet("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(m), `stellwerk_route_broken{route="eu",version="1"} 1`) {
		t.Errorf("/metrics has no stellwerk_route_broken for eu@1")
	}
}

// abRoute is a data scientist's A/B test: control on the EU model,
// challenger on the US one, each user on one arm; %s is the challenger
// node's extra fields.
const abRoute = `route: ab
nodes:
  - id: ab
    split:
      sticky: user
      arms:
        - {name: control, weight: 50, next: control}
        - {name: challenger, weight: 50, next: challenger}
  - {id: control, model: eu-model}
  - {id: challenger, model: us-model%s}
`

// experimentSeen is what e2e/clients/python/experiment.py saw.
type experimentSeen struct {
	Requests []struct {
		User, Code, Arm, Model string
		Status                 int
		DecisionID             string `json:"decision_id"`
	}
	Stream *struct {
		Status     int
		Arm, Model string
		Lines      int
	}
}

func runExperiment(t *testing.T, s *harness.Stack, users int, streamUser, extra string) experimentSeen {
	t.Helper()
	py := harness.RequirePython(t)
	args := []string{filepath.Join(harness.Root(), "e2e", "clients", "python", "experiment.py"), s.URL, fmt.Sprint(users), streamUser}
	if extra != "" {
		args = append(args, extra)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		s.DumpLogs()
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("experiment.py: %v\n%s", err, stderr)
	}
	var seen experimentSeen
	mustJSON(t, out, &seen)
	return seen
}

// TestRoutesExperimentArms (the experimentation probe): with the
// challenger arm's provider failing, its users are served by the control
// model as before, but the arm's metrics and audit records say fallback,
// not target, and every answer, a stream's too, names its arm in
// x-stellwerk-route-arm; with on_unavailable: refuse on the challenger
// node, its users get a 503 (its provider cooling down) or a 403 (the
// policy excluding it) instead, never the other arm's model.
func TestRoutesExperimentArms(t *testing.T) {
	t.Parallel()
	o := routeOptions()
	o.Mutate = func(c *config.Config) {
		c.Failover.FailuresBeforeCooldown = 1
		c.Failover.Cooldown, c.Failover.MaxCooldown = 10*time.Minute, 10*time.Minute
	}
	s := harness.Start(t, o)
	deployRoute(t, s, fmt.Sprintf(abRoute, ""))
	waitRoute(t, s, "route:ab", "ab@1")
	s.Providers["us"].SetBehavior(mockllm.Behavior{Status: 503})

	// A challenger user, for the stream: found by a first run of the users.
	const users = 24
	first := runExperiment(t, s, users, "", "")
	streamUser := ""
	for _, r := range first.Requests {
		if r.Arm == "ab/challenger" {
			streamUser = r.User
		}
	}
	if streamUser == "" {
		t.Fatalf("no user of %d on the challenger arm: %+v", users, first.Requests)
	}
	seen := runExperiment(t, s, users, streamUser, "")
	fallbacks := map[string]bool{} // decision ids of challenger requests the control model served
	targets := 0
	for i, r := range seen.Requests {
		if r.Arm != first.Requests[i].Arm || (r.Arm != "ab/control" && r.Arm != "ab/challenger") {
			t.Errorf("%s: arm %q, then %q", r.User, first.Requests[i].Arm, r.Arm)
		}
		if r.Status != 200 || r.Model != "eu-model" {
			t.Errorf("%s (%s): %d %s by %s, want the control model serving while the challenger's provider fails", r.User, r.Arm, r.Status, r.Code, r.Model)
		}
		if r.Arm == "ab/challenger" {
			fallbacks[r.DecisionID] = true
		} else {
			targets++
		}
	}
	if st := seen.Stream; st == nil || st.Status != 200 || st.Arm != "ab/challenger" || st.Model != "eu-model" || st.Lines < 2 {
		t.Errorf("stream as %s: %+v, want the arm header ab/challenger on a stream the control model served", streamUser, st)
	}
	// Metrics: the challenger arm's answers by the control model are its
	// fallback rows, not its target's: both runs' and the stream, but for
	// the first run's first, whose failure put the provider in cooldown
	// (the target's error).
	counted := func(metrics, name, arm, served string) int {
		m := regexp.MustCompile(`stellwerk_route_` + name + `_total\{arm="` + arm + `",route="ab",served="` + served + `",version="1"\} (\d+)`).
			FindStringSubmatch(metrics)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	want := 2 * len(fallbacks)
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, b := adminDo(t, s, http.MethodGet, "/metrics", "")
		metrics = string(b)
		if counted(metrics, "requests", "ab/challenger", "fallback") >= want || time.Now().After(deadline) {
			break
		}
	}
	if counted(metrics, "requests", "ab/challenger", "fallback") != want || counted(metrics, "errors", "ab/challenger", "fallback") != 0 ||
		counted(metrics, "errors", "ab/challenger", "target") != 1 || counted(metrics, "requests", "ab/control", "target") < 2*targets {
		t.Errorf("/metrics: want %d challenger requests served by fallback, 1 error by its target, %d control ones by theirs:\n%s",
			want, 2*targets, grepLines(metrics, "stellwerk_route_requests_total"))
	}
	// Audit: each record says whether the route's chosen target served.
	deadline := time.Now().Add(10 * time.Second)
	for {
		page := auditPage(t, s, "kind=decision&limit=1000")
		served := map[string]int{}
		for _, v := range page.Records {
			var rec audit.Record
			mustJSON(t, v.Record, &rec)
			if rec.Route == nil || rec.Route.Name != "ab" {
				continue
			}
			switch {
			case fallbacks[v.ID] && rec.Route.Served == "fallback" && rec.Route.Arm == "ab/challenger" && rec.Served == "eu-model":
				served["fallback"]++
			case !fallbacks[v.ID] && rec.Route.Served == "target" && rec.Route.Arm == "ab/control":
				served["target"]++
			}
		}
		if served["fallback"] == len(fallbacks) && served["target"] >= targets {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit: %v of %d challenger records say served fallback, %d control ones target (want %d)", served, len(fallbacks), served["target"], targets)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The challenger node refuses rather than falls back.
	deployRoute(t, s, fmt.Sprintf(abRoute, ", on_unavailable: refuse"))
	waitRoute(t, s, "route:ab", "ab@2")
	for name, c := range map[string]struct {
		extra  string
		status int
		code   string
	}{
		"provider cooling down": {"", 503, "route_target_unavailable"},
		"EU residency":          {`{"policy":{"residency":"eu"}}`, 403, "route_target_excluded"},
	} {
		seen := runExperiment(t, s, users, "", c.extra)
		for i, r := range seen.Requests {
			if r.Arm != first.Requests[i].Arm {
				t.Errorf("%s: %s: arm %q, want %q", name, r.User, r.Arm, first.Requests[i].Arm)
			}
			switch r.Arm {
			case "ab/challenger":
				if r.Status != c.status || r.Code != c.code || r.Model == "eu-model" {
					t.Errorf("%s: challenger %s: %d %q by %q, want %d %s", name, r.User, r.Status, r.Code, r.Model, c.status, c.code)
				}
			case "ab/control":
				if r.Status != 200 || r.Model != "eu-model" {
					t.Errorf("%s: control %s: %d %s by %s", name, r.User, r.Status, r.Code, r.Model)
				}
			}
		}
	}
	t.Logf("challenger users: %d of %d; metrics:\n%s", len(fallbacks), users, grepLines(metrics, `stellwerk_route_requests_total{arm="ab`))
}

// TestRoutesReportThroughEnvoy: traffic through a 50/50 split, sent with
// the official Python SDK, is reported by `stellwerk routes report` per
// arm as the clients saw it (the routing object's route.arm), read from
// the audit log while serve runs (the experimentation probe needed the
// JSONL export and a script for this table).
func TestRoutesReportThroughEnvoy(t *testing.T) {
	t.Parallel()
	py := harness.RequirePython(t)
	s := harness.Start(t, routeOptions())
	v := deployRoute(t, s, `route: abtest
nodes:
  - id: split
    split:
      arms:
        - {name: control, weight: 50, next: eu}
        - {name: challenger, weight: 50, next: us}
  - {id: us, model: us-model}
  - {id: eu, model: eu-model}
`)
	// What the clients saw, per arm. (The replica that answered the
	// deploy routes by it at once: every request is the SDK's.)
	out, err := exec.Command(py, "-c", `import collections, json, sys, openai
c = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="sk-client-key", max_retries=0)
arms = collections.Counter()
for i in range(60):
    r = c.chat.completions.create(model="route:abtest", messages=[{"role": "user", "content": "request %d" % i}])
    arms[(r.model_extra or {})["routing"]["route"]["arm"]] += 1
print(json.dumps(arms))`, s.URL).Output()
	if err != nil {
		s.DumpLogs()
		t.Fatalf("python: %v %s", err, out)
	}
	var seen map[string]int64
	mustJSON(t, out, &seen)
	if seen["split/control"]+seen["split/challenger"] != 60 || seen["split/control"] == 0 || seen["split/challenger"] == 0 {
		t.Fatalf("the clients saw %v", seen)
	}
	cfgPath := filepath.Join(s.Dir, "stellwerk.yaml")
	var rep audit.RouteReport
	report := func() {
		b, err := exec.Command(harness.Binary(t), "routes", "report", "abtest", "--since", "1h", "--format", "json", "--config", cfgPath).Output()
		if err != nil {
			t.Fatalf("routes report: %v %s", err, b)
		}
		rep = audit.RouteReport{}
		mustJSON(t, b, &rep)
	}
	// The audit log writes in batches: the report sees every request once
	// they are flushed.
	waitFor(t, "the report to count every request", func() bool {
		report()
		var n int64
		for _, a := range rep.Arms {
			n += a.Requests
		}
		return n >= 60
	})
	if rep.Requests != 60 || len(rep.Arms) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	for _, a := range rep.Arms {
		if a.Version != v || a.Requests != seen[a.Arm] || a.Errors != 0 || a.ServedOwn != a.Requests ||
			a.ServedFallback != 0 || a.CostEUR <= 0 || a.CostPerRequestEUR <= 0 || a.P95MS < a.P50MS {
			t.Errorf("arm %s: %+v; the clients saw %d", a.Arm, a, seen[a.Arm])
		}
	}
	// The table, as an operator reads it.
	b, err := exec.Command(harness.Binary(t), "routes", "report", "abtest", "--config", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "challenger") || !strings.Contains(string(b), "ERROR RATE (95% CI)") {
		t.Errorf("routes report: %v\n%s", err, b)
	}
	t.Logf("the clients saw %v; the report:\n%s", seen, b)
}
