package audit

import (
	"sync"

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
func jsonRecord(r *Record) ([]byte, error) { return encodeRecord(nil, r) }

// encodeRecord is a record's encoding, appended to buf[:0] (grown to a
// record's usual size when smaller).
func encodeRecord(buf []byte, r *Record) ([]byte, error) {
	n := len(r.Candidates)
	if n == 0 && r.Table != nil {
		n = r.Table.Len()
	}
	if need := 4096 + 128*n; cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	e := recordEncoder{jsonw.Encoder{B: buf[:0]}}
	e.record(r)
	if e.Err != nil {
		return nil, e.Err
	}
	return e.B, nil
}

// recordBufs are the writer's record encodings that have been written: a
// record's JSON is only needed until its entry is in the store or the
// spool, and a decision's is ~20 KB.
var recordBufs sync.Pool

// pooledRecord is a record's encoding in a buffer from recordBufs.
func pooledRecord(r *Record) ([]byte, error) {
	var buf []byte
	if p, ok := recordBufs.Get().(*[]byte); ok {
		buf = *p
	}
	return encodeRecord(buf, r)
}

// releaseBodies gives the written entries' encodings back to recordBufs
// and drops them from the entries.
func releaseBodies(es []Entry) {
	for i := range es {
		if b := es[i].Body; cap(b) > 0 && cap(b) <= 1<<20 {
			b = b[:0]
			recordBufs.Put(&b)
		}
		es[i].Body = nil
	}
}

// recordEncoder writes a record.
type recordEncoder struct{ jsonw.Encoder }

func (e *recordEncoder) record(r *Record) {
	outer := e.Open()
	e.Int("v", int64(r.V))
	e.Str("kind", r.Kind)
	e.Str("id", r.ID)
	e.Time("time", r.Time)
	e.StrOmit("workspace", r.Workspace)
	if p := r.Principal; p != nil {
		e.Key("principal")
		o := e.Open()
		e.StrOmit("key_id", p.KeyID)
		e.StrOmit("team", p.Team)
		e.StrOmit("user", p.User)
		e.BoolOmit("anonymous", p.Anonymous)
		e.StrOmit("address", p.Address)
		e.BoolOmit("previous_secret", p.PreviousSecret)
		e.Close(o)
	}
	if q := r.Request; q != nil {
		e.Key("request")
		o := e.Open()
		e.Str("fingerprint", q.Fingerprint)
		e.StrOmit("path", q.Path)
		e.StrOmit("model", q.Model)
		e.BoolOmit("stream", q.Stream)
		e.IntOmit("max_tokens", int64(q.MaxTokens))
		e.IntOmit("bytes", int64(q.Bytes))
		e.Close(o)
	}
	if c := r.Classification; c != nil {
		e.Key("classification")
		o := e.Open()
		e.StrOmit("task", c.Task)
		e.FloatOmit("task_confidence", c.TaskConfidence)
		e.StrOmit("complexity", c.Complexity)
		e.StrOmit("language", c.Language)
		e.StrOmit("sensitivity", c.Sensitivity)
		e.StrOmit("risk", c.Risk)
		e.IntMapOmit("pii", c.PII)
		e.IntOmit("secrets", int64(c.Secrets))
		e.FloatOmit("injection_score", c.Injection)
		e.IntOmit("input_tokens", int64(c.InputTokens))
		e.StrOmit("scan", c.Scan)
		e.StrOmit("scan_limit", c.ScanLimit)
		e.IntMapOmit("unread", c.Unread)
		e.Close(o)
	}
	if p := r.RequestPolicy; p != nil {
		e.Key("request_policy")
		o := e.Open()
		e.Str("fingerprint", p.Fingerprint)
		if len(p.Policy) > 0 {
			e.Value("policy", p.Policy)
		}
		e.Close(o)
	}
	if v := r.Versions; v != (Versions{}) {
		e.Key("versions")
		o := e.Open()
		e.StrOmit("policy", v.Policy)
		e.StrOmit("config", v.Config)
		e.StrOmit("catalog", v.Catalog)
		e.StrOmit("predictor", v.Predictor)
		e.StrOmit("policy_sha256", v.PolicySHA256)
		e.Close(o)
	}
	e.StrOmit("constraint", r.Constraint)
	e.StrOmit("objective", r.Objective)
	e.FloatOmit("quality_floor", r.QualityFloor)
	e.StrsOmit("deny", r.Deny)
	switch t := r.Table; {
	case len(r.Candidates) > 0:
		e.candidateColumns(r.Candidates, nil)
	case t != nil && t.Len() > 0:
		// The same bytes as the lines CandidateList makes
		// (TestEncodeTableMatches), their reasons in one buffer.
		tl, _ := tableScratch.Get().(*tableLines)
		if tl == nil {
			tl = new(tableLines)
		}
		e.candidateColumns(tl.fill(t), tl)
		clear(tl.lines) // the reasons' strings point into tl.reasons
		tableScratch.Put(tl)
	}
	e.StrOmit("chosen", r.Chosen)
	e.StrOmit("served", r.Served)
	e.StrOmit("provider", r.Provider)
	e.StrOmit("provider_request_id", r.ProviderRequestID)
	e.StrOmit("reason", r.Reason)
	e.StrsOmit("fallbacks", r.Fallbacks)
	if len(r.Attempts) > 0 {
		e.List("attempts", len(r.Attempts), false, func(i int) {
			a := &r.Attempts[i]
			o := e.Open()
			e.Str("model", a.Model)
			e.Str("provider", a.Provider)
			e.IntOmit("status", int64(a.Status))
			e.FloatOmit("latency_ms", a.LatencyMS)
			e.Str("outcome", a.Outcome)
			e.StrOmit("reason", a.Reason)
			e.Close(o)
		})
	}
	if u := r.Usage; u != nil {
		e.Key("usage")
		o := e.Open()
		e.Int("prompt_tokens", int64(u.PromptTokens))
		e.Int("completion_tokens", int64(u.CompletionTokens))
		e.IntOmit("cached_tokens", int64(u.CachedTokens))
		e.IntOmit("cache_write_tokens", int64(u.CacheWriteTokens))
		e.IntOmit("cache_write_1h_tokens", int64(u.CacheWrite1hTokens))
		e.IntOmit("web_searches", int64(u.WebSearches))
		e.BoolOmit("estimated", u.Estimated)
		e.Close(o)
	}
	if c := r.Cost; c != nil {
		e.Key("cost")
		o := e.Open()
		e.Float("eur", c.EUR)
		e.FloatOmit("amount", c.Amount)
		e.StrOmit("currency", c.Currency)
		e.StrOmit("source", c.Source)
		e.FloatOmit("estimated_eur", c.EstimatedEUR)
		e.StrOmit("baseline_model", c.BaselineModel)
		e.FloatOmit("baseline_eur", c.BaselineEUR)
		e.FloatOmit("saving_eur", c.SavingEUR)
		e.Close(o)
	}
	e.IntOmit("router_overhead_us", r.OverheadUS)
	e.IntOmit("took_ms", r.TookMS)
	e.IntOmit("status", int64(r.Status))
	e.StrOmit("error_code", r.ErrorCode)
	if rt := r.Route; rt != nil {
		e.Key("route")
		o := e.Open()
		e.Str("name", rt.Name)
		e.Int("version", rt.Version)
		e.Strs("path", rt.Path)
		e.StrOmit("arm", rt.Arm)
		e.StrOmit("served", rt.Served)
		if len(rt.Limits) > 0 {
			e.List("limits", len(rt.Limits), false, func(i int) {
				l := &rt.Limits[i]
				lo := e.Open()
				e.Str("node", l.Node)
				e.Str("kind", l.Kind)
				e.Str("verdict", l.Verdict)
				e.Bool("fired", l.Fired)
				e.FloatOmit("ratio", l.Ratio)
				e.Close(lo)
			})
		}
		e.Close(o)
	}
	e.StrsOmit("budgets", r.Budgets)
	if r.Replay != nil {
		e.Value("replay", r.Replay)
	}
	if c := r.Change; c != nil {
		e.Key("change")
		o := e.Open()
		e.Str("actor", c.Actor)
		e.Str("action", c.Action)
		e.StrOmit("target", c.Target)
		e.StrOmit("before", c.Before)
		e.StrOmit("after", c.After)
		e.StringMapOmit("detail", c.Detail)
		e.Close(o)
	}
	if c := r.Content; c != nil {
		e.Key("content")
		o := e.Open()
		if len(c.Messages) > 0 {
			e.List("messages", len(c.Messages), false, func(i int) {
				m := &c.Messages[i]
				mo := e.Open()
				e.Str("role", m.Role)
				e.Str("text", m.Text)
				e.Close(mo)
			})
		}
		e.StrOmit("answer", c.Answer)
		e.IntMapOmit("redacted", c.Redacted)
		e.Close(o)
	}
	e.Close(outer)
}

// tableScratch holds the tableLines of records written from a table.
var tableScratch sync.Pool
