// Package decide chooses the model for a request from the candidates the
// policy left, and explains the choice. It is pure: the same candidates,
// classification and policy decision give the same result.
package decide

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/catalog"
)

// Auto is the model name that asks stellwerk to choose.
const Auto = "auto"

// PinnedReason is the reason of a selection that serves the model the
// request named.
const PinnedReason = "pinned by request"

// Candidate is one model with this request's estimates and the policy's
// verdict on it.
type Candidate struct {
	Model            *catalog.Model
	EstimatedCostEUR float64
	Quality          float64 // for the request's task
	LatencyMS        int
	Healthy          bool
	Excluded         string // the policy's reason, "" when allowed
	// Unsupported says why requests cannot be sent to it yet ("" when they can).
	Unsupported string
	// MediaTokens are the request's images and counted PDF pages at this
	// model's image_tokens: they take its context window as the text does
	// (60 images priced at 162,000 tokens went to an 8,192-token model).
	MediaTokens int
}

// Needs are what the request requires of a model.
type Needs struct {
	Tools, JSONMode, Vision, Streaming bool
	// Audio and Files: the request sends input_audio or file parts (a
	// PDF, a document), which a model reads only with the capability.
	Audio, Files bool
	// InputTokens and OutputTokens are what one answer needs of the
	// context window: the prompt's text (a candidate adds its
	// MediaTokens) and one choice's output as the client bounds it, which
	// each model takes at most to its max_output_tokens, as the provider
	// is sent it (a max_tokens of 130,000 was refused a 128,000 window
	// whose model is sent 16,384).
	InputTokens, OutputTokens int
	// OutputUncapped holds the window to the client's output bound
	// whatever the model's limit: a replay of a decision made so.
	OutputUncapped bool
}

// Input is everything selection reads.
type Input struct {
	Asked string // the request's model field
	Task  string
	// Params name the request's input and its output bound as the client
	// sent them, for its errors: messages and max_tokens (the default),
	// input and max_output_tokens (Responses), prompt (completions).
	Params     [2]string
	Candidates []Candidate
	// Hidden is how many candidates the caller may not see (its access
	// lists, its key's models): the reason's count of models leaves them
	// out, as /v1/models does (the policy-author probe read "1 of 6
	// models eligible" with 2 models listed).
	Hidden       int
	Needs        Needs
	Objective    string  // cost, latency, accuracy, balanced
	QualityFloor float64 // from the policy decision
	// RelativeQuality, when > 0, also requires a model's quality for the
	// task to be at least this share of the best eligible model's.
	RelativeQuality float64
	MaxCostEUR      *float64 // from the policy decision
	SLAMS           int      // from the per-request policy, 0 for none
	Default         *catalog.Model
	// Constraint names the strongest hard constraint in force, for the
	// reason line (e.g. "eu residency").
	Constraint string
	// NoFallback leaves the decision without fallbacks: the chosen model
	// or nothing (a pinned model, unless the request or its workspace
	// opted in; see FallbackAllowed).
	NoFallback bool
	// SameModelFallback keeps to fallbacks that serve the chosen model's
	// provider model (the same model at another provider or region):
	// embeddings, whose vectors another model puts in another space.
	SameModelFallback bool
}

// FallbackAllowed says whether a request may be answered by a model other
// than the one decided when that model's provider fails: its policy's
// fallback when set, otherwise always for "auto" and a named route, and
// for a pinned model only when its workspace sets pinned_fallback. A
// pinned model is the caller's explicit choice; answering with another
// one unasked would surprise them (docs/failover.md).
func FallbackAllowed(asked string, requestFallback *bool, workspacePinned bool) bool {
	if requestFallback != nil {
		return *requestFallback
	}
	if asked == Auto || strings.HasPrefix(asked, "route:") {
		return true
	}
	return workspacePinned
}

// Verdict is one candidate's line in the explanation.
type Verdict struct {
	ID               string  `json:"id"`
	Provider         string  `json:"provider"`
	Residency        string  `json:"residency"`
	Verdict          string  `json:"verdict"` // chosen, eligible, excluded (policy), rejected (requirements)
	Reason           string  `json:"reason"`
	EstimatedCostEUR float64 `json:"estimated_cost_eur"`
	Quality          float64 `json:"quality"`
	LatencyMS        int     `json:"latency_ms"`
	// Rank is the eligible candidate's place in the objective's order (1:
	// first), 0 for the others. Score is the balanced objective's score
	// (quality, less 0.3 × cost and 0.1 × latency relative to the dearest
	// and slowest eligible model, plus 0.25 for the workspace default),
	// set when that objective ranked.
	Rank  int     `json:"rank,omitempty"`
	Score float64 `json:"score,omitempty"`
}

// Selection is what selection chose for one request (Decide): the model,
// its fallbacks and the verdict of every candidate. The policy's own
// outcome is policy.Decision; the whole pipeline's is decision.Result.
type Selection struct {
	Model            *catalog.Model
	Reason           string
	EstimatedCostEUR float64
	// Fallbacks are the next eligible models in order, other providers
	// first; none when the request may not fail over (Input.NoFallback).
	Fallbacks []*catalog.Model
	// cands is the candidate table selection read (the caller's; nothing
	// changes it afterwards) and lines each candidate's outcome, in its
	// order: the verdict table (Len, Line, AppendReason, Table) is made
	// from both when it is read, not on the request path.
	cands []Candidate
	lines []line
	task  string
}

// line is one candidate's outcome: its verdict, its place in the ranking
// (eligible ones), the balanced score, and why a requirement rejected it.
type line struct {
	verdict uint8
	rank    int32
	score   float64
	rej     rejection
}

// Verdicts, as Verdict.Verdict names them.
const (
	vEligible = iota
	vExcluded
	vRejected
	vChosen
)

var verdictNames = [...]string{vEligible: "eligible", vExcluded: "excluded", vRejected: "rejected", vChosen: "chosen"}

// rejection records why a requirement rejected a candidate, unformatted.
type rejection struct {
	kind uint8
	a, b float64
}

const (
	rejNone = iota
	rejUnsupported
	rejUnhealthy
	rejTools
	rejJSON
	rejVision
	rejAudio
	rejFiles
	rejStreaming
	rejContext
	rejCost
	rejLatency
	rejQuality
	rejRelative
)

// Len is the number of candidates the decision weighed.
func (d *Selection) Len() int { return len(d.lines) }

// Line is candidate i's verdict with its Reason left empty (AppendReason
// writes it).
func (d *Selection) Line(i int) Verdict {
	c, l := &d.cands[i], &d.lines[i]
	return Verdict{ID: c.Model.ID, Provider: c.Model.Provider.Name, Residency: c.Model.Provider.Residency,
		Verdict: verdictNames[l.verdict], EstimatedCostEUR: c.EstimatedCostEUR, Quality: c.Quality, LatencyMS: c.LatencyMS,
		Rank: int(l.rank), Score: l.score}
}

// Table returns every candidate's verdict with its reason, for explain,
// errors and tests: a new slice each call.
func (d *Selection) Table() []Verdict {
	vs := make([]Verdict, len(d.lines))
	for i := range vs {
		vs[i] = d.Line(i)
		vs[i].Reason = d.LineReason(i)
	}
	return vs
}

// LineReason is candidate i's reason, as Table gives it.
func (d *Selection) LineReason(i int) string {
	s, rej := d.reasonOf(i)
	if rej != nil {
		return rej.format(d.task)
	}
	return s
}

// AppendReason appends candidate i's reason, as Table gives it, to dst. It
// only reads the decision, so the audit writer formats the reasons into
// the record's bytes and the request path formats none.
func (d *Selection) AppendReason(dst []byte, i int) []byte {
	s, rej := d.reasonOf(i)
	if rej != nil {
		return rej.appendTo(dst, d.task)
	}
	return append(dst, s...)
}

// reasonOf is candidate i's reason: the decision's for the chosen one, the
// policy's for an excluded one, why stellwerk cannot send it, or (rej) the
// requirement that rejected it, still to be formatted.
func (d *Selection) reasonOf(i int) (s string, rej *rejection) {
	switch l := &d.lines[i]; l.verdict {
	case vChosen:
		return d.Reason, nil
	case vExcluded:
		return d.cands[i].Excluded, nil
	case vRejected:
		if u := d.cands[i].Unsupported; u != "" {
			return u, nil
		}
		return "", &l.rej
	}
	return "", nil
}

// fixedReasons are the reasons that name no figure.
var fixedReasons = [...]string{
	rejUnhealthy: "provider in cooldown after failures",
	rejTools:     "capability: the request uses tools",
	rejJSON:      "capability: the request asks for JSON output",
	rejVision:    "capability: the request contains images",
	rejAudio:     "capability: the request contains audio",
	rejFiles:     "capability: the request contains files",
	rejStreaming: "capability: the request streams",
}

func (r rejection) format(task string) string {
	if int(r.kind) < len(fixedReasons) {
		return fixedReasons[r.kind] // "" for rejNone
	}
	return string(r.appendTo(make([]byte, 0, 64+len(task)), task))
}

func (r rejection) appendTo(b []byte, task string) []byte {
	if int(r.kind) < len(fixedReasons) {
		return append(b, fixedReasons[r.kind]...)
	}
	switch r.kind {
	case rejContext:
		b = strconv.AppendInt(append(b, "context: needs about "...), int64(int(r.a)), 10)
		return strconv.AppendInt(append(b, " tokens, window is "...), int64(int(r.b)), 10)
	case rejCost:
		b = strconv.AppendFloat(append(b, "cost: estimated "...), r.a, 'f', 6, 64)
		return append(strconv.AppendFloat(append(b, " EUR exceeds the limit of "...), r.b, 'f', 6, 64), " EUR"...)
	case rejLatency:
		b = strconv.AppendInt(append(b, "latency: "...), int64(int(r.a)), 10)
		return strconv.AppendInt(append(b, " ms is over the request's sla_ms "...), int64(int(r.b)), 10)
	case rejQuality:
		b = appendHundredths(append(b, "quality: "...), r.a)
		return appendHundredths(append(append(append(b, " for "...), task...), " is below the floor "...), r.b)
	case rejRelative:
		b = appendHundredths(append(b, "quality: "...), r.a)
		b = strconv.AppendFloat(append(append(append(b, " for "...), task...), " is below "...), 100*r.b, 'f', 0, 64)
		return append(b, "% of the best eligible model"...)
	}
	return b
}

// appendHundredths appends f as strconv.AppendFloat(b, f, 'f', 2, 64) does
// (TestRejectionFormat, TestHundredths): most of a decision's reasons are
// "quality: 0.68 …", and the audit writer formats every one of them. For
// 0 ≤ f < 1e6, f·100 is within 10⁻⁸ of the exact product, so unless it is
// that close to a half the nearest integer to it is the exact product's,
// which is what strconv rounds to; a near-half (0.125, 2.675) goes to
// strconv, which rounds the exact binary value half to even.
func appendHundredths(b []byte, f float64) []byte {
	p := f * 100
	if !(f >= 0 && f < 1e6) || math.Signbit(f) || math.Abs(p-math.Floor(p)-0.5) < 1e-6 {
		return strconv.AppendFloat(b, f, 'f', 2, 64)
	}
	k := uint64(math.Round(p))
	b = strconv.AppendUint(b, k/100, 10)
	return append(b, '.', byte('0'+k/10%10), byte('0'+k%10))
}

// Decide filters the candidates by what the request needs and picks one.
func Decide(in Input) (Selection, error) {
	lines := make([]line, len(in.Candidates))
	eligible := make([]int, 0, len(in.Candidates))
	var pinned = -1
	for i := range in.Candidates {
		c := &in.Candidates[i]
		switch {
		case c.Excluded != "":
			lines[i].verdict = vExcluded
		case c.Unsupported != "":
			lines[i].verdict = vRejected
		default:
			if r := in.reject(c); r.kind != rejNone {
				lines[i] = line{verdict: vRejected, rej: r}
			} else {
				eligible = append(eligible, i) // vEligible
			}
		}
		if c.Model.ID == in.Asked {
			pinned = i
		}
	}
	if in.RelativeQuality > 0 && len(eligible) > 0 {
		best := 0.0
		for _, i := range eligible {
			best = max(best, in.Candidates[i].Quality)
		}
		floor := in.RelativeQuality * best
		kept := eligible[:0]
		for _, i := range eligible {
			if in.Candidates[i].Quality < floor {
				lines[i] = line{verdict: vRejected, rej: rejection{kind: rejRelative, a: in.Candidates[i].Quality, b: in.RelativeQuality}}
				continue
			}
			kept = append(kept, i)
		}
		eligible = kept
	}
	d := Selection{cands: in.Candidates, lines: lines, task: in.Task}

	var choice int
	switch {
	case in.Asked == Auto:
		if len(eligible) == 0 {
			if e := in.tooLong(); e != nil {
				return d, e
			}
			e := apierr.Unavailable("no_eligible_model", "no model may serve this request: %s", summarize(d.Table()))
			// Only a provider's health changes by itself in the seconds
			// an SDK waits to retry.
			e.Final = !slices.ContainsFunc(lines, func(l line) bool { return l.verdict == vRejected && l.rej.kind == rejUnhealthy })
			return d, e
		}
		order := in.rank(eligible, lines)
		choice = order[0]
		d.Reason = in.reason(choice, len(eligible), len(in.Candidates)-in.Hidden)
		d.Fallbacks = fallbacks(in.Candidates, choice, order[1:])
	case strings.HasPrefix(in.Asked, "route:"):
		return d, apierr.NotFound("route_not_found", "model", "named routes are not configured; use \"auto\" or a model id")
	case pinned < 0:
		return d, apierr.NotFound("model_not_found", "model", "the model %q does not exist or is not available to you; available: %s", apierr.Truncate(in.Asked, 128), strings.Join(ids(in.Candidates), ", "))
	default:
		choice = pinned
		switch id := in.Candidates[pinned].Model.ID; lines[pinned].verdict {
		case vExcluded:
			return d, apierr.Denied("model_not_allowed", "model", "the model %q is not allowed for this request: %s", id, d.LineReason(pinned))
		case vRejected:
			if lines[pinned].rej.kind == rejContext {
				// OpenAI's code for it, as for auto: a client checking
				// e.code == "context_length_exceeded" meets it on a pinned
				// model too (a helper's finding).
				c := &in.Candidates[pinned]
				e := apierr.Invalid("context_length_exceeded", in.contextParam(in.Needs.InputTokens+c.MediaTokens, c.Model.ContextWindow),
					"the model %q cannot serve this request: %s", id, d.LineReason(pinned))
				e.Final = true
				return d, e
			}
			return d, apierr.Invalid("model_unsuitable", "model", "the model %q cannot serve this request: %s", id, d.LineReason(pinned))
		}
		d.Reason = PinnedReason
		order := in.rank(eligible, lines)
		d.Fallbacks = fallbacks(in.Candidates, pinned, slices.DeleteFunc(order, func(i int) bool { return i == pinned }))
	}
	if in.NoFallback {
		d.Fallbacks = nil
	}
	d.Model = in.Candidates[choice].Model
	if in.SameModelFallback {
		d.Fallbacks = slices.DeleteFunc(d.Fallbacks, func(m *catalog.Model) bool { return m.ProviderModel != d.Model.ProviderModel })
	}
	d.EstimatedCostEUR = in.Candidates[choice].EstimatedCostEUR
	lines[choice].verdict = vChosen // its reason is d.Reason, whoever sets it last
	return d, nil
}

// Plan is the request's attempt list for failover: the chosen model, then
// the best fallback of each other provider (a provider that just failed is
// the wrong place to retry), at most maxAttempts long.
func (d *Selection) Plan(maxAttempts int) []*catalog.Model {
	if d.Model == nil {
		return nil
	}
	plan := make([]*catalog.Model, 1, max(maxAttempts, 1))
	plan[0] = d.Model
	for _, m := range d.Fallbacks {
		if len(plan) >= maxAttempts {
			break
		}
		if !slices.ContainsFunc(plan, func(p *catalog.Model) bool { return p.Provider.Name == m.Provider.Name }) {
			plan = append(plan, m)
		}
	}
	return plan
}

// reject applies the request's hard requirements.
func (in *Input) reject(c *Candidate) rejection {
	m := c.Model
	n := in.Needs
	switch {
	case !c.Healthy:
		return rejection{kind: rejUnhealthy}
	case n.Tools && !m.Tools:
		return rejection{kind: rejTools}
	case n.JSONMode && !m.JSONMode:
		return rejection{kind: rejJSON}
	case n.Vision && !m.Vision:
		return rejection{kind: rejVision}
	case n.Audio && !m.Audio:
		return rejection{kind: rejAudio}
	case n.Files && !m.Files:
		return rejection{kind: rejFiles}
	case n.Streaming && !m.Streaming:
		return rejection{kind: rejStreaming}
	case in.need(c) > m.ContextWindow:
		return rejection{kind: rejContext, a: float64(in.need(c)), b: float64(m.ContextWindow)}
	case in.MaxCostEUR != nil && c.EstimatedCostEUR > *in.MaxCostEUR:
		return rejection{kind: rejCost, a: c.EstimatedCostEUR, b: *in.MaxCostEUR}
	case in.SLAMS > 0 && c.LatencyMS > in.SLAMS:
		return rejection{kind: rejLatency, a: float64(c.LatencyMS), b: float64(in.SLAMS)}
	case c.Quality < in.QualityFloor:
		return rejection{kind: rejQuality, a: c.Quality, b: in.QualityFloor}
	}
	return rejection{}
}

// rank orders eligible candidates by the objective; ties break by id so the
// order is deterministic. It notes each one's rank (and the balanced
// objective's score) in its line.
func (in *Input) rank(eligible []int, lines []line) []int {
	order := slices.Clone(eligible)
	cs := in.Candidates
	var maxCost float64
	var maxLat int
	for _, i := range eligible {
		maxCost = max(maxCost, cs[i].EstimatedCostEUR)
		maxLat = max(maxLat, cs[i].LatencyMS)
	}
	balanced := func(c *Candidate) float64 {
		s := c.Quality
		if maxCost > 0 {
			s -= 0.3 * c.EstimatedCostEUR / maxCost
		}
		if maxLat > 0 {
			s -= 0.1 * float64(c.LatencyMS) / float64(maxLat)
		}
		if in.Default != nil && c.Model == in.Default {
			s += 0.25 // the workspace's default wins unless clearly worse
		}
		return s
	}
	defer func() {
		isBalanced := in.Objective != "cost" && in.Objective != "latency" && in.Objective != "accuracy"
		for pos, i := range order {
			lines[i].rank = int32(pos + 1)
			if isBalanced {
				lines[i].score = math.Round(balanced(&cs[i])*1e6) / 1e6
			}
		}
	}()
	less := func(a, b int) bool {
		ca, cb := &cs[a], &cs[b]
		switch in.Objective {
		case "cost":
			if ca.EstimatedCostEUR != cb.EstimatedCostEUR {
				return ca.EstimatedCostEUR < cb.EstimatedCostEUR
			}
			if ca.Quality != cb.Quality {
				return ca.Quality > cb.Quality
			}
		case "latency":
			if ca.LatencyMS != cb.LatencyMS {
				return ca.LatencyMS < cb.LatencyMS
			}
			if ca.EstimatedCostEUR != cb.EstimatedCostEUR {
				return ca.EstimatedCostEUR < cb.EstimatedCostEUR
			}
		case "accuracy":
			if ca.Quality != cb.Quality {
				return ca.Quality > cb.Quality
			}
			if ca.EstimatedCostEUR != cb.EstimatedCostEUR {
				return ca.EstimatedCostEUR < cb.EstimatedCostEUR
			}
		default:
			sa, sb := balanced(ca), balanced(cb)
			if sa != sb {
				return sa > sb
			}
		}
		return ca.Model.ID < cb.Model.ID
	}
	sort.SliceStable(order, func(i, j int) bool { return less(order[i], order[j]) })
	return order
}

func (in *Input) reason(choice, eligible, total int) string {
	c := &in.Candidates[choice]
	var why string
	switch in.Objective {
	case "cost":
		why = "cheapest"
	case "latency":
		why = "fastest"
	case "accuracy":
		why = "most accurate"
	default:
		if in.Default != nil && c.Model == in.Default {
			why = "workspace default"
		} else {
			why = "best balance of quality, cost and latency"
		}
	}
	// Appended, not fmt: this runs for every routed request.
	var buf [192]byte
	b := buf[:0]
	if in.Constraint != "" {
		b = append(append(b, in.Constraint...), " + "...)
	}
	b = append(b, why...)
	if in.QualityFloor > 0 {
		b = strconv.AppendFloat(append(b, " above quality floor "...), in.QualityFloor, 'f', 2, 64)
	}
	if in.RelativeQuality > 0 {
		b = strconv.AppendFloat(append(b, " within "...), 100*in.RelativeQuality, 'f', 0, 64)
		b = append(b, "% of the best model's quality"...)
	}
	if in.MaxCostEUR != nil && in.Objective != "cost" {
		b = strconv.AppendFloat(append(b, " within "...), *in.MaxCostEUR, 'f', 4, 64)
		b = append(b, " EUR"...)
	}
	b = append(append(b, " for "...), in.Task...)
	b = strconv.AppendInt(append(b, " ("...), int64(eligible), 10)
	b = strconv.AppendInt(append(b, " of "...), int64(total), 10)
	return string(append(b, " models eligible)"...))
}

// tooLong is the client's error when the request fits the context window
// of no model the policy allows (OpenAI's 400, not a 503 the SDKs raise as
// the server's fault); nil when one would take it, or none is allowed. A
// request that fits no model at all says so; one that fits only models
// the policy excluded names the largest window it may use (a 138k prompt
// allowed only 8k and 128k models was a 503 naming the policy first).
func (in *Input) tooLong() *apierr.Error {
	largest, allowed := -1, -1 // the candidates of the largest window, of all and of those allowed
	fitsExcluded := false
	for i := range in.Candidates {
		c := &in.Candidates[i]
		ok := c.Excluded == "" && c.Unsupported == ""
		if in.need(c) <= c.Model.ContextWindow {
			if ok {
				return nil // its length is not why nothing is eligible
			}
			fitsExcluded = true
		}
		if largest < 0 || c.Model.ContextWindow > in.Candidates[largest].Model.ContextWindow {
			largest = i
		}
		if ok && (allowed < 0 || c.Model.ContextWindow > in.Candidates[allowed].Model.ContextWindow) {
			allowed = i
		}
	}
	which, of := largest, "any model"
	if fitsExcluded {
		which, of = allowed, "the models this request may use"
	}
	if which < 0 {
		return nil
	}
	c := &in.Candidates[which]
	input, output := in.Needs.InputTokens+c.MediaTokens, in.output(c.Model)
	_, name := in.paramNames()
	e := apierr.Invalid("context_length_exceeded", in.contextParam(input, c.Model.ContextWindow),
		"this request needs about %d tokens (%d of input, estimated, and %d of output%s), more than the largest context window of %s (%d tokens); send less, or a lower %s",
		input+output, input, output, in.lowered(c.Model, name), of, c.Model.ContextWindow, name)
	e.Final = true
	return e
}

// need is what the request needs of c's context window: its input, its
// media at c's image_tokens, and one choice's output as c is sent it.
func (in *Input) need(c *Candidate) int {
	return in.Needs.InputTokens + c.MediaTokens + in.output(c.Model)
}

// output is one choice's output as m is sent it: the client's bound, at
// most m's max_output_tokens (extproc's capOutput lowers it so).
func (in *Input) output(m *catalog.Model) int {
	if in.Needs.OutputUncapped {
		return in.Needs.OutputTokens
	}
	return m.Output(in.Needs.OutputTokens)
}

// lowered says, for an error that quotes m's output, the client's own
// bound when m is sent less ("" when it is sent what it asked for).
func (in *Input) lowered(m *catalog.Model, name string) string {
	if out := in.output(m); out < in.Needs.OutputTokens {
		return ", the model's limit: its " + name + " of " + strconv.Itoa(in.Needs.OutputTokens) + " is lowered to it"
	}
	return ""
}

// paramNames are the request's input and output-bound parameters as the
// client named them (messages and max_tokens by default).
func (in *Input) paramNames() (input, output string) {
	if in.Params[0] == "" {
		return "messages", "max_tokens"
	}
	return in.Params[0], in.Params[1]
}

// contextParam is the parameter a request of input tokens too long for a
// context window of window tokens names: its output bound when its input
// alone fits (OpenAI names max_tokens then; the SDK probe got messages
// for a 2-token prompt).
func (in *Input) contextParam(input, window int) string {
	inName, outName := in.paramNames()
	if input < window { // room for some output: a lower bound would fit
		return outName
	}
	return inName
}

// fallbacks lists the remaining candidates in rank order, models of other
// providers than the chosen one first.
func fallbacks(cs []Candidate, chosen int, rest []int) []*catalog.Model {
	first := cs[chosen].Model.Provider
	var other, same []*catalog.Model
	for _, i := range rest {
		if cs[i].Model.Provider == first {
			same = append(same, cs[i].Model)
		} else {
			other = append(other, cs[i].Model)
		}
	}
	return append(other, same...)
}

// summarize groups the reasons models were not eligible, most common first.
// Summary is summarize over the candidates shown keeps: why no model may
// serve the request, in the words a caller may read. None shown says so.
func (d *Selection) Summary(shown func(*catalog.Model) bool) string {
	vs := make([]Verdict, 0, len(d.lines))
	for i := range d.lines {
		if shown(d.cands[i].Model) {
			v := d.Line(i)
			v.Reason = d.LineReason(i)
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return "none of the models available to you"
	}
	return summarize(vs)
}

func summarize(vs []Verdict) string {
	count := map[string]int{}
	for _, v := range vs {
		r := v.Reason
		if i := strings.Index(r, ","); i > 0 && v.Verdict == "excluded" {
			r = r[:i]
		}
		count[r]++
	}
	type kv struct {
		r string
		n int
	}
	var all []kv
	for r, n := range count {
		all = append(all, kv{r, n})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].r < all[j].r
	})
	var parts []string
	for i, x := range all {
		if i == 4 {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", x.r, x.n))
	}
	return strings.Join(parts, "; ")
}

func ids(cs []Candidate) []string {
	out := make([]string, 0, len(cs)+1)
	for _, c := range cs {
		out = append(out, c.Model.ID)
	}
	sort.Strings(out)
	return append(out, Auto)
}
