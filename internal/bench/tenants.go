package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tenants is the production shape with many tenants: Workspaces workspaces
// in the config, each with KeysPer store keys made through the admin API,
// and the load spread over all of them. The zero value is the bench's one
// key (workspace support), which every figure before 2026-12-08 used.
type Tenants struct {
	Workspaces, KeysPer int
}

// ParseTenants reads "WxK" (200x20: 200 workspaces of 20 keys); "" and
// "1" are the one key.
func ParseTenants(s string) (Tenants, error) {
	if s == "" || s == "1" {
		return Tenants{}, nil
	}
	w, k, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		return Tenants{}, errors.New("want WORKSPACESxKEYS, e.g. 200x20")
	}
	ws, err1 := strconv.Atoi(w)
	ks, err2 := strconv.Atoi(k)
	if err1 != nil || err2 != nil || ws < 1 || ks < 1 || ws > 10000 || ks > 1000 || ws*ks > 100000 {
		return Tenants{}, errors.New("want WORKSPACESxKEYS, both positive, at most 100,000 keys, e.g. 200x20")
	}
	return Tenants{Workspaces: ws, KeysPer: ks}, nil
}

// Keys is the number of tenant keys.
func (t Tenants) Keys() int { return t.Workspaces * t.KeysPer }

func (t Tenants) String() string {
	if t.Keys() == 0 {
		return "1"
	}
	return fmt.Sprintf("%dx%d", t.Workspaces, t.KeysPer)
}

// tenantName is workspace i's name.
func tenantName(i int) string { return fmt.Sprintf("tenant-%04d", i) }

// tenantWorkspaces is the config's workspaces of t, as list items under
// workspaces: (two spaces deep). They take turns through four kinds a
// platform has: cost-first with a quality floor and secrets refused,
// balanced, EU residency, and accuracy-first with a team that denies a
// provider.
func tenantWorkspaces(t Tenants) string {
	var b strings.Builder
	for i := range t.Workspaces {
		n := tenantName(i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - {name: %s, objective: cost, relative_quality: 0.9, secrets: deny}\n", n)
		case 1:
			fmt.Fprintf(&b, "  - {name: %s, objective: balanced}\n", n)
		case 2:
			fmt.Fprintf(&b, "  - {name: %s, objective: balanced, residency: eu, secrets: on_prem_only}\n", n)
		case 3:
			fmt.Fprintf(&b, "  - {name: %s, objective: accuracy, teams: [{name: apps, deny: [provider:deepseek]}]}\n", n)
		}
	}
	return b.String()
}

// tenantBudgets are the budgets tenants add to ledgerConfig's: every
// workspace its own monthly budget (docs/budgets.md, a budget of each
// subject), high enough never to refuse a bench request.
const tenantBudgets = "    - {name: each-workspace-monthly, scope: workspace, amount_eur: 100000, period: month}\n"

// tenantKeySpec is the admin API's create body of key k of workspace w: a
// pseudonymous user, the team where the workspace has one, and the key's
// own monthly budget and rate limit, as a platform hands keys out
// (docs/keys.md), high enough never to refuse a bench request.
func tenantKeySpec(w, k int) []byte {
	spec := map[string]any{
		"id":        fmt.Sprintf("%s-k%03d", tenantName(w), k),
		"workspace": tenantName(w),
		"user":      fmt.Sprintf("u-%04d-%03d", w, k),
		"limits": map[string]any{
			"budgets":    []map[string]any{{"amount_eur": 5000, "period": "month"}},
			"rate_limit": map[string]any{"requests_per_minute": 60000},
		},
		"metadata": map[string]string{"cost_centre": fmt.Sprintf("cc-%d", w%17)},
	}
	if w%4 == 3 {
		spec["team"] = "apps"
	}
	b, _ := json.Marshal(spec)
	return b
}

// createTenantKeys makes t's keys through the admin API (POST /admin/keys,
// as an operator would: no back door into the store), a few at a time, and
// returns their secrets in the order workspace by workspace.
func createTenantKeys(ctx context.Context, admin, token string, t Tenants) ([]string, error) {
	keys := make([]string, t.Keys())
	jobs := make(chan int)
	var (
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				secret, err := createKey(ctx, client, admin, token, tenantKeySpec(i/t.KeysPer, i%t.KeysPer))
				if err != nil {
					fail(err)
					continue
				}
				keys[i] = secret
			}
		}()
	}
	for i := range keys {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("creating the tenants' keys: %w", first)
	}
	return keys, ctx.Err()
}

func createKey(ctx context.Context, client *http.Client, admin, token string, spec []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/admin/keys", bytes.NewReader(spec))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST /admin/keys: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var out struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Secret == "" {
		return "", fmt.Errorf("POST /admin/keys: no secret in %q", b)
	}
	return out.Secret, nil
}

// primeTenants sends one chat request with model auto under every key, a
// few at a time, so every tenant has met the policy, the ledger and the
// key table before anything is measured, as a fleet of tenants in use
// has; all must succeed.
func primeTenants(ctx context.Context, s *Stack, keys []string) error {
	rq := chatRequest(nil, 2048, false, "auto")
	jobs := make(chan string)
	var (
		mu    sync.Mutex
		first error
	)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newTarget("prime", s.StellwerkURL, nil, 10*time.Second)
			defer t.close()
			for key := range jobs {
				if r := t.doAs(ctx, time.Now(), rq, rq.body(0), key); !r.ok() {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("priming the tenants' keys with model auto: %s", r.Err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// startTenants makes o.Tenants' keys and sends a request under each, noting
// stellwerk's resident set before and after each step.
func (s *Stack) startTenants(ctx context.Context, o StackOptions, adminToken string) error {
	t := o.Tenants
	if t.Keys() == 0 {
		return nil
	}
	rss := func() string {
		m, err := readMemStatus(s.stellwerk.pid())
		if err != nil {
			return "?"
		}
		return fmt.Sprintf("%.0f MiB", float64(m.RSSKB)/1024)
	}
	before := rss()
	progress(o.Progress, "tenants: creating %d keys in %d workspaces through the admin API", t.Keys(), t.Workspaces)
	start := time.Now()
	keys, err := createTenantKeys(ctx, s.StellwerkAdmin, adminToken, t)
	if err != nil {
		return err
	}
	created, took := rss(), time.Since(start)
	progress(o.Progress, "tenants: one request with model auto under each key")
	if err := primeTenants(ctx, s, keys); err != nil {
		return err
	}
	s.TenantKeys = keys
	s.Notes = append(s.Notes, fmt.Sprintf("tenants %s: %d workspaces of %d store keys each (made with POST /admin/keys in %.1f s), "+
		"requests spread over the keys in turn; stellwerk's RSS %s before, %s with the keys made, %s after one request under each",
		t, t.Workspaces, t.KeysPer, took.Seconds(), before, created, rss()))
	return nil
}
