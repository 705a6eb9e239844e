package classify

import "github.com/stellwerk/stellwerk/internal/jsonw"

// AppendJSON writes the result as encoding/json does (jsonw.Appender):
// every decision's audit record carries it in its replay inputs, where
// encoding/json's reflection over it cost the writer ~8 µs a record
// (docs/benchmarks.md). TestResultJSON holds the two to the same bytes for
// randomly filled results, so a member added to Result and forgotten here
// fails it.
func (r *Result) AppendJSON(dst []byte) ([]byte, error) {
	e := jsonw.Encoder{B: dst}
	o := e.Open()
	e.Str("task", r.Task)
	e.Float("task_confidence", r.TaskConfidence)
	e.StrOmit("task_cue", r.TaskCue)
	e.Str("complexity", r.Complexity)
	e.Strs("complexity_drivers", r.ComplexityDrivers)
	s := &r.ComplexitySignals
	e.Key("complexity_signals")
	so := e.Open()
	e.Int("input_tokens", int64(s.InputTokens))
	e.Int("questions", int64(s.Questions))
	e.Int("list_items", int64(s.ListItems))
	e.Int("code_blocks", int64(s.CodeBlocks))
	e.Int("reasoning_cues", int64(s.ReasoningCues))
	e.Float("code_density", s.CodeDensity)
	e.Float("math_density", s.MathDensity)
	e.Int("requested_output", int64(s.RequestedOutput))
	e.Int("turns", int64(s.Turns))
	e.Close(so)
	e.Str("language", r.Language)
	findings(&e, "pii", r.PII)
	e.IntMap("pii_counts", r.PIICounts)
	findings(&e, "secrets", r.Secrets)
	in := &r.Injection
	e.Key("injection")
	io := e.Open()
	e.Float("score", in.Score)
	e.Bool("detected", in.Detected)
	e.StrOmit("rule", in.Rule)
	e.Int("message", int64(in.Message))
	e.Close(io)
	e.List("terms", len(r.Terms), r.Terms == nil, func(i int) {
		t := &r.Terms[i]
		to := e.Open()
		e.Str("name", t.Name)
		e.Int("count", int64(t.Count))
		e.Close(to)
	})
	e.Str("sensitivity", r.Sensitivity)
	e.Str("sensitivity_rule", r.SensitivityRule)
	e.Str("risk", r.Risk)
	e.Str("risk_rule", r.RiskRule)
	e.Int("input_tokens", int64(r.InputTokens))
	e.Str("scan", r.Scan)
	e.StrOmit("scan_limit", r.ScanLimit)
	e.IntMapOmit("unread", r.Unread)
	e.Close(o)
	return e.B, e.Err
}

// findings writes a list of findings (null when nil).
func findings(e *jsonw.Encoder, k string, fs []Finding) {
	e.List(k, len(fs), fs == nil, func(i int) {
		f := &fs[i]
		o := e.Open()
		e.Str("type", f.Type)
		e.Int("message", int64(f.Message))
		e.Str("field", f.Field)
		e.Int("start", int64(f.Start))
		e.Int("end", int64(f.End))
		e.Close(o)
	})
}
