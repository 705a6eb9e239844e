package extproc

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/jsonscan"
	"github.com/stellwerk/stellwerk/internal/jsonw"
	"github.com/stellwerk/stellwerk/internal/meter"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// routingObject is the `routing` member stellwerk adds to non-streaming JSON
// responses: what was decided, why, and what it cost. It never contains
// prompt text or the values of findings.
type routingObject struct {
	DecisionID string `json:"decision_id"`
	Model      string `json:"model"`
	// Alias is the request's model member when it named Model by an alias
	// (omitted otherwise).
	Alias          string         `json:"alias,omitempty"`
	Provider       string         `json:"provider"`
	ProviderModel  string         `json:"provider_model"`
	Reason         string         `json:"reason"`
	Task           string         `json:"task"`
	TaskConfidence float64        `json:"task_confidence"`
	Complexity     string         `json:"complexity"`
	Language       string         `json:"language"`
	Sensitivity    string         `json:"sensitivity"`
	Risk           string         `json:"risk"`
	Residency      string         `json:"residency"`
	PII            map[string]int `json:"pii"`
	Secrets        int            `json:"secrets"`
	Injection      float64        `json:"injection_score"`
	InputTokensEst int            `json:"input_tokens_estimate"`
	// Scan is "complete", or "truncated" when a classifier cap stopped the
	// scan (ScanLimit names it) and the request was treated as restricted.
	Scan      string `json:"scan"`
	ScanLimit string `json:"scan_limit,omitempty"`
	// Unread counts the parts no detector reads, by kind (omitted when
	// there are none).
	Unread        map[string]int `json:"unread,omitempty"`
	Usage         *usage         `json:"usage,omitempty"`
	Cost          *cost          `json:"cost,omitempty"`
	Saving        *saving        `json:"saving,omitempty"`
	PolicyVersion string         `json:"policy_version"`
	PolicyFP      string         `json:"policy_fingerprint,omitempty"`
	Workspace     string         `json:"workspace"`
	Objective     string         `json:"objective"`
	Excluded      int            `json:"excluded"`
	EstimatedEUR  float64        `json:"estimated_cost_eur"`
	OverheadMS    float64        `json:"router_overhead_ms"`
	// Attempts lists each provider the request was sent to, in order; the
	// last one served it (with failover, earlier ones failed).
	Attempts []attempt `json:"attempts"`
	// Route is the named route the request took (absent when it named none).
	Route *routeInfo `json:"route,omitempty"`
	// FallbackFrom is the decided model when another one served the
	// request (failover); absent otherwise.
	FallbackFrom string `json:"fallback_from,omitempty"`
}

// routeInfo is a route's decision: the version that ran, the nodes taken
// and the split arms.
type routeInfo struct {
	Name    string   `json:"name"`
	Version int64    `json:"version"`
	Label   string   `json:"label"` // name@version, as x-stellwerk-route
	Path    []string `json:"path"`
	Arm     string   `json:"arm,omitempty"`
	// Served: target (one of the route's targets served) or fallback
	// (none could; chosen as for auto), as the audit record's route.served.
	Served string `json:"served,omitempty"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

type cost struct {
	Amount   float64 `json:"amount"`   // in the model's price currency
	Currency string  `json:"currency"` // the model's price currency
	EUR      float64 `json:"eur"`      // in the reporting currency
	Source   string  `json:"source"`   // "provider_usage": computed from the usage the provider reported
}

// saving compares the request with the baseline model.
type saving struct {
	BaselineModel string  `json:"baseline_model"`
	BaselineEUR   float64 `json:"baseline_eur"` // the same usage at the baseline's prices
	EUR           float64 `json:"eur"`          // baseline minus actual; negative when dearer
	Source        string  `json:"source"`       // provider_usage or estimate
}

// routing builds the object for a JSON answer; charge is what the answer's
// usage cost (nil: it reported none).
func (p *edge) routing(charge *meter.Charge) []byte {
	d := p.selection
	m := p.served
	c := &p.class
	ro := routingObject{
		DecisionID: p.id, Model: m.ID, Provider: m.Provider.Name, ProviderModel: m.ProviderModel, Reason: d.Reason,
		Task: c.Task, TaskConfidence: round(c.TaskConfidence, 3), Complexity: c.Complexity, Language: c.Language,
		Sensitivity: c.Sensitivity, Risk: c.Risk, Residency: m.Provider.Residency,
		PII: c.PIICounts, Secrets: len(c.Secrets), Injection: round(c.Injection.Score, 3), InputTokensEst: c.InputTokens,
		Scan: c.Scan, ScanLimit: c.ScanLimit, Unread: c.Unread,
		OverheadMS: round(float64(p.overhead)/float64(time.Millisecond), 3), Attempts: p.attempts,
	}
	if ro.Attempts == nil { // no failover: one attempt, and it answered
		ro.Attempts = []attempt{{Provider: m.Provider.Name, Model: m.ID, Outcome: "served"}}
	}
	ro.Reason = p.reason()
	if m != d.Model {
		ro.FallbackFrom = d.Model.ID
	}
	if r := p.result; r != nil {
		ro.PolicyVersion, ro.PolicyFP, ro.Workspace = r.PolicyVersion, r.ReqPolicy.Fingerprint, r.Workspace
		ro.Alias = r.Chat.Alias
		ro.Objective, ro.Excluded, ro.EstimatedEUR = r.Policy.Objective, len(r.Policy.Exclude), round(d.EstimatedCostEUR, 8)
		if o := r.Route; o != nil {
			ro.Route = &routeInfo{Name: o.Route, Version: o.Version, Label: o.Label(), Path: o.Path, Arm: o.Arm, Served: o.Served}
		}
	}
	baseline := p.baseline()
	if c := charge; c != nil {
		ro.Usage = &usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}
		ro.Cost = &cost{Amount: round(c.Amount, 8), Currency: c.Currency, EUR: round(c.EUR, 8), Source: c.Source}
		ro.Saving = savingOf(*c)
	}
	if ro.Saving == nil && p.result != nil {
		ro.Saving = savingOf(meter.Estimated(baseline, d.EstimatedCostEUR, p.result.BaselineCostEUR))
	}
	b, err := ro.AppendJSON(make([]byte, 0, 1024))
	if err != nil {
		return nil
	}
	return b
}

// AppendJSON appends the object as encoding/json writes it with HTML
// escaping off (TestRoutingObjectJSON), without reflection.
func (ro *routingObject) AppendJSON(dst []byte) ([]byte, error) {
	e := jsonw.Encoder{B: dst}
	outer := e.Open()
	e.Str("decision_id", ro.DecisionID)
	e.Str("model", ro.Model)
	e.StrOmit("alias", ro.Alias)
	e.Str("provider", ro.Provider)
	e.Str("provider_model", ro.ProviderModel)
	e.Str("reason", ro.Reason)
	e.Str("task", ro.Task)
	e.Float("task_confidence", ro.TaskConfidence)
	e.Str("complexity", ro.Complexity)
	e.Str("language", ro.Language)
	e.Str("sensitivity", ro.Sensitivity)
	e.Str("risk", ro.Risk)
	e.Str("residency", ro.Residency)
	e.IntMap("pii", ro.PII)
	e.Int("secrets", int64(ro.Secrets))
	e.Float("injection_score", ro.Injection)
	e.Int("input_tokens_estimate", int64(ro.InputTokensEst))
	e.Str("scan", ro.Scan)
	e.StrOmit("scan_limit", ro.ScanLimit)
	e.IntMapOmit("unread", ro.Unread)
	if u := ro.Usage; u != nil {
		e.Key("usage")
		o := e.Open()
		e.Int("prompt_tokens", int64(u.PromptTokens))
		e.Int("completion_tokens", int64(u.CompletionTokens))
		e.Close(o)
	}
	if c := ro.Cost; c != nil {
		e.Key("cost")
		o := e.Open()
		e.Float("amount", c.Amount)
		e.Str("currency", c.Currency)
		e.Float("eur", c.EUR)
		e.Str("source", c.Source)
		e.Close(o)
	}
	if sv := ro.Saving; sv != nil {
		e.Key("saving")
		o := e.Open()
		e.Str("baseline_model", sv.BaselineModel)
		e.Float("baseline_eur", sv.BaselineEUR)
		e.Float("eur", sv.EUR)
		e.Str("source", sv.Source)
		e.Close(o)
	}
	e.Str("policy_version", ro.PolicyVersion)
	e.StrOmit("policy_fingerprint", ro.PolicyFP)
	e.Str("workspace", ro.Workspace)
	e.Str("objective", ro.Objective)
	e.Int("excluded", int64(ro.Excluded))
	e.Float("estimated_cost_eur", ro.EstimatedEUR)
	e.Float("router_overhead_ms", ro.OverheadMS)
	e.Key("attempts")
	if ro.Attempts == nil {
		e.B = append(e.B, "null"...)
	} else {
		e.B = append(e.B, '[')
		for i := range ro.Attempts {
			a := &ro.Attempts[i]
			if i > 0 {
				e.B = append(e.B, ',')
			}
			o := e.Open()
			e.Str("provider", a.Provider)
			e.Str("model", a.Model)
			e.IntOmit("status", int64(a.Status))
			e.FloatOmit("latency_ms", a.LatencyMS)
			e.Str("outcome", a.Outcome)
			e.StrOmit("reason", a.Reason)
			e.Close(o)
		}
		e.B = append(e.B, ']')
	}
	if r := ro.Route; r != nil {
		e.Key("route")
		o := e.Open()
		e.Str("name", r.Name)
		e.Int("version", r.Version)
		e.Str("label", r.Label)
		e.Strs("path", r.Path)
		e.StrOmit("arm", r.Arm)
		e.StrOmit("served", r.Served)
		e.Close(o)
	}
	e.StrOmit("fallback_from", ro.FallbackFrom)
	e.Close(outer)
	return e.B, e.Err
}

// withRouting is the JSON object body with the routing object as its
// member "routing", the bytes sjson.SetRawBytes makes (TestWithRouting):
// appended before the closing brace, or, when the body has that member
// already, put in its place (by sjson).
func withRouting(body, ro []byte) ([]byte, error) {
	end := len(body)
	for end > 0 && isJSONSpace(body[end-1]) {
		end--
	}
	if end == 0 || body[end-1] != '}' || gjson.GetBytes(body, "routing").Exists() {
		return sjson.SetRawBytes(body, "routing", ro)
	}
	last := end - 1 // the closing brace; the member goes right before it, as sjson puts it
	inner := last
	for inner > 0 && isJSONSpace(body[inner-1]) {
		inner--
	}
	out := make([]byte, 0, last+len(ro)+12)
	out = append(out, body[:last]...)
	if body[inner-1] != '{' {
		out = append(out, ',')
	}
	out = append(out, `"routing":`...)
	out = append(out, ro...)
	return append(out, '}'), nil
}

// isObject says whether valid JSON is an object, without parsing it.
func isObject(body []byte) bool {
	for _, c := range body {
		if !isJSONSpace(c) {
			return c == '{'
		}
	}
	return false
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// cachedTokens reads the prompt tokens an OpenAI-wire provider read from
// its cache: OpenAI's prompt_tokens_details.cached_tokens, or DeepSeek's
// prompt_cache_hit_tokens (its cache hits were charged at the full input
// price).
func cachedTokens(u gjson.Result) int {
	if c := u.Get("prompt_tokens_details.cached_tokens"); c.Exists() {
		return translate.Tokens(c)
	}
	return translate.Tokens(u.Get("prompt_cache_hit_tokens"))
}

// jsonCharge is what a JSON answer's usage costs at the served model's
// prices: the request's worst case on it for counts that cannot be its
// answer (plausibleUsage; the routing object then shows what was charged,
// it had no cost), a bounded estimate for a chat answer without usage;
// false when the answer reports no usable usage otherwise.
func (p *edge) jsonCharge(body []byte) (meter.Charge, bool) {
	u, dup := usageOf(body)
	if dup {
		p.log.Warn("the provider's answer has its usage twice, or a usage count twice; charged the request's worst case on the model",
			zap.String("decision_id", p.id), zap.String("model", p.served.ID))
		return p.worstCharge(), true
	}
	if !u.IsObject() {
		return p.estimatedCharge(body)
	}
	var used meter.Usage
	switch {
	case p.endpoint == epMessages: // Anthropic's usage: cache reads and writes apart from input_tokens
		in, out := u.Get("input_tokens"), u.Get("output_tokens")
		if in.Type != gjson.Number || out.Type != gjson.Number {
			return meter.Charge{}, false
		}
		cached := translate.Tokens(u.Get("cache_read_input_tokens"))
		w5m, w1h := translate.CacheWrites(u)
		used = meter.Usage{PromptTokens: translate.Tokens(in) + cached + w5m + w1h, CompletionTokens: translate.Tokens(out),
			CachedTokens: cached, CacheWriteTokens: w5m, CacheWrite1hTokens: w1h,
			WebSearches: p.out.searches(translate.Tokens(u.Get("server_tool_use.web_search_requests")))}
		if in.Num < 0 || cached < 0 {
			used.PromptTokens = -1
		}
	case p.endpoint == epResponses && p.served.NativeResponses():
		// A native Responses answer: input_tokens, output_tokens.
		in, out, ok := translate.ResponseUsage(u)
		if !ok {
			return meter.Charge{}, false
		}
		used = meter.Usage{PromptTokens: in, CompletionTokens: out, CachedTokens: translate.Tokens(u.Get("input_tokens_details.cached_tokens"))}
	default:
		pt, ct := u.Get("prompt_tokens"), u.Get("completion_tokens")
		switch {
		case !ct.Exists() && p.endpoint == epEmbeddings:
			ct = gjson.Result{Type: gjson.Number} // embeddings' usage has no completion tokens
		case !ct.Exists():
			return p.estimatedCharge(body) // a usage object without the answer's count
		}
		if pt.Type != gjson.Number || ct.Type != gjson.Number {
			return meter.Charge{}, false
		}
		used = meter.Usage{PromptTokens: translate.Tokens(pt), CompletionTokens: translate.Tokens(ct), CachedTokens: cachedTokens(u)}
		if p.served.Provider.WireFormat == "anthropic" {
			// Translated from Anthropic's answer, which said what it
			// wrote to its cache (translate.FromAnthropicResponse).
			used.CacheWriteTokens, used.CacheWrite1hTokens = translate.CacheWrites(u)
		}
	}
	if !p.plausible(used) {
		return p.worstCharge(), true
	}
	return meter.Meter(p.served, p.baseline(), used), true
}

// usageOf is a JSON answer's usage member, read in one pass over its
// members, and whether it is ambiguous: a second usage member, or a name
// written twice within it (or within one of its objects). gjson reads the
// first of duplicate names, Python's json (the SDK) the last: the client
// saw 10,000 tokens where stellwerk charged 1 (the hostile-upstream probe).
// Such an answer is charged the request's worst case on the model, as
// usage that cannot be its answer is: refused, it would be charged
// nothing, though the provider bills it and the client could read it.
func usageOf(body []byte) (u gjson.Result, dup bool) {
	if len(body) == 0 {
		return gjson.Result{}, false
	}
	n, raw := 0, ""
	jsonscan.Members(unsafe.String(unsafe.SliceData(body), len(body)), func(k, v string) bool {
		if isName(k, "usage") {
			if n++; n == 1 {
				raw = v
			}
		}
		return true
	})
	if n == 0 {
		return gjson.Result{}, false
	}
	return gjson.Parse(raw), n > 1 || dupNames(raw, 2)
}

// isName reports whether the quoted member name k is name, written with
// escapes or not.
func isName(k, name string) bool {
	return k[1:len(k)-1] == name || strings.IndexByte(k, '\\') >= 0 && gjson.Parse(k).Str == name
}

// dupNames reports whether the object obj names a member twice, or, to
// depth levels, one of its objects does. A usage object has a dozen
// members: each is compared with those before it.
func dupNames(obj string, depth int) bool {
	var seen [24]string
	n, dup := 0, false
	jsonscan.Members(obj, func(k, v string) bool {
		if strings.IndexByte(k, '\\') >= 0 {
			k = strconv.Quote(gjson.Parse(k).Str)
		}
		for _, s := range seen[:min(n, len(seen))] {
			if s == k {
				dup = true
				return false
			}
		}
		if n < len(seen) {
			seen[n] = k
		}
		n++
		if depth > 1 && len(v) > 0 && v[0] == '{' && dupNames(v, depth-1) {
			dup = true
			return false
		}
		return true
	})
	return dup
}

// estimatedCharge is a chat answer's charge when its provider reported no
// usage (a local server, usage: null): the prompt as classified and the
// answer's text as streams without usage are estimated, marked estimated.
// It was charged at the model's worst case, up to the whole max_tokens,
// with the answer at hand (the provider-wire probe). Other APIs' answers
// without usage keep the worst case.
func (p *edge) estimatedCharge(body []byte) (meter.Charge, bool) {
	if p.endpoint != epChat {
		return meter.Charge{}, false
	}
	choices := gjson.GetBytes(body, "choices")
	if !choices.IsArray() {
		return meter.Charge{}, false
	}
	out := 0
	choices.ForEach(func(_, ch gjson.Result) bool {
		m := ch.Get("message")
		out += classify.EstimateTokens(translate.AnswerText(m.Get("content"))) + classify.EstimateTokens(m.Get("refusal").Str) +
			classify.EstimateTokens(m.Get("reasoning_content").Str) + classify.EstimateTokens(m.Get("reasoning").Str)
		m.Get("tool_calls.#.function.arguments").ForEach(func(_, a gjson.Result) bool {
			out += classify.EstimateTokens(a.Str) + 8 // a call's id, name and framing
			return true
		})
		return true
	})
	// Past what the model can write, it is no answer of the model's: the
	// provider's (a 6 MB answer was charged 3.27M output tokens on a model
	// that writes 16,384: the hostile-upstream probe).
	p.overlong = out > outputCap(p.served, p.out)
	return p.estimateCharge(meter.Usage{PromptTokens: p.promptEstimate(), CompletionTokens: out, Estimated: true}), true
}

// promptEstimate is the prompt's tokens on the served model when no
// provider counted them: the text's estimate, and its images and PDFs at
// the model's bound, as its worst case has them. Every charge without the
// provider's count reads it (a stream without usage, a client gone before
// the answer charged the text alone: the media cost-estimate helper).
func (p *edge) promptEstimate() int {
	return p.class.InputTokens + p.out.media(p.served)
}

// plausible checks a provider's usage for the served model (plausibleUsage)
// and logs one that is not.
func (p *edge) plausible(u meter.Usage) bool {
	if plausibleUsage(u, p.served, len(p.reqBody), p.out) {
		return true
	}
	p.log.Warn("the provider reported usage this answer cannot have; charged as an answer without usage",
		zap.String("decision_id", p.id), zap.String("model", p.served.ID), zap.Int("prompt_tokens", u.PromptTokens),
		zap.Int("completion_tokens", u.CompletionTokens), zap.Int("cached_tokens", u.CachedTokens),
		zap.Int("cache_write_tokens", u.CacheWriteTokens), zap.Int("cache_write_1h_tokens", u.CacheWrite1hTokens))
	return false
}

// baseline is the model savings are measured against: the catalog's
// baseline, when it serves the request's API (decision.Result.Baseline).
func (p *edge) baseline() *catalog.Model {
	if p.result != nil {
		return p.result.Baseline
	}
	return p.state.Router.Catalog.Baseline
}

// savingOf renders a charge's saving; nil without a baseline.
func savingOf(c meter.Charge) *saving {
	if c.Baseline == "" {
		return nil
	}
	return &saving{BaselineModel: c.Baseline, BaselineEUR: round(c.BaselineEUR, 8), EUR: round(c.SavingEUR, 8), Source: c.Source}
}

// reason is the decision's reason, and whether a fallback served it.
func (p *edge) reason() string {
	r := p.selection.Reason
	if p.planNote != "" {
		r += "; " + p.planNote
	}
	if p.served != p.plan0() && len(p.attempts) > 1 {
		return r + "; served by fallback after " + strconv.Itoa(len(p.attempts)-1) + " failed attempt(s)"
	}
	return r
}

// plan0 is the model the request was first sent to: the decision's, unless
// a rate limit moved it down its plan.
func (p *edge) plan0() *catalog.Model {
	if len(p.plan) > 0 {
		return p.plan[0]
	}
	return p.selection.Model
}

func round(x float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(x*p) / p
}
