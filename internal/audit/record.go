// Package audit is stellwerk's tamper-evident audit log: one Record per
// routed request and per change of keys, policy, config and admin state,
// written off the request path by an asynchronous, batched writer (Log)
// into the state store (SQLite or PostgreSQL), hash chained per writer and
// anchored by Ed25519-signed checkpoints. Verify detects a modified,
// deleted, inserted or reordered record, a truncated tail and a bad
// signature, on a store or on an export file. docs/audit.md is the
// reference for the schema, the encoding and what it proves.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the version of Record's JSON shape. A change that
// renames or retypes a field bumps it; adding an optional field does not.
// Version 2 writes the candidates by columns (Candidates); readers take
// records of both versions.
const SchemaVersion = 2

// Kinds of record. A decision is one client request (routed, refused or
// failed); the others are changes, with Change set.
const (
	KindDecision    = "decision"
	KindKey         = "key"          // virtual key create, rotate, revoke
	KindProviderKey = "provider_key" // a workspace's provider key set or deleted
	KindConfig      = "config"       // config loaded, reloaded or refused
	KindPolicy      = "policy"       // policy version loaded or refused
	KindRoute       = "route"        // route version created, deployed, rolled back
	KindAdmin       = "admin"        // any other admin action
)

// Kinds lists every kind, for validation of filters.
var Kinds = []string{KindDecision, KindKey, KindProviderKey, KindConfig, KindPolicy, KindRoute, KindAdmin}

// Record is one entry of the audit log. It holds facts about a decision,
// never a key, a token, or (unless the workspace opted in) prompt text.
// Zero-valued members are left out of the encoding.
type Record struct {
	// V is SchemaVersion; Record() sets it.
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// ID is the decision id (x-stellwerk-decision-id) of a decision, a
	// generated id for a change.
	ID string `json:"id"`
	// Time is when the request arrived (or the change was made); Record()
	// sets it when zero.
	Time time.Time `json:"time"`
	// Workspace is whose record this is: retention and the workspace filter
	// of export and /admin/audit read it.
	Workspace string `json:"workspace,omitempty"`

	Principal *Principal `json:"principal,omitempty"`
	Request   *Request   `json:"request,omitempty"`
	// Classification is the classifier's summary: labels and counts, never
	// the values found.
	Classification *Classification `json:"classification,omitempty"`
	RequestPolicy  *RequestPolicy  `json:"request_policy,omitempty"`
	Versions       Versions        `json:"versions,omitzero"`
	// Constraint is the strongest hard constraint in force ("eu residency").
	Constraint string `json:"constraint,omitempty"`
	// Objective and QualityFloor are what the policy decided to optimise.
	Objective    string  `json:"objective,omitempty"`
	QualityFloor float64 `json:"quality_floor,omitempty"`
	// Deny is the policy's deny reasons of a refused request.
	Deny       []string   `json:"deny,omitempty"`
	Candidates Candidates `json:"candidates,omitempty"`
	// Table is the decision's candidate table as the router keeps it, for
	// a record whose Candidates are empty: the writer encodes it as the
	// candidates, each reason formatted straight into the record's bytes,
	// so the request path neither copies 71 lines nor formats a reason.
	// CandidateList reads either.
	Table CandidateTable `json:"-"`
	// Chosen is the model the decision picked; Served the one that answered
	// (another after failover).
	Chosen   string `json:"chosen,omitempty"`
	Served   string `json:"served,omitempty"`
	Provider string `json:"provider,omitempty"`
	// ProviderRequestID is the provider's own id of the request that
	// served (its x-request-id or request-id): what its support and a
	// deletion request name the request by.
	ProviderRequestID string    `json:"provider_request_id,omitempty"`
	Reason            string    `json:"reason,omitempty"`
	Fallbacks         []string  `json:"fallbacks,omitempty"`
	Attempts          []Attempt `json:"attempts,omitempty"`
	Usage             *Usage    `json:"usage,omitempty"`
	Cost              *Cost     `json:"cost,omitempty"`
	// OverheadUS is the router's own time on the request, in microseconds.
	OverheadUS int64 `json:"router_overhead_us,omitempty"`
	// TookMS is the request's time from its arrival (Time) to this record,
	// in milliseconds: a slow upload or a long stream is chained that long
	// after its Time (audit verify reads it).
	TookMS int64 `json:"took_ms,omitempty"`
	// Status is the HTTP status the client got; ErrorCode the OpenAI error
	// code when it was an error (policy_denied, budget_exceeded, …).
	Status    int    `json:"status,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
	// Route is the named route the request took and its path through it
	// (nil: it named none).
	Route *Route `json:"route,omitempty"`
	// Budgets names the budgets that applied (downgrade or block).
	Budgets []string `json:"budgets,omitempty"`

	// Replay is everything the decision read (decision.Inputs: the request's
	// routing facts, the principal, the classification, the time and the
	// live state it weighed), for `stellwerk replay`; nil when the request
	// was refused before it was classified.
	Replay any `json:"replay,omitempty"`

	// Change is set on every kind but decision.
	Change *Change `json:"change,omitempty"`
	// Content is the request's and the answer's text, only for workspaces
	// that opted in (audit.content), with personal data and secrets
	// replaced by typed placeholders before the record is handed over.
	Content *Content `json:"content,omitempty"`
}

// Route is what a named route decided (docs/routes.md): the version that
// ran, the nodes taken, the split arms, and every limit node checked with
// its verdict, so a replay takes the same path.
type Route struct {
	Name    string   `json:"name"`
	Version int64    `json:"version"`
	Path    []string `json:"path"`
	Arm     string   `json:"arm,omitempty"`
	// Served says whether the route's chosen target served: target (one
	// of its targets was sent), fallback (none could, and selection chose
	// as for auto: the path's last node did not serve), none (no model
	// was chosen). Absent in records written before 2026-12-08.
	Served string       `json:"served,omitempty"`
	Limits []RouteLimit `json:"limits,omitempty"`
}

// RouteLimit is one limit node's check: kind rate_limit or budget_limit,
// verdict under, over or unavailable, and whether its fallback was taken.
type RouteLimit struct {
	Node    string  `json:"node"`
	Kind    string  `json:"kind"`
	Verdict string  `json:"verdict"`
	Fired   bool    `json:"fired"`
	Ratio   float64 `json:"ratio,omitempty"`
}

// Principal is who called: ids, never a secret.
type Principal struct {
	KeyID string `json:"key_id,omitempty"`
	Team  string `json:"team,omitempty"`
	User  string `json:"user,omitempty"`
	// Anonymous is true for an unauthenticated caller (auth.mode open).
	Anonymous bool `json:"anonymous,omitempty"`
	// Address is the network address the caller connected from, as
	// Envoy saw it (x-envoy-external-address): personal data, kept for
	// security (docs/audit.md).
	Address string `json:"address,omitempty"`
	// PreviousSecret: the key's secret that a rotation replaced, in its
	// grace period, authenticated the request.
	PreviousSecret bool `json:"previous_secret,omitempty"`
}

// Request is what the client asked for, without its text.
type Request struct {
	// Fingerprint is Fingerprint(body): "sha256:" and the hex SHA-256 of
	// the body as received. Leave it empty and set Body to have the writer
	// compute it off the request path.
	Fingerprint string `json:"fingerprint"`
	// Body is the request body to fingerprint; never encoded or stored.
	// The writer drops it once hashed.
	Body []byte `json:"-"`
	Path string `json:"path,omitempty"`
	// Model is the request's model member: auto, a model id, an alias or route:….
	Model     string `json:"model,omitempty"`
	Stream    bool   `json:"stream,omitempty"`
	MaxTokens int    `json:"max_tokens,omitempty"`
	Bytes     int    `json:"bytes,omitempty"`
}

// Classification is the classifier's result as labels and counts.
type Classification struct {
	Task           string         `json:"task,omitempty"`
	TaskConfidence float64        `json:"task_confidence,omitempty"`
	Complexity     string         `json:"complexity,omitempty"`
	Language       string         `json:"language,omitempty"`
	Sensitivity    string         `json:"sensitivity,omitempty"`
	Risk           string         `json:"risk,omitempty"`
	PII            map[string]int `json:"pii,omitempty"` // type → count
	Secrets        int            `json:"secrets,omitempty"`
	Injection      float64        `json:"injection_score,omitempty"`
	InputTokens    int            `json:"input_tokens,omitempty"`
	// Scan is complete or truncated (ScanLimit names the cap).
	Scan      string `json:"scan,omitempty"`
	ScanLimit string `json:"scan_limit,omitempty"`
	// Unread counts the parts no detector reads, by kind.
	Unread map[string]int `json:"unread,omitempty"`
}

// RequestPolicy is the validated per-request policy and its fingerprint.
// Policy is its canonical JSON as reqpolicy renders it.
type RequestPolicy struct {
	Fingerprint string          `json:"fingerprint"`
	Policy      json.RawMessage `json:"policy,omitempty"`
}

// Versions are content hashes of what decided: the policy version, and
// "sha256:<hex>" (ContentHash) of the config and of the catalog in force.
// Replay looks the versions up by these.
type Versions struct {
	Policy  string `json:"policy,omitempty"`
	Config  string `json:"config,omitempty"`
	Catalog string `json:"catalog,omitempty"`
	// Predictor is the quality predictor file in force
	// (routing.quality_predictor), by content: the config names only its
	// path, and a retrained file keeps the path.
	Predictor string `json:"predictor,omitempty"`
	// PolicySHA256 is the policy's whole digest (hex), of which Policy is
	// the first 12 digits; replay checks the kept sources against it.
	// Absent in records written before 2026-12-07.
	PolicySHA256 string `json:"policy_sha256,omitempty"`
}

// CandidateTable is a decision's candidates as its router keeps them. It
// is only read, by the writer, after the record is handed over; its
// owner must not change it afterwards.
type CandidateTable interface {
	Len() int
	// Candidate is line i with its Reason left empty; AppendReason
	// appends that reason to dst.
	Candidate(i int) Candidate
	AppendReason(dst []byte, i int) []byte
}

// CandidateList is the record's candidates: Candidates, or its Table's
// lines with their reasons.
func (r *Record) CandidateList() Candidates {
	if len(r.Candidates) > 0 || r.Table == nil || r.Table.Len() == 0 {
		return r.Candidates
	}
	cs := make(Candidates, r.Table.Len())
	for i := range cs {
		cs[i] = r.Table.Candidate(i)
		cs[i].Reason = string(r.Table.AppendReason(nil, i))
	}
	return cs
}

// Candidate is one model's line of the decision.
type Candidate struct {
	Model    string `json:"model"`
	Provider string `json:"provider,omitempty"`
	// Verdict is chosen, eligible, excluded (by policy) or rejected (by a
	// requirement); Reason says why for the last two.
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// Rank is an eligible candidate's place in the objective's order (1:
	// first); Score the balanced objective's score when it ranked (see
	// decide.Verdict). The inputs they weigh are recorded beside them.
	Rank             int     `json:"rank,omitempty"`
	Score            float64 `json:"score,omitempty"`
	EstimatedCostEUR float64 `json:"estimated_cost_eur,omitempty"`
	Quality          float64 `json:"quality,omitempty"`
	LatencyMS        int     `json:"latency_ms,omitempty"`
	Residency        string  `json:"residency,omitempty"`
}

// Attempt is one provider the request was sent to.
type Attempt struct {
	Model     string  `json:"model"`
	Provider  string  `json:"provider"`
	Status    int     `json:"status,omitempty"` // 0: no response
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Outcome   string  `json:"outcome"` // served, failed
	Reason    string  `json:"reason,omitempty"`
}

// Usage is the tokens the answer used.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	// CachedTokens, CacheWriteTokens and CacheWrite1hTokens are the parts
	// of PromptTokens the provider read from its cache, and wrote to it for
	// five minutes and for an hour, each at its own price (absent when 0,
	// and in records written before 2026-12-07).
	CachedTokens       int `json:"cached_tokens,omitempty"`
	CacheWriteTokens   int `json:"cache_write_tokens,omitempty"`
	CacheWrite1hTokens int `json:"cache_write_1h_tokens,omitempty"`
	// WebSearches are the searches the provider's web search tool ran,
	// billed apiece (absent when 0, and in records before 2026-12-07).
	WebSearches int  `json:"web_searches,omitempty"`
	Estimated   bool `json:"estimated,omitempty"`
}

// Money is an amount as a record keeps it: rounded to ten significant
// digits. Costs are products and sums of prices and token counts in
// float64, whose shortest decimal form ends in noise
// (0.0011282879999999999); a record is read by people and exported, and
// ten digits are far below a cent of any request. Candidates.MarshalJSON
// writes the candidates' costs through it too, and a replay compares
// recorded and replayed costs after it (internal/cli), so records written
// before it replay as they did. NaN, infinities and zero are returned as
// they are.
func Money(f float64) float64 {
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return f
	}
	// Scaled to a ten-digit integer and back: a power of ten up to 1e22
	// is exact in float64, and the division rounds correctly to the
	// double nearest the ten-digit decimal, which is what prints.
	if e := 9 - int(math.Floor(math.Log10(math.Abs(f)))); e >= 0 && e <= 22 {
		p := math.Pow10(e)
		return math.Round(f*p) / p
	} else if e < 0 && e >= -22 {
		p := math.Pow10(-e)
		return math.Round(f/p) * p
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	if err != nil {
		return f
	}
	return r
}

// Cost is what the request cost and saved, in EUR (each amount Money).
type Cost struct {
	EUR float64 `json:"eur"`
	// Amount and Currency are in the model's price currency.
	Amount   float64 `json:"amount,omitempty"`
	Currency string  `json:"currency,omitempty"`
	// Source is provider_usage or estimate.
	Source        string  `json:"source,omitempty"`
	EstimatedEUR  float64 `json:"estimated_eur,omitempty"`
	BaselineModel string  `json:"baseline_model,omitempty"`
	BaselineEUR   float64 `json:"baseline_eur,omitempty"`
	SavingEUR     float64 `json:"saving_eur,omitempty"`
}

// Change is who changed what.
type Change struct {
	// Actor is admin:<token id>, cli:<unix user>, or system.
	Actor string `json:"actor"`
	// Action is create, rotate, revoke, set, delete, load, reload, refuse….
	Action string `json:"action"`
	// Target names what changed (a key id, workspace/provider, a version).
	Target string `json:"target,omitempty"`
	// Before and After are versions or digests, never secrets.
	Before string            `json:"before,omitempty"`
	After  string            `json:"after,omitempty"`
	Detail map[string]string `json:"detail,omitempty"`
}

// Content is the opted-in text, already redacted by the caller.
type Content struct {
	Messages []ContentMessage `json:"messages,omitempty"`
	Answer   string           `json:"answer,omitempty"`
	// Redacted counts the placeholders by type.
	Redacted map[string]int `json:"redacted,omitempty"`
}

// ContentMessage is one message of the request.
type ContentMessage struct {
	Role string `json:"role"`
	Text string `json:"text"`
}

// Fingerprint is the request fingerprint of a body: "sha256:" and the hex
// SHA-256 of the bytes as received. (The body is parsed with gjson and
// never re-serialised, so the bytes received are the canonical form: the
// same bytes always give the same fingerprint.)
func Fingerprint(body []byte) string { return ContentHash(body) }

// ContentHash names a version by its content: "sha256:<hex>".
func ContentHash(b []byte) string {
	sum := sha256.Sum256(b)
	var h [len("sha256:") + 2*sha256.Size]byte // on the stack: one allocation, the string's
	copy(h[:], "sha256:")
	hex.Encode(h[len("sha256:"):], sum[:])
	return string(h[:])
}

// RouteChange is the change record of a route version stored or made live
// (the admin API, the CLI, a file synced from routes/): before and after
// are route@version, and detail "message" is why, as the operator said it
// (at most MaxRouteMessage bytes), so the trail of a rollback during an
// experiment says what regressed.
func RouteChange(actor string, d RouteSwitch) Change {
	c := Change{Actor: actor, Action: d.Action, Target: d.Route, After: routeLabel(d.Route, d.To)}
	if d.From != 0 {
		c.Before = routeLabel(d.Route, d.From)
	}
	if m := BoundMessage(d.Message); m != "" {
		c.Detail = map[string]string{"message": m}
	}
	return c
}

// MaxRouteMessage bounds a route change's message in its record, as the
// route store bounds a version's message.
const MaxRouteMessage = 1024

// BoundMessage is m trimmed and cut to MaxRouteMessage bytes at a rune
// boundary.
func BoundMessage(m string) string {
	m = strings.TrimSpace(m)
	if len(m) <= MaxRouteMessage {
		return m
	}
	m = m[:MaxRouteMessage]
	for len(m) > 0 && !utf8.ValidString(m) {
		m = m[:len(m)-1]
	}
	return m
}

// RouteSwitch is what a route change did (flowstore.Deploy's fields; a
// stored version without a deploy has Action "create" and From 0), and
// the message its operator gave.
type RouteSwitch struct {
	Route    string
	Action   string
	From, To int64
	Message  string
}

func routeLabel(route string, v int64) string { return route + "@" + strconv.FormatInt(v, 10) }

// Detach points r away from the request it was built from. A request is
// parsed in place: a record's model, its replay inputs' user and metadata
// and its candidate table (inside the decision, beside the parsed request)
// keep the request's whole body alive. Record detaches a record whose body
// it hashed itself because the queue holds maxQueuedBodies of bodies
// already: otherwise the bound held nothing, and a stalled writer's queue
// of large prompts took the memory its bound was to keep.
func (r *Record) Detach() {
	if q := r.Request; q != nil {
		q.Model, q.Path = strings.Clone(q.Model), strings.Clone(q.Path)
	}
	if o := r.Route; o != nil {
		o.Name = strings.Clone(o.Name)
	}
	if d, ok := r.Replay.(interface{ Detach() }); ok {
		d.Detach()
	}
	if d, ok := r.Table.(interface{ Detached() CandidateTable }); ok {
		r.Table = d.Detached()
	}
}
