// Package decision is stellwerk's decision core as one pipeline: parse the
// chat request, validate the per-request policy, classify, evaluate the
// Rego policy over every candidate, and select a model. It takes plain Go
// values and returns plain Go values: ext_proc calls it for live traffic,
// `stellwerk explain` for a dry run, and tests without Envoy.
package decision

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/decide"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/health"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/observe"
	"github.com/stellwerk/stellwerk/internal/policy"
	"github.com/stellwerk/stellwerk/internal/qpredict"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/translate"
)

// DefaultOutputTokens is the answer length assumed for cost estimates when
// a request sets no max_tokens.
const DefaultOutputTokens = 512

// DefaultCompletionTokens is the legacy completions API's own default
// max_tokens.
const DefaultCompletionTokens = 16

// PolicySource yields the policy version to evaluate.
type PolicySource interface {
	Current() *policy.Engine
}

// Router holds everything a decision needs that does not change per request.
type Router struct {
	Catalog    *catalog.Catalog
	Terms      *policy.CatalogTerms
	Classifier *classify.Classifier
	Policy     PolicySource
	// PolicyTimeout bounds one evaluation (half of envoy.extproc_timeout):
	// a policy that runs longer is stellwerk's 500 policy_error, which the
	// audit record says too, not Envoy's 503 when the message times out.
	PolicyTimeout time.Duration
	Workspaces    map[string]config.Workspace
	Log           *zap.Logger
	Now           func() time.Time
	// Latency is learned from live traffic; nil uses the catalog's seeds.
	// Set it before the first request: the router keeps its models' cells.
	Latency *observe.Latency
	cells   atomic.Pointer[[]*observe.Cell]
	wsTerms sync.Map // scope → *policy.WorkspaceTerm
	facts   atomic.Pointer[modelFacts]
	// Health holds providers' cooldowns; nil means every provider is healthy.
	Health *health.Tracker
	// OwnKey reports whether a workspace sends its requests to a provider
	// with a key of its own (bring your own key): its rate limits are then
	// its own (nil: no workspace has one).
	OwnKey func(workspace, provider string) bool
	// Routes resolves named routes (model: route:<name>); nil when none
	// are configured.
	Routes Routes
	// Predictor predicts per prompt the quality of the models it has
	// weights for (routing.quality_predictor); nil uses the scorecards.
	Predictor *qpredict.Model

	visible *visibility // per workspace and team, built by New
}

// New builds a router for a config.
func New(cfg *config.Config, cat *catalog.Catalog, cl *classify.Classifier, ps PolicySource, log *zap.Logger) *Router {
	ws := map[string]config.Workspace{}
	for _, w := range cfg.Workspaces {
		ws[w.Name] = w
	}
	return &Router{Catalog: cat, Terms: policy.NewCatalogTerms(cat), Classifier: cl, Policy: ps, Workspaces: ws, Log: log, Now: time.Now,
		Latency: &observe.Latency{}, visible: newVisibility(cat, ws), PolicyTimeout: cfg.Envoy.ExtProcTimeout / 2}
}

// Request is one request as the edge saw it.
type Request struct {
	Path         string
	Body         []byte
	Principal    auth.Principal
	HeaderPolicy string            // x-stellwerk-policy, "" when absent
	Headers      map[string]string // selected client headers for the policy input
	// Sent are the client headers with text a provider gets beside the
	// body (classify.Request.Headers): classified as the body is.
	Sent []classify.Header
	// Budgets is the principal's budget state for the policy input
	// (ledger.State.Budgets from Peek), nil when the edge did not read it.
	Budgets []ledger.BudgetState

	// For named routes: DecisionID picks a split's arm when it is not
	// sticky; MetadataHeader is x-stellwerk-metadata as sent ("" when
	// absent); PeekBudgets reads the budget state when the route needs it
	// and Budgets is nil; Limiter counts its rate_limit nodes (nil: they
	// cannot be checked, and each node's fail mode decides).
	DecisionID     string
	MetadataHeader string
	PeekBudgets    func(context.Context) []ledger.BudgetState
	Limiter        flow.Limiter
	// Record keeps what the decision read of the live state in
	// Result.Inputs, for the audit record (replay).
	Record bool
	// Needs is what a Responses API request needs of a provider beyond
	// its chat translation (translate.ResponsesForDecision).
	Needs translate.ResponsesNeeds
}

// Result is a decision and everything that explains it.
type Result struct {
	// Timing is how long each stage of Route took (for the router's
	// overhead metric, by stage).
	Timing        Timing
	Chat          request.Chat
	ReqPolicy     reqpolicy.Policy
	Class         classify.Result
	Workspace     string
	PolicyVersion string
	PolicyDigest  string // the policy's whole SHA-256, for the record
	Policy        policy.Decision
	Selection     decide.Selection
	// BaselineCostEUR is the estimated cost on the catalog's baseline model.
	BaselineCostEUR float64
	// Baseline is the catalog's baseline model when it serves the
	// request's API, nil otherwise (no saving is claimed against a model
	// that could not have answered).
	Baseline *catalog.Model
	// Constraint is the strongest hard constraint in force ("eu residency",
	// "downgrade (budget cx-day)", or both joined by " + "), "" when none.
	Constraint string
	// Route is what the request's named route decided; nil when it named
	// none.
	Route *flow.Outcome
	// Inputs is what the decision read of the live state (Request.Record).
	Inputs *Inputs
	// policyIDs is ReqPolicy with the models its lists name by an alias
	// named by id, what the policy reads; nil when it names none.
	policyIDs *reqpolicy.Policy
}

// policyInput is the per-request policy the Rego policy reads.
func (res *Result) policyInput() reqpolicy.Policy {
	if res.policyIDs != nil {
		return *res.policyIDs
	}
	return res.ReqPolicy
}

// ClassifyRequest is what the classifier reads of a parsed request: every
// member carrying text a model reads.
func ClassifyRequest(chat request.Chat) classify.Request {
	r := classify.Request{Messages: chat.MessageList, Tools: chat.ToolList, Functions: chat.FunctionList,
		ResponseFormat: chat.ResponseFormatObj, Prediction: chat.Prediction, MaxTokens: chat.MaxTokens,
		Input: chat.Input, Suffix: chat.Suffix, User: chat.UserRaw, Metadata: chat.MetadataObj, Stop: chat.StopList,
		SafetyID: chat.SafetyID, CacheKey: chat.CacheKey, Others: chat.Others}
	switch chat.API {
	case request.APIEmbeddings:
		r.InputField, r.Embedded = "input", true
	case request.APICompletions:
		r.InputField = "prompt"
	}
	return r
}

// CountTokens estimates a request's prompt tokens as the budgets read them
// (classify's InputTokens, for o200k_base) and counts the images and the
// inline PDFs' pages it sends (as the budgets hold them,
// request.PDFReader.Bound), without a decision: /v1/messages/count_tokens. body is the request in
// chat form (MessagesCountForDecision), api its API. Errors are
// *apierr.Error.
func (r *Router) CountTokens(api string, body []byte, p auth.Principal) (tokens, images, pdfPages int, err error) {
	chat, err := request.Parse(api, body)
	if err != nil {
		return 0, 0, 0, err
	}
	cr := ClassifyRequest(chat)
	if p.Authenticated { // the memo's scope, as Route's
		cr.Workspace, cr.Key = p.Workspace, p.KeyID
	}
	return r.Classifier.Classify(cr).InputTokens, chat.Images, chat.PDFPages, nil
}

// Route decides one request. Errors are *apierr.Error; the Result is
// returned alongside whenever it explains the error (a denial, an excluded
// pinned model), so explain can show the trace.
func (r *Router) Route(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	chat, err := request.Parse(request.APIOf(req.Path), req.Body)
	if err != nil {
		return nil, err
	}
	chat.NativeOnly, chat.Stored = req.Needs.Native, req.Needs.Stored
	res := &Result{Chat: chat, Workspace: req.Principal.Workspace}
	defer func() { res.Timing.Parse = res.Timing.since(start) }()

	bodyPolicy := chat.Policy.Exists() && chat.Policy.Type != gjson.Null // null is absent
	switch {
	case bodyPolicy && req.HeaderPolicy != "":
		return res, apierr.Invalid("invalid_policy", "policy", "send the per-request policy in the body or in the x-stellwerk-policy header, not both")
	case bodyPolicy:
		res.ReqPolicy, err = reqpolicy.FromBody(chat.Policy)
	case req.HeaderPolicy != "":
		res.ReqPolicy, err = reqpolicy.FromHeader(req.HeaderPolicy)
	}
	if err != nil {
		return res, err
	}
	if req.MetadataHeader != "" {
		if chat.Metadata != nil {
			return res, apierr.Invalid("invalid_metadata", "metadata", "send metadata in the body or in the x-stellwerk-metadata header, not both")
		}
		md, err := flow.ParseMetadataHeader(req.MetadataHeader)
		if err != nil {
			return res, apierr.Invalid("invalid_metadata", "metadata", "%s", err.Error())
		}
		res.Chat.Metadata = md
	}
	if err := r.admit(&req, res); err != nil {
		return res, err
	}
	cr := ClassifyRequest(res.Chat)
	if req.MetadataHeader != "" { // read as the body's: the policy and the audit record see the same
		cr.Metadata = gjson.Parse(req.MetadataHeader)
	}
	cr.Headers = req.Sent
	// The caller whose earlier texts the classifier may look up: the
	// virtual key in its workspace. Without auth every caller is
	// anonymous and shares one scope; the key is what separates tenants.
	if p := req.Principal; p.Authenticated {
		cr.Workspace, cr.Key = p.Workspace, p.KeyID
	}
	classified := time.Now()
	res.Class = r.Classifier.Classify(cr)
	decided := time.Now()
	res.Timing.Classify = decided.Sub(classified)
	err = r.decide(ctx, &req, res, nil)
	res.Timing.Select = time.Since(decided) - res.Timing.Policy
	return res, err
}

// Timing is how long a decision's stages took. Parse is everything Route
// does besides the other three (the body parsed, the per-request policy
// and metadata read, the caller admitted); Policy builds the candidates
// and the policy input and evaluates the policy (or finds its decision in
// the memo); Select is the rest of the decision: a named route's flow,
// the exclusions written in, selection.
type Timing struct {
	Parse, Classify, Policy, Select time.Duration
}

// since is the time since start not spent in the other stages.
func (t *Timing) since(start time.Time) time.Duration {
	return time.Since(start) - t.Classify - t.Policy - t.Select
}

// admit refuses what the caller may not ask for: policy lists naming what
// it cannot use, a route its key may not use, a model its access lists
// hide (answered as one that does not exist).
func (r *Router) admit(req *Request, res *Result) error {
	chat := &res.Chat
	if m := r.Catalog.AliasOf(chat.Model); m != nil {
		chat.Alias, chat.Model = chat.Model, m.ID
	}
	ids, err := r.checkPolicyLists(req.Principal, res.ReqPolicy)
	if err != nil {
		return err
	}
	if ids != nil {
		res.policyIDs = ids
	}
	switch {
	case chat.Route != "":
		if !keyAllowsRoute(req.Principal, chat.Route) {
			return routeNotFound(chat.Route)
		}
	case chat.Model != decide.Auto:
		if vis := r.Visible(req.Principal); !vis.Has(chat.Model) || !r.keyAllowsID(req.Principal, chat.Model) {
			// Named as sent: an alias's model is not told to a caller
			// who may not use it.
			return vis.notFound(cmp.Or(chat.Alias, chat.Model), chat.API, req.Principal, func(p *catalog.Provider) bool {
				return r.credential(p, req.Principal.Workspace, nil, nil)
			})
		}
	}
	return nil
}

// decide runs a classified request's route, policy and selection. rp is
// nil for live traffic, which reads the time, the providers' health and
// latency and the credentials as they are now (and keeps what it read in
// res.Inputs when req.Record is set); a replay passes the recorded ones.
func (r *Router) decide(ctx context.Context, req *Request, res *Result, rp *Inputs) error {
	chat := &res.Chat
	if rp == nil {
		chat.LargestInput = largestInput(chat.Input)
	}
	now := r.Now()
	if rp != nil {
		now = rp.Now
	}
	var rec *Inputs
	if req.Record && rp == nil {
		rec = &Inputs{Now: now}
		res.Inputs = rec
	}
	if chat.Route != "" {
		err := r.runFlow(ctx, req, res, now)
		if rec != nil {
			rec.Budgets = req.Budgets // a budget_limit node may have read them
		}
		if err != nil {
			return err
		}
	}
	policyStart := time.Now() // a named route's flow counts as selection (Timing)

	ws, team := r.resolve(req.Principal)
	api := chat.API
	if api == "" { // a replay of a record: its path says
		if api = request.APIOf(req.Path); api == "" {
			api = request.APIChat
		}
		chat.API = api
	}
	outTokens := chat.MaxTokens
	switch {
	case api == request.APIEmbeddings:
		outTokens = 0 // an embedding is billed by its input alone
	case outTokens == 0 && api == request.APICompletions:
		outTokens = DefaultCompletionTokens
	case outTokens == 0:
		outTokens = DefaultOutputTokens
	}
	// Each choice is one answer in the model's context window; the cost
	// and the budget's worst case are all of them.
	perChoice := outTokens
	if chat.Choices > 1 {
		outTokens *= chat.Choices
	}
	models := r.Catalog.Models()
	cands := make([]policy.Candidate, len(models))
	var predicted []float64
	if r.Predictor != nil && rp == nil { // a replay has no prompt: it reads the recorded predictions
		predicted = r.predict(chat, &res.Class)
	}
	// Cooldowns are read once per candidate: only while something cools
	// down or reopens does a candidate cost more than one atomic load.
	quiet := rp == nil && r.Health.Quiet(now)
	draw := Draw(req.DecisionID)
	cells := r.latencyCells()
	facts := r.modelFacts()
	quality := facts.quality(res.Class.Task)
	// Images and inline PDFs are priced per model (each its image_tokens,
	// catalog.Model.MediaTokens, as the budgets hold them): a request with
	// twenty images passed a max_cost its text alone fitted, and went to the
	// model whose text was cheapest, not whose images were. A PDF whose
	// pages cannot be counted is estimated at the model's context window,
	// as the budgets hold it: max_cost is the most a request may cost, and
	// a file crafted to show fewer pages than the provider bills must not
	// pass a cap its real pages exceed (docs/policy-library.md).
	media := chat.Images > 0 || chat.PDFPages > 0 || chat.PDFUncounted
	// A model is sent at most its max_output_tokens (extproc's capOutput):
	// its window and its estimate read that, not the client's bound (a
	// max_cost refused 0.40 EUR for a request sent at 0.07). A replay of
	// a decision made before reads the client's, as it was decided; and
	// the media in the window with it (inputs version 7).
	uncapped := rp != nil && rp.V < 7
	choices := max(chat.Choices, 1)
	for i, m := range models {
		lat := r.latency(m, cells, i, chat.Stream, rp, now)
		q := quality[i]
		switch {
		case rp != nil:
			if v, ok := rp.Quality[m.ID]; ok {
				q = v
			}
		case predicted != nil:
			// A model the predictor knows gets its prediction (and the
			// record keeps it); the others keep their scorecard quality.
			if j := r.Predictor.Index(m.ID); j >= 0 {
				q = predicted[j]
				if rec != nil {
					if rec.Quality == nil {
						rec.Quality = map[string]float64{}
					}
					rec.Quality[m.ID] = q
				}
			}
		}
		prompt, out := res.Class.InputTokens, outTokens
		if o := m.Output(perChoice); o < perChoice && !uncapped {
			out = o * choices
		}
		cands[i] = policy.Candidate{Model: m, Quality: q, Healthy: true, LatencyMS: lat}
		if media {
			prompt += m.MediaTokens(chat.Images, chat.PDFPages, chat.PDFUncounted)
			if !uncapped {
				cands[i].MediaTokens = windowMedia(m, chat)
			}
		}
		cands[i].EstimatedCostEUR = facts.cost[i].EUR(prompt, out)
		cooling, wholeProvider := false, false
		if !quiet {
			cooling, wholeProvider = r.cooling(m, req.Principal.Workspace, now, draw, rp)
		}
		if cooling && m.ID != chat.Model {
			// A pinned model is still tried: the caller asked for it.
			cands[i].Healthy = false
		}
		if rec != nil {
			if lat != m.LatencyMS {
				if rec.live.ms == nil {
					rec.live = liveLatency{ms: make([]int32, len(models)), idx: facts.index}
					for j := range rec.live.ms {
						rec.live.ms[j] = -1
					}
				}
				rec.live.ms[i] = int32(lat)
			}
			switch {
			case cooling && wholeProvider:
				if !slices.Contains(rec.Cooling, m.Provider.Name) {
					rec.Cooling = append(rec.Cooling, m.Provider.Name)
				}
			case cooling:
				rec.CoolingModels = append(rec.CoolingModels, m.ID)
			}
		}
	}
	in := &policy.Input{
		Request: policy.RequestFacts{Path: req.Path, API: api, Model: chat.Model, Stream: chat.Stream, MaxTokens: chat.MaxTokens,
			Tools: chat.Tools, ResponseFormat: chat.ResponseFormat, Metadata: chat.Metadata, User: chat.User,
			Headers: req.Headers, Policy: res.policyInput()},
		Principal: req.Principal, Workspace: ws, Team: team, WorkspaceTerm: r.workspaceTerm(ws, team),
		Classification: &res.Class, Budgets: req.Budgets,
		Candidates: cands, Now: now,
	}
	if res.Route != nil {
		in.Request.Route = routeFacts(res.Route)
	}
	if rec != nil {
		rec.Budgets = req.Budgets
	}
	eng := r.Policy.Current()
	res.PolicyVersion, res.PolicyDigest = eng.Version, eng.Digest
	var err error
	res.Policy, err = eng.DecideWithin(ctx, in, r.Terms, r.PolicyTimeout)
	res.Timing.Policy = time.Since(policyStart)
	if (err != nil || len(res.Policy.Deny) > 0) && rec != nil && rp == nil {
		// Refused before the candidates' credentials are read: recorded
		// anyway, so that a what-if replay of this request under another
		// policy knows which providers stellwerk could not have sent it
		// to (a helper's replay predicted a model with no credential).
		for i := range cands {
			r.credential(cands[i].Model.Provider, res.Workspace, nil, rec)
		}
	}
	if err != nil {
		if r.Log != nil {
			r.Log.Error("policy evaluation failed", zap.String("decision_id", req.DecisionID), zap.String("workspace", res.Workspace),
				zap.String("policy_version", eng.Version), zap.Error(err))
		}
		var se *policy.ShapeError
		detail := "evaluation failed"
		switch {
		case errors.As(err, &se):
			detail = "returned a decision of the wrong shape"
		case errors.Is(err, policy.ErrTimeout):
			detail = "took longer than " + r.PolicyTimeout.String() + " to decide"
		}
		return &apierr.Error{Kind: apierr.KindInternal, Type: "server_error", Code: "policy_error", Final: true,
			Message: "the routing policy (version " + eng.Version + ") " + detail + "; the request was not sent (operators: see the stellwerk log)"}
	}
	if len(res.Policy.Deny) > 0 {
		return apierr.Denied("policy_denied", "", "denied by policy: %s", strings.Join(res.Policy.Deny, "; "))
	}

	// The policy read the table; selection reads it with the policy's
	// exclusions and what stellwerk cannot send written in.
	constraint := ""
	for i := range cands {
		c := &cands[i]
		c.Excluded = res.Policy.Exclude[c.Model.ID]
		if c.Excluded == "" && !keyAllows(req.Principal, c.Model) {
			c.Excluded = "not in the models of key " + req.Principal.KeyID
		}
		if why := c.Model.CannotServe(api); why != "" {
			c.Unsupported = why
		} else if why := cannotContinue(c.Model, chat); why != "" {
			c.Unsupported = why
		} else if !c.Model.Supported() {
			c.Unsupported = "wire format " + c.Model.Provider.WireFormat + " is not supported yet"
		} else if !r.credential(c.Model.Provider, res.Workspace, rp, rec) && c.Model.ID != chat.Model {
			// Nothing is sent to a provider stellwerk cannot authenticate
			// to: not by auto or a route, not as a pinned model's
			// fallback, not offered as available. The pinned model itself
			// still gets the explicit 502 naming the provider.
			c.Unsupported = "provider credential not configured"
		}
	}
	if res.Policy.Residency != "" {
		constraint = res.Policy.Residency + " residency"
	}
	if len(res.Policy.Downgrade) > 0 {
		constraint = downgradeConstraint(constraint, res.Policy.Downgrade)
	}
	res.Constraint = constraint
	fits := res.Class.InputTokens // what must fit a model's context window
	if chat.LargestInput > 0 {
		fits = chat.LargestInput
	}
	perChoice = min(perChoice, 1<<20)
	if b := r.Catalog.Baseline; b.Serves(api) {
		prompt, out := res.Class.InputTokens, outTokens
		if media {
			prompt += b.MediaTokens(chat.Images, chat.PDFPages, chat.PDFUncounted)
		}
		switch o := b.Output(perChoice); {
		case uncapped: // a replay of an earlier version, as it was decided
		case fits+windowMedia(b, chat)+o > b.ContextWindow:
			// No saving is claimed against a model the request does not
			// fit (a saving of -0.15 EUR against one it was rejected by).
			b = nil
		case o < perChoice:
			out = o * choices
		}
		if b != nil {
			res.Baseline, res.BaselineCostEUR = b, b.CostEUR(prompt, out)
		}
	}
	def := r.Catalog.Default
	if ws.DefaultModel != "" {
		if m, ok := r.Catalog.Lookup(ws.DefaultModel); ok {
			def = m
		}
	}
	sel := decide.Input{
		Asked: chat.Model, Task: res.Class.Task, Candidates: cands, Params: paramNames(api),
		Needs: decide.Needs{Tools: chat.Tools, JSONMode: chat.ResponseFormat == "json_object" || chat.ResponseFormat == "json_schema",
			Vision: chat.Vision, Audio: chat.Audio, Files: chat.Files, Streaming: chat.Stream, InputTokens: fits, OutputTokens: perChoice,
			OutputUncapped: uncapped},
		// Another embedding model's vectors are in another space: a
		// fallback mixed two in one index, unsaid (the RAG probe).
		SameModelFallback: api == request.APIEmbeddings,
		Objective:         res.Policy.Objective, QualityFloor: res.Policy.QualityFloor, MaxCostEUR: res.Policy.MaxCostEUR,
		SLAMS: res.ReqPolicy.SLAMS, Default: def, Constraint: constraint, RelativeQuality: ws.RelativeQuality,
		NoFallback: !decide.FallbackAllowed(chat.Model, res.ReqPolicy.Fallback, ws.PinnedFallback),
	}
	if vis := r.Visible(req.Principal); len(vis.Models()) < len(r.Catalog.Models()) || len(req.Principal.Models) > 0 {
		for i := range cands { // only for a caller with access lists or a key's models
			if m := cands[i].Model; !vis.Has(m.ID) || !keyAllows(req.Principal, m) {
				sel.Hidden++
			}
		}
	}
	res.Selection, err = r.choose(sel, res, in, chat)
	if e, ok := err.(*apierr.Error); ok && e.Code == "no_eligible_model" && !e.Final {
		err = r.probe(sel, res, in, chat, req.Principal.Workspace, now, rp, err)
	}
	if e, ok := err.(*apierr.Error); ok && e.Code == "no_eligible_model" && res.Selection.Len() > 0 {
		// The client is told why no model may serve it without the models
		// it may not see: their count and their reasons read like more
		// models than the caller has (the security probe counted the
		// hidden ones and the workspace's deny list).
		vis := r.Visible(req.Principal)
		e.Message = "no model may serve this request: " + res.Selection.Summary(func(m *catalog.Model) bool {
			return vis.Has(m.ID) && keyAllows(req.Principal, m)
		})
	}
	if e, ok := err.(*apierr.Error); ok && !e.Final && rp == nil && e.Kind == apierr.KindUnavailable && e.RetryAfter == 0 {
		// Nothing eligible while providers cool down: Retry-After says
		// when the first of them takes requests again, so that an SDK's
		// retry (it honours the header) does not come back too soon: on
		// no_eligible_model and a route target's refusal of a fallback.
		// Only when unavailable: a denial (a pinned model the policy does not allow)
		// meets the same refusal however long the client waits.
		e.RetryAfter = r.reopensIn(cands, req.Principal.Workspace, now)
	}
	return err
}

// choose runs selection: a route's targets, or the request's model.
func (r *Router) choose(sel decide.Input, res *Result, in *policy.Input, chat *request.Chat) (decide.Selection, error) {
	if res.Route != nil {
		// The route's targets apply their objective unless the request or
		// the policy set another (the policy input carried the first auto
		// target's).
		ro := in.Request.Route.Objective
		free := res.ReqPolicy.Optimize == "" && len(res.Policy.Downgrade) == 0 && (ro == "" || res.Policy.Objective == ro)
		return selectRoute(sel, res.Route, free)
	}
	d, err := decide.Decide(sel)
	if chat.Alias != "" && err == nil && d.Reason == decide.PinnedReason {
		d.Reason = decide.PinnedReason + " as " + chat.Alias + ", an alias of " + chat.Model
	}
	return d, err
}

// ProbeReason ends the reason of a request sent to a model that cools down
// because no other model may serve it.
const ProbeReason = "; sent as a probe: every model this request may use is cooling down"

// probe is selection's second look when every model a request may use is
// held back by a cooldown (err, no_eligible_model): the request goes to
// the model selection picks among them, as a probe, when its scope takes
// one (health.Tracker.Probe: one per second while it cools, every such
// request while it reopens). A self-hosted model that was overloaded or
// loading is back with its first answer, rather than refusing requests
// for a cooldown and a reopening while it is idle; what the policy or the
// request's needs exclude stays excluded (a probe never breaks residency).
// A replay reads the recorded cooldowns and assumes the probe was taken.
// It returns the request's error when there is nothing to probe.
func (r *Router) probe(sel decide.Input, res *Result, in *policy.Input, chat *request.Chat, workspace string, now time.Time, rp *Inputs, err error) error {
	cands := sel.Candidates
	var held [64]int
	idx := held[:0]
	for i := range cands {
		if !cands[i].Healthy {
			cands[i].Healthy = true
			idx = append(idx, i)
		}
	}
	restore := func() {
		for _, i := range idx {
			cands[i].Healthy = false
		}
	}
	if len(idx) == 0 {
		return err
	}
	busy := false
	for {
		d, perr := r.choose(sel, res, in, chat)
		if perr != nil {
			restore()
			if e, isAPI := err.(*apierr.Error); isAPI && busy {
				// Another request is probing one: the next may, within a second.
				e.RetryAfter = int(health.ProbeInterval / time.Second)
			}
			return err
		}
		if rp != nil {
			return r.probed(res, d)
		}
		ok, b := r.Health.Probe(r.target(d.Model, workspace), now)
		if ok {
			return r.probed(res, d)
		}
		// Not this one (probed by another request, or its provider asked
		// to wait): the next best, if any.
		busy = busy || b
		j := slices.IndexFunc(cands, func(c policy.Candidate) bool { return c.Model == d.Model })
		cands[j].Healthy = false
	}
}

// probed takes a probe's selection.
func (r *Router) probed(res *Result, d decide.Selection) error {
	d.Reason += ProbeReason
	res.Selection = d
	return nil
}

// windowMedia is what a request's images and counted PDF pages take of m's
// context window, at its image_tokens, as its estimate counts them. A PDF
// whose pages cannot be counted, estimated at the whole window, is left
// out: no prompt would fit beside it.
func windowMedia(m *catalog.Model, chat *request.Chat) int {
	if chat.Images == 0 && chat.PDFPages == 0 {
		return 0
	}
	return m.MediaTokens(chat.Images, chat.PDFPages, false)
}

// largestInput is the estimated tokens of the longest input of an array
// of several (embeddings' input, completions' prompt), 0 otherwise: each
// is read on its own, so it, not their sum, must fit a model's context
// window. A batch of 2048 short texts was refused a model of 8,191 tokens
// (the RAG probe, 2026-12-07).
func largestInput(input gjson.Result) int {
	if !input.IsArray() {
		return 0
	}
	most, n := 0, 0
	input.ForEach(func(_, v gjson.Result) bool {
		n++
		t := 0
		switch {
		case v.Type == gjson.String:
			t = classify.EstimateTokens(v.Str)
		case v.IsArray(): // token ids
			t = int(v.Get("#").Int())
		default:
			return true // one array of token ids: a single input
		}
		most = max(most, t)
		return true
	})
	if n < 2 || most == 0 {
		return 0
	}
	return most
}

// paramNames are the request's input and output-bound members, as the
// client of an API named them.
func paramNames(api string) [2]string {
	switch api {
	case request.APIResponses:
		return [2]string{"input", "max_output_tokens"}
	case request.APICompletions:
		return [2]string{"prompt", "max_tokens"}
	case request.APIEmbeddings:
		return [2]string{"input", "max_tokens"}
	}
	return [2]string{"messages", "max_tokens"}
}

// reopensIn is the seconds until the first candidate held back by a
// cooldown takes requests again (at least 1; 0 when none is held back).
func (r *Router) reopensIn(cands []policy.Candidate, workspace string, now time.Time) int {
	var first time.Time
	for i := range cands {
		if cands[i].Healthy {
			continue
		}
		if at := r.Health.Reopens(r.target(cands[i].Model, workspace), now); !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	if first.IsZero() {
		return 0
	}
	return max(1, int((first.Sub(now)+time.Second-1)/time.Second))
}

// cannotContinue says why a model cannot take a Responses request that
// only a native provider can ("" when it can): one continuing a stored
// response needs a provider that keeps them; one with a member chat has no
// field for needs the Responses API itself.
func cannotContinue(m *catalog.Model, chat *request.Chat) string {
	if m.Provider.WireFormat == "anthropic" && chat.API == request.APIResponses && chat.OpenAIWireOnly != "" {
		// A Responses request reaches an Anthropic-wire model through its
		// chat translation (the red-team probe's BMP image).
		return chat.OpenAIWireOnly + ": not translated for Anthropic models"
	}
	if m.Provider.WireFormat == "anthropic" && chat.API == request.APIChat {
		// What the translation to Anthropic's Messages API refuses
		// (translate.ToAnthropicRequest): such a model is not a candidate,
		// rather than a 400 blaming the request when it is chosen.
		switch {
		case chat.Choices > 1:
			return "n > 1: Anthropic models return one choice per request"
		case chat.Logprobs:
			return "logprobs: not available from Anthropic models"
		case chat.FunctionList.Exists() && chat.FunctionList.Type != gjson.Null:
			return "the deprecated functions: not translated for Anthropic models (use tools)"
		case chat.OpenAIWireOnly != "":
			return chat.OpenAIWireOnly + ": not translated for Anthropic models"
		}
	}
	switch {
	case chat.API == request.APIChat && chat.FileByID && !m.NativeResponses():
		// A file by id lives at the provider it was uploaded to: kept,
		// as the Responses API's images and files by id are, to the
		// providers that serve OpenAI's API natively. Elsewhere it was
		// sent and failed, or was dropped unread (the multimodal probe).
		return "a file by file_id is stored at the provider it was uploaded to: only one serving OpenAI's API natively (responses) can read it"
	case chat.API == request.APIMessages && chat.NativeOnly != "" && m.Provider.WireFormat != "anthropic":
		return "the Messages API is translated to chat for this model, which cannot carry " + chat.NativeOnly
	case chat.API != request.APIResponses:
		return ""
	case chat.Stored && !m.StoresResponses():
		if m.NativeResponses() {
			return "provider " + m.Provider.Name + " keeps no stored responses (previous_response_id needs stored_responses)"
		}
		return "previous_response_id needs a provider that serves the Responses API natively and keeps stored responses"
	case chat.NativeOnly != "" && !m.NativeResponses():
		return "the Responses API is translated to chat for this model, which cannot carry " + chat.NativeOnly
	}
	return ""
}

// latency is a model's latency as selection weighs it: learned from live
// traffic (time to first token for a stream, the whole answer otherwise),
// or as a replay recorded it.
func (r *Router) latency(m *catalog.Model, cells []*observe.Cell, i int, stream bool, rp *Inputs, now time.Time) int {
	if rp != nil {
		if v, ok := rp.LatencyOf(m.ID); ok {
			return v
		}
		return m.LatencyMS
	}
	if i >= len(cells) {
		return m.LatencyMS
	}
	return cells[i].Get(stream, m.LatencyMS, now)
}

// workspaceTerm is the policy input's part for a workspace and team this
// router resolved, built on first use (the router's config never changes).
func (r *Router) workspaceTerm(ws config.Workspace, team *config.Team) *policy.WorkspaceTerm {
	sc := scope{workspace: ws.Name}
	if team != nil {
		sc.team = team.Name
	}
	if t, ok := r.wsTerms.Load(sc); ok {
		return t.(*policy.WorkspaceTerm)
	}
	t, _ := r.wsTerms.LoadOrStore(sc, policy.NewWorkspaceTerm(ws, team))
	return t.(*policy.WorkspaceTerm)
}

// modelFacts are what every decision reads of each catalog model, laid out
// side by side in catalog order: the loop over 71 candidates used to reach
// into 71 Model structs and 71 quality maps, which at a hundred requests a
// second are out of the caches each time (docs/benchmarks.md).
type modelFacts struct {
	byTask map[string][]float64 // task → each model's QualityFor(task)
	other  []float64            // QualityFor of a task no model names
	cost   []catalog.Price
	index  *catalogIndex // the models' ids, for the record's learned latencies
}

func (f *modelFacts) quality(task string) []float64 {
	if q, ok := f.byTask[task]; ok {
		return q
	}
	return f.other
}

// modelFacts are built once per router (its catalog never changes).
func (r *Router) modelFacts() *modelFacts {
	if f := r.facts.Load(); f != nil {
		return f
	}
	models := r.Catalog.Models()
	f := &modelFacts{byTask: map[string][]float64{}, other: make([]float64, len(models)), cost: make([]catalog.Price, len(models)),
		index: newCatalogIndex(models)}
	for i, m := range models {
		f.cost[i] = m.Price()
		f.other[i] = m.DefaultQuality()
		for task := range m.Quality {
			if f.byTask[task] == nil {
				f.byTask[task] = make([]float64, len(models))
			}
		}
	}
	for task, q := range f.byTask {
		for i, m := range models {
			q[i] = m.QualityFor(task)
		}
	}
	r.facts.Store(f)
	return f
}

// latencyCells are the learned latencies' cells of the catalog's models,
// in catalog order, found once per router (nil without learning).
func (r *Router) latencyCells() []*observe.Cell {
	if r.Latency == nil {
		return nil
	}
	if c := r.cells.Load(); c != nil {
		return *c
	}
	models := r.Catalog.Models()
	cs := make([]*observe.Cell, len(models))
	for i, m := range models {
		cs[i] = r.Latency.Cell(m.ID)
	}
	r.cells.Store(&cs)
	return cs
}

// cooling reports whether a model may not get the request because of a
// cooldown (or a reopening that did not let this request's draw through),
// now or as recorded; wholeProvider when the provider's outage is why.
func (r *Router) cooling(m *catalog.Model, workspace string, now time.Time, draw uint32, rp *Inputs) (cooling, wholeProvider bool) {
	if rp != nil {
		if slices.Contains(rp.Cooling, m.Provider.Name) {
			return true, true
		}
		return slices.Contains(rp.CoolingModels, m.ID), false
	}
	// One look: the provider's outage, then the rate limits of the key this
	// request would use.
	return r.Health.Blocked(r.target(m, workspace), now, draw)
}

// target is the health scope a request of a workspace sends a model to: a
// workspace's own key is not held back by the shared key's 429s.
func (r *Router) target(m *catalog.Model, workspace string) health.Target {
	tg := health.Target{Provider: m.Provider.Name, Model: m.ID}
	if workspace != "" && r.OwnKey != nil && r.OwnKey(workspace, m.Provider.Name) {
		tg.Workspace = workspace
	}
	return tg
}

// Draw is a request's draw for reopening providers (health.Admits): fixed
// by its decision id, so that every replica and a replay agree, spread
// evenly over [0, health.DrawRange).
func Draw(decisionID string) uint32 {
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(decisionID); i++ {
		h ^= uint32(decisionID[i])
		h *= 16777619
	}
	return (h ^ h>>16) % health.DrawRange
}

// credential reports whether stellwerk can authenticate to a provider for a
// workspace (its own key counts), now or as recorded; rec keeps the
// providers it cannot.
func (r *Router) credential(p *catalog.Provider, workspace string, rp *Inputs, rec *Inputs) bool {
	if rp != nil {
		return !slices.Contains(rp.NoCredential, p.Name)
	}
	ok := p.HasCredential() || (workspace != "" && r.OwnKey != nil && r.OwnKey(workspace, p.Name))
	if !ok && rec != nil && !slices.Contains(rec.NoCredential, p.Name) {
		rec.NoCredential = append(rec.NoCredential, p.Name)
	}
	return ok
}

// downgradeConstraint adds the budgets whose downgrade is in force to the
// constraint the explanation names: "eu residency + downgrade (budget
// cx-day)".
func downgradeConstraint(constraint string, budgets []string) string {
	b := make([]byte, 0, len(constraint)+32)
	if constraint != "" {
		b = append(append(b, constraint...), " + "...)
	}
	b = append(b, "downgrade (budget"...)
	if len(budgets) > 1 {
		b = append(b, 's')
	}
	for i, name := range budgets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(b, ' '), name...)
	}
	return string(append(b, ')'))
}

// checkPolicyLists refuses a per-request allow or deny list naming a model
// or provider the caller cannot use: a typo would otherwise narrow the
// choice to nothing (503) or silently deny nothing. A model hidden from the
// caller is named exactly like one that does not exist.
func (r *Router) checkPolicyLists(p auth.Principal, rp reqpolicy.Policy) (*reqpolicy.Policy, error) {
	if len(rp.Allow) == 0 && len(rp.Deny) == 0 {
		return nil, nil
	}
	vis := r.Visible(p)
	var ids *reqpolicy.Policy // rp with its aliases resolved, made at the first
	for _, l := range []struct {
		field string
		ids   []string
	}{{"allow", rp.Allow}, {"deny", rp.Deny}} {
		for i, id := range l.ids {
			if name, ok := strings.CutPrefix(id, "provider:"); ok {
				// A provider none of whose models the caller may use reads
				// like one that does not exist (the security probe told
				// them apart: 200 against 400).
				if !slices.ContainsFunc(r.Catalog.Models(), func(m *catalog.Model) bool {
					return m.Provider.Name == name && vis.Has(m.ID) && r.keyAllowsID(p, m.ID)
				}) {
					return nil, apierr.Invalid("invalid_policy", "policy."+l.field,
						"policy.%s: unknown provider %q (not in the catalog, or none of its models is available to you); see GET /v1/models", l.field, apierr.Truncate(name, 64))
				}
				continue
			}
			sent := id
			if m := r.Catalog.AliasOf(id); m != nil {
				// The Rego library compares the lists with the
				// candidates' ids: it reads the model's, in a copy (what
				// was sent is what the record and its fingerprint keep).
				if ids == nil {
					q := rp
					q.Allow, q.Deny = slices.Clone(rp.Allow), slices.Clone(rp.Deny)
					ids = &q
				}
				id = m.ID
				if l.field == "allow" {
					ids.Allow[i] = id
				} else {
					ids.Deny[i] = id
				}
			}
			if !vis.Has(id) || !r.keyAllowsID(p, id) {
				return nil, apierr.Invalid("invalid_policy", "policy."+l.field,
					"policy.%s: unknown model %q (not in the catalog, or not available to you); see GET /v1/models", l.field, apierr.Truncate(sent, 64))
			}
		}
	}
	return ids, nil
}
