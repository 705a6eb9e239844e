package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"

	"github.com/stellwerk/stellwerk/internal/jsonw"
)

// A record's encoding is what encoding/json writes for Record (struct fields
// in declaration order, omitempty and omitzero honoured, map keys sorted, no
// HTML escaping), written by appends: a decision's record on the shipped
// catalog is ~20 KB, mostly its 71 candidate lines, and reflection over it
// was the writer's largest cost (docs/benchmarks.md). TestEncodeMatches
// holds the two to the same bytes for randomly filled records, so a field
// added to a record type and forgotten here fails it. The bytes are hashed
// and stored as they are; verification never re-encodes.

// jsonRecord is a record's encoding.
func jsonRecord(r *Record) ([]byte, error) {
	e := recordEncoder{b: make([]byte, 0, 1024+256*len(r.Candidates))}
	e.record(r)
	if e.err != nil {
		return nil, e.err
	}
	return e.b, nil
}

type recordEncoder struct {
	b    []byte
	err  error
	more bool // the object being written has a member: the next one needs a comma
}

func (e *recordEncoder) open() (outer bool) {
	e.b = append(e.b, '{')
	outer, e.more = e.more, false
	return outer
}

func (e *recordEncoder) close(outer bool) {
	e.b = append(e.b, '}')
	e.more = outer
}

func (e *recordEncoder) key(k string) {
	if e.more {
		e.b = append(e.b, ',')
	}
	e.more = true
	e.b = append(e.b, '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

func (e *recordEncoder) str(k, v string) {
	e.key(k)
	e.b = jsonw.AppendString(e.b, v)
}

func (e *recordEncoder) strOmit(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

func (e *recordEncoder) int(k string, v int64) {
	e.key(k)
	e.b = jsonw.AppendInt(e.b, v)
}

func (e *recordEncoder) intOmit(k string, v int64) {
	if v != 0 {
		e.int(k, v)
	}
}

func (e *recordEncoder) float(k string, v float64) {
	e.key(k)
	var err error
	if e.b, err = jsonw.AppendFloat(e.b, v); err != nil && e.err == nil {
		e.err = err
	}
}

func (e *recordEncoder) floatOmit(k string, v float64) {
	if v != 0 {
		e.float(k, v)
	}
}

func (e *recordEncoder) boolean(k string, v bool) {
	e.key(k)
	if v {
		e.b = append(e.b, "true"...)
	} else {
		e.b = append(e.b, "false"...)
	}
}

func (e *recordEncoder) boolOmit(k string, v bool) {
	if v {
		e.boolean(k, v)
	}
}

// strs writes a string list; nil is null, as encoding/json writes a nil
// slice member without omitempty.
func (e *recordEncoder) strs(k string, vs []string) {
	e.key(k)
	if vs == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.b = append(e.b, '[')
	for i, v := range vs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = jsonw.AppendString(e.b, v)
	}
	e.b = append(e.b, ']')
}

func (e *recordEncoder) strsOmit(k string, vs []string) {
	if len(vs) > 0 {
		e.strs(k, vs)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (e *recordEncoder) countsOmit(k string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	e.key(k)
	outer := e.open()
	for _, name := range sortedKeys(m) {
		e.mapKey(name)
		e.b = jsonw.AppendInt(e.b, int64(m[name]))
	}
	e.close(outer)
}

// mapKey writes a map's key through the string writer (key writes member
// names verbatim: they are this file's constants).
func (e *recordEncoder) mapKey(k string) {
	if e.more {
		e.b = append(e.b, ',')
	}
	e.more = true
	e.b = jsonw.AppendString(e.b, k)
	e.b = append(e.b, ':')
}

func (e *recordEncoder) stringsMapOmit(k string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	e.key(k)
	outer := e.open()
	for _, name := range sortedKeys(m) {
		e.mapKey(name)
		e.b = jsonw.AppendString(e.b, m[name])
	}
	e.close(outer)
}

// value writes what has no appender of its own (the replay inputs, a
// request policy's canonical JSON) with encoding/json, as the reflection
// encoder would: compact, no HTML escaping.
func (e *recordEncoder) value(k string, v any) {
	e.key(k)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		if e.err == nil {
			e.err = err
		}
		e.b = append(e.b, "null"...)
		return
	}
	e.b = append(e.b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

var errTimeRange = errors.New("audit: record time outside the years 0 to 9999")

func (e *recordEncoder) record(r *Record) {
	outer := e.open()
	e.int("v", int64(r.V))
	e.str("kind", r.Kind)
	e.str("id", r.ID)
	e.key("time")
	e.b = append(e.b, '"')
	var err error
	if e.b, err = r.Time.AppendText(e.b); err != nil && e.err == nil {
		e.err = errTimeRange
	}
	e.b = append(e.b, '"')
	e.strOmit("workspace", r.Workspace)
	if p := r.Principal; p != nil {
		e.key("principal")
		o := e.open()
		e.strOmit("key_id", p.KeyID)
		e.strOmit("team", p.Team)
		e.strOmit("user", p.User)
		e.boolOmit("anonymous", p.Anonymous)
		e.close(o)
	}
	if q := r.Request; q != nil {
		e.key("request")
		o := e.open()
		e.str("fingerprint", q.Fingerprint)
		e.strOmit("path", q.Path)
		e.strOmit("model", q.Model)
		e.boolOmit("stream", q.Stream)
		e.intOmit("max_tokens", int64(q.MaxTokens))
		e.intOmit("bytes", int64(q.Bytes))
		e.close(o)
	}
	if c := r.Classification; c != nil {
		e.key("classification")
		o := e.open()
		e.strOmit("task", c.Task)
		e.floatOmit("task_confidence", c.TaskConfidence)
		e.strOmit("complexity", c.Complexity)
		e.strOmit("language", c.Language)
		e.strOmit("sensitivity", c.Sensitivity)
		e.strOmit("risk", c.Risk)
		e.countsOmit("pii", c.PII)
		e.intOmit("secrets", int64(c.Secrets))
		e.floatOmit("injection_score", c.Injection)
		e.intOmit("input_tokens", int64(c.InputTokens))
		e.strOmit("scan", c.Scan)
		e.strOmit("scan_limit", c.ScanLimit)
		e.close(o)
	}
	if p := r.RequestPolicy; p != nil {
		e.key("request_policy")
		o := e.open()
		e.str("fingerprint", p.Fingerprint)
		if len(p.Policy) > 0 {
			e.value("policy", p.Policy)
		}
		e.close(o)
	}
	if v := r.Versions; v != (Versions{}) {
		e.key("versions")
		o := e.open()
		e.strOmit("policy", v.Policy)
		e.strOmit("config", v.Config)
		e.strOmit("catalog", v.Catalog)
		e.close(o)
	}
	e.strOmit("constraint", r.Constraint)
	e.strOmit("objective", r.Objective)
	e.floatOmit("quality_floor", r.QualityFloor)
	e.strsOmit("deny", r.Deny)
	if len(r.Candidates) > 0 {
		e.key("candidates")
		e.b = append(e.b, '[')
		for i := range r.Candidates {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.candidate(&r.Candidates[i])
		}
		e.b = append(e.b, ']')
	}
	e.strOmit("chosen", r.Chosen)
	e.strOmit("served", r.Served)
	e.strOmit("provider", r.Provider)
	e.strOmit("reason", r.Reason)
	e.strsOmit("fallbacks", r.Fallbacks)
	if len(r.Attempts) > 0 {
		e.key("attempts")
		e.b = append(e.b, '[')
		for i, a := range r.Attempts {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			o := e.open()
			e.str("model", a.Model)
			e.str("provider", a.Provider)
			e.intOmit("status", int64(a.Status))
			e.floatOmit("latency_ms", a.LatencyMS)
			e.str("outcome", a.Outcome)
			e.strOmit("reason", a.Reason)
			e.close(o)
		}
		e.b = append(e.b, ']')
	}
	if u := r.Usage; u != nil {
		e.key("usage")
		o := e.open()
		e.int("prompt_tokens", int64(u.PromptTokens))
		e.int("completion_tokens", int64(u.CompletionTokens))
		e.boolOmit("estimated", u.Estimated)
		e.close(o)
	}
	if c := r.Cost; c != nil {
		e.key("cost")
		o := e.open()
		e.float("eur", c.EUR)
		e.floatOmit("amount", c.Amount)
		e.strOmit("currency", c.Currency)
		e.strOmit("source", c.Source)
		e.floatOmit("estimated_eur", c.EstimatedEUR)
		e.strOmit("baseline_model", c.BaselineModel)
		e.floatOmit("baseline_eur", c.BaselineEUR)
		e.floatOmit("saving_eur", c.SavingEUR)
		e.close(o)
	}
	e.intOmit("router_overhead_us", r.OverheadUS)
	e.intOmit("status", int64(r.Status))
	e.strOmit("error_code", r.ErrorCode)
	if rt := r.Route; rt != nil {
		e.key("route")
		o := e.open()
		e.str("name", rt.Name)
		e.int("version", rt.Version)
		e.strs("path", rt.Path)
		e.strOmit("arm", rt.Arm)
		if len(rt.Limits) > 0 {
			e.key("limits")
			e.b = append(e.b, '[')
			for i, l := range rt.Limits {
				if i > 0 {
					e.b = append(e.b, ',')
				}
				lo := e.open()
				e.str("node", l.Node)
				e.str("kind", l.Kind)
				e.str("verdict", l.Verdict)
				e.boolean("fired", l.Fired)
				e.floatOmit("ratio", l.Ratio)
				e.close(lo)
			}
			e.b = append(e.b, ']')
		}
		e.close(o)
	}
	e.strsOmit("budgets", r.Budgets)
	if r.Replay != nil {
		e.value("replay", r.Replay)
	}
	if c := r.Change; c != nil {
		e.key("change")
		o := e.open()
		e.str("actor", c.Actor)
		e.str("action", c.Action)
		e.strOmit("target", c.Target)
		e.strOmit("before", c.Before)
		e.strOmit("after", c.After)
		e.stringsMapOmit("detail", c.Detail)
		e.close(o)
	}
	if c := r.Content; c != nil {
		e.key("content")
		o := e.open()
		if len(c.Messages) > 0 {
			e.key("messages")
			e.b = append(e.b, '[')
			for i, m := range c.Messages {
				if i > 0 {
					e.b = append(e.b, ',')
				}
				mo := e.open()
				e.str("role", m.Role)
				e.str("text", m.Text)
				e.close(mo)
			}
			e.b = append(e.b, ']')
		}
		e.strOmit("answer", c.Answer)
		e.countsOmit("redacted", c.Redacted)
		e.close(o)
	}
	e.close(outer)
}

func (e *recordEncoder) candidate(c *Candidate) {
	o := e.open()
	e.str("model", c.Model)
	e.strOmit("provider", c.Provider)
	e.str("verdict", c.Verdict)
	e.strOmit("reason", c.Reason)
	e.intOmit("rank", int64(c.Rank))
	e.floatOmit("score", c.Score)
	e.floatOmit("estimated_cost_eur", c.EstimatedCostEUR)
	e.floatOmit("quality", c.Quality)
	e.intOmit("latency_ms", int64(c.LatencyMS))
	e.strOmit("residency", c.Residency)
	e.close(o)
}
