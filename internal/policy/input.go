package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
)

// Input is everything the policy sees about one request (docs/policy.md).
type Input struct {
	Request   RequestFacts
	Principal auth.Principal
	Workspace config.Workspace
	Team      *config.Team
	// WorkspaceTerm, when set, is NewWorkspaceTerm(Workspace, Team) built
	// once per config instead of once per request.
	WorkspaceTerm  *WorkspaceTerm
	Classification *classify.Result
	// Budgets are the budgets the principal meets, as the ledger saw them
	// before this request (ledger.State.Budgets); nil when the edge did not
	// read them (no downgrade budget applies).
	Budgets    []ledger.BudgetState
	Candidates []Candidate
	Now        time.Time
}

// RequestFacts are the request's own fields.
type RequestFacts struct {
	Path string
	// API is the endpoint called: chat, responses, embeddings or completions.
	API            string
	Model          string
	Stream         bool
	MaxTokens      int
	Tools          bool
	ResponseFormat string
	Metadata       map[string]string
	User           string
	Headers        map[string]string
	Policy         reqpolicy.Policy
	// Route is the named route the request took; nil when it named none
	// (the input then has no request.route).
	Route *RouteFacts
}

// RouteFacts is what a route decided, for platform rules about routes
// (input.request.route).
type RouteFacts struct {
	Name    string
	Version int64
	Path    []string // node ids taken
	Targets []string // model ids (or "auto") in order of preference
	// Objective is the first auto target's objective ("" when none); the
	// shipped library uses it when the request sets no optimize.
	Objective string
}

// Candidate is one catalog model with this request's estimates: the
// request's one candidate table, which the policy reads (model, estimated
// cost, quality, health, latency) before selection reads it with the
// policy's exclusions written in.
type Candidate = decide.Candidate

// CatalogTerms holds each model's request-independent input fields, built
// once per catalog. Whole candidate sets are pooled per task, with the
// task's quality scores in place: a request takes a set, writes the values
// that differ from what the set holds (its estimated costs; a learned
// latency or a health change now and then), and gives the set back after
// evaluation. Replacing a value in an OPA object rehashes the object, so
// writing one value instead of four matters (see BenchmarkEvaluateShipped).
type CatalogTerms struct {
	id     uint64 // tells catalogs apart in memo keys
	models []*catalog.Model
	static [][][2]*ast.Term
	pools  sync.Map // task → *sync.Pool of *candidateSet
}

var catalogIDs atomic.Uint64

type candidateSet struct {
	objs []ast.Object
	held []Candidate // the values objs hold
}

// NewCatalogTerms prebuilds the static candidate fields of a catalog.
func NewCatalogTerms(cat *catalog.Catalog) *CatalogTerms {
	ct := &CatalogTerms{id: catalogIDs.Add(1), models: cat.Models()}
	for _, m := range ct.models {
		ct.static = append(ct.static, staticItems(m))
	}
	return ct
}

var (
	keyCost    = ast.StringTerm("estimated_cost_eur")
	keyQuality = ast.StringTerm("quality")
	keyHealthy = ast.StringTerm("healthy")
	keyLatency = ast.StringTerm("latency_ms")
)

func (ct *CatalogTerms) pool(task string) *sync.Pool {
	if p, ok := ct.pools.Load(task); ok {
		return p.(*sync.Pool)
	}
	p := &sync.Pool{New: func() any {
		cs := &candidateSet{}
		for i, m := range ct.models {
			c := Candidate{Model: m, Quality: m.QualityFor(task), Healthy: true, LatencyMS: m.LatencyMS}
			cs.objs = append(cs.objs, candidateObject(ct.static[i], c.EstimatedCostEUR, c.Quality, c.Healthy, c.LatencyMS))
			cs.held = append(cs.held, c)
		}
		return cs
	}}
	actual, _ := ct.pools.LoadOrStore(task, p)
	return actual.(*sync.Pool)
}

// whole reports whether cands is the whole catalog in catalog order.
func (ct *CatalogTerms) whole(cands []Candidate) bool {
	if len(cands) != len(ct.models) {
		return false
	}
	for i := range cands {
		if cands[i].Model != ct.models[i] {
			return false
		}
	}
	return true
}

// candidates returns the candidates array for in, and a release func. A
// candidate list that is not the whole catalog in catalog order is built
// fresh.
func (ct *CatalogTerms) candidates(task string, cands []Candidate) (*ast.Term, func()) {
	terms := make([]*ast.Term, len(cands))
	if !ct.whole(cands) {
		for i := range cands {
			c := &cands[i]
			terms[i] = ast.NewTerm(candidateObject(staticItems(c.Model), c.EstimatedCostEUR, c.Quality, c.Healthy, c.LatencyMS))
		}
		return ast.ArrayTerm(terms...), func() {}
	}
	pool := ct.pool(task)
	cs := pool.Get().(*candidateSet)
	for i := range cands {
		c, h, o := &cands[i], &cs.held[i], cs.objs[i]
		if c.EstimatedCostEUR != h.EstimatedCostEUR {
			o.Insert(keyCost, num(c.EstimatedCostEUR))
		}
		if c.Quality != h.Quality {
			o.Insert(keyQuality, num(c.Quality))
		}
		if c.Healthy != h.Healthy {
			o.Insert(keyHealthy, ast.BooleanTerm(c.Healthy))
		}
		if c.LatencyMS != h.LatencyMS {
			o.Insert(keyLatency, ast.IntNumberTerm(c.LatencyMS))
		}
		*h = *c
		terms[i] = ast.NewTerm(o)
	}
	// A new array each time: an array caches its elements' hashes, and the
	// objects' hashes changed.
	return ast.ArrayTerm(terms...), func() { pool.Put(cs) }
}

// candidateObject is one candidate: its static fields and the four that
// depend on the request.
func candidateObject(static [][2]*ast.Term, cost, quality float64, healthy bool, latencyMS int) ast.Object {
	items := make([][2]*ast.Term, 0, len(static)+4)
	items = append(items, static...)
	items = append(items,
		[2]*ast.Term{keyCost, num(cost)}, [2]*ast.Term{keyQuality, num(quality)},
		[2]*ast.Term{keyHealthy, ast.BooleanTerm(healthy)}, [2]*ast.Term{keyLatency, ast.IntNumberTerm(latencyMS)})
	return ast.NewObject(items...)
}

func staticItems(m *catalog.Model) [][2]*ast.Term {
	p := m.Provider
	return [][2]*ast.Term{
		item("id", ast.StringTerm(m.ID)),
		item("provider", ast.StringTerm(p.Name)),
		item("provider_model", ast.StringTerm(m.ProviderModel)),
		item("region", ast.StringTerm(p.Region)),
		item("residency", ast.StringTerm(p.Residency)),
		item("assurance_tier", ast.IntNumberTerm(m.AssuranceTier)),
		item("price", obj(
			item("input_per_mtok", num(m.InputPerMTok)),
			item("output_per_mtok", num(m.OutputPerMTok)),
			item("currency", ast.StringTerm(m.Currency)),
		)),
		item("price_eur", obj(
			item("input_per_mtok", num(eurPerMTok(m.CostEUR(1e6, 0)))),
			item("output_per_mtok", num(eurPerMTok(m.CostEUR(0, 1e6)))),
		)),
		item("context_window", ast.IntNumberTerm(m.ContextWindow)),
		item("max_output_tokens", ast.IntNumberTerm(m.MaxOutputTokens)),
		item("capabilities", obj(
			item("tools", ast.BooleanTerm(m.Tools)),
			item("vision", ast.BooleanTerm(m.Vision)),
			item("audio", ast.BooleanTerm(m.Audio)),
			item("files", ast.BooleanTerm(m.Files)),
			item("json_mode", ast.BooleanTerm(m.JSONMode)),
			item("streaming", ast.BooleanTerm(m.Streaming)),
			item("chat", ast.BooleanTerm(m.Chat)),
			item("responses", ast.BooleanTerm(m.NativeResponses())),
			item("embeddings", ast.BooleanTerm(m.Embeddings)),
			item("completions", ast.BooleanTerm(m.Completions)),
		)),
	}
}

// eurPerMTok rounds a converted list price to a billionth of a euro, so a
// price of 2.3 EUR is not 2.3000000000000003 next to a ceiling of 2.3.
func eurPerMTok(eur float64) float64 { return math.Round(eur*1e9) / 1e9 }

// partNames are the input's request-level parts, in the order of the
// document; candidates come last.
var partNames = [...]string{"request", "principal", "workspace", "classification", "budget", "budgets", "time"}

// The indexes of parts in partNames that the memo treats apart.
const (
	requestPart        = 0
	workspacePart      = 2
	classificationPart = 3
)

// inputParts are an input's request-level parts, built when first needed.
type inputParts [len(partNames)]*ast.Term

func (p *inputParts) get(in *Input, i int) *ast.Term {
	if p[i] != nil {
		return p[i]
	}
	switch partNames[i] {
	case "request":
		p[i] = in.requestTerm()
	case "principal":
		p[i] = principalTerm(in.Principal)
	case "workspace":
		if in.WorkspaceTerm != nil {
			p[i] = in.WorkspaceTerm.term
		} else {
			p[i] = workspaceTerm(in.Workspace, in.Team)
		}
	case "classification":
		p[i] = classificationTerm(in.Classification)
	case "budget":
		p[i] = budgetUnlimited
		if len(in.Budgets) > 0 {
			p[i] = budgetLimited
		}
	case "budgets":
		p[i] = budgetsTerm(in.Budgets)
	case "time":
		p[i] = timeTerm(in.Now)
	}
	return p[i]
}

func (in *Input) task() string {
	if in.Classification != nil {
		return in.Classification.Task
	}
	return ""
}

// Value builds the input as an OPA value, without going through JSON. The
// value may share pooled parts: call release once it is no longer used
// (after Eval), and do not use it afterwards.
func (in *Input) Value(ct *CatalogTerms) (v ast.Value, release func()) {
	var parts inputParts
	return in.value(ct, &parts)
}

func (in *Input) value(ct *CatalogTerms, parts *inputParts) (ast.Value, func()) {
	cands, release := ct.candidates(in.task(), in.Candidates)
	items := make([][2]*ast.Term, 0, len(partNames)+1)
	for i, name := range partNames {
		items = append(items, item(name, parts.get(in, i)))
	}
	return ast.NewObject(append(items, item("candidates", cands))...), release
}

// requestKeys are the members of input.request, in the order the term
// lists them; requestField builds one, so a memo key builds only what the
// policy reads (memo.key) and the whole term is made of the same fields.
var requestKeys = [...]string{"path", "api", "model", "stream", "max_tokens", "tools", "response_format",
	"metadata", "user", "headers", "policy", "policy_fingerprint", "route"}

func (in *Input) requestTerm() *ast.Term {
	items := make([][2]*ast.Term, 0, len(requestKeys))
	for _, k := range requestKeys {
		if t := in.requestField(k); t != nil {
			items = append(items, item(k, t))
		}
	}
	return obj(items...)
}

// requestField is the member k of input.request; nil when it is absent
// (route, when the request named none).
func (in *Input) requestField(k string) *ast.Term {
	r := &in.Request
	switch k {
	case "path":
		return ast.StringTerm(r.Path)
	case "api":
		return ast.StringTerm(r.API)
	case "model":
		return ast.StringTerm(r.Model)
	case "stream":
		return ast.BooleanTerm(r.Stream)
	case "max_tokens":
		return ast.IntNumberTerm(r.MaxTokens)
	case "tools":
		return ast.BooleanTerm(r.Tools)
	case "response_format":
		return ast.StringTerm(r.ResponseFormat)
	case "metadata":
		return stringMapTerm(r.Metadata)
	case "user":
		return ast.StringTerm(r.User)
	case "headers":
		return stringMapTerm(r.Headers)
	case "policy":
		return requestPolicyTerm(r.Policy)
	case "policy_fingerprint":
		return ast.StringTerm(r.Policy.Fingerprint)
	case "route":
		if r.Route != nil {
			return routeTerm(r.Route)
		}
	}
	return nil
}

// routeTerm is request.route, present only when the request named a route.
func routeTerm(rf *RouteFacts) *ast.Term {
	strs := func(ss []string) *ast.Term {
		ts := make([]*ast.Term, len(ss))
		for i, s := range ss {
			ts[i] = ast.StringTerm(s)
		}
		return ast.ArrayTerm(ts...)
	}
	return obj(
		item("name", ast.StringTerm(rf.Name)),
		item("version", ast.IntNumberTerm(int(rf.Version))),
		item("path", strs(rf.Path)),
		item("targets", strs(rf.Targets)),
		item("objective", ast.StringTerm(rf.Objective)),
	)
}

func requestPolicyTerm(p reqpolicy.Policy) *ast.Term {
	var items [][2]*ast.Term
	if p.Optimize != "" {
		items = append(items, item("optimize", ast.StringTerm(p.Optimize)))
	}
	if p.Residency != "" {
		items = append(items, item("residency", ast.StringTerm(p.Residency)))
	}
	if p.MaxRisk != "" {
		items = append(items, item("max_risk", ast.StringTerm(p.MaxRisk)))
	}
	if p.MaxCost > 0 {
		items = append(items, item("max_cost", num(p.MaxCost)))
	}
	if p.SLAMS > 0 {
		items = append(items, item("sla_ms", ast.IntNumberTerm(p.SLAMS)))
	}
	if p.MinQuality != nil {
		items = append(items, item("min_quality", num(*p.MinQuality)))
	}
	if len(p.Allow) > 0 {
		items = append(items, item("allow", stringsTerm(p.Allow)))
	}
	if len(p.Deny) > 0 {
		items = append(items, item("deny", stringsTerm(p.Deny)))
	}
	if p.Fallback != nil {
		items = append(items, item("fallback", ast.BooleanTerm(*p.Fallback)))
	}
	return obj(items...)
}

func principalTerm(p auth.Principal) *ast.Term {
	return obj(
		item("authenticated", ast.BooleanTerm(p.Authenticated)),
		item("key_id", ast.StringTerm(p.KeyID)),
		item("workspace", ast.StringTerm(p.Workspace)),
		item("team", ast.StringTerm(p.Team)),
		item("user", ast.StringTerm(p.User)),
		item("roles", stringsTerm(p.Roles)),
	)
}

// WorkspaceTerm is a workspace's part of the input (with its team's), for
// a caller that keeps it per config: it is the same for every request of
// the workspace and team, and building it was a fifth of a memo hit's cost.
// It also keeps that part's memo key (the encoding of what the policy
// reads of it) for the policy version it was last used with.
type WorkspaceTerm struct {
	term *ast.Term
	key  atomic.Pointer[workspaceKey]
	// nameless is the key without the name (share.go)
	nameless atomic.Pointer[workspaceKey]
}

type workspaceKey struct {
	memo *memo
	b    []byte
}

// NewWorkspaceTerm builds the workspace's and team's part of the input.
func NewWorkspaceTerm(w config.Workspace, t *config.Team) *WorkspaceTerm {
	return &WorkspaceTerm{term: workspaceTerm(w, t)}
}

// memoKey is encode(p, the term) under memo m, computed once per m and
// form (with the name or without, share.go).
func (wt *WorkspaceTerm) memoKey(m *memo, p *paths, nameless bool) []byte {
	c := &wt.key
	if nameless {
		c = &wt.nameless
	}
	if k := c.Load(); k != nil && k.memo == m {
		return k.b
	}
	b := encode(nil, p, wt.term.Value)
	c.Store(&workspaceKey{memo: m, b: b})
	return b
}

func workspaceTerm(w config.Workspace, t *config.Team) *ast.Term {
	tiers := make([][2]*ast.Term, 0, len(w.RiskTiers))
	for k, v := range w.RiskTiers {
		tiers = append(tiers, item(k, ast.IntNumberTerm(v)))
	}
	team := ast.NullTerm()
	if t != nil {
		team = obj(item("name", ast.StringTerm(t.Name)), item("allow", stringsTerm(t.Allow)), item("deny", stringsTerm(t.Deny)))
	}
	return obj(
		item("name", ast.StringTerm(w.Name)),
		item("residency", ast.StringTerm(w.Residency)),
		item("sensitive_residency", ast.StringTerm(w.SensitiveResidency)),
		item("unread_sensitive", stringsTerm(w.UnreadSensitive)),
		item("objective", ast.StringTerm(w.Objective)),
		item("quality_floor", num(w.QualityFloor)),
		item("max_cost_eur", num(w.MaxCostEUR)),
		item("secrets", ast.StringTerm(w.Secrets)),
		item("injection", ast.StringTerm(w.Injection)),
		item("injection_threshold", num(w.InjectionThreshold)),
		item("injection_min_tier", ast.IntNumberTerm(w.InjectionMinTier)),
		item("risk_tiers", obj(tiers...)),
		item("allow", stringsTerm(w.Allow)),
		item("deny", stringsTerm(w.Deny)),
		item("allow_loosening", ast.BooleanTerm(w.AllowLoosening)),
		item("pinned_fallback", ast.BooleanTerm(w.PinnedFallback)),
		[2]*ast.Term{keyDowngradeFrom, downgradeFromTerm(w.DowngradeFrom)},
		[2]*ast.Term{keyDowngradeMaxPrice, downgradePriceTerm(w.DowngradeMaxPrice)},
		item("team", team),
	)
}

// classificationKeys are the members of input.classification, built one
// at a time by classificationField (as requestKeys).
var classificationKeys = [...]string{"task", "task_confidence", "complexity", "language", "pii_types", "pii_counts",
	"secret_types", "secret_count", "injection", "sensitivity", "sensitivity_rule", "risk", "risk_rule",
	"input_tokens", "scan", "scan_limit", "terms", "unread"}

// unclassified is what the policy sees of a request without a classification.
var unclassified = &classify.Result{Task: "chat", Complexity: "low", Language: "unknown", Sensitivity: "public", Risk: "low", Scan: classify.ScanComplete}

func classificationTerm(c *classify.Result) *ast.Term {
	items := make([][2]*ast.Term, len(classificationKeys))
	for i, k := range classificationKeys {
		items[i] = item(k, classificationField(c, k))
	}
	return obj(items...)
}

// classificationField is the member k of input.classification.
func classificationField(c *classify.Result, k string) *ast.Term {
	if c == nil {
		c = unclassified
	}
	switch k {
	case "task":
		return ast.StringTerm(c.Task)
	case "task_confidence":
		return num(c.TaskConfidence)
	case "complexity":
		return ast.StringTerm(c.Complexity)
	case "language":
		return ast.StringTerm(c.Language)
	case "pii_types":
		piiTypes := make([]string, 0, len(c.PIICounts))
		for t := range c.PIICounts {
			piiTypes = append(piiTypes, t)
		}
		sort.Strings(piiTypes)
		return stringsTerm(piiTypes)
	case "pii_counts":
		counts := make([][2]*ast.Term, 0, len(c.PIICounts))
		for t, n := range c.PIICounts {
			counts = append(counts, item(t, ast.IntNumberTerm(n)))
		}
		return obj(counts...)
	case "secret_types":
		var secretTypes []string
		for _, s := range c.Secrets {
			secretTypes = append(secretTypes, s.Type)
		}
		sort.Strings(secretTypes)
		return stringsTerm(compact(secretTypes))
	case "secret_count":
		return ast.IntNumberTerm(len(c.Secrets))
	case "injection":
		return obj(item("score", num(InjectionScore(c.Injection.Score))), item("detected", ast.BooleanTerm(c.Injection.Detected)))
	case "sensitivity":
		return ast.StringTerm(c.Sensitivity)
	case "sensitivity_rule":
		return ast.StringTerm(c.SensitivityRule)
	case "risk":
		return ast.StringTerm(c.Risk)
	case "risk_rule":
		return ast.StringTerm(c.RiskRule)
	case "input_tokens":
		return ast.IntNumberTerm(c.InputTokens)
	case "scan":
		return ast.StringTerm(c.Scan)
	case "scan_limit":
		return ast.StringTerm(c.ScanLimit)
	case "unread":
		if len(c.Unread) == 0 {
			return noUnread
		}
		return unreadTerm(c.Unread)
	case "terms":
		termCounts := make([][2]*ast.Term, len(c.Terms))
		for i, t := range c.Terms {
			termCounts[i] = item(t.Name, obj(item("count", ast.IntNumberTerm(t.Count))))
		}
		return obj(termCounts...)
	}
	return nil
}

// noUnread is input.classification.unread of a request that sends nothing
// the detectors cannot read (most): every kind 0, one shared term.
var noUnread = unreadTerm(nil)

// unreadTerm is input.classification.unread: every kind with its count.
func unreadTerm(m map[string]int) *ast.Term {
	items := make([][2]*ast.Term, len(classify.UnreadKinds))
	for i, k := range classify.UnreadKinds {
		items[i] = item(k, ast.IntNumberTerm(m[k]))
	}
	return obj(items...)
}

// The workspace's downgrade settings are shared terms in the common cases
// (the defaults, and either mode), so they add no allocation per request.
var (
	keyDowngradeFrom     = ast.StringTerm("downgrade_from")
	keyDowngradeMaxPrice = ast.StringTerm("downgrade_max_price")
	downgradeFroms       = map[string]*ast.Term{"exceeded": ast.StringTerm("exceeded"), "warn": ast.StringTerm("warn")}
	noDowngradePrice     = downgradePriceObj(config.DowngradePrice{})
)

func downgradeFromTerm(s string) *ast.Term {
	if t := downgradeFroms[s]; t != nil {
		return t
	}
	return ast.StringTerm(s)
}

func downgradePriceTerm(p config.DowngradePrice) *ast.Term {
	if p == (config.DowngradePrice{}) {
		return noDowngradePrice
	}
	return downgradePriceObj(p)
}

func downgradePriceObj(p config.DowngradePrice) *ast.Term {
	return obj(item("input_per_mtok", num(p.InputPerMTok)), item("output_per_mtok", num(p.OutputPerMTok)))
}

// The budget parts of an input without budgets are shared: a request that
// meets no downgrade budget builds nothing for them.
var (
	budgetUnlimited = obj(item("limited", ast.BooleanTerm(false)))
	budgetLimited   = obj(item("limited", ast.BooleanTerm(true)))
	noBudgets       = ast.ArrayTerm()
)

// Keys of a budget's object, shared by every request.
var (
	keyName     = ast.StringTerm("name")
	keyScope    = ast.StringTerm("scope")
	keySubject  = ast.StringTerm("subject")
	keyPeriod   = ast.StringTerm("period")
	keyLimit    = ast.StringTerm("limit_eur")
	keyUsed     = ast.StringTerm("used_eur")
	keyReserved = ast.StringTerm("reserved_eur")
	keyRatio    = ast.StringTerm("ratio")
	keyWarn     = ast.StringTerm("warn")
	keyExceeded = ast.StringTerm("exceeded")
	keyAction   = ast.StringTerm("action")
	actionBlock = ast.StringTerm("block")
	actionDown  = ast.StringTerm("downgrade")
	termTrue    = ast.BooleanTerm(true)
	termFalse   = ast.BooleanTerm(false)
	scopeTerms  [ledger.ScopeModel + 1]*ast.Term
	periodTerms [ledger.PeriodMonth + 1]*ast.Term
)

func init() {
	for s := range scopeTerms {
		scopeTerms[s] = ast.StringTerm(ledger.Scope(s).String())
	}
	for p := range periodTerms {
		periodTerms[p] = ast.StringTerm(ledger.Period(p).String())
	}
}

func boolTerm(b bool) *ast.Term {
	if b {
		return termTrue
	}
	return termFalse
}

// enumTerm is a shared term for a scope or period name.
func enumTerm[E ledger.Scope | ledger.Period](terms []*ast.Term, e E) *ast.Term {
	if int(e) < len(terms) {
		return terms[e]
	}
	return ast.StringTerm(fmt.Sprint(e))
}

// budgetsTerm is the budgets array: one object per budget, in the ledger's
// order (configured budgets, then the key's own).
func budgetsTerm(bs []ledger.BudgetState) *ast.Term {
	if len(bs) == 0 {
		return noBudgets
	}
	ts := make([]*ast.Term, len(bs))
	for i := range bs {
		b := &bs[i]
		action := actionBlock
		if b.Downgrade {
			action = actionDown
		}
		ts[i] = ast.NewTerm(ast.NewObject(
			[2]*ast.Term{keyName, ast.StringTerm(b.Name)},
			[2]*ast.Term{keyScope, enumTerm(scopeTerms[:], b.Scope)},
			[2]*ast.Term{keySubject, ast.StringTerm(b.Subject)},
			[2]*ast.Term{keyPeriod, enumTerm(periodTerms[:], b.Period)},
			[2]*ast.Term{keyLimit, num(b.Limit.EUR())},
			[2]*ast.Term{keyUsed, num(b.Used.EUR())},
			[2]*ast.Term{keyReserved, num(b.Reserved.EUR())},
			[2]*ast.Term{keyRatio, num(b.Ratio)},
			[2]*ast.Term{keyWarn, boolTerm(b.Warn)},
			[2]*ast.Term{keyExceeded, boolTerm(b.Exceeded)},
			[2]*ast.Term{keyAction, action},
		))
	}
	return ast.ArrayTerm(ts...)
}

func timeTerm(t time.Time) *ast.Term {
	t = t.UTC()
	return obj(
		item("unix", ast.IntNumberTerm(int(t.Unix()))),
		item("rfc3339", ast.StringTerm(t.Format(time.RFC3339))),
		item("weekday", ast.StringTerm(t.Weekday().String())),
		item("hour", ast.IntNumberTerm(t.Hour())),
	)
}

func item(k string, v *ast.Term) [2]*ast.Term { return [2]*ast.Term{ast.StringTerm(k), v} }

func obj(items ...[2]*ast.Term) *ast.Term { return ast.NewTerm(ast.NewObject(items...)) }

// InjectionScore is the injection score as the policy sees it: rounded to
// 0.01. The classifier's score is a probability no threshold needs finer;
// rounded, a request's score is one of 101 values, so the decision memo
// serves requests that differ only in the last digits of their score
// instead of evaluating each of them (docs/policy.md).
func InjectionScore(s float64) float64 { return math.Round(s*100) / 100 }

func num(f float64) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatFloat(f, 'g', -1, 64)))
}

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}

func stringMapTerm(m map[string]string) *ast.Term {
	items := make([][2]*ast.Term, 0, len(m))
	for k, v := range m {
		items = append(items, item(k, ast.StringTerm(v)))
	}
	return obj(items...)
}

func compact(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// SampleInput is a small, complete input used to check a policy's decision
// shape at load time.
func SampleInput() ast.Value {
	v, _ := sampleInput(map[string]string{}) // not released: the sample is kept
	return v
}

// sampleInput is the sample with the request's metadata, and the function
// that releases its pooled parts.
func sampleInput(metadata map[string]string) (ast.Value, func()) {
	in, ct := sampleFacts(metadata)
	return in.Value(ct)
}

// sampleFacts is the sample input's facts and catalog terms.
func sampleFacts(metadata map[string]string) (*Input, *CatalogTerms) {
	cat := sampleCatalog()
	in := &Input{
		Request:        RequestFacts{Path: "/v1/chat/completions", API: "chat", Model: "auto", Metadata: metadata, Headers: map[string]string{}},
		Principal:      auth.Principal{Workspace: auth.DefaultWorkspace, Roles: []string{}},
		Workspace:      defaultWorkspace(),
		Classification: &classify.Result{Task: "chat", Complexity: "low", Language: "en", Sensitivity: "public", Risk: "low", PIICounts: map[string]int{}, Scan: classify.ScanComplete},
		Now:            time.Unix(0, 0),
	}
	for _, m := range cat.Models() {
		in.Candidates = append(in.Candidates, Candidate{Model: m, Quality: 0.5, Healthy: true, LatencyMS: m.LatencyMS})
	}
	return in, NewCatalogTerms(cat)
}

func defaultWorkspace() config.Workspace {
	c := &config.Config{}
	c.ApplyDefaults()
	return c.Workspaces[0]
}

func sampleCatalog() *catalog.Catalog {
	c := &config.Config{
		Routing:   config.Routing{DefaultModel: "sample-eu"},
		Providers: []config.Provider{{Name: "eu", BaseURL: "http://127.0.0.1:1/v1", Residency: "eu"}, {Name: "us", BaseURL: "http://127.0.0.1:2/v1", Residency: "us"}},
		Models:    []config.Model{{ID: "sample-eu", Provider: "eu", ContextWindow: 8000}, {ID: "sample-us", Provider: "us", ContextWindow: 8000}},
	}
	c.ApplyDefaults()
	cat, err := catalog.New(c, catalog.Env{Getenv: func(string) string { return "" }})
	if err != nil {
		panic(err) // a constant config: cannot fail
	}
	return cat
}
