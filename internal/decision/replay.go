package decision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/catalog"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/jsonw"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/reqpolicy"
	"github.com/stellwerk/stellwerk/internal/request"
)

// InputsVersion is the shape of Inputs a decision records; Replay reads it
// and every version before it. Version 2 added LatencyFrom: the learned
// latencies may be left to the record's candidate table. Version 3 added
// Logprobs, Functions and OpenAIWireOnly, what keeps a chat request off
// Anthropic-wire models: without them a decision that did replayed to the
// Anthropic model (the upgrade probe).
// Version 4 added LargestInput: a batch of inputs fits a model whose
// context window takes its longest one (it was held to their sum).
// Version 5 added Audio, Files and FileByID: the audio and files
// capabilities, and a file by id kept to the provider that stores it.
// Version 6 added Images, PDFPages and PDFUncounted: each candidate's
// estimated cost counts its images and inline PDF pages at its own
// image_tokens. A record of an earlier version has none of them, and its
// costs replay from its text alone, as they were decided.
// Version 7 added no field: a model's context window takes the request's
// images and counted PDF pages at its image_tokens, and the window, the
// estimated cost and max_cost take the output a model is sent (the
// client's bound, at most its max_output_tokens); no saving is claimed
// against a baseline the request does not fit. A record of an earlier
// version replays with the client's bound and the text alone in the
// window, as it was decided.
const InputsVersion = 7

// LatencyFromCandidates is LatencyFrom when the record's candidate table
// carries the latencies (its latency_ms column, one per model).
const LatencyFromCandidates = "candidates"

// Inputs are everything a decision read, as the audit record keeps it
// (never the prompt): the request's routing facts, the principal, the
// classification (types and counts), and what it read of the live state —
// the time, the providers in cooldown, the learned latencies, the quality
// predictor's predictions, the providers without a credential, the budget
// state and a route's rate-limit answers. With the policy, config and catalog versions the
// record names, Replay decides again exactly as the request was decided.
type Inputs struct {
	V              int               `json:"v"`
	DecisionID     string            `json:"decision_id"`
	Path           string            `json:"path"`
	Model          string            `json:"model"`
	Stream         bool              `json:"stream,omitempty"`
	MaxTokens      int               `json:"max_tokens,omitempty"`
	Choices        int               `json:"n,omitempty"` // legacy completions' n (the estimate counts each)
	Messages       int               `json:"messages"`
	Tools          bool              `json:"tools,omitempty"`
	ResponseFormat string            `json:"response_format,omitempty"`
	Vision         bool              `json:"vision,omitempty"`
	User           string            `json:"user,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	Headers        map[string]string `json:"headers,omitempty"`
	// NativeOnly and Stored: what a Responses request needs of a provider
	// (request.Chat).
	NativeOnly string `json:"native_only,omitempty"`
	Stored     bool   `json:"stored,omitempty"`
	// Logprobs, Functions and OpenAIWireOnly: what keeps a chat request
	// off Anthropic-wire models (request.Chat; version 3).
	Logprobs       bool   `json:"logprobs,omitempty"`
	Functions      bool   `json:"functions,omitempty"`
	OpenAIWireOnly string `json:"openai_wire_only,omitempty"`
	// LargestInput is request.Chat's (version 4).
	LargestInput int `json:"largest_input,omitempty"`
	// Audio, Files and FileByID are request.Chat's (version 5).
	Audio    bool `json:"audio,omitempty"`
	Files    bool `json:"files,omitempty"`
	FileByID bool `json:"file_by_id,omitempty"`
	// Images, PDFPages and PDFUncounted are request.Chat's (version 6).
	Images       int  `json:"images,omitempty"`
	PDFPages     int  `json:"pdf_pages,omitempty"`
	PDFUncounted bool `json:"pdf_uncounted,omitempty"`
	// Policy is the per-request policy in its canonical form ("" for none).
	Policy         string          `json:"policy,omitempty"`
	Principal      Principal       `json:"principal"`
	Classification classify.Result `json:"classification"`
	// RouteVersion and RouteLimits are a named route's version and its
	// rate-limit nodes' answers (node → under, over, unavailable).
	RouteVersion int64             `json:"route_version,omitempty"`
	RouteLimits  map[string]string `json:"route_limits,omitempty"`

	Now     time.Time `json:"now"`
	Cooling []string  `json:"cooling,omitempty"`
	// CoolingModels are models a cooldown of their own kept from the
	// request (a rate limit per model or per credential), beyond the
	// providers in Cooling.
	CoolingModels []string `json:"cooling_models,omitempty"`
	NoCredential  []string `json:"no_credential,omitempty"`
	// LatencyMS are the learned latencies the decision read: the models
	// whose latency was not their catalog seed. Empty when LatencyFrom
	// names where they are instead.
	LatencyMS map[string]int `json:"latency_ms,omitempty"`
	// LatencyFrom is LatencyFromCandidates when the record leaves the
	// latencies to its candidate table, which has every model's
	// (InLatencyTable): the same numbers twice were a fifth of a stored
	// record. A replay reads them back with LatencyFromTable first.
	LatencyFrom string `json:"latency_from,omitempty"`
	// Quality is what the quality predictor (routing.quality_predictor)
	// predicted for this prompt, per model it knows; the other models'
	// quality is the catalog's for the task. A replay has no prompt to
	// predict from: it reads these.
	Quality map[string]float64   `json:"quality,omitempty"`
	Budgets []ledger.BudgetState `json:"budgets,omitempty"`

	// live is LatencyMS as a live decision keeps it until its record is
	// written (a map of 71 entries was the largest thing a decision
	// allocated): AppendJSON writes it as latency_ms, LatencyOf reads it.
	live liveLatency
}

// liveLatency is the latency a decision read for each catalog model, in
// catalog order, -1 where it was the model's seed (which the record leaves
// out), with the catalog's ids and their sorted order to write it as the
// map a decoded record has.
type liveLatency struct {
	ms  []int32
	idx *catalogIndex
}

// catalogIndex is a catalog's model ids in catalog order and that order
// sorted by id (built once per router).
type catalogIndex struct {
	ids    []string
	sorted []int32
	keys   [][]byte // each id as a JSON member's name (jsonw.EncodedKey)
}

func newCatalogIndex(models []*catalog.Model) *catalogIndex {
	x := &catalogIndex{ids: make([]string, len(models)), sorted: make([]int32, len(models)), keys: make([][]byte, len(models))}
	for i, m := range models {
		x.ids[i], x.sorted[i], x.keys[i] = m.ID, int32(i), jsonw.EncodedKey(m.ID)
	}
	slices.SortFunc(x.sorted, func(a, b int32) int { return strings.Compare(x.ids[a], x.ids[b]) })
	return x
}

// InLatencyTable leaves the latencies to the record's candidate table: the
// edge calls it when the record it writes carries the decision's table,
// whose latency_ms column holds the latency each model was weighed with,
// learned or seed.
func (in *Inputs) InLatencyTable() {
	in.live, in.LatencyMS, in.LatencyFrom = liveLatency{}, nil, LatencyFromCandidates
}

// Detach copies what in shares with the request it was read from (the
// body is parsed in place): a record waiting for the audit writer then
// keeps none of the request alive (audit.Record.Detach).
func (in *Inputs) Detach() {
	in.Path, in.Model, in.User, in.ResponseFormat = strings.Clone(in.Path), strings.Clone(in.Model), strings.Clone(in.User), strings.Clone(in.ResponseFormat)
	in.Metadata, in.Headers = cloneStrings(in.Metadata), cloneStrings(in.Headers)
	in.Classification.TaskCue = strings.Clone(in.Classification.TaskCue)
	c := &in.Classification
	c.PII, c.Secrets = detachFindings(c.PII), detachFindings(c.Secrets)
}

// detachFindings is a copy of fs with its fields' names copied (the
// classification may be a memo's, shared with other requests).
func detachFindings(fs []classify.Finding) []classify.Finding {
	if len(fs) == 0 {
		return fs
	}
	c := slices.Clone(fs)
	for i := range c {
		c[i].Field = strings.Clone(c[i].Field)
	}
	return c
}

// cloneStrings is a copy of m whose keys and values are copies.
func cloneStrings(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[strings.Clone(k)] = strings.Clone(v)
	}
	return c
}

// LatencyFromTable reads the learned latencies back from the record's
// candidate table (ids and their latency_ms, in the table's order), for a
// replay of inputs that left them there: the models whose latency is not
// their seed in the catalog the record names (seed; nil takes every
// latency as learned). Inputs that keep their latencies are left as they
// are.
func (in *Inputs) LatencyFromTable(ids []string, ms []int, seed func(id string) (int, bool)) error {
	switch in.LatencyFrom {
	case "":
		return nil
	case LatencyFromCandidates:
	default:
		return fmt.Errorf("replay inputs take their latencies from %q, which this stellwerk does not know", in.LatencyFrom)
	}
	if len(ids) == 0 || len(ids) != len(ms) {
		return errors.New("replay inputs take their latencies from the record's candidate table, and the record has none")
	}
	in.LatencyMS = nil
	for i, id := range ids {
		if s, ok := seed(id); ok && s == ms[i] {
			continue
		}
		if in.LatencyMS == nil {
			in.LatencyMS = make(map[string]int, len(ids))
		}
		in.LatencyMS[id] = ms[i]
	}
	in.LatencyFrom = ""
	return nil
}

// LatencyOf is the latency the decision read for a model, when it was not
// the model's seed.
func (in *Inputs) LatencyOf(id string) (int, bool) {
	if in.live.idx != nil {
		for i, mid := range in.live.idx.ids {
			if mid == id && in.live.ms[i] >= 0 {
				return int(in.live.ms[i]), true
			}
		}
		return 0, false
	}
	v, ok := in.LatencyMS[id]
	return v, ok
}

// Principal is the part of auth.Principal a decision reads.
type Principal struct {
	Authenticated bool     `json:"authenticated"`
	KeyID         string   `json:"key_id,omitempty"`
	Workspace     string   `json:"workspace"`
	Team          string   `json:"team,omitempty"`
	User          string   `json:"user,omitempty"`
	Roles         []string `json:"roles,omitempty"`
	Models        []string `json:"models,omitempty"`
	Routes        []string `json:"routes,omitempty"`
}

// ReplayInputs completes what a live decision recorded (Request.Record)
// with the request's facts, for the audit record. Nil when the request
// was refused before it was classified (nothing to replay).
func (res *Result) ReplayInputs(req *Request) *Inputs {
	in := res.Inputs
	if in == nil {
		return nil
	}
	c := &res.Chat
	p := &req.Principal
	in.V, in.DecisionID, in.Path = InputsVersion, req.DecisionID, req.Path
	in.Model, in.Stream, in.MaxTokens, in.Messages, in.Choices = c.Model, c.Stream, c.MaxTokens, c.Messages, c.Choices
	in.Tools, in.ResponseFormat, in.Vision, in.User, in.Metadata, in.Headers = c.Tools, c.ResponseFormat, c.Vision, c.User, c.Metadata, req.Headers
	in.User, in.Metadata, in.Headers = withoutFindings(res.Class, in.User, in.Metadata, in.Headers)
	in.NativeOnly, in.Stored = c.NativeOnly, c.Stored
	in.Logprobs, in.Functions, in.OpenAIWireOnly = c.Logprobs, c.FunctionList.Exists() && c.FunctionList.Type != gjson.Null, c.OpenAIWireOnly
	in.LargestInput = c.LargestInput
	in.Audio, in.Files, in.FileByID = c.Audio, c.Files, c.FileByID
	in.Images, in.PDFPages, in.PDFUncounted = c.Images, c.PDFPages, c.PDFUncounted
	if res.ReqPolicy.Set {
		in.Policy = reqpolicy.Canonical(res.ReqPolicy)
	}
	in.Principal = principalOf(p)
	in.Classification = withoutPositions(res.Class)
	if o := res.Route; o != nil {
		in.RouteVersion = o.Version
		for _, l := range o.Limits {
			if l.Kind == flow.KindRateLimit {
				if in.RouteLimits == nil {
					in.RouteLimits = map[string]string{}
				}
				in.RouteLimits[l.Node] = l.Verdict.String()
			}
		}
	}
	return in
}

// withoutFindings is user, metadata and the client's headers with the
// secrets and personal data the classifier found in them redacted, as the
// audit log keeps them (classify.Redact: [SECRET:aws_access_key],
// [EMAIL]); a finding in a metadata key's name redacts the names. Values
// nothing was found in are kept as they are, and a map is copied only when
// one of its values changes, so a request without findings there costs a
// loop over its findings.
func withoutFindings(c classify.Result, user string, md, hdrs map[string]string) (string, map[string]string, map[string]string) {
	var mdCopied, hdrsCopied, names bool
	redact := func(fs []classify.Finding) {
		for _, f := range fs {
			if f.Message >= 0 {
				continue
			}
			key, inMD := strings.CutPrefix(f.Field, "metadata.")
			name, inHdrs := strings.CutPrefix(f.Field, "headers.")
			switch {
			case f.Field == "user":
				user = classify.Redact(user, nil)
			case f.Field == "metadata": // in a key's name
				names = true
			case inMD && md[key] != "":
				if !mdCopied {
					md, mdCopied = maps.Clone(md), true
				}
				md[key] = classify.Redact(md[key], nil)
			case inHdrs && hdrs[name] != "":
				if !hdrsCopied {
					hdrs, hdrsCopied = maps.Clone(hdrs), true
				}
				hdrs[name] = classify.Redact(hdrs[name], nil)
			}
		}
	}
	redact(c.Secrets)
	redact(c.PII)
	if names {
		named := make(map[string]string, len(md))
		for k, v := range md {
			base := classify.Redact(k, nil)
			r := base
			for n := 2; r != k && named[r] != ""; n++ { // two names redacted alike keep both values
				r = base + " #" + strconv.Itoa(n)
			}
			named[r] = v
		}
		md = named
	}
	return user, md, hdrs
}

// withoutPositions keeps a classification's finding types (what the policy
// reads) and drops where in the prompt each was.
func withoutPositions(c classify.Result) classify.Result {
	strip := func(fs []classify.Finding) []classify.Finding {
		out := make([]classify.Finding, len(fs))
		for i := range fs {
			out[i] = classify.Finding{Type: fs[i].Type}
		}
		return out
	}
	c.PII, c.Secrets = strip(c.PII), strip(c.Secrets)
	c.Injection.Message = 0
	return c
}

// Replay decides again from recorded inputs. With the router built from
// the versions the record names, it reproduces the recorded decision; with
// today's router it shows what would be decided now (current: a named
// route then runs its live version rather than the recorded one).
func (r *Router) Replay(ctx context.Context, in *Inputs, current bool) (*Result, error) {
	if in.V < 1 || in.V > InputsVersion {
		return nil, fmt.Errorf("replay inputs of version %d; this stellwerk reads versions 1 to %d", in.V, InputsVersion)
	}
	if in.LatencyFrom != "" {
		return nil, errors.New("replay inputs that leave their latencies to the record's candidate table: read them back first (Inputs.LatencyFromTable)")
	}
	chat := request.Chat{Model: in.Model, Stream: in.Stream, Messages: in.Messages, MaxTokens: in.MaxTokens,
		Choices: in.Choices, Tools: in.Tools, ResponseFormat: in.ResponseFormat, Vision: in.Vision, User: in.User, Metadata: in.Metadata,
		NativeOnly: in.NativeOnly, Stored: in.Stored, Logprobs: in.Logprobs, OpenAIWireOnly: in.OpenAIWireOnly, LargestInput: in.LargestInput,
		Audio: in.Audio, Files: in.Files, FileByID: in.FileByID, Images: in.Images, PDFPages: in.PDFPages, PDFUncounted: in.PDFUncounted}
	if in.Functions {
		chat.FunctionList = gjson.Parse("[]")
	}
	if name, version, ok := request.RouteOf(in.Model); ok {
		chat.Route, chat.RouteVersion = name, version
		if !current && in.RouteVersion != 0 {
			chat.RouteVersion = in.RouteVersion
		}
	}
	res := &Result{Chat: chat, Workspace: in.Principal.Workspace, Class: in.Classification}
	if in.Policy != "" {
		rp, err := reqpolicy.FromBody(gjson.Parse(in.Policy))
		if err != nil {
			return nil, fmt.Errorf("recorded request policy: %w", err)
		}
		res.ReqPolicy = rp
	}
	p := in.Principal
	req := Request{Path: in.Path, Headers: in.Headers, Budgets: in.Budgets, DecisionID: in.DecisionID,
		Principal: p.auth()}
	var limits []flow.Limit
	for node, v := range in.RouteLimits {
		if verdict, ok := flow.ParseVerdict(v); ok {
			limits = append(limits, flow.Limit{Node: node, Kind: flow.KindRateLimit, Verdict: verdict})
		}
	}
	req.Limiter = flow.ReplayLimiter(limits)
	if err := r.admit(&req, res); err != nil {
		return res, err
	}
	return res, r.decide(ctx, &req, res, in)
}

// principalOf and auth convert between the principal a decision read and
// its record, field for field, in one place each way.
func principalOf(p *auth.Principal) Principal {
	return Principal{Authenticated: p.Authenticated, KeyID: p.KeyID, Workspace: p.Workspace, Team: p.Team, User: p.User,
		Roles: p.Roles, Models: p.Models, Routes: p.Routes}
}

func (p Principal) auth() auth.Principal {
	return auth.Principal{Authenticated: p.Authenticated, KeyID: p.KeyID, Workspace: p.Workspace, Team: p.Team, User: p.User,
		Roles: p.Roles, Models: p.Models, Routes: p.Routes}
}
