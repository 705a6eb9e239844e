package flow

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/classify"
	"github.com/stellwerk/stellwerk/internal/ledger"
	"github.com/stellwerk/stellwerk/internal/request"
)

// Sample is one request of a `stellwerk routes test` file: what the edge
// would know of it. Only Body is required.
type Sample struct {
	Name string `json:"name,omitempty"`
	// RequestID decides non-sticky splits (default "sample-<n>").
	RequestID string            `json:"request_id,omitempty"`
	Body      json.RawMessage   `json:"body"`
	Headers   map[string]string `json:"headers,omitempty"`
	Principal *SamplePrincipal  `json:"principal,omitempty"`
	// Classification, when absent, is the configured classifier's verdict
	// on the body (the CLI fills it in).
	Classification *SampleClass `json:"classification,omitempty"`
	// Budgets are budget ratios by name (0.93 = 93% used).
	Budgets map[string]float64 `json:"budgets,omitempty"`
	// Limits are rate_limit node answers by node id: under (default),
	// over, unavailable.
	Limits map[string]string `json:"limits,omitempty"`
	// Now is the request's time (RFC 3339; default 2026-01-01T12:00:00Z).
	Now string `json:"now,omitempty"`
	// Expect, when set, makes the test fail unless the outcome matches.
	Expect *Expect `json:"expect,omitempty"`
}

// SamplePrincipal is who sends a sample.
type SamplePrincipal struct {
	Key       string `json:"key,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Team      string `json:"team,omitempty"`
	User      string `json:"user,omitempty"`
}

// SampleClass is a sample's classification.
type SampleClass struct {
	Task        string `json:"task,omitempty"`
	Complexity  string `json:"complexity,omitempty"`
	Risk        string `json:"risk,omitempty"`
	Sensitivity string `json:"sensitivity,omitempty"`
	Language    string `json:"language,omitempty"`
	PII         bool   `json:"pii,omitempty"`
	Secrets     bool   `json:"secrets,omitempty"`
	Injection   bool   `json:"injection,omitempty"`
	InputTokens int    `json:"input_tokens,omitempty"`
}

// Expect is what a sample's outcome must be; empty fields are not checked.
type Expect struct {
	// Path is the node ids taken.
	Path []string `json:"path,omitempty"`
	// Model is the first target's model (a catalog id or auto).
	Model string `json:"model,omitempty"`
	// Arm is node/arm.
	Arm string `json:"arm,omitempty"`
	// End is the status of an end node.
	End int `json:"end,omitempty"`
}

// SampleResult is one sample's outcome.
type SampleResult struct {
	Name    string   `json:"name"`
	Outcome *Outcome `json:"outcome,omitempty"`
	// Error is why the sample could not run (a body the edge would
	// answer with 400).
	Error string `json:"error,omitempty"`
	// Mismatch lists how the outcome differs from Expect.
	Mismatch []string `json:"mismatch,omitempty"`
	// Sticky is, per sticky split the sample crossed, the subject its arm
	// was chosen by.
	Sticky []StickySubject `json:"sticky,omitempty"`
}

// StickySubject is what a sticky split hashed for one request: What names
// the source (the key's user, the request's user, the key,
// metadata.<field>, the request id) and Subject its value.
type StickySubject struct {
	Node    string `json:"node"`
	What    string `json:"what"`
	Subject string `json:"subject"`
}

// StickyWarnings says, per sticky split, when every sample that crossed it
// (two or more) had one sticky subject: they all take one arm, which is
// what a service key with a user of its own does to a whole app under
// sticky: user (the key's user comes before the request's; the
// experimentation probe). Samples whose subject is the request id (none
// was found) are not sticky and do not count.
func StickyWarnings(results []SampleResult) []string {
	type seen struct {
		n     int
		first StickySubject
		same  bool
	}
	byNode := map[string]*seen{}
	var order []string
	for _, r := range results {
		for _, s := range r.Sticky {
			v := byNode[s.Node]
			if v == nil {
				v = &seen{first: s, same: true}
				byNode[s.Node] = v
				order = append(order, s.Node)
			}
			v.n++
			v.same = v.same && s == v.first && s.What != "the request id"
		}
	}
	var out []string
	for _, node := range order {
		v := byNode[node]
		if v.n < 2 || !v.same {
			continue
		}
		w := fmt.Sprintf("split %s: all %d samples that cross it have one sticky subject, %s %q, so they all take one arm", node, v.n, v.first.What, v.first.Subject)
		if v.first.What == "the key's user" {
			w += "; sticky: user follows the key's user before the request's user: for a service key with a user, use sticky: request.user"
		}
		out = append(out, w)
	}
	return out
}

// ParseSamples reads a samples file: a JSON array of samples, or an object
// with a "samples" array. Unknown fields are errors.
func ParseSamples(data []byte) ([]Sample, error) {
	trimmed := strings.TrimSpace(string(data))
	var out []Sample
	if strings.HasPrefix(trimmed, "{") {
		var w struct {
			Samples []Sample `json:"samples"`
		}
		if err := strictJSON(data, &w); err != nil {
			return nil, err
		}
		out = w.Samples
	} else if err := strictJSON(data, &out); err != nil {
		return nil, err
	}
	for i := range out {
		if len(out[i].Body) == 0 {
			return nil, fmt.Errorf("samples[%d]: body is required", i)
		}
		if out[i].Name == "" {
			out[i].Name = fmt.Sprintf("sample %d", i+1)
		}
		if out[i].RequestID == "" {
			out[i].RequestID = fmt.Sprintf("sample-%d", i+1)
		}
	}
	return out, nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	return nil
}

// Classifier classifies a sample body that has no classification.
type Classifier func(request.Chat) classify.Result

// Run evaluates one sample through f, as the edge would.
func (s *Sample) Run(ctx context.Context, f *Flow, env *Env, cl Classifier) SampleResult {
	res := SampleResult{Name: s.Name}
	chat, err := request.ParseChat(s.Body)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	in := &Input{RequestID: s.RequestID, Chat: &chat, Metadata: chat.Metadata, Now: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	if s.Now != "" {
		if in.Now, err = time.Parse(time.RFC3339, s.Now); err != nil {
			res.Error = "now: not an RFC 3339 time"
			return res
		}
	}
	for k, v := range s.Headers {
		k = strings.ToLower(k)
		if k == "x-stellwerk-metadata" {
			if chat.Metadata != nil {
				res.Error = "metadata is in the body and in x-stellwerk-metadata; send it once (the edge answers 400)"
				return res
			}
			if in.Metadata, err = ParseMetadataHeader(v); err != nil {
				res.Error = err.Error()
				return res
			}
			continue
		}
		if env.hasHeader(k) {
			if in.Headers == nil {
				in.Headers = map[string]string{}
			}
			in.Headers[k] = v
		}
	}
	if p := s.Principal; p != nil {
		in.Principal = &auth.Principal{Authenticated: p.Key != "", KeyID: p.Key, Workspace: p.Workspace, Team: p.Team, User: p.User}
	}
	switch c := s.Classification; {
	case c != nil:
		r := classify.Result{Task: c.Task, Complexity: c.Complexity, Risk: c.Risk, Sensitivity: c.Sensitivity, Language: c.Language,
			InputTokens: c.InputTokens, Scan: classify.ScanComplete, Injection: classify.Injection{Detected: c.Injection}}
		if c.PII {
			r.PII = []classify.Finding{{Type: "sample"}}
		}
		if c.Secrets {
			r.Secrets = []classify.Finding{{Type: "sample"}}
		}
		in.Class = &r
	case cl != nil:
		r := cl(chat)
		in.Class = &r
	}
	for name, ratio := range s.Budgets {
		in.Budgets = append(in.Budgets, ledger.BudgetState{Name: name, Ratio: ratio, Exceeded: ratio >= 1})
	}
	lim := sampleLimits{}
	for node, v := range s.Limits {
		switch v {
		case "under":
			lim[node] = Under
		case "over":
			lim[node] = Over
		case "unavailable":
			lim[node] = Unavailable
		default:
			res.Error = fmt.Sprintf("limits.%s: %q is not under, over or unavailable", node, v)
			return res
		}
	}
	in.Limiter = lim
	res.Outcome = f.Evaluate(ctx, in)
	res.Mismatch = s.Expect.check(res.Outcome)
	for _, id := range res.Outcome.Path {
		if n := f.node(id); n != nil && n.kind == KindSplit && n.sticky != stickyNone {
			what, subject := n.subject(in)
			res.Sticky = append(res.Sticky, StickySubject{Node: id, What: what, Subject: subject})
		}
	}
	return res
}

// sampleLimits answers rate limits from a sample (default under); a replay
// answers from the recorded Outcome.Limits the same way.
type sampleLimits map[string]Verdict

func (s sampleLimits) Take(_ context.Context, l *RateLimit, _ *Input) (Verdict, error) {
	if v, ok := s[l.Node]; ok {
		return v, nil
	}
	return Under, nil
}

// ReplayLimiter answers rate limits as a recorded outcome's did, so a
// replay takes the same path.
func ReplayLimiter(recorded []Limit) Limiter {
	s := sampleLimits{}
	for _, l := range recorded {
		if l.Kind == KindRateLimit {
			s[l.Node] = l.Verdict
		}
	}
	return s
}

func (e *Expect) check(o *Outcome) []string {
	if e == nil {
		return nil
	}
	var out []string
	if e.Path != nil && strings.Join(e.Path, " ") != strings.Join(o.Path, " ") {
		out = append(out, fmt.Sprintf("path %s, expected %s", strings.Join(o.Path, " → "), strings.Join(e.Path, " → ")))
	}
	model := ""
	if len(o.Targets) > 0 {
		model = o.Targets[0].Model
	}
	if e.Model != "" && e.Model != model {
		out = append(out, fmt.Sprintf("model %q, expected %q", model, e.Model))
	}
	if e.Arm != "" && e.Arm != o.Arm {
		out = append(out, fmt.Sprintf("arm %q, expected %q", o.Arm, e.Arm))
	}
	end := 0
	if o.End != nil {
		end = o.End.Status
	}
	if e.End != end {
		if e.End != 0 || end != 0 {
			out = append(out, fmt.Sprintf("end %d, expected %d", end, e.End))
		}
	}
	return out
}

// node is the node with id, nil for none.
func (f *Flow) node(id string) *node {
	for i := range f.nodes {
		if f.nodes[i].id == id {
			return &f.nodes[i]
		}
	}
	return nil
}
