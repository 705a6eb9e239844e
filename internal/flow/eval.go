package flow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/request"
)

// Hash is a document's content hash: "sha256:<hex>" of its bytes exactly.
func Hash(data []byte) string {
	h := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// Input is everything a flow reads of one request. Nil members read as
// zero values. Nothing here is copied: the edge passes what it holds.
type Input struct {
	// RequestID (the decision id) picks the arm of a split that is not
	// sticky, so a replay of the same request takes the same arm.
	RequestID string
	// Now is when the request arrived (the `now` variable).
	Now       time.Time
	Chat      *request.Chat
	Principal *auth.Principal
	Class     *classify.Result
	// Headers are the allow-listed client headers, lower-case names.
	Headers map[string]string
	// Metadata is the body's metadata object or the x-stellwerk-metadata
	// header's (ParseMetadataHeader); the caller picks one.
	Metadata map[string]string
	// Budgets is the ledger's state for this request's subject (Peek),
	// read when Flow.NeedsBudgets.
	Budgets []ledger.BudgetState
	// Limiter counts rate_limit nodes; nil counts as unavailable.
	Limiter Limiter
}

// Verdict is a Limiter's answer for one request at one rate_limit node.
type Verdict uint8

// Verdicts.
const (
	// Under: the request was counted and fits.
	Under Verdict = iota + 1
	// Over: the limit is reached; the request was not counted against it.
	Over
	// Unavailable: the count could not be checked; the node's fail mode
	// decides.
	Unavailable
)

var verdictNames = [...]string{"", "under", "over", "unavailable"}

func (v Verdict) String() string { return verdictNames[v] }

// ParseVerdict reads a verdict's name.
func ParseVerdict(s string) (Verdict, bool) {
	for i, n := range verdictNames {
		if i > 0 && n == s {
			return Verdict(i), true
		}
	}
	return 0, false
}

// MarshalText renders the verdict's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// Limiter counts requests against a flow's rate_limit nodes. The edge
// implements it over internal/ledger: a rate rule per node named
// RateLimit.Counter(), scoped by RateLimit.Per, reserved with the decision
// id and released at once (a request counts; no money is held). A replay
// implements it from the recorded Outcome.Limits. It must be safe for
// concurrent use and should not block longer than the ledger does.
type Limiter interface {
	Take(ctx context.Context, l *RateLimit, in *Input) (Verdict, error)
}

// Limit records one limit node's check on the path.
type Limit struct {
	Node    string  `json:"node"`
	Kind    Kind    `json:"kind"`
	Verdict Verdict `json:"verdict"`
	// Fired: the fallback was taken.
	Fired bool `json:"fired"`
	// Ratio is the budget's share used (budget_limit nodes).
	Ratio float64 `json:"ratio,omitempty"`
}

// Outcome is what a flow decided for one request.
type Outcome struct {
	Route   string `json:"route"`
	Version int64  `json:"version,omitempty"`
	// Path is the ids of the nodes taken, in order.
	Path []string `json:"path"`
	// Arm is the split arms taken, as node/arm (joined by "," when the
	// path crosses several splits); "" when none.
	Arm string `json:"arm,omitempty"`
	// Targets are the models in order of preference: Targets[0] is the
	// flow's choice, the others its fallbacks (a chain). Empty when the
	// flow ended (End). The slice is the flow's: do not modify it.
	Targets []Target `json:"targets,omitempty"`
	// Refuse: the target node says on_unavailable: refuse, so when none of
	// Targets can serve the request is refused rather than served as auto.
	Refuse bool `json:"refuse,omitempty"`
	// Served is how the decision used Targets (set by selection, not by
	// Evaluate): ServedTarget, ServedFallback or ServedNone.
	Served string `json:"served,omitempty"`
	// Limits are the limit nodes checked on the path.
	Limits []Limit `json:"limits,omitempty"`
	// End is set when the flow refuses the request.
	End *End `json:"end,omitempty"`
	// ConditionErrors are conditions that failed at run time (a missing
	// metadata key, a cost limit); each took its else branch.
	ConditionErrors []NodeError `json:"condition_errors,omitempty"`

	pathBuf [8]string
	act     activation
}

// NodeError is a condition that could not be evaluated.
type NodeError struct {
	Node string `json:"node"`
	Msg  string `json:"message"`
}

// Fired returns the first limit node whose fallback was taken.
func (o *Outcome) Fired() (Limit, bool) {
	for _, l := range o.Limits {
		if l.Fired {
			return l, true
		}
	}
	return Limit{}, false
}

// Label is route@version, as x-stellwerk-route carries it.
func (o *Outcome) Label() string {
	if o.Version == 0 {
		return o.Route
	}
	return o.Route + "@" + itoa(o.Version)
}

// Explain renders the path for the reason line and explain:
// "support@7: plan → paid[challenger] → sonnet".
func (o *Outcome) Explain() string {
	var b strings.Builder
	b.WriteString(o.Label())
	b.WriteString(": ")
	for i, id := range o.Path {
		if i > 0 {
			b.WriteString(" → ")
		}
		b.WriteString(id)
		for _, a := range strings.Split(o.Arm, ",") {
			if n, arm, ok := strings.Cut(a, "/"); ok && n == id {
				b.WriteString("[" + arm + "]")
			}
		}
		for _, l := range o.Limits {
			if l.Node == id && l.Fired {
				b.WriteString(" (limit reached)")
			} else if l.Node == id && l.Verdict == Unavailable {
				b.WriteString(" (limit unchecked)")
			}
		}
	}
	return b.String()
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Evaluate runs the flow for one request. It never fails: a condition that
// errs takes its else branch (recorded in ConditionErrors), a limit that
// cannot be checked follows its fail mode. Given the same Input and the
// same Limiter answers it returns the same Outcome.
func (f *Flow) Evaluate(ctx context.Context, in *Input) *Outcome {
	o := &Outcome{Route: f.Name, Version: f.Version}
	o.Path = o.pathBuf[:0]
	o.act.in = in
	i := f.start
	// A flow is acyclic (Compile checks), so it ends within len(nodes)
	// steps; the bound is a second guard.
	for range len(f.nodes) {
		n := &f.nodes[i]
		o.Path = append(o.Path, n.id)
		switch n.kind {
		case KindIf:
			i = n.els
			v, _, err := n.cond.prg.ContextEval(ctx, &o.act)
			switch {
			case err != nil:
				o.ConditionErrors = append(o.ConditionErrors, NodeError{Node: n.id, Msg: err.Error()})
			case v == types.True:
				i = n.then
			}
		case KindSplit:
			a := n.pick(in)
			if o.Arm == "" {
				o.Arm = a.label
			} else {
				o.Arm += "," + a.label
			}
			i = a.next
		case KindRateLimit:
			v := Unavailable
			if in.Limiter != nil {
				var err error
				if v, err = in.Limiter.Take(ctx, n.rate, in); err != nil {
					v = Unavailable
				}
			}
			fired := v == Over || (v == Unavailable && n.rate.FailClosed)
			o.Limits = append(o.Limits, Limit{Node: n.id, Kind: KindRateLimit, Verdict: v, Fired: fired})
			i = n.next
			if fired {
				i = n.fall
			}
		case KindBudgetLimit:
			ratio := 0.0
			for k := range in.Budgets {
				if in.Budgets[k].Name == n.budget {
					ratio = max(ratio, in.Budgets[k].Ratio)
				}
			}
			fired := ratio >= n.at
			v := Under
			if fired {
				v = Over
			}
			o.Limits = append(o.Limits, Limit{Node: n.id, Kind: KindBudgetLimit, Verdict: v, Fired: fired, Ratio: ratio})
			i = n.next
			if fired {
				i = n.fall
			}
		case KindModel, KindChain:
			o.Targets, o.Refuse = n.targets, n.refuse
			return o
		case KindEnd:
			o.End = n.end
			return o
		}
	}
	return o // unreachable for a compiled flow
}

// pick chooses a split's arm by a stable hash of the sticky subject (or the
// request id): the same subject lands on the same arm on every replica and
// in every version that keeps the node's id.
func (n *node) pick(in *Input) *arm {
	subject := in.RequestID
	switch n.sticky {
	case stickyUser:
		if s := stickyUserOf(in); s != "" {
			subject = s
		}
	case stickyRequestUser:
		if in.Chat != nil && in.Chat.User != "" {
			subject = "u:" + in.Chat.User
		}
	case stickyKey:
		if in.Principal != nil && in.Principal.KeyID != "" {
			subject = in.Principal.KeyID
		}
	case stickyMetadata:
		if s := in.Metadata[n.stickyKey]; s != "" {
			subject = s
		}
	}
	b := bucket(n.salt, subject)
	for k := range n.arms {
		if b < n.arms[k].upto {
			return &n.arms[k]
		}
	}
	return &n.arms[len(n.arms)-1]
}

// subject is the sticky subject pick hashes for in, and what it is: "the
// key's user", "the request's user", "the key", "metadata.<field>", or
// "the request id" (no sticky subject).
func (n *node) subject(in *Input) (what, subject string) {
	switch n.sticky {
	case stickyUser:
		switch s := stickyUserOf(in); {
		case s == "":
		case in.Principal != nil && in.Principal.User != "":
			return "the key's user", s[2:]
		case strings.HasPrefix(s, "u:"):
			return "the request's user", s[2:]
		default:
			return "the key", s[2:]
		}
	case stickyRequestUser:
		if in.Chat != nil && in.Chat.User != "" {
			return "the request's user", in.Chat.User
		}
	case stickyKey:
		if in.Principal != nil && in.Principal.KeyID != "" {
			return "the key", in.Principal.KeyID
		}
	case stickyMetadata:
		if s := in.Metadata[n.stickyKey]; s != "" {
			return "metadata." + n.stickyKey, s
		}
	}
	return "the request id", in.RequestID
}

// stickyUserOf is the key's user, else the request's user field, else the
// key id.
func stickyUserOf(in *Input) string {
	switch {
	case in.Principal != nil && in.Principal.User != "":
		return "u:" + in.Principal.User
	case in.Chat != nil && in.Chat.User != "":
		return "u:" + in.Chat.User
	case in.Principal != nil && in.Principal.KeyID != "":
		return "k:" + in.Principal.KeyID
	}
	return ""
}

// bucket hashes salt+subject (FNV-1a, then a 64-bit finaliser so short
// inputs spread) to [0, 2^32).
func bucket(salt, subject string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * 1099511628211
	}
	for i := 0; i < len(subject); i++ {
		h = (h ^ uint64(subject[i])) * 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h >> 32
}

// activation resolves the condition variables from an Input without
// copying it.
type activation struct {
	in      *Input
	budgets map[string]Budget
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) Parent() interpreter.Activation { return nil }

func (a *activation) ResolveName(name string) (any, bool) {
	in := a.in
	if ns, field, ok := strings.Cut(name, "."); ok {
		switch ns {
		case "request":
			return a.request(field)
		case "principal":
			return a.principal(field)
		case "classification":
			return a.class(field)
		}
		return nil, false
	}
	switch name {
	case "metadata":
		if in.Metadata == nil {
			return emptyMap, true
		}
		return in.Metadata, true
	case "headers":
		if in.Headers == nil {
			return emptyMap, true
		}
		return in.Headers, true
	case "budgets":
		if a.budgets == nil {
			a.budgets = make(map[string]Budget, len(in.Budgets))
			for _, b := range in.Budgets {
				if old, ok := a.budgets[b.Name]; !ok || b.Ratio > old.Ratio {
					a.budgets[b.Name] = Budget{Ratio: b.Ratio, Exceeded: b.Exceeded, Warn: b.Warn}
				}
			}
		}
		return a.budgets, true
	case "now":
		return types.Timestamp{Time: in.Now}, true
	}
	return nil, false
}

var emptyMap = map[string]string{}

func (a *activation) request(field string) (ref.Val, bool) {
	c := a.in.Chat
	if c == nil {
		c = &request.Chat{}
	}
	switch field {
	case "model":
		return types.String(c.Model), true
	case "max_tokens":
		return types.Int(c.MaxTokens), true
	case "stream":
		return types.Bool(c.Stream), true
	case "tools":
		return types.Bool(c.Tools), true
	case "vision":
		return types.Bool(c.Vision), true
	case "audio":
		return types.Bool(c.Audio), true
	case "files":
		return types.Bool(c.Files), true
	case "messages":
		return types.Int(c.Messages), true
	case "user":
		return types.String(c.User), true
	case "response_format":
		return types.String(c.ResponseFormat), true
	}
	return nil, false
}

func (a *activation) principal(field string) (ref.Val, bool) {
	p := a.in.Principal
	if p == nil {
		p = &auth.Principal{}
	}
	switch field {
	case "key":
		return types.String(p.KeyID), true
	case "workspace":
		return types.String(p.Workspace), true
	case "team":
		return types.String(p.Team), true
	case "user":
		return types.String(p.User), true
	case "authenticated":
		return types.Bool(p.Authenticated), true
	}
	return nil, false
}

func (a *activation) class(field string) (ref.Val, bool) {
	c := a.in.Class
	if c == nil {
		c = &classify.Result{}
	}
	switch field {
	case "task":
		return types.String(c.Task), true
	case "complexity":
		return types.String(c.Complexity), true
	case "risk":
		return types.String(c.Risk), true
	case "sensitivity":
		return types.String(c.Sensitivity), true
	case "language":
		return types.String(c.Language), true
	case "pii":
		return types.Bool(len(c.PII) > 0), true
	case "secrets":
		return types.Bool(len(c.Secrets) > 0), true
	case "injection":
		return types.Bool(c.Injection.Detected), true
	case "input_tokens":
		return types.Int(c.InputTokens), true
	case "scan_complete":
		return types.Bool(c.Scan != classify.ScanTruncated), true
	}
	return nil, false
}
